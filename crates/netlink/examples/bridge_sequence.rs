//! Times the bridge plugin's kernel work per container and counts its netlink round trips:
//! create a veth with its peer straight into the container netns, enslave the host end to
//! a bridge and set it up, then in the container add an address, set the link up and add
//! a default route. Runs in two throwaway anonymous namespaces (root needed); never
//! touches the machine's own netns.
//!
//! `cargo run --release -p cni-netlink --example bridge_sequence [iterations]`

use std::time::{Duration, Instant};

mod common;

use cni_netlink::{AddressOptions, BridgeSpec, Handle, RouteSpec, VethSpec};

use crate::common::anon_netns;

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args().nth(1).map_or(Ok(200), |n| n.parse())?;
    let host_ns = anon_netns()?;
    let ctr_ns = anon_netns()?;

    let start = Instant::now();
    let host = Handle::for_netns(&host_ns)?;
    let open_cost = start.elapsed();
    let ctr = Handle::for_netns(&ctr_ns)?;

    host.create_bridge(&BridgeSpec {
        name: "cni0",
        ..Default::default()
    })?;
    let bridge = host.link_by_name("cni0")?;
    host.set_link_up(bridge.index)?;

    let mut times = Vec::with_capacity(iterations);
    let mut trips = 0;
    for i in 0..iterations {
        let host_name = format!("veth{i:08x}");
        let before = host.round_trips() + ctr.round_trips();
        let t0 = Instant::now();

        host.create_veth(&VethSpec {
            name: &host_name,
            peer_name: "eth0",
            peer_netns: Some(&ctr_ns),
            mtu: Some(1500),
            ..Default::default()
        })?;
        let host_end = host.link_by_name(&host_name)?;
        host.set_master(host_end.index, bridge.index)?;
        host.set_link_up(host_end.index)?;
        let eth0 = ctr.link_by_name("eth0")?;
        ctr.add_address(
            eth0.index,
            "10.22.0.2/16".parse()?,
            AddressOptions::default(),
        )?;
        ctr.set_link_up(eth0.index)?;
        ctr.add_route(&RouteSpec {
            gateway: Some("10.22.0.1".parse()?),
            ..RouteSpec::new("0.0.0.0/0".parse()?)
        })?;

        times.push(t0.elapsed());
        trips = host.round_trips() + ctr.round_trips() - before;
        host.delete_link(host_end.index)?; // takes eth0 with it
    }
    times.sort();
    let total: Duration = times.iter().sum();
    println!(
        "bridge-like sequence x{iterations}: {trips} netlink round trips each; \
         mean {:?}, median {:?}, p95 {:?}; Handle::for_netns {open_cost:?}",
        total / iterations as u32,
        percentile(&times, 50),
        percentile(&times, 95),
    );
    Ok(())
}
