//! The shape an ADD result must have in each spec version (CNI SPEC "Result", and the
//! 0.1.0/0.2.0 and 0.3.x/0.4.0 types).

use serde_json::Value;

use super::world::{GATEWAY, PluginKind};
use super::{Checked, ensure, version_key};

/// What an ADD asked for, which its result must reflect.
pub struct AddRequest<'a> {
    /// The plugin.
    pub kind: PluginKind,
    /// The request's `cniVersion`.
    pub version: &'a str,
    /// The container netns path (`CNI_NETNS`).
    pub sandbox: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
}

/// Checks `result` against the spec's result type for the request's version and against
/// what its plugin must report (interfaces, which interface the IPs sit on, addresses).
pub fn check_result(request: &AddRequest, result: &Value) -> Checked {
    let version = request.version;
    ensure!(
        result["cniVersion"] == version,
        "result cniVersion is {}, the request's is {version}: {result}",
        result["cniVersion"]
    );
    ensure!(
        result["dns"].is_null() || result["dns"].is_object(),
        "dns is not an object: {result}"
    );
    if version_key(version) < (0, 3, 0) {
        check_020(request.kind, result)
    } else {
        check_current(request, result)
    }
}

/// 0.1.0/0.2.0: `ip4`/`ip6` objects, no interface list.
fn check_020(kind: PluginKind, result: &Value) -> Checked {
    check_keys(result, &["cniVersion", "ip4", "ip6", "dns"], "result")?;
    let ip = result["ip4"]["ip"].as_str();
    ensure!(ip.is_some(), "no ip4.ip in a 0.x result: {result}");
    let expected = expected_v4(kind);
    ensure!(
        ip.is_some_and(|ip| expected.matches(ip)),
        "ip4.ip is {:?}, expected {expected}: {result}",
        ip
    );
    if kind.uses_ipam() {
        ensure!(
            result["ip4"]["gateway"] == GATEWAY,
            "ip4.gateway is {}, expected {GATEWAY}: {result}",
            result["ip4"]["gateway"]
        );
    }
    Ok(())
}

/// 0.3.0 and later: `interfaces`, `ips` (with `version` before 1.0.0), `routes`.
fn check_current(request: &AddRequest, result: &Value) -> Checked {
    let AddRequest {
        kind,
        version,
        sandbox,
        ifname,
    } = *request;
    check_keys(
        result,
        &["cniVersion", "interfaces", "ips", "routes", "dns"],
        "result",
    )?;
    let interfaces = result["interfaces"].as_array().cloned().unwrap_or_default();
    let interface_keys: &[&str] = if version_key(version) >= (1, 1, 0) {
        &["name", "mac", "sandbox", "mtu", "socketPath", "pciID"]
    } else {
        &["name", "mac", "sandbox"]
    };
    for interface in &interfaces {
        check_keys(interface, interface_keys, "interface")?;
        ensure!(
            interface["name"].is_string(),
            "interface without a name: {result}"
        );
    }
    // Which entry is the container interface, and how many entries there must be.
    let (count, container_index) = match kind {
        PluginKind::Bridge => (3, Some(2)),
        PluginKind::Macvlan
        | PluginKind::Ipvlan
        | PluginKind::Loopback
        | PluginKind::Tuning
        | PluginKind::Firewall
        | PluginKind::Portmap => (1, Some(0)),
        PluginKind::HostLocal | PluginKind::ClusterIpam => (0, None),
        // The stand-in's host veth, the container's eth0, the ifb.
        PluginKind::Bandwidth => (3, Some(1)),
    };
    ensure!(
        interfaces.len() == count,
        "expected {count} interfaces, got {}: {result}",
        interfaces.len()
    );
    if let Some(index) = container_index {
        let interface = &interfaces[index];
        ensure!(
            interface["name"] == ifname,
            "interfaces[{index}] is {}, expected {ifname}: {result}",
            interface["name"]
        );
        ensure!(
            interface["sandbox"] == sandbox,
            "interfaces[{index}].sandbox is {}, expected {sandbox}: {result}",
            interface["sandbox"]
        );
    }

    let ips = result["ips"].as_array().cloned().unwrap_or_default();
    ensure!(!ips.is_empty(), "no ips in the result: {result}");
    let ip_keys: &[&str] = if version_key(version) >= (1, 0, 0) {
        &["interface", "address", "gateway"]
    } else {
        &["version", "interface", "address", "gateway"]
    };
    let expected = expected_v4(kind);
    for ip in &ips {
        check_keys(ip, ip_keys, "ips entry")?;
        let address = ip["address"].as_str().unwrap_or_default();
        ensure!(
            address.contains('/'),
            "address {address:?} is not a CIDR: {result}"
        );
        if version_key(version) < (1, 0, 0) {
            let family = if address.contains(':') { "6" } else { "4" };
            ensure!(
                ip["version"] == family,
                "a {version} ips entry needs \"version\": \"{family}\": {result}"
            );
        }
        ensure!(
            ip["interface"].as_u64() == container_index.map(|i| i as u64),
            "ips entry has interface {}, expected {:?}: {result}",
            ip["interface"],
            container_index
        );
    }
    let first = ips[0]["address"].as_str().unwrap_or_default();
    ensure!(
        expected.matches(first),
        "first address is {first}, expected {expected}: {result}"
    );
    if kind.uses_ipam() {
        ensure!(
            ips[0]["gateway"] == GATEWAY,
            "gateway is {}, expected {GATEWAY}: {result}",
            ips[0]["gateway"]
        );
    }
    for route in result["routes"].as_array().into_iter().flatten() {
        ensure!(route["dst"].is_string(), "route without dst: {result}");
    }
    Ok(())
}

/// The IPv4 address a kind reports first.
enum ExpectedV4 {
    /// Anything in the IPAM subnet.
    InSubnet,
    Exactly(&'static str),
}

impl ExpectedV4 {
    fn matches(&self, cidr: &str) -> bool {
        match self {
            ExpectedV4::InSubnet => cidr.starts_with("10.88.0.") && cidr.ends_with("/24"),
            ExpectedV4::Exactly(expected) => cidr == *expected,
        }
    }
}

impl std::fmt::Display for ExpectedV4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedV4::InSubnet => f.write_str("an address in 10.88.0.0/24"),
            ExpectedV4::Exactly(expected) => f.write_str(expected),
        }
    }
}

fn expected_v4(kind: PluginKind) -> ExpectedV4 {
    match kind {
        PluginKind::Loopback => ExpectedV4::Exactly("127.0.0.1/8"),
        _ => ExpectedV4::InSubnet,
    }
}

/// Fails if `object` has a key outside `allowed` (the version's result type).
fn check_keys(object: &Value, allowed: &[&str], what: &str) -> Checked {
    let Some(map) = object.as_object() else {
        return Err(format!("{what} is not an object: {object}").into());
    };
    for key in map.keys() {
        ensure!(
            allowed.contains(&key.as_str()),
            "{what} has key {key:?}, not in this version's type {allowed:?}: {object}"
        );
    }
    Ok(())
}
