//! The kernel floor: the bridge plugin's kernel work issued by the fastest means we have,
//! with no CNI protocol, no config parsing and no IPAM around it.
//!
//! Two floors, because they bound different things:
//! - `netlink`: one already-running process doing the netlink calls itself through our
//!   `cni-netlink` crate (the logic of `crates/netlink/examples/bridge_sequence.rs`). No
//!   exec at all, so this is the absolute limit; a plugin additionally pays its own exec.
//! - `ip -batch`: two `ip -batch -` processes (host side, container side), the way the
//!   issue measured it; this includes two process start-ups, like a plugin plus its IPAM.

use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cni_conformance::Netns as LabNetns;
use cni_netlink::{AddressOptions, BridgeSpec, Handle, Netns, RouteSpec, VethSpec};

use crate::spawn::enter_netns_before_exec;

/// The container side's address and gateway, the same the plugins get from host-local.
const ADDRESS: &str = "10.22.0.2/16";
const GATEWAY: &str = "10.22.0.1";
pub const BRIDGE: &str = "cni0";

/// Creates the bridge the floors enslave to, up, as the plugins' first ADD leaves it.
pub fn prepare_host(host: &LabNetns) -> Result<()> {
    let netns = Netns::from_path(host.path())?;
    let handle = Handle::for_netns(&netns)?;
    handle.create_bridge(&BridgeSpec {
        name: BRIDGE,
        ..Default::default()
    })?;
    let bridge = handle.link_by_name(BRIDGE)?;
    handle.set_link_up(bridge.index)?;
    Ok(())
}

/// The ADD work through `cni-netlink`, timed from opening the container netns (a plugin
/// must open it too) to the route's ACK. Returns the time and the netlink round trips.
pub fn netlink_add(host: &Handle, ctr: &LabNetns, host_veth: &str) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let ctr_netns = Netns::from_path(ctr.path())?;
    let ctr_handle = Handle::for_netns(&ctr_netns)?;
    let before = host.round_trips();
    host.create_veth(&VethSpec {
        name: host_veth,
        peer_name: "eth0",
        peer_netns: Some(&ctr_netns),
        mtu: Some(1500),
        ..Default::default()
    })?;
    let host_end = host.link_by_name(host_veth)?;
    let bridge = host.link_by_name(BRIDGE)?;
    host.set_master(host_end.index, bridge.index)?;
    host.set_link_up(host_end.index)?;
    let eth0 = ctr_handle.link_by_name("eth0")?;
    ctr_handle.add_address(eth0.index, ADDRESS.parse()?, AddressOptions::default())?;
    ctr_handle.set_link_up(eth0.index)?;
    ctr_handle.add_route(&RouteSpec {
        gateway: Some(GATEWAY.parse()?),
        ..RouteSpec::new("0.0.0.0/0".parse()?)
    })?;
    let elapsed = start.elapsed();
    Ok((
        elapsed,
        host.round_trips() - before + ctr_handle.round_trips(),
    ))
}

/// [`netlink_add`] plus what the bridge plugin's ADD still does through `/proc/sys` of the host
/// netns: `accept_ra` of the bridge and of the new host veth, one open each (the plugin's two
/// remaining host sysctl walks), timed together. The density floor: both parts grow with the
/// namespaces and bridge ports on the node, and neither is a plugin's own doing.
pub fn netlink_add_with_sysctls(
    host_netns: &Netns,
    host: &Handle,
    ctr: &LabNetns,
    host_veth: &str,
) -> Result<Duration> {
    let start = Instant::now();
    netlink_add(host, ctr, host_veth)?;
    host_netns.run(|| -> Result<()> {
        for link in [BRIDGE, host_veth] {
            cni_netlink::sysctl::ensure(&format!("net/ipv6/conf/{link}/accept_ra"), "0")?;
        }
        Ok(())
    })??;
    Ok(start.elapsed())
}

/// The DEL work through `cni-netlink`: open the container netns, look up and delete its
/// veth end (which takes the host end with it).
pub fn netlink_del(ctr: &LabNetns) -> Result<Duration> {
    let start = Instant::now();
    let ctr_netns = Netns::from_path(ctr.path())?;
    let ctr_handle = Handle::for_netns(&ctr_netns)?;
    let eth0 = ctr_handle.link_by_name("eth0")?;
    ctr_handle.delete_link(eth0.index)?;
    Ok(start.elapsed())
}

/// The ADD work as two `ip -batch -` processes: host side, then container side.
pub fn ip_add(host: &LabNetns, ctr: &LabNetns, host_veth: &str) -> Result<Duration> {
    let host_script = format!(
        "link add {host_veth} mtu 1500 type veth peer name eth0 netns {ctr}\n\
         link set {host_veth} master {BRIDGE} up\n",
        ctr = ctr.name()
    );
    let ctr_script =
        format!("addr add {ADDRESS} dev eth0\nlink set eth0 up\nroute add default via {GATEWAY}\n");
    let start = Instant::now();
    ip_batch(host, &host_script)?;
    ip_batch(ctr, &ctr_script)?;
    Ok(start.elapsed())
}

/// The DEL work as one `ip link del` in the container.
pub fn ip_del(ctr: &LabNetns) -> Result<Duration> {
    let start = Instant::now();
    ip_batch(ctr, "link del eth0\n")?;
    Ok(start.elapsed())
}

fn ip_batch(netns: &impl AsFd, script: &str) -> Result<()> {
    let mut command = Command::new("ip");
    command
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    enter_netns_before_exec(&mut command, netns);
    let mut child = command.spawn().context("cannot start ip")?;
    child
        .stdin
        .take()
        .context("no stdin pipe")?
        .write_all(script.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "ip -batch failed ({}): {}\nscript:\n{script}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// [`netlink_add`] into each of `containers` at once, one thread per container in this one
/// process (each with its own netlink sockets), and then [`netlink_del`] of them all at once:
/// the kernel floor of a burst, with no process start at all. Returns the two walls, from
/// the first thread's start to the last one's end.
pub fn concurrent_netlink(
    host: &LabNetns,
    containers: &[LabNetns],
) -> Result<(Duration, Duration)> {
    let burst = |work: &(dyn Fn(usize, &LabNetns) -> Result<()> + Sync)| -> Result<Duration> {
        let start = Instant::now();
        std::thread::scope(|scope| {
            let threads: Vec<_> = containers
                .iter()
                .enumerate()
                .map(|(i, ctr)| scope.spawn(move || work(i, ctr)))
                .collect();
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| bail!("a floor thread panicked"))
                })
                .collect::<Result<Vec<()>>>()
        })?;
        Ok(start.elapsed())
    };
    let add = burst(&|i, ctr| {
        let handle = Handle::for_netns(&Netns::from_path(host.path())?)?;
        netlink_add(&handle, ctr, &format!("fc{i:08x}")).map(drop)
    })?;
    let del = burst(&|_, ctr| netlink_del(ctr).map(drop))?;
    Ok((add, del))
}
