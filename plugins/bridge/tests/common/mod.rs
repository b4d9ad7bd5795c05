//! Shared helpers for the bridge integration tests: configs, kernel-state readers and the
//! "nothing left behind" assertion. Every test builds its own [`Lab`] (a throwaway host and
//! container netns and a tempdir), so tests run in parallel and never touch the machine's
//! own network. Run `cargo build --workspace --bins` first: the tests run the built binaries.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // Like the helpers below, not every test file uses it.
pub use cni_conformance::with_prev;
use cni_conformance::{Invocation, Lab, Netns, PluginRun, host_local_leases, plugin_path};
use serde_json::{Value, json};

/// Every result version the bridge speaks.
pub const ALL_VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// The network name every test uses (each lab has its own host netns, so no clash).
pub const NETWORK: &str = "bridgetest";

/// host-local IPAM over `ranges` (a list of range sets, as host-local's `ranges`), with its
/// store in the lab's tempdir.
pub fn host_local(lab: &Lab, ranges: Value) -> Value {
    json!({"type": "host-local", "ranges": ranges, "dataDir": data_dir(lab)})
}

/// host-local IPAM with one IPv4 subnet.
pub fn ipam_v4(lab: &Lab, subnet: &str) -> Value {
    host_local(lab, json!([[{"subnet": subnet}]]))
}

/// host-local IPAM with one IPv6 subnet.
pub fn ipam_v6(lab: &Lab, subnet: &str) -> Value {
    host_local(lab, json!([[{"subnet": subnet}]]))
}

/// host-local IPAM with one IPv4 and one IPv6 subnet.
pub fn ipam_dual(lab: &Lab) -> Value {
    host_local(
        lab,
        json!([[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]]),
    )
}

/// Where host-local keeps this lab's reservations for [`NETWORK`].
pub fn data_dir(lab: &Lab) -> PathBuf {
    lab.dir().join("ipam")
}

/// A bridge config: `cniVersion`, `name`, `type`, `bridge: cni0`, then `extra`'s keys.
pub fn conf(version: &str, extra: Value) -> Value {
    let mut conf = json!({
        "cniVersion": version,
        "name": NETWORK,
        "type": "bridge",
        "bridge": "cni0",
    });
    for (key, value) in extra.as_object().expect("extra keys are an object") {
        conf[key] = value.clone();
    }
    conf
}

/// ADD of `eth0` in the lab's container.
pub fn add(lab: &Lab, conf: &Value) -> PluginRun {
    add_in(lab, lab.container(), "eth0", conf)
}

/// ADD of `ifname` in `container`.
pub fn add_in(lab: &Lab, container: &Netns, ifname: &str, conf: &Value) -> PluginRun {
    lab.run(
        "bridge",
        &Invocation::add(container, ifname).config(conf.clone()),
    )
}

/// DEL of `ifname` in `container`.
pub fn del_in(lab: &Lab, container: &Netns, ifname: &str, conf: &Value) -> PluginRun {
    lab.run(
        "bridge",
        &Invocation::del(container, ifname).config(conf.clone()),
    )
}

/// DEL of `eth0` in the lab's container.
pub fn del(lab: &Lab, conf: &Value) -> PluginRun {
    del_in(lab, lab.container(), "eth0", conf)
}

/// The host netns links whose kind is `veth`.
pub fn veths(ns: &Netns) -> Vec<Value> {
    links(ns)
        .into_iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "veth")
        .collect()
}

/// Every link of `ns` (`ip -j -d link show`).
pub fn links(ns: &Netns) -> Vec<Value> {
    match ns.ip_json(&["-d", "link", "show"]) {
        Value::Array(links) => links,
        _ => Vec::new(),
    }
}

/// Reservations in host-local's store for [`NETWORK`]: the one-file-per-IP entries (named
/// by the address; the Go layout) and our host-local's `.attachments/<id>+<ifname>` index
/// entries (absent with the Go host-local). Not the lock or the last-reserved cursor.
pub fn leases(lab: &Lab) -> Vec<String> {
    leases_of(lab, NETWORK)
}

/// As [`leases`], for the network called `network`.
pub fn leases_of(lab: &Lab, network: &str) -> Vec<String> {
    let dir = data_dir(lab).join(network);
    let mut leases = host_local_leases(&dir);
    if let Ok(entries) = std::fs::read_dir(dir.join(".attachments")) {
        leases.extend(
            entries
                .flatten()
                .map(|e| format!(".attachments/{}", e.file_name().to_string_lossy())),
        );
    }
    leases.sort();
    leases
}

/// `nft -j list ruleset` in `ns`, as the list of its objects.
pub fn nft_objects(ns: &Netns) -> Vec<Value> {
    let out = ns.exec(&["nft", "-j", "list", "ruleset"]);
    assert!(out.status.success(), "nft failed: {out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("nft prints JSON");
    json["nftables"].as_array().cloned().unwrap_or_default()
}

/// The rules of nftables chain `family`/`table`/`chain` in `ns`.
pub fn nft_rules(ns: &Netns, family: &str, table: &str, chain: &str) -> Vec<Value> {
    nft_objects(ns)
        .into_iter()
        .filter_map(|o| o.get("rule").cloned())
        .filter(|r| r["family"] == family && r["table"] == table && r["chain"] == chain)
        .collect()
}

/// The names of all nftables chains in `ns`.
pub fn nft_chains(ns: &Netns) -> Vec<String> {
    nft_objects(ns)
        .into_iter()
        .filter_map(|o| o.get("chain")?["name"].as_str().map(str::to_owned))
        .collect()
}

/// Our nftables masquerade rules in `ns` (chain `masq_checks` of `inet cni_plugins_masquerade`).
pub fn nft_masq_rules(ns: &Netns) -> Vec<Value> {
    nft_rules(ns, "inet", "cni_plugins_masquerade", "masq_checks")
}

/// The `nat` table of `iptables-save` and `ip6tables-save` in `ns`, one string.
pub fn iptables_nat(ns: &Netns) -> String {
    let mut text = String::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        let out = ns.exec(&[tool, "-t", "nat"]);
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    text
}

/// The iptables-save lines that mention a CNI chain (`CNI-…`), i.e. masquerade state.
pub fn iptables_cni_lines(ns: &Netns) -> Vec<String> {
    iptables_nat(ns)
        .lines()
        .filter(|l| l.contains("CNI-"))
        .map(str::to_owned)
        .collect()
}

/// Spoof-check state in `ns`: `cni-br-iface-*` chains and `macspoofchk-*` rules.
pub fn spoofcheck_state(ns: &Netns) -> Vec<String> {
    let mut state: Vec<String> = nft_chains(ns)
        .into_iter()
        .filter(|c| c.starts_with("cni-br-iface-"))
        .collect();
    state.extend(
        nft_rules(ns, "bridge", "nat", "PREROUTING")
            .into_iter()
            .map(|r| r.to_string()),
    );
    state
}

/// Asserts that no attachment state is left: no veth in the host, no `ifname` in any of
/// `containers`, no lease, no masquerade rule (either backend), no spoof-check state.
/// The bridge itself may stay (it is shared, and the reference keeps it too).
pub fn assert_nothing_left(lab: &Lab, containers: &[&Netns], ifname: &str, context: &str) {
    let host = lab.host();
    assert_eq!(
        veths(host),
        Vec::<Value>::new(),
        "{context}: veth left in host"
    );
    for container in containers {
        assert!(
            container.link(ifname).is_none(),
            "{context}: {ifname} left in {}",
            container.name()
        );
    }
    assert_eq!(leases(lab), Vec::<String>::new(), "{context}: lease left");
    assert_eq!(
        nft_masq_rules(host),
        Vec::<Value>::new(),
        "{context}: nft masquerade rule left"
    );
    assert_eq!(
        iptables_cni_lines(host),
        Vec::<String>::new(),
        "{context}: iptables rule left"
    );
    assert_eq!(
        spoofcheck_state(host),
        Vec::<String>::new(),
        "{context}: spoof check left"
    );
}

/// `ping -c1 -W1 <target>` from `ns`; true on a reply. Retries a few times: the first
/// packet may race with neighbour discovery / IPv6 DAD on a fresh link.
pub fn ping(ns: &Netns, target: &str) -> bool {
    for _ in 0..3 {
        let out = ns.exec(&["ping", "-c1", "-W1", "-q", target]);
        if out.status.success() {
            return true;
        }
    }
    false
}

/// The address part of a CIDR string.
pub fn ip_of(cidr: &str) -> &str {
    cidr.split('/').next().unwrap()
}

/// The non-link-local addresses of `ifname` in `ns`.
pub fn global_addresses(ns: &Netns, ifname: &str) -> Vec<String> {
    ns.addresses(ifname)
        .into_iter()
        .filter(|a| !a.starts_with("fe80:"))
        .collect()
}

/// Starts the built `bridge` binary with `invocation`'s environment inside the lab's host
/// netns, without waiting: for the SIGKILL tests. stdin gets `config`, then closes.
pub fn spawn_plugin(lab: &Lab, invocation: &Invocation, config: &Value) -> Child {
    spawn_plugin_with_stdout(lab, invocation, config, Some(Stdio::null()))
}

/// [`spawn_plugin`] with `stdout` as the plugin's stdout; `None` starts it with fd 1 closed.
pub fn spawn_plugin_with_stdout(
    lab: &Lab,
    invocation: &Invocation,
    config: &Value,
    stdout: Option<Stdio>,
) -> Child {
    let binary = plugin_path("bridge");
    let netns_fd = lab.host().as_fd().as_raw_fd();
    let close_stdout = stdout.is_none();
    let mut command = Command::new(&binary);
    command
        .env_clear()
        .envs(invocation.environment(&binary))
        .current_dir(lab.dir())
        .stdin(Stdio::piped())
        .stdout(stdout.unwrap_or_else(Stdio::null))
        .stderr(Stdio::null())
        // Its own group, so the kill also reaches a delegated IPAM child.
        .process_group(0);
    // SAFETY: raw syscalls between fork and exec, which are async-signal-safe; the fd
    // stays valid because `lab` outlives the spawn.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(netns_fd, libc::CLONE_NEWNET) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if close_stdout {
                libc::close(1);
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("cannot start the bridge binary");
    let bytes = serde_json::to_vec(config).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The plugin may die before reading: a broken pipe is expected then.
    let _ = std::io::Write::write_all(&mut stdin, &bytes);
    drop(stdin);
    child
}

/// SIGKILLs `child`'s whole process group (plugin + delegated IPAM) and reaps it.
pub fn kill_group(mut child: Child) {
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

/// The path of a file under the lab dir, as a string for JSON.
pub fn path_str(path: &Path) -> String {
    path.display().to_string()
}

/// The VLAN entries of bridge port `port` in the lab's host: `(vid, pvid, untagged)`, sorted.
pub fn port_vlans(lab: &Lab, port: &str) -> Vec<(u64, bool, bool)> {
    let out = lab
        .host()
        .exec(&["bridge", "-j", "vlan", "show", "dev", port]);
    assert!(out.status.success(), "{out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut vlans = Vec::new();
    for entry in json.as_array().unwrap() {
        for vlan in entry["vlans"].as_array().unwrap() {
            let flags = vlan["flags"].as_array().cloned().unwrap_or_default();
            let first = vlan["vlan"].as_u64().unwrap();
            let last = vlan["vlanEnd"].as_u64().unwrap_or(first);
            for vid in first..=last {
                vlans.push((
                    vid,
                    flags.contains(&json!("PVID")),
                    flags.contains(&json!("Egress Untagged")),
                ));
            }
        }
    }
    vlans.sort_unstable();
    vlans
}

/// A config that makes every kind of state: gateway, masquerade, spoof check, a lease.
pub fn full_conf(lab: &Lab, backend: &str) -> Value {
    conf(
        "1.0.0",
        json!({
            "isGateway": true,
            "ipMasq": true,
            "ipMasqBackend": backend,
            "macspoofchk": true,
            "ipam": ipam_dual(lab),
        }),
    )
}

/// `name` in `ns`, read again until its operstate is UP (3 s at most). The kernel derives
/// operstate from carrier in its linkwatch work, which runs after the change that caused it
/// (non-urgent events are batched up to a second), so the container end, up and LOWER_UP
/// when ADD returns, may still read DOWN for a moment; about 1 run in 8 did so here. The
/// plugin waits for the host port, which is what forwarding needs (plugins #463).
pub fn link_once_up(ns: &Netns, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let link = ns.link(name).unwrap_or_else(|| panic!("{name} is missing"));
        if link["operstate"] == "UP" || Instant::now() >= deadline {
            return link;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// ADD of `ifname` in every one of `containers` at once (one thread each), with `conf`;
/// the runs in `containers`' order.
pub fn add_concurrently(
    lab: &Lab,
    containers: &[Netns],
    ifname: &str,
    conf: &Value,
) -> Vec<PluginRun> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = containers
            .iter()
            .map(|ns| scope.spawn(|| add_in(lab, ns, ifname, conf)))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    })
}
