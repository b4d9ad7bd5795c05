//! Running a network list as libcni does (CNI:libcni/api.go, docs/spec.md#runtime):
//! ADD in order with each result threaded into the next plugin's `prevResult`, DEL in
//! reverse with the cached result, CHECK with the cached result, STATUS and GC, the
//! request config each plugin gets on stdin, and the result cache.
//!
//! Plugins are executed with `cni::invoke::delegate`, the same code our plugins use to run
//! their IPAM plugin: binary lookup in `CNI_PATH` (first regular executable, no `/` in
//! the type), environment = ours plus every `CNI_*` variable (all set, even when empty),
//! the ETXTBSY retry, and the plugin's error object returned with its code.

use crate::cache::{Cache, CachedInfo, parse_result_version};
use crate::config::{NetworkConfigList, PluginConfig, SpecVersion};
use crate::error::{Error, Result};
use cni::json;
use cni::{CmdArgs, CniArgs, CniResult, Command, Version};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// One attachment's runtime arguments (libcni `RuntimeConf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS` (may be empty for DEL).
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` pairs, in order.
    pub args: Vec<(String, String)>,
    /// Capability arguments: offered to each plugin under `runtimeConfig` for the
    /// capabilities it enables.
    pub capability_args: Map<String, Value>,
}

/// A still-valid attachment, for GC (`cni.dev/valid-attachments` entries).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GcAttachment {
    /// The container ID.
    pub container_id: String,
    /// The interface name.
    pub ifname: String,
}

/// The result of an ADD: the last plugin's result, in the version it returned.
#[derive(Debug, Clone, PartialEq)]
pub struct AddResult {
    /// The result.
    pub result: CniResult,
    /// The version it was returned in (and is printed in).
    pub version: Version,
}

impl AddResult {
    /// Printed as libcni's `Result.Print` prints it: 4-space indent, no trailing newline.
    pub fn to_json_string(&self) -> cni::Result<String> {
        self.result.to_json_string(self.version)
    }
}

/// The runtime: where plugins are found and where results are cached (libcni `CNIConfig`).
#[derive(Debug, Clone)]
pub struct CniConfig {
    /// The plugin search path (`CNI_PATH`).
    pub path: Vec<PathBuf>,
    /// The result cache.
    pub cache: Cache,
}

impl CniConfig {
    /// ADD (libcni `AddNetworkList`): runs every plugin in order, each getting the previous
    /// plugin's result as `prevResult`, stops at the first failure, then caches the final
    /// result. A cache write failure fails the ADD: DEL and CHECK would need the file.
    ///
    /// Nothing is undone when a plugin fails: as with libcni, the runtime is expected to
    /// call DEL, which every plugin must tolerate for a half-made attachment.
    pub fn add_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<AddResult> {
        let mut last: Option<AddResult> = None;
        for plugin in &list.plugins {
            let prev = match &last {
                Some(added) => Some(to_prev_result(added, plugin)?),
                None => None,
            };
            let added = self
                .add_one(list, plugin, prev, rt)
                .map_err(|source| plugin_error(plugin, "add", source))?;
            last = Some(added);
        }
        let Some(added) = last else {
            return Err(Error::InvalidConfig(format!(
                "network {:?} has no plugins",
                list.name
            )));
        };
        let result_map = match to_prev_result(&added, &list.plugins[0])? {
            Value::Object(map) => Some(map),
            _ => None,
        };
        let info = CachedInfo {
            container_id: rt.container_id.clone(),
            config: list.bytes.clone(),
            ifname: rt.ifname.clone(),
            network_name: list.name.clone(),
            netns: rt.netns.clone(),
            cni_args: rt.args.clone(),
            capability_args: rt.capability_args.clone(),
            result: result_map,
        };
        self.cache
            .write(&info)
            .map_err(|source| Error::CacheWrite {
                network: list.name.clone(),
                source,
            })?;
        Ok(added)
    }

    fn add_one(
        &self,
        list: &NetworkConfigList,
        plugin: &PluginConfig,
        prev: Option<Value>,
        rt: &RuntimeConf,
    ) -> cni::Result<AddResult> {
        // libcni validates these before each ADD; plugins would refuse them anyway, but
        // an invalid name must not reach a cache file path either.
        cni::names::validate_container_id(&rt.container_id)?;
        cni::names::validate_network_name(&list.name)?;
        cni::names::validate_ifname(&rt.ifname)?;
        let stdin = build_request(list, plugin, prev, Some(rt));
        let output =
            self.exec(plugin, Command::Add, rt, stdin)?
                .ok_or_else(|| cni::Error::Decode {
                    msg: "failed to unmarshal raw result: the plugin printed nothing".into(),
                    details: None,
                })?;
        // A result without cniVersion is in the config's version (libcni
        // `fixupResultVersion`, cni #895); otherwise it is read in its own version.
        let version_text = match output.get("cniVersion") {
            Some(Value::String(v)) if !v.is_empty() => v.clone(),
            _ => list.cni_version.clone(),
        };
        let version = parse_result_version(&version_text).map_err(|reason| cni::Error::Decode {
            msg: format!("unsupported result version {version_text:?}"),
            details: Some(reason),
        })?;
        let mut result = CniResult::parse(&output, version)?;
        // libcni decodes results into its typed structs, which drop unknown keys; so do
        // we, so the next plugin and the cache see what they would see with libcni.
        result.extra.clear();
        Ok(AddResult { result, version })
    }

    /// CHECK (libcni `CheckNetworkList`): refused below 0.4.0, a no-op with `disableCheck`,
    /// otherwise every plugin in order with the cached result as `prevResult`.
    pub fn check_network_list(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<()> {
        if list.version()? < SpecVersion::V0_4_0 {
            return Err(Error::CheckNotSupported {
                version: list.cni_version.clone(),
            });
        }
        if list.disable_check {
            return Ok(());
        }
        let cached = self
            .cache
            .read_result(&list.name, &rt.container_id, &rt.ifname, &list.cni_version)
            .map_err(|reason| Error::CachedResult {
                network: list.name.clone(),
                reason,
            })?;
        for plugin in &list.plugins {
            let stdin = build_request(list, plugin, cached.clone(), Some(rt));
            self.exec(plugin, Command::Check, rt, stdin)
                .map_err(|source| plugin_error(plugin, "check", source))?;
        }
        Ok(())
    }

    /// DEL (libcni `DelNetworkList`): every plugin in reverse order, each with the cached
    /// result as `prevResult` (from 0.4.0), then the cache file is removed.
    ///
    /// A cache file that cannot be used is deleted and DEL goes on without `prevResult`:
    /// a corrupt file (e.g. truncated by a crash) must never block clean-up (cni #1055,
    /// PR #1072). DEL stops at the first failing plugin, as libcni does, so that the
    /// runtime retries the whole DEL; the cache file is then kept for the retry.
    pub fn del_network_list(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<()> {
        let mut cached = None;
        if list.version()? >= SpecVersion::V0_4_0 {
            match self.cache.read_result(
                &list.name,
                &rt.container_id,
                &rt.ifname,
                &list.cni_version,
            ) {
                Ok(result) => cached = result,
                Err(reason) => {
                    log::warn!(
                        "ignoring the unusable cached result of network {:?} ({reason}); deleting it",
                        list.name
                    );
                    let _ = self.cache.remove(&list.name, &rt.container_id, &rt.ifname);
                }
            }
        }
        for plugin in list.plugins.iter().rev() {
            let stdin = build_request(list, plugin, cached.clone(), Some(rt));
            self.exec(plugin, Command::Del, rt, stdin)
                .map_err(|source| plugin_error(plugin, "delete", source))?;
        }
        if let Err(e) = self.cache.remove(&list.name, &rt.container_id, &rt.ifname) {
            // libcni ignores this too: the attachment is gone; a stale file only makes a
            // later GC send one more (harmless) DEL.
            log::warn!(
                "cannot remove the cached result of network {:?}: {e}",
                list.name
            );
        }
        Ok(())
    }

    /// STATUS (libcni `GetStatusNetworkList`): below 1.1.0 a success without running
    /// anything; otherwise every plugin in order, with only `name` and `cniVersion`
    /// injected and no attachment in the environment. The first failure is returned with
    /// the plugin's code (50/51 mean "not ready").
    pub fn status_network_list(&self, list: &NetworkConfigList) -> Result<()> {
        if list.version()? < SpecVersion::V1_1_0 {
            return Ok(());
        }
        let rt = RuntimeConf::default();
        for plugin in &list.plugins {
            let stdin = build_request(list, plugin, None, None);
            self.exec(plugin, Command::Status, &rt, stdin)
                .map_err(|source| plugin_error(plugin, "status", source))?;
        }
        Ok(())
    }

    /// GC (libcni `GCNetworkList`); nothing with `disableGC`.
    ///
    /// First, every cached attachment of this network that is not in `valid` gets a full
    /// DEL built from its cache file, so even plugins without GC clean up. `None` means
    /// "no valid set": every cached attachment is stale (what cnitool passes). Then, from
    /// 1.1.0, every plugin gets GC, with `cni.dev/valid-attachments` (and the misspelt
    /// `cni.dev/attachments` of cni #1101) when `valid` is given. All failures are
    /// collected and returned together.
    pub fn gc_network_list(
        &self,
        list: &NetworkConfigList,
        valid: Option<&[GcAttachment]>,
    ) -> Result<()> {
        if list.disable_gc {
            return Ok(());
        }
        let mut errors = Vec::new();
        let attachments = match self.cache.attachments() {
            Ok(attachments) => attachments,
            Err(e) => {
                // libcni silently returns success here, skipping plugin GC as well; we
                // report it and still let the plugins collect their garbage.
                errors.push(Error::Read {
                    path: self.cache.results_dir(),
                    source: e,
                });
                Vec::new()
            }
        };
        for cached in attachments.iter().filter(|a| a.network_name == list.name) {
            let is_valid = valid.is_some_and(|valid| {
                valid
                    .iter()
                    .any(|v| v.container_id == cached.container_id && v.ifname == cached.ifname)
            });
            if is_valid {
                continue;
            }
            let rt = RuntimeConf {
                container_id: cached.container_id.clone(),
                netns: cached.netns.clone(),
                ifname: cached.ifname.clone(),
                args: cached.cni_args.clone(),
                capability_args: cached.capability_args.clone(),
            };
            if let Err(e) = self.del_network_list(list, &rt) {
                errors.push(Error::StaleAttachment {
                    container_id: rt.container_id,
                    ifname: rt.ifname,
                    source: Box::new(e),
                });
            }
        }
        if list.version()? >= SpecVersion::V1_1_0 {
            let valid_value = valid.map(|valid| {
                Value::Array(
                    valid
                        .iter()
                        .map(|a| serde_json::json!({"containerID": a.container_id, "ifname": a.ifname}))
                        .collect(),
                )
            });
            let rt = RuntimeConf::default();
            for plugin in &list.plugins {
                let mut conf = plugin.conf.clone();
                conf.insert("name".into(), Value::String(list.name.clone()));
                conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
                if let Some(valid_value) = &valid_value {
                    conf.insert("cni.dev/valid-attachments".into(), valid_value.clone());
                    conf.insert("cni.dev/attachments".into(), valid_value.clone());
                }
                let stdin = json::to_go_string(&Value::Object(conf)).into_bytes();
                if let Err(e) = self.exec(plugin, Command::Gc, &rt, stdin) {
                    errors.push(plugin_error(plugin, "gc", e));
                }
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many(errors)),
        }
    }

    /// Runs one plugin binary with `command`, `rt` in the `CNI_*` environment and `stdin`.
    fn exec(
        &self,
        plugin: &PluginConfig,
        command: Command,
        rt: &RuntimeConf,
        stdin: Vec<u8>,
    ) -> cni::Result<Option<Value>> {
        let args = CmdArgs {
            command,
            container_id: rt.container_id.clone(),
            netns: (!rt.netns.is_empty()).then(|| PathBuf::from(&rt.netns)),
            ifname: rt.ifname.clone(),
            args: CniArgs {
                pairs: rt.args.clone(),
                malformed: Vec::new(),
            },
            path: self.path.clone(),
            stdin,
        };
        cni::invoke::delegate(&plugin.plugin_type, command, &args)
    }
}

/// The stdin of one plugin call (libcni `buildOneConfig` + `injectRuntimeConfig`): the
/// plugin object with the list's `name` and `cniVersion`, `prevResult` when given, and
/// `runtimeConfig` holding each capability the plugin enables *and* the runtime supplied
/// (only added when at least one matched). Compact, keys sorted: libcni re-marshals a Go
/// map. `capabilities` is passed through, as libcni does.
pub fn build_request(
    list: &NetworkConfigList,
    plugin: &PluginConfig,
    prev_result: Option<Value>,
    rt: Option<&RuntimeConf>,
) -> Vec<u8> {
    let mut conf = plugin.conf.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev);
    }
    if let Some(rt) = rt {
        let runtime_config: Map<String, Value> = plugin
            .capabilities
            .iter()
            .filter(|(_, enabled)| **enabled)
            .filter_map(|(cap, _)| {
                rt.capability_args
                    .get(cap)
                    .map(|v| (cap.clone(), v.clone()))
            })
            .collect();
        if !runtime_config.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
        }
    }
    json::to_go_string(&Value::Object(conf)).into_bytes()
}

/// A plugin's result as the next plugin (or the cache) receives it: in the version the
/// plugin returned it in, as libcni marshals its typed result.
fn to_prev_result(added: &AddResult, plugin: &PluginConfig) -> Result<Value> {
    added
        .result
        .to_value(added.version)
        .map_err(|source| plugin_error(plugin, "add", source))
}

fn plugin_error(plugin: &PluginConfig, op: &'static str, source: cni::Error) -> Error {
    Error::Plugin {
        plugin: plugin.description(),
        op,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(text: &str) -> NetworkConfigList {
        NetworkConfigList::from_bytes(text.as_bytes()).unwrap()
    }

    #[test]
    fn request_has_name_version_prev_result_and_matching_capabilities_only() {
        let list = list(
            r#"{"cniVersion": "1.1.0", "name": "net", "plugins": [
                {"type": "bridge", "name": "ignored", "cniVersion": "0.1.0", "zeta": "<&>",
                 "capabilities": {"mac": true, "ips": false, "portMappings": true, "bandwidth": true},
                 "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}}]}"#,
        );
        let rt = RuntimeConf {
            capability_args:
                json!({"mac": "0a:00:00:00:00:01", "ips": ["10.1.0.5/16"], "portMappings": []})
                    .as_object()
                    .unwrap()
                    .clone(),
            ..RuntimeConf::default()
        };
        let stdin = build_request(
            &list,
            &list.plugins[0],
            Some(json!({"cniVersion": "1.1.0"})),
            Some(&rt),
        );
        assert_eq!(
            String::from_utf8(stdin).unwrap(),
            concat!(
                r#"{"capabilities":{"bandwidth":true,"ips":false,"mac":true,"portMappings":true},"#,
                r#""cniVersion":"1.1.0","ipam":{"subnet":"10.1.0.0/16","type":"host-local"},"name":"net","#,
                r#""prevResult":{"cniVersion":"1.1.0"},"runtimeConfig":{"mac":"0a:00:00:00:00:01","portMappings":[]},"#,
                r#""type":"bridge","zeta":"\u003c\u0026\u003e"}"#
            )
        );
    }

    #[test]
    fn no_runtime_config_without_a_matching_capability() {
        let list = list(
            r#"{"cniVersion": "1.0.0", "name": "net", "plugins": [
                {"type": "loopback", "capabilities": {"mac": true}, "runtimeConfig": {"admin": 1}}]}"#,
        );
        let rt = RuntimeConf {
            capability_args: json!({"ips": ["10.0.0.1"]}).as_object().unwrap().clone(),
            ..RuntimeConf::default()
        };
        // The admin's own runtimeConfig passes through untouched (libcni only replaces it
        // when it has something to inject).
        assert_eq!(
            String::from_utf8(build_request(&list, &list.plugins[0], None, Some(&rt))).unwrap(),
            r#"{"capabilities":{"mac":true},"cniVersion":"1.0.0","name":"net","runtimeConfig":{"admin":1},"type":"loopback"}"#
        );
    }

    #[test]
    fn plugin_errors_are_worded_as_libcni_words_them() {
        let list = list(
            r#"{"name": "n", "plugins": [{"type": "bridge"}, {"type": "tuning", "name": "t1"}]}"#,
        );
        let with_details = plugin_error(
            &list.plugins[0],
            "add",
            cni::Error::plugin(
                104,
                "failed to find plugin \"bridge\" in path [/opt/cni/bin]",
                None,
            ),
        );
        assert_eq!(
            with_details.to_string(),
            r#"plugin type="bridge" failed (add): failed to find plugin "bridge" in path [/opt/cni/bin]"#
        );
        assert_eq!(with_details.code(), Some(104));
        let named = plugin_error(
            &list.plugins[1],
            "delete",
            cni::Error::InvalidConfig {
                msg: "bad".into(),
                details: Some("why".into()),
            },
        );
        assert_eq!(
            named.to_string(),
            r#"plugin type="tuning" name="t1" failed (delete): bad; why"#
        );
    }

    /// Fake plugins (shell scripts) that log `<type> <CNI_COMMAND> <container id> <stdin>`
    /// one line per call, and answer ADD with an address of their own.
    mod chain {
        use super::*;
        use std::fs;
        use std::os::unix::fs::PermissionsExt;
        use std::path::Path;
        use tempfile::TempDir;

        fn fake_plugin(dir: &Path, name: &str, octet: u8) {
            let path = dir.join(name);
            let script = format!(
                "#!/bin/sh\nstdin=$(cat)\necho \"{name} $CNI_COMMAND $CNI_CONTAINERID $stdin\" >> \"$(dirname \"$0\")/log\"\n\
                 [ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.0.0.{octet}/24\"}}],\"extra\":1}}'\nexit 0\n"
            );
            fs::write(&path, script).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }

        struct Fixture {
            dir: TempDir,
            runtime: CniConfig,
        }

        impl Fixture {
            fn new() -> Fixture {
                let dir = TempDir::new().unwrap();
                fake_plugin(dir.path(), "p1", 1);
                fake_plugin(dir.path(), "p2", 2);
                let runtime = CniConfig {
                    path: vec![dir.path().to_owned()],
                    cache: Cache::new(dir.path().join("cache")),
                };
                Fixture { dir, runtime }
            }

            /// The logged calls since the last call of this, as (type, verb, id, stdin).
            fn calls(&self) -> Vec<(String, String, String, Value)> {
                let log = self.dir.path().join("log");
                let text = fs::read_to_string(&log).unwrap_or_default();
                let _ = fs::remove_file(&log);
                text.lines()
                    .map(|line| {
                        let mut parts = line.splitn(4, ' ');
                        let mut next = || parts.next().unwrap().to_owned();
                        let (t, verb, id) = (next(), next(), next());
                        (t, verb, id, serde_json::from_str(&next()).unwrap())
                    })
                    .collect()
            }
        }

        fn two_plugins(version: &str) -> NetworkConfigList {
            list(&format!(
                r#"{{"cniVersion": "{version}", "name": "net", "plugins": [{{"type": "p1"}}, {{"type": "p2"}}]}}"#
            ))
        }

        fn rt() -> RuntimeConf {
            RuntimeConf {
                container_id: "ctr1".into(),
                netns: "/run/netns/x".into(),
                ifname: "eth0".into(),
                ..RuntimeConf::default()
            }
        }

        #[test]
        fn add_threads_results_del_reverses_check_and_del_use_the_cache() {
            let f = Fixture::new();
            let list = two_plugins("1.0.0");
            let added = f.runtime.add_network_list(&list, &rt()).unwrap();
            assert_eq!(added.result.ips[0].address.to_string(), "10.0.0.2/24");
            assert!(
                added.result.extra.is_empty(),
                "unknown keys dropped, as libcni's types do"
            );
            let calls = f.calls();
            assert_eq!(calls.len(), 2);
            assert_eq!((calls[0].0.as_str(), calls[0].1.as_str()), ("p1", "ADD"));
            assert!(
                calls[0].3.get("prevResult").is_none(),
                "the first plugin gets none"
            );
            assert_eq!(calls[1].3["prevResult"]["ips"][0]["address"], "10.0.0.1/24");
            assert!(calls[1].3["prevResult"].get("extra").is_none());
            let cache_file = f.dir.path().join("cache/results/net-ctr1-eth0");
            let cached = CachedInfo::from_bytes(&fs::read(&cache_file).unwrap()).unwrap();
            assert_eq!(cached.result.unwrap()["ips"][0]["address"], "10.0.0.2/24");

            f.runtime.check_network_list(&list, &rt()).unwrap();
            let calls = f.calls();
            let order: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
            assert_eq!(order, ["p1", "p2"]);
            for call in &calls {
                assert_eq!(call.1, "CHECK");
                assert_eq!(call.3["prevResult"]["ips"][0]["address"], "10.0.0.2/24");
            }

            f.runtime.del_network_list(&list, &rt()).unwrap();
            let calls = f.calls();
            let order: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
            assert_eq!(order, ["p2", "p1"], "DEL runs in reverse");
            assert!(
                calls
                    .iter()
                    .all(|c| c.3["prevResult"]["ips"][0]["address"] == "10.0.0.2/24")
            );
            assert!(!cache_file.exists());
        }

        #[test]
        fn version_gates_and_disable_flags_run_nothing() {
            let f = Fixture::new();
            let old = two_plugins("0.3.1");
            f.runtime.add_network_list(&old, &rt()).unwrap();
            f.calls();
            let err = f.runtime.check_network_list(&old, &rt()).unwrap_err();
            assert_eq!(
                err.to_string(),
                "configuration version \"0.3.1\" does not support the CHECK command"
            );
            f.runtime.status_network_list(&old).unwrap();
            assert!(
                f.calls().is_empty(),
                "no CHECK below 0.4.0, no STATUS below 1.1.0"
            );
            // Before 0.4.0, DEL gets no prevResult even with a cache file.
            f.runtime.del_network_list(&old, &rt()).unwrap();
            assert!(f.calls().iter().all(|c| c.3.get("prevResult").is_none()));

            let disabled = list(
                r#"{"cniVersion": "1.1.0", "name": "net", "disableCheck": "true", "disableGC": true,
                    "plugins": [{"type": "p1"}]}"#,
            );
            f.runtime.check_network_list(&disabled, &rt()).unwrap();
            f.runtime.gc_network_list(&disabled, None).unwrap();
            assert!(f.calls().is_empty());
        }

        #[test]
        fn status_and_gc_name_no_attachment_and_gc_deletes_stale_ones() {
            let f = Fixture::new();
            let list = two_plugins("1.1.0");
            f.runtime.add_network_list(&list, &rt()).unwrap();
            let other = RuntimeConf {
                container_id: "ctr2".into(),
                ..rt()
            };
            f.runtime.add_network_list(&list, &other).unwrap();
            f.calls();

            f.runtime.status_network_list(&list).unwrap();
            let calls = f.calls();
            assert_eq!(calls.len(), 2);
            for call in &calls {
                assert_eq!((call.1.as_str(), call.2.as_str()), ("STATUS", ""));
                assert_eq!(
                    call.3,
                    json!({"cniVersion": "1.1.0", "name": "net", "type": call.0})
                );
            }

            let valid = [GcAttachment {
                container_id: "ctr2".into(),
                ifname: "eth0".into(),
            }];
            f.runtime.gc_network_list(&list, Some(&valid)).unwrap();
            let calls = f.calls();
            let summary: Vec<(&str, &str, &str)> = calls
                .iter()
                .map(|c| (c.0.as_str(), c.1.as_str(), c.2.as_str()))
                .collect();
            assert_eq!(
                summary,
                [
                    ("p2", "DEL", "ctr1"),
                    ("p1", "DEL", "ctr1"),
                    ("p1", "GC", ""),
                    ("p2", "GC", "")
                ]
            );
            let want = json!([{"containerID": "ctr2", "ifname": "eth0"}]);
            assert_eq!(calls[2].3["cni.dev/valid-attachments"], want);
            assert_eq!(calls[2].3["cni.dev/attachments"], want);
            assert!(!f.dir.path().join("cache/results/net-ctr1-eth0").exists());
            assert!(f.dir.path().join("cache/results/net-ctr2-eth0").exists());
        }

        #[test]
        fn add_validates_names_and_stops_at_the_first_failure() {
            let f = Fixture::new();
            let list = list(
                r#"{"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "p1"}, {"type": "nosuch"}, {"type": "p2"}]}"#,
            );
            let err = f.runtime.add_network_list(&list, &rt()).unwrap_err();
            assert!(
                err.to_string().starts_with(
                    r#"plugin type="nosuch" failed (add): failed to find plugin "nosuch" in path"#
                ),
                "{err}"
            );
            assert_eq!(f.calls().len(), 1, "p2 never ran");
            assert!(
                !f.dir.path().join("cache/results/net-ctr1-eth0").exists(),
                "nothing cached"
            );
            let bad = RuntimeConf {
                ifname: "a/b".into(),
                ..rt()
            };
            let err = f
                .runtime
                .add_network_list(&two_plugins("1.0.0"), &bad)
                .unwrap_err();
            assert_eq!(err.code(), Some(4));
            assert!(f.calls().is_empty());
        }
    }
}
