//! Bridge DEL and GC. DEL is best effort and idempotent: it does every step, whatever
//! failed before, and reports all failures at once — runtimes retry a failing DEL forever,
//! so it must succeed on half-made state (an ADD killed between steps), an empty
//! `CNI_NETNS`, a vanished netns or interface. Masquerade and spoof-check state is found by
//! attachment, so it is removed even without the netns (reference defect #810).

use crate::config::{BridgeConfig, Settings};
use cni::{Command, Request, Result};
use cni_plugin_support::{combine_errors, delete_link_and_release_ip};

pub(crate) fn del(req: &Request<BridgeConfig>, s: &Settings) -> Result<()> {
    let mut errors = delete_link_and_release_ip(&req.net, &req.args);
    if s.macspoofchk {
        if let Err(e) = cni_firewall::teardown_spoofcheck(&req.args.container_id, &req.args.ifname)
        {
            errors.push(crate::firewall_error(e));
        }
    }
    if s.ip_masq && s.ipam_type.is_some() {
        if let Err(e) = cni_firewall::teardown_masquerade(
            &req.net.name,
            &req.args.container_id,
            &req.args.ifname,
        ) {
            errors.push(crate::firewall_error(e));
        }
    }
    combine_errors(errors)
}

/// GC (1.1.0): forwarded to IPAM (the spec requires it; the reference does not), then the
/// masquerade and spoof-check state of attachments not in `cni.dev/valid-attachments`.
pub(crate) fn gc(req: &Request<BridgeConfig>, s: &Settings) -> Result<()> {
    let mut errors = Vec::new();
    if let Some(ipam) = &s.ipam_type {
        if let Err(e) = cni::invoke::delegate(ipam, Command::Gc, &req.args) {
            errors.push(e);
        }
    }
    // No list (libcni omits it when its caller gave none, e.g. upstream `cnitool gc`):
    // nothing can be judged stale, and "keep nothing" would strip live containers' rules.
    if let Some(valid) = &req.net.valid_attachments {
        let valid: Vec<(&str, &str)> = valid
            .iter()
            .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
            .collect();
        if let Err(e) = cni_firewall::gc_masquerade(&req.net.name, &valid) {
            errors.push(crate::firewall_error(e));
        }
        if s.macspoofchk {
            if let Err(e) = cni_firewall::gc_spoofcheck(&valid) {
                errors.push(crate::firewall_error(e));
            }
        }
    }
    combine_errors(errors)
}
