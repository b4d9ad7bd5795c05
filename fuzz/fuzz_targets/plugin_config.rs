//! Every plugin's configuration parsing, through the real dispatcher: stdin as each plugin
//! receives it, validated as its verbs validate it (no kernel work).
//!
//! Input: one selector byte (plugin = byte % 5, verb = byte / 5 % 5; bit 7: the first line
//! of the rest is `CNI_ARGS`), then the stdin bytes.
//! Property: the output is what the spec allows (see `assert_valid_outcome`).
#![no_main]

use cni::skel::{Request, dispatch};
use cni_fuzz::{ABOUT, COMMANDS, ParseOnly, assert_valid_outcome, vars_for};
use libfuzzer_sys::fuzz_target;

fn bridge(req: &Request<cni_plugin_bridge::config::BridgeConfig>) -> cni::Result<()> {
    cni_plugin_bridge::config::Settings::from_request(req).map(drop)
}

fn macvlan(req: &Request<cni_plugin_macvlan::config::MacvlanConfig>) -> cni::Result<()> {
    cni_plugin_macvlan::config::Settings::from_request(req).map(drop)
}

fn ipvlan(req: &Request<cni_plugin_ipvlan::config::IpvlanConfig>) -> cni::Result<()> {
    cni_plugin_ipvlan::config::Settings::from_request(req).map(drop)
}

fn host_local(req: &Request<cni_plugin_host_local::HostLocalConfig>) -> cni::Result<()> {
    cni_ipam::IpamConfig::load(req.config.ipam.as_ref(), &req.net, &req.args.args)?;
    Ok(())
}

fn loopback(req: &Request<cni_plugin_loopback::LoopbackConfig>) -> cni::Result<()> {
    if let Some(prev) = &req.net.prev_result {
        cni::CniResult::from_prev_result(prev, req.net.cni_version)?;
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let command = COMMANDS[usize::from(selector / 5) % COMMANDS.len()];
    let (cni_args, stdin) = match rest.iter().position(|&b| b == b'\n') {
        Some(newline) if selector & 0x80 != 0 => (
            String::from_utf8_lossy(&rest[..newline]).into_owned(),
            &rest[newline + 1..],
        ),
        _ => (String::new(), rest),
    };
    let vars = vars_for(command, &cni_args);
    let stdin = stdin.to_vec();
    let outcome = match selector % 5 {
        0 => dispatch(&ParseOnly { validate: bridge }, ABOUT, &vars, stdin),
        1 => dispatch(&ParseOnly { validate: macvlan }, ABOUT, &vars, stdin),
        2 => dispatch(&ParseOnly { validate: ipvlan }, ABOUT, &vars, stdin),
        3 => dispatch(
            &ParseOnly {
                validate: host_local,
            },
            ABOUT,
            &vars,
            stdin,
        ),
        _ => dispatch(&ParseOnly { validate: loopback }, ABOUT, &vars, stdin),
    };
    assert_valid_outcome(Some(command), &outcome);
});
