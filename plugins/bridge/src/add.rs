//! Bridge ADD, top to bottom (docs/reference.md#bridge-add): validate, ensure the
//! bridge, create the veth straight into the container, wire the host port, spoof check,
//! IPAM, container addresses and routes, gateway on the bridge (or, with an access VLAN, on
//! the shared `<bridge>.<vlan>` gateway interface), masquerade, result.

use crate::config::{BridgeConfig, Settings};
use cni::error::code;
use cni::{CmdArgs, CniResult, Dns, Error, Interface, Request, Result, Route};
use cni_netlink::{
    AddressOptions, BridgePortFlags, BridgeSpec, Handle, IpNetwork, Link, Netns, OperState,
    VethSpec, format_mac, sysctl,
};
use cni_plugin_support::ipam::{finish_ipam, result_dns, start_configured_ipam};
use cni_plugin_support::{
    Namespaces, Rollback, configure_iface_at, fault_point, finish_add, kernel_error,
    random_link_name,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Index of the container interface in the result (bridge, host veth, container, then the
/// VLAN gateway interface when there is one).
const CONTAINER_IF: usize = 2;

/// How one bridge port is wired: its flags and its VLAN entries.
struct PortSpec<'a> {
    hairpin: bool,
    isolated: bool,
    /// Access VLAN: PVID and egress-untagged.
    vlan: Option<u16>,
    /// Tagged VLANs.
    trunk: &'a [u16],
    /// Keep the port's other VLAN entries (the bridge's default VID 1).
    preserve_default_vlan: bool,
}

impl<'a> PortSpec<'a> {
    /// A container's host veth, as configured.
    fn container(s: &'a Settings) -> Self {
        PortSpec {
            hairpin: s.hairpin,
            isolated: s.port_isolation,
            vlan: s.vlan,
            trunk: &s.vlan_trunk,
            preserve_default_vlan: s.preserve_default_vlan,
        }
    }

    /// The bridge end of the VLAN gateway veth (the reference's `setupVeth` call for it:
    /// no hairpin, no trunk). Never isolated: isolated ports cannot talk to each other, so
    /// with `portIsolation` an isolated gateway port would cut every container off.
    fn vlan_gateway(vlan: u16, s: &Settings) -> Self {
        PortSpec {
            hairpin: false,
            isolated: false,
            vlan: Some(vlan),
            trunk: &[],
            preserve_default_vlan: s.preserve_default_vlan,
        }
    }
}

pub(crate) fn add(req: &Request<BridgeConfig>, s: &Settings) -> Result<CniResult> {
    let version = req.net.cni_version;
    let ns = Namespaces::open_for_add(&req.args)?;
    let ifname = req.args.ifname.as_str();

    let mut rollback = Rollback::new();
    // IPAM runs while we build the bridge side: it needs nothing from it, and run in series
    // its process start and store work were a third of ADD (bench/analysis.md).
    let mut ipam = start_configured_ipam(req, &mut rollback)?;
    let bridge = ensure_bridge(&ns.host, s)?;
    fault_point("bridge-after-bridge")?;

    let host_veth = create_veth(&ns.host, &ns.netns, ifname, &bridge, s, &mut rollback)?;
    fault_point("bridge-after-veth")?;
    wire_port(&ns.host, &host_veth, &bridge, &PortSpec::container(s), true)?;
    fault_point("bridge-after-port")?;
    let container_link = ns.container.link_by_name(ifname).map_err(kernel_error)?;
    if s.macspoofchk {
        setup_spoofcheck(&req.args, &host_veth, &container_link, &mut rollback)?;
    }

    let mut result = CniResult::default();
    result.interfaces = vec![
        host_interface(&bridge),
        host_interface(&host_veth),
        ns.container_interface(&container_link),
    ];
    let mut ipam_dns = Dns::default();
    let mut pinned_bridge = None;
    if let Some(pending) = ipam.take() {
        let mut ipam_result = finish_ipam(pending, version, "bridge")?;
        ipam_dns = std::mem::take(&mut ipam_result.dns);
        let l3 = L3Context {
            req,
            s,
            ns: &ns,
            bridge: &bridge,
            container_index: container_link.index,
        };
        pinned_bridge = configure_l3(&l3, ipam_result, &mut result, &mut rollback)?;
    } else if !s.disable_container_interface {
        ns.container
            .set_link_up(container_link.index)
            .map_err(kernel_error)?;
    }
    fault_point("bridge-after-container")?;

    let bridge_now = pinned_bridge.map_or(BridgeNow::Read(&bridge), BridgeNow::Pinned);
    report_host_macs(&ns.host, s, bridge_now, &host_veth, &mut result)?;
    result.dns = result_dns(&req.net, ipam_dns);
    finish_add(result, version, "bridge", rollback)
}

/// The result's entry for a link in the host netns (no sandbox).
fn host_interface(link: &Link) -> Interface {
    Interface {
        name: link.name.clone(),
        mac: link.mac.as_ref().map(format_mac),
        ..Default::default()
    }
}

/// Drops frames from the container whose source MAC is not `container`'s, and registers
/// the undo.
fn setup_spoofcheck(
    args: &CmdArgs,
    host_veth: &Link,
    container: &Link,
    rollback: &mut Rollback,
) -> Result<()> {
    let mac = container.mac.as_ref().map(format_mac).unwrap_or_default();
    cni_firewall::setup_spoofcheck(&args.container_id, &args.ifname, &host_veth.name, &mac)
        .map_err(crate::firewall_error)?;
    let (id, ifn) = (args.container_id.clone(), args.ifname.clone());
    rollback.push("MAC spoof check", move || {
        cni_firewall::teardown_spoofcheck(&id, &ifn).map_err(crate::firewall_error)
    });
    fault_point("bridge-after-spoofcheck")
}

/// The bridge for [`report_host_macs`]: as read before its MAC could have moved, or as read
/// after our port joined, when the gateway step pinned its MAC if it had moved (one round
/// trip less).
enum BridgeNow<'a> {
    Read(&'a Link),
    Pinned(Link),
}

/// Waits for the host port to forward (unless the container end stays down), then puts
/// the bridge's and the host veth's MACs as the kernel has them now into the result's
/// first two interfaces: enslaving and addressing can change both after we read them
/// (plugins #805), and CHECK must compare like with like.
fn report_host_macs(
    host: &Handle,
    s: &Settings,
    bridge: BridgeNow<'_>,
    host_veth: &Link,
    result: &mut CniResult,
) -> Result<()> {
    let forwarding = if s.disable_container_interface {
        None
    } else {
        Some(wait_port_forwarding(host, host_veth.index)?)
    };
    let bridge_now = match bridge {
        BridgeNow::Pinned(link) => link,
        BridgeNow::Read(link) => host.link_by_index(link.index).map_err(kernel_error)?,
    };
    // The port as the wait above last read it: the same moment, one round trip less.
    let veth_now = match forwarding {
        Some(link) => link,
        None => host.link_by_index(host_veth.index).map_err(kernel_error)?,
    };
    result.interfaces[0].mac = bridge_now.mac.as_ref().map(format_mac);
    result.interfaces[1].mac = veth_now.mac.as_ref().map(format_mac);
    Ok(())
}

/// Creates the bridge if missing (EEXIST is another ADD winning the race: fine), checks it
/// is a bridge, applies promisc, and sets it up. An existing bridge's MTU and VLAN
/// filtering are left as they are, as the reference does.
fn ensure_bridge(host: &Handle, s: &Settings) -> Result<Link> {
    let spec = BridgeSpec {
        name: &s.bridge,
        mtu: s.mtu,
        vlan_filtering: s.vlan_filtering(),
    };
    // Look before creating: on every ADD but a network's first the bridge exists, and the
    // create would only be answered with EEXIST. A lookup creates nothing, so this changes
    // no result; it saves a round trip (both take the kernel's RTNL mutex). Measured gain
    // is within noise: one extra RTNL round trip costs 200 concurrent ADDs ≈ 30 µs of wall
    // time each.
    match host.link_by_name(&s.bridge) {
        Ok(bridge) => return finish_bridge(host, s, bridge),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(kernel_error(e)),
    }
    match host.create_bridge(&spec) {
        Ok(()) => {}
        Err(e) if e.is_exists() => {}
        Err(e) if s.vlan_filtering() && e.is_unsupported() => {
            return Err(Error::plugin(
                code::KERNEL_FEATURE,
                format!(
                    "cannot create bridge {:?} with VLAN filtering: kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)",
                    s.bridge
                ),
                Some(e.to_string()),
            ));
        }
        Err(e) => return Err(kernel_error(e)),
    }
    let bridge = host.link_by_name(&s.bridge).map_err(kernel_error)?;
    finish_bridge(host, s, bridge)
}

/// The rest of [`ensure_bridge`] once the link is read: it must be a bridge; promisc,
/// `accept_ra` and up as configured.
fn finish_bridge(host: &Handle, s: &Settings, bridge: Link) -> Result<Link> {
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(Error::invalid_config(format!(
            "{:?} already exists but is not a bridge",
            s.bridge
        )));
    }
    if s.promisc && !bridge.promiscuous {
        host.set_promiscuous(bridge.index, true)
            .map_err(kernel_error)?;
    }
    // Router advertisements must not configure the host side (reference; errors ignored:
    // IPv6 may be off).
    let _ = sysctl::ensure(&format!("net/ipv6/conf/{}/accept_ra", s.bridge), "0");
    if !bridge.admin_up {
        host.set_link_up(bridge.index).map_err(kernel_error)?;
    }
    Ok(bridge)
}

/// Creates the veth pair from the host: the host end `veth<8 hex>` stays here, already a
/// port of `bridge` and up (one request instead of three; nothing can pass the port before
/// it is wired, since it has no carrier until the container end comes up), the peer is
/// created straight into the container as `CNI_IFNAME` (it never exists in the host, so it
/// cannot clash with a host link). Retries a host-name collision like the reference.
fn create_veth(
    host: &Handle,
    netns: &Netns,
    ifname: &str,
    bridge: &Link,
    s: &Settings,
    rollback: &mut Rollback,
) -> Result<Link> {
    let peer_mac = s.mac.map(|mac| mac.0);
    for _ in 0..10 {
        let name = random_link_name("veth")?;
        let spec = VethSpec {
            name: &name,
            peer_name: ifname,
            peer_netns: Some(netns),
            mtu: s.mtu,
            mac: None,
            peer_mac,
            master: Some(bridge.index),
            up: true,
        };
        match host.create_veth(&spec) {
            Ok(echoed) => {
                // The kernel's echo of the new end (Linux >= 6.1) spares the lookup.
                let link = match echoed {
                    Some(link) => link,
                    None => host.link_by_name(&name).map_err(kernel_error)?,
                };
                let index = link.index;
                rollback.push("veth pair", move || {
                    // Deleting one end deletes both.
                    let host = Handle::current().map_err(kernel_error)?;
                    host.delete_link_if_present(index).map_err(kernel_error)
                });
                return Ok(link);
            }
            Err(e) if e.is_exists() && host.link_by_name(&name).is_ok() => continue,
            Err(e) if e.is_exists() => {
                return Err(Error::plugin(
                    code::KERNEL,
                    format!("container veth name {ifname:?} already exists"),
                    Some(e.to_string()),
                ));
            }
            Err(e) => return Err(kernel_error(e)),
        }
    }
    Err(Error::plugin(
        code::KERNEL,
        "cannot find a free host veth name after 10 tries",
        None,
    ))
}

/// Enslaves a host veth end to the bridge, sets hairpin/isolation and VLANs, and sets it
/// up (unless `fresh`). Idempotent, so that two ADDs may wire the shared VLAN gateway port at once: an
/// unwanted VLAN entry that is already gone is fine, and entries we want are not deleted
/// first (re-adding an existing VID only updates its flags, as `bridge vlan add` does), so
/// re-wiring never interrupts traffic on them.
///
/// `fresh`: the port was created by this call, enslaved to `bridge` and up
/// ([`create_veth`]), so only the rest is left, and its flags are the kernel's defaults for a
/// new port (hairpin and isolated off): wanting both off then needs no `RTM_SETLINK` (one
/// round trip less; the reference sets them anyway).
fn wire_port(
    host: &Handle,
    port: &Link,
    bridge: &Link,
    spec: &PortSpec<'_>,
    fresh: bool,
) -> Result<()> {
    if !fresh {
        host.set_master(port.index, bridge.index)
            .map_err(kernel_error)?;
    }
    if !fresh || spec.hairpin || spec.isolated {
        host.set_bridge_port(
            port.index,
            BridgePortFlags {
                hairpin: Some(spec.hairpin),
                isolated: Some(spec.isolated),
            },
        )
        .map_err(kernel_error)?;
    }
    if spec.vlan.is_some() || !spec.trunk.is_empty() {
        // A trunk without an access VLAN still needs a native (PVID) VLAN: VID 1.
        let native = spec.vlan.unwrap_or(1);
        if !spec.preserve_default_vlan {
            for vlan in host.bridge_vlans(port.index).map_err(kernel_error)? {
                if vlan.vid == native || spec.trunk.contains(&vlan.vid) {
                    continue;
                }
                match host.del_bridge_vlan(port.index, vlan.vid) {
                    Err(e) if !e.is_not_found() => return Err(kernel_error(e)),
                    _ => {}
                }
            }
        }
        host.add_bridge_vlan(port.index, native, true, true)
            .map_err(kernel_error)?;
        for vid in spec.trunk.iter().filter(|v| **v != native) {
            host.add_bridge_vlan(port.index, *vid, false, false)
                .map_err(kernel_error)?;
        }
    }
    let _ = sysctl::ensure(&format!("net/ipv6/conf/{}/accept_ra", port.name), "0");
    if fresh {
        return Ok(());
    }
    host.set_link_up(port.index).map_err(kernel_error)
}

/// The VLAN gateway interface `name` (`<bridge>.<vlan>`, docs/reference.md#vlan-gateway): one end
/// of a veth pair inside the host netns, unenslaved, that carries the gateway addresses;
/// the other end (`veth<8 hex>`, like a container port) is a bridge port with `vlan` as
/// PVID/untagged, so the gateway sits in the VLAN rather than on the bridge itself (whose
/// own port is in the default VLAN). Created once and shared by every container of the
/// VLAN, so neither DEL nor a failed ADD removes it, as the bridge.
///
/// Race-free, unlike the reference (whose loser of two concurrent first-time creations
/// fails with the veth-exists error): EEXIST on either name means another ADD got there
/// first (or a random port name clashed), so we re-read and reuse, and whoever finds the
/// pair not yet fully wired (its creator still at work, or killed half-way) wires it
/// itself — [`wire_port`] is idempotent.
fn ensure_vlan_gateway(
    host: &Handle,
    bridge: &Link,
    name: &str,
    vlan: u16,
    s: &Settings,
) -> Result<Link> {
    for _ in 0..10 {
        match host.link_by_name(name) {
            Ok(link) => return wire_vlan_gateway(host, bridge, link, vlan, s),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(kernel_error(e)),
        }
        let port_name = random_link_name("veth")?;
        let spec = VethSpec {
            name,
            peer_name: &port_name,
            peer_netns: None,
            // The bridge's MTU, as the reference (`br.MTU`): the gateway must not be the
            // narrowest hop of its VLAN.
            mtu: Some(bridge.mtu).filter(|mtu| *mtu != 0),
            mac: None,
            peer_mac: None,
            master: None,
            up: false,
        };
        match host.create_veth(&spec) {
            Ok(_) => {
                let link = host.link_by_name(name).map_err(kernel_error)?;
                return wire_vlan_gateway(host, bridge, link, vlan, s);
            }
            // Which name clashed? The next turn's lookup tells: `name` → reuse it.
            Err(e) if e.is_exists() => continue,
            Err(e) => return Err(kernel_error(e)),
        }
    }
    Err(Error::plugin(
        code::KERNEL,
        format!(
            "cannot create VLAN gateway interface {name:?}: names kept clashing after 10 tries"
        ),
        None,
    ))
}

/// Checks that `gateway` is our kind of VLAN gateway (a veth whose peer is in this netns and
/// on no other bridge) and finishes its wiring unless it is complete already — the common
/// case of every ADD after the first, which then changes nothing. Returns it re-read.
fn wire_vlan_gateway(
    host: &Handle,
    bridge: &Link,
    gateway: Link,
    vlan: u16,
    s: &Settings,
) -> Result<Link> {
    let name = &gateway.name;
    if gateway.kind.as_deref() != Some("veth") {
        return Err(Error::invalid_config(format!(
            "{name:?} already exists but is not a veth: cannot use it as the VLAN {vlan} gateway of bridge {:?}",
            bridge.name
        )));
    }
    // A same-netns veth reports its peer's index in IFLA_LINK and no IFLA_LINK_NETNSID.
    let port_index = gateway
        .link
        .filter(|_| gateway.link_netnsid.is_none())
        .ok_or_else(|| {
            Error::invalid_config(format!(
                "{name:?} already exists but its veth peer is not in this netns: cannot use it as the VLAN {vlan} gateway of bridge {:?}",
                bridge.name
            ))
        })?;
    let port = host.link_by_index(port_index).map_err(kernel_error)?;
    if port.master.is_some_and(|m| m != bridge.index) {
        return Err(Error::invalid_config(format!(
            "VLAN gateway {name:?}: its peer {:?} is attached to another master than bridge {:?}",
            port.name, bridge.name
        )));
    }
    let wired = port.master == Some(bridge.index)
        && port.admin_up
        && gateway.admin_up
        && host
            .bridge_vlans(port.index)
            .map_err(kernel_error)?
            .iter()
            .any(|v| v.vid == vlan && v.pvid && v.untagged);
    if wired {
        return Ok(gateway);
    }
    wire_port(host, &port, bridge, &PortSpec::vlan_gateway(vlan, s), false)?;
    // The gateway routes for the VLAN, as the bridge does without one: router
    // advertisements must not configure it (errors ignored: IPv6 may be off).
    let _ = sysctl::ensure(&format!("net/ipv6/conf/{name}/accept_ra"), "0");
    if !gateway.admin_up {
        host.set_link_up(gateway.index).map_err(kernel_error)?;
    }
    host.link_by_index(gateway.index).map_err(kernel_error)
}

/// What the L3 steps work on: the request, its settings, the namespaces and what ADD has
/// made so far.
struct L3Context<'a> {
    req: &'a Request<BridgeConfig>,
    s: &'a Settings,
    ns: &'a Namespaces,
    bridge: &'a Link,
    /// The container interface's index.
    container_index: u32,
}

/// L3 mode: IPAM result into the container, gateway on the bridge (or on the VLAN gateway
/// interface), forwarding, masquerade. Returns the bridge as read after our port joined,
/// when it has a MAC.
fn configure_l3(
    ctx: &L3Context<'_>,
    ipam: CniResult,
    result: &mut CniResult,
    rollback: &mut Rollback,
) -> Result<Option<Link>> {
    let s = ctx.s;
    result.ips = ipam.ips;
    result.routes = ipam.routes;
    let gateways = assign_gateways(s, result);
    set_container_sysctls(&ctx.ns.netns, &ctx.req.args.ifname, s.enabledad)?;
    configure_iface_at(
        &ctx.ns.netns,
        &ctx.ns.container,
        &ctx.req.args.ifname,
        ctx.container_index,
        result,
        !s.enabledad,
    )?;
    fault_point("bridge-after-addresses")?;
    let pinned_bridge = if s.is_gateway {
        configure_gateway(ctx, &gateways, result)?
    } else {
        None
    };
    fault_point("bridge-after-gateway")?;
    if s.ip_masq {
        setup_masquerade(ctx, result, rollback)?;
    }
    Ok(pinned_bridge)
}

/// Points the result's IPs at the container interface, fills in the gateway (the subnet's
/// first host) with `isGateway` and the default route with `isDefaultGateway`; returns
/// the gateway addresses (with their subnet's prefix) to put on the host side.
fn assign_gateways(s: &Settings, result: &mut CniResult) -> Vec<IpNetwork> {
    let mut gateways = Vec::new();
    for ip in &mut result.ips {
        ip.interface = Some(CONTAINER_IF);
        if ip.gateway.is_none() && s.is_gateway {
            ip.gateway = Some(first_host(ip.address.network().0));
        }
        let Some(gw) = ip.gateway else { continue };
        let v6 = gw.is_ipv6();
        if s.is_default_gateway
            && !result
                .routes
                .iter()
                .any(|r| r.dst.prefix() == 0 && r.dst.ip().is_ipv6() == v6 && r.gw.is_some())
        {
            let any: IpAddr = if v6 {
                Ipv6Addr::UNSPECIFIED.into()
            } else {
                Ipv4Addr::UNSPECIFIED.into()
            };
            result.routes.push(route_to(any, gw));
        }
        if s.is_gateway {
            // UNWRAP-free: the prefix comes from a valid address of the same family.
            if let Ok(cidr) = IpNetwork::new(gw, ip.address.prefix()) {
                gateways.push(cidr);
            }
        }
    }
    gateways
}

/// The container interface's DAD and ARP sysctls.
fn set_container_sysctls(netns: &Netns, ifname: &str, enabledad: bool) -> Result<()> {
    let ifname = ifname.to_owned();
    netns
        .run(move || {
            // Errors ignored as the reference does: IPv6 or ARP knobs may be absent.
            if enabledad {
                let _ = sysctl::ensure(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1");
                let _ = sysctl::ensure(&format!("net/ipv6/conf/{ifname}/accept_dad"), "1");
            } else {
                let _ = sysctl::ensure(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0");
            }
            let _ = sysctl::ensure(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1");
        })
        .map_err(kernel_error)
}

/// The gateway side of L3 mode: the gateway addresses on the bridge or the VLAN gateway
/// interface, the bridge MAC pinned, forwarding on. Returns the bridge as read after our
/// port joined, when it has a MAC (pinned then if it had moved).
fn configure_gateway(
    ctx: &L3Context<'_>,
    gateways: &[IpNetwork],
    result: &mut CniResult,
) -> Result<Option<Link>> {
    let s = ctx.s;
    // With an access VLAN the gateway addresses go on `<bridge>.<vlan>` (the bridge's
    // own port is not in that VLAN), which the result reports as a 4th interface.
    let gateway_link = match (&s.vlan_gateway, s.vlan) {
        (Some(name), Some(vlan)) if !gateways.is_empty() => {
            let link = ensure_vlan_gateway(&ctx.ns.host, ctx.bridge, name, vlan, s)?;
            result.interfaces.push(host_interface(&link));
            link
        }
        _ => ctx.bridge.clone(),
    };
    for gw in gateways {
        ensure_link_address(&ctx.ns.host, &gateway_link, *gw, s.force_address)?;
    }
    // Pin the bridge MAC: otherwise it follows the lowest port MAC and changes as
    // containers come and go, and neighbours keep a stale ARP entry for the gateway.
    // (A VLAN gateway's MAC is its own veth's and never changes; the bridge MAC is
    // pinned anyway, so the result's bridge MAC stays true across ADDs.)
    // Pin the MAC it has now, not the one read before our port joined: a bridge whose
    // last port left has 00:00:00:00:00:00 until a port joins, and the kernel refuses
    // to set that (EADDRNOTAVAIL; found by the fault-injection test).
    // Only when it moved as our port joined (a new bridge takes its first port's MAC):
    // once pinned it never moves again, and setting a MAC, even the same one, makes the
    // kernel flush the bridge's whole neighbour table (NETDEV_CHANGEADDR), every
    // container's ARP entry on the host with it.
    let host = &ctx.ns.host;
    let current = host.link_by_index(ctx.bridge.index).map_err(kernel_error)?;
    let settled = match current.mac.filter(|m| *m != [0; 6]) {
        Some(mac) if current.mac != ctx.bridge.mac => {
            host.set_mac(ctx.bridge.index, mac).map_err(kernel_error)?;
            Some(current)
        }
        Some(_) => Some(current),
        None => None,
    };
    // Read over netlink: a /proc/sys open from the host netns costs more with every pod
    // netns on the node (bench/analysis.md, "Density"). Written only when off.
    if gateways.iter().any(IpNetwork::is_ipv4) && !host.ipv4_forwarding().map_err(kernel_error)? {
        sysctl::write("net/ipv4/ip_forward", "1").map_err(kernel_error)?;
    }
    if gateways.iter().any(IpNetwork::is_ipv6) {
        sysctl::ensure("net/ipv6/conf/all/forwarding", "1").map_err(kernel_error)?;
    }
    Ok(settled)
}

/// Masquerades the container's addresses and registers the undo.
fn setup_masquerade(
    ctx: &L3Context<'_>,
    result: &CniResult,
    rollback: &mut Rollback,
) -> Result<()> {
    let backend = cni_firewall::choose_backend(ctx.s.ip_masq_backend.as_deref())
        .map_err(crate::firewall_error)?;
    // The container's own address with the subnet's prefix: the rules match the source
    // address and exempt the subnet as destination.
    let ips: Vec<IpNetwork> = result.ips.iter().map(|ip| ip.address.0).collect();
    let (network, id, ifn) = (
        ctx.req.net.name.clone(),
        ctx.req.args.container_id.clone(),
        ctx.req.args.ifname.clone(),
    );
    cni_firewall::setup_masquerade(backend, &network, &id, &ifn, &ips)
        .map_err(crate::firewall_error)?;
    rollback.push("masquerade rules", move || {
        cni_firewall::teardown_masquerade(&network, &id, &ifn).map_err(crate::firewall_error)
    });
    fault_point("bridge-after-masquerade")
}

/// Puts the gateway address `gw` on `link` (the bridge, or the VLAN gateway interface):
/// identical → nothing; a different IPv4 address or an overlapping IPv6 prefix → error unless
/// `forceAddress` (then it replaces it); EEXIST from a concurrent ADD is fine.
fn ensure_link_address(host: &Handle, link: &Link, gw: IpNetwork, force: bool) -> Result<()> {
    let existing = host.addresses(Some(link.index)).map_err(kernel_error)?;
    for addr in existing
        .iter()
        .filter(|a| a.network.is_ipv4() == gw.is_ipv4())
    {
        if addr.network == gw {
            return Ok(());
        }
        let conflicts = match gw {
            IpNetwork::V4(_) => true,
            IpNetwork::V6(_) => {
                addr.network.contains(gw.network()) || gw.contains(addr.network.network())
            }
        };
        if !conflicts {
            continue;
        }
        if !force {
            return Err(Error::plugin(
                code::KERNEL,
                format!(
                    "{:?} already has an IP address different from {gw}",
                    link.name
                ),
                Some(format!("existing address {}", addr.network)),
            ));
        }
        host.del_address(link.index, addr.network)
            .map_err(kernel_error)?;
    }
    match host.add_address(link.index, gw, AddressOptions { nodad: true }) {
        Err(e) if !e.is_exists() => Err(kernel_error(e)),
        _ => Ok(()),
    }
}

/// Waits until the host port is operationally up, i.e. forwarding (plugins #463). The
/// reference sleeps 0/50/500/1000/1000 ms; short polls return as soon as the kernel is done.
/// Returns the link as last read.
fn wait_port_forwarding(host: &Handle, index: u32) -> Result<Link> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut pause = Duration::from_micros(100);
    loop {
        let link = host.link_by_index(index).map_err(kernel_error)?;
        if link.oper_state == OperState::Up {
            return Ok(link);
        }
        if Instant::now() >= deadline {
            return Err(Error::plugin(
                code::KERNEL,
                format!("bridge port in error state: {:?}", link.oper_state),
                Some(link.name),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The subnet's first host address: the default gateway when IPAM gives none.
fn first_host(network: IpNetwork) -> IpAddr {
    match network.network() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(1))),
    }
}

/// A default route (`0.0.0.0/0` or `::/0`, by `any`'s family) via `gw`.
#[allow(clippy::expect_used)]
fn route_to(any: IpAddr, gw: IpAddr) -> Route {
    let dst = IpNetwork::new(any, 0).expect("prefix 0 is valid for every family");
    Route::new(cni::Cidr(dst), Some(gw))
}
