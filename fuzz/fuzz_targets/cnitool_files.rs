//! cnitool's inputs: network configuration lists and single plugin configs (as read from
//! the config directory), `CNI_ARGS`/`CAP_ARGS`, and the libcni result cache files.
//!
//! Input: one selector byte (list, plugin config, cache file, arguments: byte % 4; for a
//! cache file, byte / 4 % 7 picks the config version the result is converted to), then the
//! file's bytes.
//! Properties: every request built from a list parses and names the list's network and
//! version; a parsed cache file written back reads back equal and writes identically; a
//! cached result is converted or refused with a reason, never a panic; parsed `CNI_ARGS`
//! written back parse equal.
#![no_main]

use cni::Version;
use cni_fuzz::has_float;
use cnitool::runtime::build_request;
use cnitool::{Cache, CachedInfo, NetworkConfigList, PluginConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(list) = NetworkConfigList::from_bytes(bytes) {
                check_list(&list);
            }
        }
        1 => {
            if let Ok(plugin) = PluginConfig::from_bytes(bytes) {
                let _ = plugin.description();
                if let Ok(list) = NetworkConfigList::from_single_plugin(plugin) {
                    check_list(&list);
                }
            }
        }
        2 => check_cache_file(bytes, Version::ALL[usize::from(selector / 4) % 7]),
        _ => check_arguments(&String::from_utf8_lossy(bytes)),
    }
});

fn check_list(list: &NetworkConfigList) {
    let _ = list.version();
    for plugin in &list.plugins {
        let request = build_request(list, plugin, Some(Value::Null), None);
        let request: Value = serde_json::from_slice(&request).expect("a request is JSON");
        assert_eq!(request["name"], list.name.as_str());
        assert_eq!(request["cniVersion"], list.cni_version.as_str());
    }
}

fn check_cache_file(bytes: &[u8], version: Version) {
    if let Ok(info) = CachedInfo::from_bytes(bytes) {
        check_cache_rewrite(&info);
    }
    // The whole read path, from a file in a cache directory.
    let cache = Cache::new(cache_dir());
    let path = cache
        .file_path("fuzznet", "fuzz-ctr", "eth0")
        .expect("a valid attachment");
    std::fs::create_dir_all(path.parent().expect("results dir")).expect("cache dir");
    std::fs::write(&path, bytes).expect("write the cache file");
    match cache.read_result("fuzznet", "fuzz-ctr", "eth0", version.as_str()) {
        Ok(Some(result)) => {
            assert_eq!(
                result["cniVersion"],
                version.as_str(),
                "converted to {version}"
            );
        }
        Ok(None) => panic!("an existing cache file read as absent"),
        Err(reason) => assert!(!reason.is_empty()),
    }
}

/// A parsed cache file written back reads back equal and writes identically.
fn check_cache_rewrite(info: &CachedInfo) {
    let written = info.to_bytes();
    let mut again = CachedInfo::from_bytes(&written).expect("our own cache file reads");
    // An empty result is left out when written, as libcni's `omitempty` does.
    let mut expected = info.clone();
    if expected.result.as_ref().is_some_and(|r| r.is_empty()) {
        expected.result = None;
    }
    if again.result.as_ref().is_some_and(|r| r.is_empty()) {
        again.result = None;
    }
    let floats = info
        .result
        .iter()
        .chain([&info.capability_args])
        .any(|map| map.values().any(has_float));
    if floats {
        return;
    }
    assert_eq!(again, expected, "cache file changed on rewrite");
    assert_eq!(
        again.to_bytes(),
        written,
        "cache file bytes changed on rewrite"
    );
}

fn check_arguments(text: &str) {
    if let Ok(pairs) = cnitool::tool::parse_cni_args(text) {
        let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let again = cnitool::tool::parse_cni_args(&joined.join(";")).expect("re-parses");
        assert_eq!(again, pairs);
    }
    let parsed = cnitool::tool::parse_capability_args(text).ok();
    if let Some(map) = parsed.filter(|map| !map.values().any(has_float)) {
        let printed = Value::Object(map.clone()).to_string();
        assert_eq!(
            cnitool::tool::parse_capability_args(&printed).ok(),
            Some(map)
        );
    }
}

/// This process's cache directory (fuzzing runs one input at a time).
fn cache_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("cni-fuzz-cache-{}", std::process::id())))
}
