//! The node's sysctl allow list (docs/reference.md#tuning-sysctl-names): when
//! `/etc/cni/tuning/allowlist.conf` exists, every `sysctl` name must match one of its
//! lines, each a regular expression matched anywhere in the name as configured (Go's
//! `regexp.MatchString`). Without the file every `net.*` name is allowed.

use cni::{Error, Result};
use regex_lite::Regex;
use std::io;
use std::path::PathBuf;

/// Where upstream reads the allow list.
const ALLOWLIST: &str = "/etc/cni/tuning/allowlist.conf";

/// The allow list's path; debug builds let tests point it elsewhere, since the real one
/// belongs to the machine.
fn path() -> PathBuf {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os("CNI_TEST_TUNING_ALLOWLIST") {
        return PathBuf::from(path);
    }
    PathBuf::from(ALLOWLIST)
}

/// Refuses a name the allow list does not match (code 7); code 5 when the list cannot be
/// read, code 7 when a line is not a regular expression.
pub fn check<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let path = path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::Io {
                msg: format!("cannot read the sysctl allow list {}", path.display()),
                details: Some(e.to_string()),
            });
        }
    };
    check_against(&text, names)
}

/// [`check`] with the list's text.
fn check_against<'a>(text: &str, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let patterns = lines
        .iter()
        .map(|line| {
            Regex::new(line).map_err(|e| {
                Error::invalid_config(format!("invalid sysctl allow list entry {line:?}: {e}"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    for name in names {
        if !patterns.iter().any(|p| p.is_match(name)) {
            return Err(Error::invalid_config(format!(
                "sysctl {name} is not allowed; the allow list has {lines:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_against;

    #[test]
    fn names_must_match_a_line_anywhere() {
        let list = "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$\n\n  net.core.somaxconn  \n";
        check_against(
            list,
            ["net.ipv4.conf.IFNAME.arp_notify", "net.core.somaxconn"],
        )
        .unwrap();
        // Unanchored lines match anywhere, as Go's MatchString does.
        check_against(list, ["x.net.core.somaxconn.y"]).unwrap();
        let err = check_against(list, ["net.ipv4.ip_forward"]).unwrap_err();
        assert_eq!(err.code(), 7);
        assert!(
            err.msg().contains("net.ipv4.ip_forward is not allowed"),
            "{}",
            err.msg()
        );
        check_against("", []).unwrap();
        assert_eq!(check_against("(", ["net.a"]).unwrap_err().code(), 7);
    }
}
