//! Format-compatibility check against cache files written by another libcni runtime (e.g.
//! podman, see scripts/podman-e2e.sh): each file must parse as `cniCacheV1`, print back
//! byte for byte (key order, base64 config, escaping, sorted maps), and its result must
//! be readable as the `prevResult` our DEL/CHECK would send.
//!
//! Usage: cargo run -p cnitool --example cache_roundtrip -- FILE...

// A tool run by hand or by a script: failing loudly is its whole job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cnitool::cache::{Cache, CachedInfo};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: cache_roundtrip FILE...");
        return ExitCode::FAILURE;
    }
    let mut failed = false;
    for file in &files {
        let path = Path::new(file);
        let bytes = std::fs::read(path).expect("cannot read the cache file");
        let info = match CachedInfo::from_bytes(&bytes) {
            Ok(info) => info,
            Err(e) => {
                eprintln!("{file}: not a cniCacheV1 file: {e}");
                failed = true;
                continue;
            }
        };
        let ours = info.to_bytes();
        if ours != bytes {
            eprintln!(
                "{file}: our bytes differ\n  theirs: {}\n  ours:   {}",
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(&ours)
            );
            failed = true;
            continue;
        }
        // The cache layout is <dir>/results/<file>: read the result back through `Cache`.
        let cache_dir = path
            .parent()
            .and_then(Path::parent)
            .expect("FILE must be <dir>/results/<name>");
        let version = info
            .result
            .as_ref()
            .and_then(|r| r.get("cniVersion"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        match Cache::new(cache_dir).read_result(
            &info.network_name,
            &info.container_id,
            &info.ifname,
            &version,
        ) {
            Ok(Some(_)) => println!(
                "{file}: identical ({} bytes; network {}, ifname {}, result {version})",
                bytes.len(),
                info.network_name,
                info.ifname
            ),
            other => {
                eprintln!("{file}: result not readable: {other:?}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
