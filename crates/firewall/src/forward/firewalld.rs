//! The firewalld backend: each container address becomes a source of a firewalld zone
//! (`trusted` by default), as the reference's D-Bus calls `addSource`, `removeSource` and
//! `querySource` do. We make the same calls through `firewall-cmd`, firewalld's own D-Bus
//! client, rather than link a D-Bus library into every plugin: it is present wherever
//! firewalld is, and a host without it has no firewalld to talk to.

use std::net::IpAddr;

use crate::{Error, Result, exec};

const PROGRAM: &str = "firewall-cmd";
const BACKEND: &str = "firewalld";

/// The address as a host source, `10.0.0.2/32` or `fd00::2/128` (the reference's `ipString`).
fn source(ip: &IpAddr) -> String {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    format!("{ip}/{len}")
}

/// Whether firewalld is installed and running (`firewall-cmd --state`, 1 spawn). A host
/// without `firewall-cmd` has no firewalld.
pub fn firewalld_running() -> Result<bool> {
    match exec::run(PROGRAM, BACKEND, &["--state"], None) {
        Ok(_) => Ok(true),
        Err(Error::NotAvailable { .. } | Error::CommandFailed { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Fails with [`Error::NotAvailable`] unless firewalld is running.
fn require_running() -> Result<()> {
    if firewalld_running()? {
        Ok(())
    } else {
        Err(Error::NotAvailable { backend: BACKEND })
    }
}

/// Puts every address into `zone` (runtime configuration, as the reference). An address
/// already in a zone is left there (the reference ignores `ZONE_ALREADY_SET`).
pub fn firewalld_add_sources(zone: &str, ips: &[IpAddr]) -> Result<()> {
    require_running()?;
    for ip in ips {
        let arg = format!("--add-source={}", source(ip));
        match exec::run(PROGRAM, BACKEND, &[&format!("--zone={zone}"), &arg], None) {
            Ok(_) => {}
            Err(Error::CommandFailed { ref stderr, .. }) if stderr.contains("ZONE_ALREADY_SET") => {
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Takes every address out of `zone`; errors are ignored, as in the reference (the address
/// may never have been added). Nothing to do when firewalld is not running.
pub fn firewalld_remove_sources(zone: &str, ips: &[IpAddr]) -> Result<()> {
    if !firewalld_running()? {
        return Ok(());
    }
    for ip in ips {
        let arg = format!("--remove-source={}", source(ip));
        if let Err(e) = exec::run(PROGRAM, BACKEND, &[&format!("--zone={zone}"), &arg], None) {
            log::debug!("firewalld: {e}");
        }
    }
    Ok(())
}

/// The addresses not in `zone`, as sources.
pub fn firewalld_missing_sources(zone: &str, ips: &[IpAddr]) -> Result<Vec<String>> {
    require_running()?;
    let mut missing = Vec::new();
    for ip in ips {
        let arg = format!("--query-source={}", source(ip));
        match exec::run(PROGRAM, BACKEND, &[&format!("--zone={zone}"), &arg], None) {
            Ok(_) => {}
            Err(Error::CommandFailed { .. }) => missing.push(source(ip)),
            Err(e) => return Err(e),
        }
    }
    Ok(missing)
}
