//! The case table: which scenarios run for which plugin type, and their bodies.
//!
//! Every body builds its own [`World`] (throwaway namespaces and directory, removed on
//! drop, also on failure), so cases run in parallel and in any order.

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use super::shape::{AddRequest, check_result};
use super::world::{
    BRIDGE, GATEWAY, MASTER, NETWORK, PORTMAP_TARGET, PluginKind, TUNED_MTU, World, failed_with,
    failed_with_error_object, is_up, merge, result_ips, succeeded,
};
use super::{ALL_VERSIONS, Checked, Claims, Ctx, Stop, ensure, version_key};
use crate::with_prev;
use crate::{Invocation, Lab, Netns};

/// One scenario for one plugin type.
pub struct Case {
    /// Stable id, used in the report and in the known-defects table.
    pub id: String,
    /// The spec version that introduced the behaviour; n/a for plugins claiming less.
    pub since: &'static str,
    pub body: Box<dyn Fn(&Ctx) -> Checked + Send + Sync>,
}

fn case(
    id: impl Into<String>,
    since: &'static str,
    body: impl Fn(&Ctx) -> Checked + Send + Sync + 'static,
) -> Case {
    Case {
        id: id.into(),
        since,
        body: Box::new(body),
    }
}

/// The cases for one plugin type, in report order.
pub fn cases_for(kind: PluginKind) -> Vec<Case> {
    let mut cases = vec![case("version/answer", "0.2.0", version_answer)];
    for fault in PROTOCOL_FAULTS {
        cases.push(case(fault.id(), fault.since(), move |ctx| {
            protocol_fault(ctx, fault)
        }));
    }
    for version in ALL_VERSIONS {
        cases.push(case(format!("result/{version}"), version, move |ctx| {
            result_in(ctx, version)
        }));
    }
    cases.push(case("lifecycle/add-check-del-del", "0.4.0", lifecycle));
    cases.push(case("check/refused-below-0.4.0", "0.4.0", |ctx| {
        refused_below(ctx, "CHECK", "0.4.0")
    }));
    cases.push(case(
        format!("state/{}", state_name(kind)),
        "0.1.0",
        state_after_add,
    ));
    if kind.creates_interface() || kind.is_ipam() {
        cases.push(case(
            "add/twice-fails-and-changes-nothing",
            "0.1.0",
            add_twice,
        ));
    }
    if kind.uses_ipam() {
        cases.push(case(
            "add/ipam-exhausted-fails-cleanly",
            "0.1.0",
            ipam_exhausted,
        ));
    }
    cases.push(case("del/never-added", "0.1.0", del_never_added));
    for netns in [DelNetns::Empty, DelNetns::Vanished] {
        cases.push(case(netns.id(), "0.1.0", move |ctx| {
            del_without_netns(ctx, netns)
        }));
    }
    for &tamper in tampers(kind) {
        cases.push(case(tamper.id(), "0.4.0", move |ctx| {
            check_detects(ctx, tamper)
        }));
    }
    cases.push(case("status/ready", "1.1.0", status_ready));
    cases.push(case("status/refused-below-1.1.0", "1.1.0", |ctx| {
        refused_below(ctx, "STATUS", "1.1.0")
    }));
    if kind.uses_ipam() {
        cases.push(case("gc/releases-stale-leases", "1.1.0", gc_releases_stale));
    } else {
        cases.push(case("gc/succeeds", "1.1.0", gc_succeeds));
    }
    cases.push(case("gc/refused-below-1.1.0", "1.1.0", |ctx| {
        refused_below(ctx, "GC", "1.1.0")
    }));
    if kind.delegates_ipam() {
        cases.push(case(
            "chain/result-passes-through-loopback",
            "0.3.0",
            chain_into_loopback,
        ));
        cases.push(case(
            "delegation/ipam-found-in-cni-path",
            "0.1.0",
            delegation_found,
        ));
        cases.push(case(
            "delegation/missing-ipam-fails-cleanly",
            "0.1.0",
            delegation_missing,
        ));
    }
    if kind == PluginKind::Loopback {
        cases.push(case(
            "chain/passes-prev-result-through",
            "0.3.0",
            loopback_passes_prev,
        ));
    }
    if kind == PluginKind::Bridge {
        cases.push(case("bridge/l2-add-check-del", "0.4.0", bridge_l2));
    }
    if kind == PluginKind::Macvlan {
        for mode in MACVLAN_MODES {
            cases.push(case(format!("macvlan/mode-{mode}"), "0.1.0", move |ctx| {
                macvlan_mode(ctx, mode)
            }));
        }
    }
    if matches!(kind, PluginKind::Macvlan | PluginKind::Ipvlan) {
        cases.push(case("del/master-gone", "0.1.0", del_master_gone));
    }
    cases
}

/// Runs VERSION and reads what the plugin claims.
pub fn read_claims(binary: &Path) -> Result<Claims, String> {
    let lab = Lab::new();
    let run = lab.run_binary(binary, &Invocation::version());
    let versions = run
        .json
        .as_ref()
        .and_then(|json| json["supportedVersions"].as_array())
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .filter(|list| !list.is_empty());
    match versions {
        Some(versions) if run.succeeded() => Ok(Claims { versions }),
        _ => Err(format!(
            "VERSION gave no supportedVersions, so nothing can be judged\n{run}"
        )),
    }
}

fn state_name(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Bridge => "bridge-membership-and-gateway",
        PluginKind::Macvlan => "macvlan-link-on-master",
        PluginKind::Ipvlan => "ipvlan-link-on-master",
        PluginKind::HostLocal => "lease-files-in-data-dir",
        PluginKind::ClusterIpam => "reservation-key-in-etcd",
        PluginKind::Loopback => "lo-up-after-add-down-after-del",
        PluginKind::Tuning => "mtu-and-sysctl-set-mtu-restored-by-del",
        PluginKind::Bandwidth => "tbf-on-veth-and-ifb-removed-by-del",
        PluginKind::Firewall => "forward-rules-accept-the-container-del-removes-them",
        PluginKind::Portmap => "dnat-chain-added-removed-by-del",
    }
}

// ---- VERSION and protocol errors ----------------------------------------------------

fn version_answer(ctx: &Ctx) -> Checked {
    let world = World::bare(ctx);
    // As libcni asks, then with nothing but CNI_COMMAND and garbage on stdin.
    let asked = world.run_plugin(&Invocation::version());
    let bare = world.run_plugin(
        &Invocation::new("VERSION")
            .stdin(b"not json".to_vec())
            .unset("CNI_PATH"),
    );
    for run in [&asked, &bare] {
        succeeded(run)?;
        let answer = run
            .json
            .as_ref()
            .ok_or_else(|| format!("VERSION printed no JSON\n{run}"))?;
        let current = answer["cniVersion"].as_str().unwrap_or_default();
        let supported: Vec<&str> = answer["supportedVersions"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        ensure!(
            ALL_VERSIONS.contains(&current),
            "cniVersion {current:?} is not a spec version\n{run}"
        );
        ensure!(!supported.is_empty(), "no supportedVersions\n{run}");
        for version in &supported {
            ensure!(
                ALL_VERSIONS.contains(version),
                "supportedVersions lists {version:?}, not a spec version\n{run}"
            );
        }
        ensure!(
            supported.contains(&current),
            "cniVersion {current} is not among supportedVersions\n{run}"
        );
        let keys: Vec<&String> = answer
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        ensure!(
            keys.len() == 2,
            "VERSION answer has keys {keys:?}, expected cniVersion and supportedVersions"
        );
    }
    ensure!(
        asked.json == bare.json,
        "VERSION depends on stdin/env: {} vs {}",
        asked.stdout.trim(),
        bare.stdout.trim()
    );
    Ok(())
}

/// A request the spec says must be refused, and the code it must be refused with.
#[derive(Debug, Clone, Copy)]
enum ProtocolFault {
    MissingVariables,
    InvalidContainerId,
    IfnameTooLong,
    UnknownVerb,
    InvalidJson,
    MissingName,
    UnsupportedVersion,
}

const PROTOCOL_FAULTS: [ProtocolFault; 7] = [
    ProtocolFault::MissingVariables,
    ProtocolFault::InvalidContainerId,
    ProtocolFault::IfnameTooLong,
    ProtocolFault::UnknownVerb,
    ProtocolFault::InvalidJson,
    ProtocolFault::MissingName,
    ProtocolFault::UnsupportedVersion,
];

impl ProtocolFault {
    fn id(self) -> &'static str {
        match self {
            ProtocolFault::MissingVariables => "env/missing-variables-code-4",
            ProtocolFault::InvalidContainerId => "env/invalid-container-id-code-4",
            ProtocolFault::IfnameTooLong => "env/ifname-too-long-code-4",
            ProtocolFault::UnknownVerb => "env/unknown-verb-code-4",
            ProtocolFault::InvalidJson => "config/invalid-json-code-6",
            ProtocolFault::MissingName => "config/missing-name-code-7",
            ProtocolFault::UnsupportedVersion => "config/unsupported-version-code-1",
        }
    }

    fn since(self) -> &'static str {
        "0.1.0"
    }

    fn code(self) -> u64 {
        match self {
            ProtocolFault::MissingVariables
            | ProtocolFault::InvalidContainerId
            | ProtocolFault::IfnameTooLong
            | ProtocolFault::UnknownVerb => 4,
            ProtocolFault::InvalidJson => 6,
            ProtocolFault::MissingName => 7,
            ProtocolFault::UnsupportedVersion => 1,
        }
    }

    fn invocation(self, world: &World, conf: Value) -> Invocation {
        let ctr = world.lab.container();
        let ifname = world.kind.ifname();
        let add = Invocation::add(ctr, ifname);
        match self {
            ProtocolFault::MissingVariables => Invocation::new("ADD").config(conf),
            ProtocolFault::InvalidContainerId => add.container_id("bad id/!").config(conf),
            ProtocolFault::IfnameTooLong => add.ifname("ifname-too-long0").config(conf),
            ProtocolFault::UnknownVerb => Invocation::new("FROBNICATE")
                .container_id(ctr.name())
                .netns_path(ctr.path())
                .ifname(ifname)
                .config(conf),
            ProtocolFault::InvalidJson => add.stdin(b"{\"cniVersion\": \"1.0.0\", ".to_vec()),
            ProtocolFault::MissingName => {
                let mut conf = conf;
                conf.as_object_mut().map(|c| c.remove("name"));
                add.config(conf)
            }
            ProtocolFault::UnsupportedVersion => {
                let mut conf = conf;
                conf["cniVersion"] = json!("9.9.9");
                add.config(conf)
            }
        }
    }
}

fn protocol_fault(ctx: &Ctx, fault: ProtocolFault) -> Checked {
    // These are refused before any kernel work, so a plain lab is enough.
    let world = World::bare(ctx);
    let conf = world.conf(ctx.claims.max());
    failed_with(
        &world.run_plugin(&fault.invocation(&world, conf)),
        fault.code(),
    )
}

/// CHECK below 0.4.0, STATUS and GC below 1.1.0: refused with code 1.
fn refused_below(ctx: &Ctx, verb: &str, since: &str) -> Checked {
    let Some(version) = ctx.claims.highest_below(since) else {
        return Err(Stop::NotApplicable(format!(
            "claims no version below {since}"
        )));
    };
    let world = World::bare(ctx);
    let ctr = world.lab.container();
    let conf = world.conf(version);
    let invocation = match verb {
        "CHECK" => Invocation::check(ctr, world.kind.ifname()),
        "STATUS" => Invocation::status(),
        _ => Invocation::gc(),
    };
    failed_with(&world.run_plugin(&invocation.config(conf)), 1)
}

// ---- Results and lifecycle -------------------------------------------------------------

fn result_in(ctx: &Ctx, version: &str) -> Checked {
    if !ctx.claims.claims(version) {
        return Err(Stop::NotApplicable(format!("claims ≤{}", ctx.claims.max())));
    }
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let conf = world.conf(version);
    let before = world.snapshot(Some(ctr));
    let result = world.add(ctr, &conf)?;
    let sandbox = ctr.path().display().to_string();
    let request = AddRequest {
        kind: ctx.kind,
        version,
        sandbox: &sandbox,
        ifname: ctx.kind.ifname(),
    };
    let shape = check_result(&request, &result);
    world.del(ctr, &conf, Some(&result))?;
    shape?;
    let after = world.snapshot(Some(ctr));
    world.expect_no_leaks("after DEL", &before, &after, &result_ips(&result))
}

fn lifecycle(ctx: &Ctx) -> Checked {
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let conf = world.conf(ctx.claims.max());
    let ifname = ctx.kind.ifname();
    let before = world.snapshot(Some(ctr));
    let result = world.add(ctr, &conf)?;
    let check = world.run_plugin(&Invocation::check(ctr, ifname).config(with_prev(&conf, &result)));
    succeeded(&check)?;
    ensure!(
        check.stdout.trim().is_empty(),
        "CHECK printed output\n{check}"
    );
    for attempt in ["first", "second"] {
        let del = world.run_plugin(&Invocation::del(ctr, ifname).config(with_prev(&conf, &result)));
        succeeded(&del).map_err(|e| prefix(e, &format!("{attempt} DEL: ")))?;
        ensure!(del.stdout.trim().is_empty(), "DEL printed output\n{del}");
    }
    let after = world.snapshot(Some(ctr));
    world.expect_no_leaks("after DEL", &before, &after, &result_ips(&result))
}

fn prefix(stop: Stop, text: &str) -> Stop {
    match stop {
        Stop::Fail(message) => Stop::Fail(format!("{text}{message}")),
        other => other,
    }
}

fn state_after_add(ctx: &Ctx) -> Checked {
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let conf = world.conf(ctx.claims.max());
    let before = world.snapshot(Some(ctr));
    let result = world.add(ctr, &conf)?;
    let state = verify_added(&world, ctr, &result);
    world.del(ctr, &conf, Some(&result))?;
    state?;
    if ctx.kind == PluginKind::Loopback {
        ensure!(!is_up(ctr, "lo"), "lo is still up after DEL");
    }
    if ctx.kind == PluginKind::Tuning {
        let mtu = ctr.link("eth0").map(|l| l["mtu"].clone());
        ensure!(
            mtu == Some(json!(1500)),
            "DEL did not put eth0's MTU back to 1500: {mtu:?}"
        );
    }
    let after = world.snapshot(Some(ctr));
    world.expect_no_leaks("after DEL", &before, &after, &result_ips(&result))
}

/// The host links with a tbf qdisc (bandwidth's shaping), from `tc -j qdisc show`.
fn tbf_links(world: &World) -> Vec<String> {
    let out = world.lab.host().exec(&["tc", "-j", "qdisc", "show"]);
    let qdiscs: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    qdiscs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|q| q["kind"] == "tbf")
        .filter_map(|q| q["dev"].as_str().map(str::to_owned))
        .collect()
}

/// The kernel and disk state a successful ADD must have made.
fn verify_added(world: &World, ctr: &Netns, result: &Value) -> Checked {
    let ifname = world.kind.ifname();
    let ip = result_ips(result).first().cloned().unwrap_or_default();
    match world.kind {
        PluginKind::Bridge => verify_bridge_added(world.lab.host(), ctr, ifname, &ip, result),
        PluginKind::Macvlan => verify_sublink_added(ctr, ifname, "macvlan", &ip, result),
        PluginKind::Ipvlan => verify_sublink_added(ctr, ifname, "ipvlan", &ip, result),
        PluginKind::HostLocal => verify_lease_written(world, ctr, ifname, &ip),
        PluginKind::ClusterIpam => verify_reservation_written(world, ctr, ifname, &ip),
        PluginKind::Tuning => verify_tuned(ctr, ifname),
        PluginKind::Bandwidth => verify_shaped(world, result),
        PluginKind::Firewall => verify_forwarded(world, &ip),
        PluginKind::Portmap => verify_port_mapped(world),
        PluginKind::Loopback => verify_loopback_up(ctr),
    }
}

/// Firewall's ADD: the two per-address rules in the host's `CNI-FORWARD`.
fn verify_forwarded(world: &World, ip: &str) -> Checked {
    let host = world.lab.host();
    let rules = String::from_utf8_lossy(&host.exec(&["iptables", "-S"]).stdout).into_owned();
    let bare_ip = ip.split('/').next().unwrap_or_default();
    for rule in [
        format!("-A CNI-FORWARD -s {bare_ip}/32 -j ACCEPT"),
        format!(
            "-A CNI-FORWARD -d {bare_ip}/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        ),
    ] {
        ensure!(
            rules.contains(&rule),
            "no rule {rule:?} in the host:\n{rules}"
        );
    }
    Ok(())
}

/// Portmap's ADD: a `CNI-DN-` chain with the DNAT to the container's port.
fn verify_port_mapped(world: &World) -> Checked {
    let rules = world.firewall_text();
    ensure!(
        rules.contains("CNI-DN-") && rules.contains(&format!("--to-destination {PORTMAP_TARGET}")),
        "no DNAT to {PORTMAP_TARGET} in a CNI-DN- chain after ADD:\n{rules}"
    );
    Ok(())
}

/// Bandwidth's ADD: a tbf on the host veth and on the ifb the result names.
fn verify_shaped(world: &World, result: &Value) -> Checked {
    let links = tbf_links(world);
    let ifb = result["interfaces"][2]["name"].as_str().unwrap_or_default();
    ensure!(
        links.len() == 2 && links.iter().any(|l| l == ifb),
        "expected a tbf on the host veth and on the ifb {ifb}, found them on {links:?}"
    );
    Ok(())
}

/// The `info_kind` of link `name` in `ns` ("bridge", "veth", ...), if it exists.
fn link_kind(ns: &Netns, name: &str) -> Option<String> {
    ns.link(name).map(|l| {
        l["linkinfo"]["info_kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    })
}

fn has_default_route_via_gateway(ctr: &Netns) -> bool {
    ctr.routes(crate::IpFamily::V4)
        .iter()
        .any(|r| r["dst"] == "default" && r["gateway"] == GATEWAY)
}

/// bridge: the bridge with the gateway address in the host, the host veth its port, the
/// container's veth addressed and routed, and the result naming the bridge first.
fn verify_bridge_added(
    host: &Netns,
    ctr: &Netns,
    ifname: &str,
    ip: &str,
    result: &Value,
) -> Checked {
    ensure!(
        link_kind(host, BRIDGE).as_deref() == Some("bridge"),
        "no bridge {BRIDGE} in the host"
    );
    let bridge_mac = host.link(BRIDGE).map(|l| l["address"].clone());
    ensure!(
        result["interfaces"][0]["name"] == BRIDGE
            && Some(&result["interfaces"][0]["mac"]) == bridge_mac.as_ref(),
        "interfaces[0] is not the bridge with its MAC {bridge_mac:?}: {result}"
    );
    let host_veth = result["interfaces"][1]["name"].as_str().unwrap_or_default();
    let veth = host.link(host_veth);
    ensure!(
        veth.as_ref().is_some_and(|l| l["master"] == BRIDGE),
        "host veth {host_veth:?} is not a port of {BRIDGE}: {veth:?}"
    );
    let gateway = format!("{GATEWAY}/24");
    ensure!(
        host.addresses(BRIDGE).contains(&gateway),
        "{BRIDGE} lacks the gateway address {gateway}: {:?}",
        host.addresses(BRIDGE)
    );
    ensure!(
        link_kind(ctr, ifname).as_deref() == Some("veth"),
        "{ifname} in the container is not a veth"
    );
    ensure!(
        ctr.addresses(ifname).iter().any(|a| a == ip),
        "{ifname} lacks {ip}"
    );
    ensure!(
        has_default_route_via_gateway(ctr),
        "no default route via {GATEWAY} in the container"
    );
    Ok(())
}

/// macvlan and ipvlan: a link of `expected_kind` in the container, up, addressed and
/// routed, with the MAC the result reports.
fn verify_sublink_added(
    ctr: &Netns,
    ifname: &str,
    expected_kind: &str,
    ip: &str,
    result: &Value,
) -> Checked {
    ensure!(
        link_kind(ctr, ifname).as_deref() == Some(expected_kind),
        "{ifname} in the container is not a {expected_kind}: {:?}",
        ctr.link(ifname)
    );
    let link = ctr.link(ifname).unwrap_or_default();
    ensure!(
        result["interfaces"][0]["mac"] == link["address"],
        "result MAC {} differs from the link's {}",
        result["interfaces"][0]["mac"],
        link["address"]
    );
    ensure!(
        ctr.addresses(ifname).iter().any(|a| a == ip),
        "{ifname} lacks {ip}"
    );
    ensure!(is_up(ctr, ifname), "{ifname} is not up");
    ensure!(
        has_default_route_via_gateway(ctr),
        "no default route via {GATEWAY} in the container"
    );
    Ok(())
}

/// host-local: the lease file in the reference's format and the last reserved address.
fn verify_lease_written(world: &World, ctr: &Netns, ifname: &str, ip: &str) -> Checked {
    let bare_ip = ip.split('/').next().unwrap_or_default();
    let dir = world.data_dir().join(NETWORK);
    let lease = fs::read_to_string(dir.join(bare_ip))
        .map_err(|e| format!("no lease file {}/{bare_ip}: {e}", dir.display()))?;
    let expected = format!("{}\r\n{ifname}", ctr.name());
    ensure!(
        lease == expected,
        "lease file holds {lease:?}, expected {expected:?}"
    );
    let last = fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap_or_default();
    ensure!(
        last.trim() == bare_ip,
        "last_reserved_ip.0 holds {last:?}, expected {bare_ip}"
    );
    Ok(())
}

/// cluster-ipam: the reservation key of the address names the attachment.
fn verify_reservation_written(world: &World, ctr: &Netns, ifname: &str, ip: &str) -> Checked {
    let bare_ip = ip.split('/').next().unwrap_or_default();
    let value = world
        .reservation(bare_ip)
        .ok_or_else(|| format!("no reservation key {}{bare_ip}", world.reservation_prefix()))?;
    let value: Value = serde_json::from_str(&value).unwrap_or_default();
    ensure!(
        value["containerID"] == ctr.name() && value["ifname"] == ifname,
        "the reservation of {bare_ip} holds {value}, expected {} {ifname}",
        ctr.name()
    );
    Ok(())
}

/// tuning: the MTU and sysctl the config asks for.
fn verify_tuned(ctr: &Netns, ifname: &str) -> Checked {
    let mtu = ctr.link(ifname).map(|l| l["mtu"].clone());
    ensure!(
        mtu == Some(json!(TUNED_MTU)),
        "{ifname} has MTU {mtu:?}, the config says {TUNED_MTU}"
    );
    let somaxconn = ctr.sysctl("net.core.somaxconn");
    ensure!(
        somaxconn == "512",
        "net.core.somaxconn is {somaxconn}, the config says 512"
    );
    Ok(())
}

fn verify_loopback_up(ctr: &Netns) -> Checked {
    ensure!(is_up(ctr, "lo"), "lo is not up after ADD");
    ensure!(
        ctr.addresses("lo").contains(&"127.0.0.1/8".to_owned()),
        "lo lacks 127.0.0.1/8"
    );
    Ok(())
}

fn add_twice(ctx: &Ctx) -> Checked {
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let conf = world.conf(ctx.claims.max());
    let empty = world.snapshot(Some(ctr));
    let result = world.add(ctr, &conf)?;
    let before = world.snapshot(Some(ctr));
    let second = world.run_plugin(&Invocation::add(ctr, ctx.kind.ifname()).config(conf.clone()));
    let refused = failed_with_error_object(&second);
    let after = world.snapshot(Some(ctr));
    let unchanged = before.leases == after.leases
        && before.host_links == after.host_links
        && before.container_links == after.container_links
        && before.firewall == after.firewall;
    world.del(ctr, &conf, Some(&result))?;
    refused?;
    ensure!(
        unchanged,
        "the refused second ADD changed state: before {before:?}, after {after:?}"
    );
    let done = world.snapshot(Some(ctr));
    world.expect_no_leaks("after DEL", &empty, &done, &result_ips(&result))
}

/// A one-address range: the first container gets it, the second ADD must fail with a
/// CNI error and leave nothing (no link in its netns, no lease) and not disturb the first.
fn ipam_exhausted(ctx: &Ctx) -> Checked {
    let world = World::new(ctx)?;
    let (first, second) = (world.lab.container(), world.lab.new_container());
    let mut conf = world.conf(ctx.claims.max());
    merge(
        &mut conf["ipam"],
        json!({"rangeStart": "10.88.0.2", "rangeEnd": "10.88.0.2"}),
    );
    let result = world.add(first, &conf)?;
    let before = world.snapshot(Some(&second));
    let refused =
        world.run_plugin(&Invocation::add(&second, ctx.kind.ifname()).config(conf.clone()));
    let after = world.snapshot(Some(&second));
    world.del(first, &conf, Some(&result))?;
    failed_with_error_object(&refused)?;
    world.expect_no_leaks("by the failed ADD", &before, &after, &[])?;
    ensure!(
        before.leases == after.leases,
        "the failed ADD changed the leases: {:?} → {:?}",
        before.leases,
        after.leases
    );
    Ok(())
}

fn del_never_added(ctx: &Ctx) -> Checked {
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let before = world.snapshot(Some(ctr));
    world.del(ctr, &world.conf(ctx.claims.max()), None)?;
    let after = world.snapshot(Some(ctr));
    world.expect_no_leaks("by the DEL", &before, &after, &[])
}

/// How the netns is missing on DEL.
#[derive(Debug, Clone, Copy)]
enum DelNetns {
    /// `CNI_NETNS` unset: the runtime no longer knows it.
    Empty,
    /// `CNI_NETNS` names a path that no longer exists.
    Vanished,
}

impl DelNetns {
    fn id(self) -> &'static str {
        match self {
            DelNetns::Empty => "del/empty-netns-releases-everything",
            DelNetns::Vanished => "del/vanished-netns-releases-everything",
        }
    }
}

fn del_without_netns(ctx: &Ctx, netns: DelNetns) -> Checked {
    let world = World::new(ctx)?;
    let ctr = world.lab.new_container();
    let conf = world.conf(ctx.claims.max());
    let before = world.snapshot(None);
    let result = world.add(&ctr, &conf)?;
    let conf = if version_key(ctx.claims.max()) >= (0, 4, 0) {
        with_prev(&conf, &result)
    } else {
        conf
    };
    let del = Invocation::del(&ctr, ctx.kind.ifname()).config(conf);
    let del = match netns {
        DelNetns::Empty => del.no_netns(),
        DelNetns::Vanished => del,
    };
    // The container goes away first, as when a runtime cleans up after a crash.
    drop(ctr);
    world.settle_host_links(&before);
    for attempt in ["first", "second"] {
        succeeded(&world.run_plugin(&del)).map_err(|e| prefix(e, &format!("{attempt} DEL: ")))?;
    }
    let after = world.snapshot(None);
    world.expect_no_leaks("after DEL", &before, &after, &result_ips(&result))
}

// ---- CHECK against tampering -------------------------------------------------------------

/// A change behind the plugin's back that CHECK must notice.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    DeleteContainerAddress,
    DeleteLeaseFiles,
    DetachHostVeth,
    LoopbackDown,
    MtuChanged,
    TbfRateChanged,
    DeleteForwardRule,
    DnatChainFlushed,
}

fn tampers(kind: PluginKind) -> &'static [Tamper] {
    match kind {
        PluginKind::Bridge => &[
            Tamper::DeleteContainerAddress,
            Tamper::DeleteLeaseFiles,
            Tamper::DetachHostVeth,
        ],
        PluginKind::Macvlan | PluginKind::Ipvlan => {
            &[Tamper::DeleteContainerAddress, Tamper::DeleteLeaseFiles]
        }
        PluginKind::HostLocal | PluginKind::ClusterIpam => &[Tamper::DeleteLeaseFiles],
        PluginKind::Loopback => &[Tamper::LoopbackDown],
        PluginKind::Tuning => &[Tamper::MtuChanged],
        PluginKind::Bandwidth => &[Tamper::TbfRateChanged],
        PluginKind::Firewall => &[Tamper::DeleteForwardRule],
        PluginKind::Portmap => &[Tamper::DnatChainFlushed],
    }
}

impl Tamper {
    fn id(self) -> &'static str {
        match self {
            Tamper::DeleteContainerAddress => "check/detects-deleted-address",
            Tamper::DeleteLeaseFiles => "check/detects-deleted-lease",
            Tamper::DetachHostVeth => "check/detects-veth-detached-from-bridge",
            Tamper::LoopbackDown => "check/detects-lo-down",
            Tamper::MtuChanged => "check/detects-changed-mtu",
            Tamper::TbfRateChanged => "check/detects-changed-tbf-rate",
            Tamper::DeleteForwardRule => "check/detects-deleted-forward-rule",
            Tamper::DnatChainFlushed => "check/detects-flushed-dnat-chain",
        }
    }

    fn apply(self, world: &World, ctr: &Netns, result: &Value) {
        let ifname = world.kind.ifname();
        match self {
            Tamper::DeleteContainerAddress => {
                let ip = result_ips(result).first().cloned().unwrap_or_default();
                ctr.ip(&["addr", "del", &ip, "dev", ifname]);
            }
            Tamper::DeleteLeaseFiles => world.delete_leases(),
            Tamper::DetachHostVeth => {
                let veth = result["interfaces"][1]["name"].as_str().unwrap_or_default();
                world.lab.host().ip(&["link", "set", veth, "nomaster"]);
            }
            Tamper::LoopbackDown => {
                ctr.ip(&["link", "set", "lo", "down"]);
            }
            Tamper::MtuChanged => {
                ctr.ip(&["link", "set", ifname, "mtu", "1500"]);
            }
            Tamper::TbfRateChanged => {
                for tbf in tbf_links(world) {
                    world.lab.host().exec(&[
                        "tc", "qdisc", "change", "dev", &tbf, "root", "handle", "1:", "tbf",
                        "rate", "1mbit", "burst", "100000", "latency", "25ms",
                    ]);
                }
            }
            Tamper::DeleteForwardRule => {
                let ip = result_ips(result).first().cloned().unwrap_or_default();
                let host_ip = format!("{}/32", ip.split('/').next().unwrap_or_default());
                let argv = [
                    "iptables",
                    "-D",
                    "CNI-FORWARD",
                    "-s",
                    &host_ip,
                    "-j",
                    "ACCEPT",
                ];
                let out = world.lab.host().exec(&argv);
                assert!(out.status.success(), "{argv:?}: {out:?}");
            }
            Tamper::DnatChainFlushed => {
                let host = world.lab.host();
                let listing = host.exec(&["iptables", "-t", "nat", "-S"]).stdout;
                let listing = String::from_utf8_lossy(&listing);
                for chain in listing.lines().filter_map(|l| l.strip_prefix("-N CNI-DN-")) {
                    host.exec(&["iptables", "-t", "nat", "-F", &format!("CNI-DN-{chain}")]);
                }
            }
        }
    }
}

fn check_detects(ctx: &Ctx, tamper: Tamper) -> Checked {
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let conf = world.conf(ctx.claims.max());
    let before = world.snapshot(Some(ctr));
    let result = world.add(ctr, &conf)?;
    tamper.apply(&world, ctr, &result);
    let check = world
        .run_plugin(&Invocation::check(ctr, ctx.kind.ifname()).config(with_prev(&conf, &result)));
    let detected =
        failed_with_error_object(&check).map_err(|e| prefix(e, "CHECK after tampering: "));
    world
        .del(ctr, &conf, Some(&result))
        .map_err(|e| prefix(e, "DEL after tampering: "))?;
    detected?;
    let after = world.snapshot(Some(ctr));
    world.expect_no_leaks("after DEL", &before, &after, &result_ips(&result))
}

// ---- STATUS and GC -----------------------------------------------------------------------

fn status_ready(ctx: &Ctx) -> Checked {
    let world = World::bare(ctx);
    let run = world.run_plugin(&Invocation::status().config(world.conf(ctx.claims.max())));
    succeeded(&run)?;
    ensure!(run.stdout.trim().is_empty(), "STATUS printed output\n{run}");
    Ok(())
}

fn gc_conf(world: &World, version: &str, valid: &[(&Netns, &str)]) -> Value {
    let mut conf = world.conf(version);
    let valid: Vec<Value> = valid
        .iter()
        .map(|(ns, ifname)| json!({"containerID": ns.name(), "ifname": ifname}))
        .collect();
    conf["cni.dev/valid-attachments"] = Value::Array(valid);
    conf
}

fn gc_succeeds(ctx: &Ctx) -> Checked {
    let world = World::bare(ctx);
    let run = world.run_plugin(&Invocation::gc().config(gc_conf(&world, ctx.claims.max(), &[])));
    succeeded(&run)
}

/// Two attachments; GC with only the first valid releases the second's lease (the spec
/// says a plugin that delegates must forward GC to its IPAM).
fn gc_releases_stale(ctx: &Ctx) -> Checked {
    let world = World::new(ctx)?;
    let ifname = ctx.kind.ifname();
    let kept = world.lab.container();
    let stale = world.lab.new_container();
    let conf = world.conf(ctx.claims.max());
    let before = world.snapshot(None);
    let kept_result = world.add(kept, &conf)?;
    let stale_result = world.add(&stale, &conf)?;
    let gc = world.run_plugin(&Invocation::gc().config(gc_conf(
        &world,
        ctx.claims.max(),
        &[(kept, ifname)],
    )));
    let leases = world.leases();
    let bare = |result: &Value| {
        result_ips(result)
            .first()
            .map(|ip| ip.split('/').next().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    let (kept_ip, stale_ip) = (bare(&kept_result), bare(&stale_result));
    world.del(kept, &conf, Some(&kept_result))?;
    world.del(&stale, &conf, Some(&stale_result))?;
    succeeded(&gc)?;
    ensure!(
        leases.contains(&kept_ip),
        "GC released the valid attachment's {kept_ip}: {leases:?}"
    );
    ensure!(
        !leases.contains(&stale_ip),
        "GC kept the stale attachment's {stale_ip}: {leases:?}"
    );
    let after = world.snapshot(None);
    let mut ips = result_ips(&kept_result);
    ips.extend(result_ips(&stale_result));
    world.expect_no_leaks("after DEL", &before, &after, &ips)
}

// ---- Chaining and delegation --------------------------------------------------------------

/// A result with an empty `dns` dropped, for comparing results from libraries that print
/// `"dns": {}` with ones that omit it.
fn normalized(result: &Value) -> Value {
    let mut result = result.clone();
    if result["dns"].as_object().is_some_and(|dns| dns.is_empty()) {
        result.as_object_mut().map(|r| r.remove("dns"));
    }
    result
}

/// The plugin's ADD result fed as `prevResult` to the loopback plugin of the same
/// directory, which must pass it on unchanged.
fn chain_into_loopback(ctx: &Ctx) -> Checked {
    if !ctx.binary("loopback").is_file() {
        return Err(Stop::NotApplicable(
            "no loopback binary to chain into".to_owned(),
        ));
    }
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let version = ctx.claims.max();
    let conf = world.conf(version);
    let before = world.snapshot(Some(ctr));
    let result = world.add(ctr, &conf)?;
    let loopback = json!({"cniVersion": version, "name": NETWORK, "type": "loopback"});
    let chained = world.run(
        "loopback",
        &Invocation::add(ctr, "lo").config(with_prev(&loopback, &result)),
    );
    world.del(ctr, &conf, Some(&result))?;
    succeeded(&chained)?;
    let passed = chained.json.clone().unwrap_or_default();
    ensure!(
        normalized(&passed) == normalized(&result),
        "loopback did not pass the {} result through:\n{result}\nbecame\n{passed}",
        ctx.kind.name()
    );
    let after = world.snapshot(Some(ctr));
    world.expect_no_leaks("after DEL", &before, &after, &result_ips(&result))
}

fn loopback_passes_prev(ctx: &Ctx) -> Checked {
    let world = World::bare(ctx);
    let ctr = world.lab.container();
    let version = ctx.claims.max();
    let mut ip = json!({"interface": 0, "address": "10.88.0.5/24", "gateway": GATEWAY});
    if version_key(version) < (1, 0, 0) {
        merge(&mut ip, json!({"version": "4"}));
    }
    let prev = json!({
        "cniVersion": version,
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:58:00:05", "sandbox": ctr.path()}],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}],
    });
    let run = world
        .run_plugin(&Invocation::add(ctr, "lo").config(with_prev(&world.conf(version), &prev)));
    succeeded(&run)?;
    let passed = run.json.clone().unwrap_or_default();
    ensure!(
        normalized(&passed) == normalized(&prev),
        "prevResult not passed through:\n{prev}\nbecame\n{passed}"
    );
    Ok(())
}

/// `CNI_PATH` with a missing directory first and a directory holding only host-local
/// (a link to the one under test) second: the IPAM plugin is found and used for ADD
/// and DEL.
fn delegation_found(ctx: &Ctx) -> Checked {
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let ipam_dir = world.lab.dir().join("cni-path");
    fs::create_dir_all(&ipam_dir).expect("cannot create the CNI_PATH directory");
    std::os::unix::fs::symlink(
        world.bin_dir().join("host-local"),
        ipam_dir.join("host-local"),
    )
    .expect("cannot link host-local into the CNI_PATH directory");
    let cni_path = format!(
        "{}:{}",
        world.lab.dir().join("absent").display(),
        ipam_dir.display()
    );
    let conf = world.conf(ctx.claims.max());
    let ifname = ctx.kind.ifname();
    let add = world.run_plugin(
        &Invocation::add(ctr, ifname)
            .cni_path(&cni_path)
            .config(conf.clone()),
    );
    succeeded(&add)?;
    let leased = world.leases();
    let result = add.json.clone().unwrap_or_default();
    let del = world.run_plugin(
        &Invocation::del(ctr, ifname)
            .cni_path(&cni_path)
            .config(with_prev(&conf, &result)),
    );
    succeeded(&del)?;
    ensure!(
        leased.len() == 1,
        "expected one host-local lease after ADD, found {leased:?}"
    );
    ensure!(
        world.leases().is_empty(),
        "DEL left leases {:?}",
        world.leases()
    );
    Ok(())
}

/// `CNI_PATH` without the IPAM plugin: ADD fails with a CNI error and leaves nothing.
fn delegation_missing(ctx: &Ctx) -> Checked {
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let empty = world.lab.dir().join("empty-cni-path");
    fs::create_dir_all(&empty).expect("cannot create the empty CNI_PATH directory");
    let before = world.snapshot(Some(ctr));
    let add = world.run_plugin(
        &Invocation::add(ctr, ctx.kind.ifname())
            .cni_path(&empty)
            .config(world.conf(ctx.claims.max())),
    );
    failed_with_error_object(&add)?;
    let after = world.snapshot(Some(ctr));
    world.expect_no_leaks("by the failed ADD", &before, &after, &[])
}

// ---- bridge ----------------------------------------------------------------------------

/// L2 mode (no IPAM): the container is plugged into the bridge without addresses, and
/// CHECK must pass (there is no IPAM to delegate CHECK to).
fn bridge_l2(ctx: &Ctx) -> Checked {
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let conf = world.bridge_l2_conf(ctx.claims.max());
    let before = world.snapshot(Some(ctr));
    let result = world.add(ctr, &conf)?;
    let port = ctr.link("eth0");
    let check = world.run_plugin(&Invocation::check(ctr, "eth0").config(with_prev(&conf, &result)));
    world.del(ctr, &conf, Some(&result))?;
    ensure!(
        result["interfaces"].as_array().map(Vec::len) == Some(3)
            && result["ips"].as_array().is_none_or(Vec::is_empty),
        "an L2 result has the 3 interfaces and no ips: {result}"
    );
    ensure!(port.is_some(), "no eth0 in the container after the L2 ADD");
    succeeded(&check).map_err(|e| prefix(e, "L2 CHECK: "))?;
    let after = world.snapshot(Some(ctr));
    world.expect_no_leaks("after DEL", &before, &after, &[])
}

// ---- macvlan -------------------------------------------------------------------------------

const MACVLAN_MODES: [&str; 4] = ["bridge", "private", "vepa", "passthru"];

fn macvlan_mode(ctx: &Ctx, mode: &str) -> Checked {
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let mut conf = world.conf(ctx.claims.max());
    conf["mode"] = json!(mode);
    let before = world.snapshot(Some(ctr));
    let result = world.add(ctr, &conf)?;
    let link = ctr.link("eth0").unwrap_or_default();
    world.del(ctr, &conf, Some(&result))?;
    let info = &link["linkinfo"];
    ensure!(
        info["info_kind"] == "macvlan" && info["info_data"]["mode"] == mode,
        "eth0 is not a macvlan in mode {mode}: {link}"
    );
    let after = world.snapshot(Some(ctr));
    world.expect_no_leaks("after DEL", &before, &after, &result_ips(&result))
}

/// The master disappears before DEL: DEL must still succeed and release the lease.
fn del_master_gone(ctx: &Ctx) -> Checked {
    let world = World::new(ctx)?;
    let ctr = world.lab.container();
    let conf = world.conf(ctx.claims.max());
    let result = world.add(ctr, &conf)?;
    world.lab.host().ip(&["link", "del", MASTER]);
    world.del(ctr, &conf, Some(&result))?;
    ensure!(
        world.leases().is_empty(),
        "DEL left leases {:?}",
        world.leases()
    );
    Ok(())
}
