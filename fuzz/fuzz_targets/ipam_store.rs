//! host-local's files: leases, the by-attachment index, the index stamp, the round-robin
//! cursor and resolv.conf, as another plugin version, the Go plugin or a crash may leave
//! them. Everything goes through `cni_ipam`'s public API on a real store directory.
//!
//! Input: NUL-separated file contents, in order: the leases `10.1.2.2`, `10.1.2.3` and
//! `fd00::2`, the index entry of the attachment `fuzz-ctr`/`eth0`, `.index-stamp`,
//! `last_reserved_ip.0`, a resolv.conf. A missing part is a missing file.
//! Properties: a lease file's owner survives being written back; what `find` and
//! `held_for_add` report is held by the attachment; an allocation never hands out an
//! address another attachment holds, is found afterwards, and is gone after a release;
//! every failure is a valid CNI error.
#![no_main]

use cni::{Attachment, CniArgs, NetConf};
use cni_fuzz::assert_valid_error;
use cni_ipam::{IpamConfig, LockedStore, Owner, Store};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const NETWORK: &str = "fuzznet";
const LEASES: [&str; 3] = ["10.1.2.2", "10.1.2.3", "fd00::2"];

/// This process's data directory (fuzzing runs one input at a time).
fn data_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("cni-fuzz-store-{}", std::process::id())))
}

fn attachment() -> Attachment {
    Attachment {
        container_id: "fuzz-ctr".into(),
        ifname: "eth0".into(),
    }
}

fn config() -> IpamConfig {
    let net: NetConf = serde_json::from_value(json!({"cniVersion": "1.0.0", "name": NETWORK}))
        .expect("a valid NetConf");
    let ipam = json!({
        "type": "host-local",
        "dataDir": data_dir(),
        "ranges": [[{"subnet": "10.1.2.0/29"}], [{"subnet": "fd00::/125"}]],
    });
    IpamConfig::load(Some(&ipam), &net, &CniArgs::default()).expect("a valid config")
}

/// Writes the store directory's files from the input.
fn plant(parts: &[&[u8]]) {
    let dir = data_dir().join(NETWORK);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join(".attachments")).expect("store directory");
    let names = LEASES.iter().map(|name| dir.join(name)).chain([
        dir.join(".attachments/fuzz-ctr+eth0"),
        dir.join(".index-stamp"),
        dir.join("last_reserved_ip.0"),
    ]);
    for (path, content) in names.zip(parts) {
        std::fs::write(path, content).expect("plant a file");
    }
}

fuzz_target!(|data: &[u8]| {
    let parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    for part in &parts[..parts.len().min(LEASES.len())] {
        let owner = Owner::parse(&String::from_utf8_lossy(part));
        let written = match &owner.ifname {
            Some(ifname) => format!("{}\r\n{ifname}", owner.container_id),
            None => owner.container_id.clone(),
        };
        assert_eq!(
            Owner::parse(&written),
            owner,
            "lease owner changed on rewrite"
        );
    }
    if let Some(resolv) = parts.get(6) {
        let _ = cni_ipam::dns::parse_resolv_conf(&String::from_utf8_lossy(resolv));
    }
    plant(&parts);
    let config = config();
    let store = match Store::open(&config.data_dir, &config.network) {
        Ok(store) => store,
        Err(err) => {
            assert_valid_error(&err.into());
            return;
        }
    };
    match store.lock() {
        Ok(locked) => check_store(&locked, &config),
        Err(err) => {
            assert_valid_error(&err.into());
        }
    }
});

fn check_store(store: &LockedStore<'_>, config: &IpamConfig) {
    let me = attachment();
    let Some(before) = ok(store.leases()) else {
        return;
    };
    let held = |ips: &[IpAddr]| {
        for ip in ips {
            let lease = before.iter().find(|lease| lease.ip == *ip);
            assert!(
                lease.is_some_and(|lease| lease.owner.matches(&me)),
                "{ip} reported as held but its lease is {lease:?}"
            );
        }
    };
    let Some(found) = ok(store.find(&me)) else {
        return;
    };
    held(&found);
    let Some(for_add) = ok(store.held_for_add(&me)) else {
        return;
    };
    held(&for_add);
    let _ = ok(store.last_reserved_ip(0));

    let Some(allocated) = ok(cni_ipam::allocate(store, config, &me)) else {
        return;
    };
    for ip in &allocated {
        let ip = ip.address.ip();
        if let Some(lease) = before.iter().find(|lease| lease.ip == ip) {
            assert!(
                lease.owner.matches(&me),
                "{ip} handed out while {lease:?} holds it"
            );
        }
    }
    let Some(found) = ok(store.find(&me)) else {
        return;
    };
    for ip in &allocated {
        assert!(
            found.contains(&ip.address.ip()),
            "{ip:?} not found after ADD"
        );
    }
    let Some(released) = ok(store.release_all(&me)) else {
        return;
    };
    let Some(after) = ok(store.leases()) else {
        return;
    };
    for ip in &allocated {
        let ip = ip.address.ip();
        assert!(released.contains(&ip), "{ip} not released");
        assert!(
            after.iter().all(|lease| lease.ip != ip),
            "{ip} still leased"
        );
    }
}

/// The value, or `None` after checking that the error is a valid CNI error.
fn ok<T>(result: cni_ipam::Result<T>) -> Option<T> {
    result.map_err(|err| assert_valid_error(&err.into())).ok()
}
