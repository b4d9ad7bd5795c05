//! The `cnitool` front end (CNI:cnitool/cmd, docs/spec.md#cnitool): turns the command line and
//! environment into a network list and a [`RuntimeConf`], then runs one verb.
//!
//! Environment: `NETCONFPATH` (default `/etc/cni/net.d`), `CNI_PATH`, `CNI_ARGS`
//! (`K=V;K2=V2`), `CAP_ARGS` (a JSON object of capability arguments), `CNI_IFNAME`
//! (default `eth0`, overridden by `-i`/`--ifname`), and our addition `CNI_CACHE_DIR`
//! (default libcni's `/var/lib/cni`) so tests and demos keep their cache private.

use crate::cache::{Cache, DEFAULT_CACHE_DIR};
use crate::config::load_network_conf;
use crate::error::{Error, Result};
use crate::runtime::{CniConfig, RuntimeConf};
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Where network configurations are read from unless `NETCONFPATH` says otherwise.
pub const DEFAULT_NET_DIR: &str = "/etc/cni/net.d";

/// A cnitool verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `add`: ADD, print the result.
    Add,
    /// `check`: CHECK against the cached result.
    Check,
    /// `del`: DEL with the cached result.
    Del,
    /// `status`: STATUS of every plugin.
    Status,
    /// `gc`: DEL every cached attachment of the network, then plugin GC.
    Gc,
}

impl Verb {
    /// The verb for a command-line word.
    pub fn parse(word: &str) -> Option<Verb> {
        Some(match word {
            "add" => Verb::Add,
            "check" => Verb::Check,
            "del" => Verb::Del,
            "status" => Verb::Status,
            "gc" => Verb::Gc,
            _ => return None,
        })
    }
}

/// The container ID cnitool uses for a netns: `cnitool-` and the first 10 bytes of the
/// SHA-512 of the absolute netns path, in hex. Other tools find cnitool's attachments
/// in the cache by this ID, so it must match upstream exactly.
pub fn container_id_for(netns: &Path) -> String {
    let digest = Sha512::digest(netns.as_os_str().as_encoded_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

/// `path` made absolute against `cwd` and cleaned lexically, as Go's `filepath.Abs` does
/// (no symlinks resolved: `/var/run/netns/x` stays as written, and so does its hash).
pub fn absolute_path(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let mut clean = PathBuf::from("/");
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                clean.pop();
            }
            Component::Normal(part) => clean.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    clean
}

/// `CNI_ARGS` as cnitool parses it: `;`-separated pairs that each split on `=` into
/// exactly two non-empty parts.
pub fn parse_cni_args(text: &str) -> Result<Vec<(String, String)>> {
    text.split(';')
        .map(
            |pair| match pair.split('=').collect::<Vec<_>>().as_slice() {
                [k, v] if !k.is_empty() && !v.is_empty() => Ok(((*k).to_owned(), (*v).to_owned())),
                _ => Err(Error::InvalidArgument(format!(
                    "invalid CNI_ARGS pair {pair:?}"
                ))),
            },
        )
        .collect()
}

/// `CAP_ARGS`: a JSON object (`null` means none).
pub fn parse_capability_args(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(Error::InvalidArgument(format!(
            "invalid CAP_ARGS: expected a JSON object, found {other}"
        ))),
        Err(e) => Err(Error::InvalidArgument(format!("invalid CAP_ARGS: {e}"))),
    }
}

/// Runs `verb` for network `network` and the netns at `netns`, reading the environment
/// through `env` (the process environment in `main`, a map in tests). Returns what to
/// print on stdout (the ADD result).
pub fn run(
    verb: Verb,
    network: &str,
    netns: &Path,
    ifname_flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Option<String>> {
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    let net_dir =
        non_empty("NETCONFPATH").map_or_else(|| PathBuf::from(DEFAULT_NET_DIR), PathBuf::from);
    let list = load_network_conf(&net_dir, network)?;

    let text = |name: &str| -> Result<Option<String>> {
        non_empty(name)
            .map(|v| {
                v.into_string()
                    .map_err(|_| Error::InvalidArgument(format!("{name} is not valid UTF-8")))
            })
            .transpose()
    };
    let capability_args = match text("CAP_ARGS")? {
        Some(raw) => parse_capability_args(&raw)?,
        None => Map::new(),
    };
    let args = match text("CNI_ARGS")? {
        Some(raw) => parse_cni_args(&raw)?,
        None => Vec::new(),
    };
    let ifname = match ifname_flag.filter(|f| !f.is_empty()) {
        Some(flag) => flag.to_owned(),
        None => text("CNI_IFNAME")?.unwrap_or_else(|| "eth0".to_owned()),
    };
    let cwd = std::env::current_dir()
        .map_err(|e| Error::InvalidArgument(format!("cannot make the netns path absolute: {e}")))?;
    let netns = absolute_path(netns, &cwd);
    let rt = RuntimeConf {
        container_id: container_id_for(&netns),
        netns: netns
            .into_os_string()
            .into_string()
            .map_err(|_| Error::InvalidArgument("the netns path is not valid UTF-8".into()))?,
        ifname,
        args,
        capability_args,
    };
    let cache_dir =
        non_empty("CNI_CACHE_DIR").map_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR), PathBuf::from);
    let runtime = CniConfig {
        // Empty entries dropped, as Go's filepath.SplitList + FindInPath effectively do.
        path: non_empty("CNI_PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .filter(|d| !d.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        cache: Cache::new(cache_dir),
    };
    match verb {
        Verb::Add => {
            let added = runtime.add_network_list(&list, &rt)?;
            let printed = added.to_json_string().map_err(|e| Error::Plugin {
                plugin: format!(
                    "type={:?}",
                    list.plugins.last().map_or("", |p| p.plugin_type.as_str())
                ),
                op: "add",
                source: e,
            })?;
            Ok(Some(printed))
        }
        Verb::Check => runtime.check_network_list(&list, &rt).map(|()| None),
        Verb::Del => runtime.del_network_list(&list, &rt).map(|()| None),
        Verb::Status => runtime.status_network_list(&list).map(|()| None),
        // As upstream: no valid set, so every attachment cnitool cached for this network gets
        // a DEL, and plugins get GC without `cni.dev/valid-attachments`, which they read as
        // "nothing can be judged stale". An empty set instead would tell them to free the
        // leases and rules of every container on the network, including those a runtime
        // such as containerd manages on the same node.
        Verb::Gc => runtime.gc_network_list(&list, None).map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_matches_upstream_cnitool() {
        // printf %s /var/run/netns/x | sha512sum | cut -c1-20  ->  4acf487154af9777be71
        assert_eq!(
            container_id_for(Path::new("/var/run/netns/x")),
            "cnitool-4acf487154af9777be71"
        );
        // printf %s /run/netns/cnitool-demo | sha512sum | cut -c1-20  ->  0510848e1c64e51a0125
        assert_eq!(
            container_id_for(Path::new("/run/netns/cnitool-demo")),
            "cnitool-0510848e1c64e51a0125"
        );
    }

    #[test]
    fn netns_paths_are_made_absolute_lexically() {
        let cwd = Path::new("/var/run");
        let cases = [
            ("/var/run/netns/x", "/var/run/netns/x"),
            ("netns/x", "/var/run/netns/x"),
            ("./netns//x/", "/var/run/netns/x"),
            ("../run/netns/../netns/x", "/var/run/netns/x"),
            ("/../../x", "/x"),
        ];
        for (input, want) in cases {
            assert_eq!(
                absolute_path(Path::new(input), cwd),
                Path::new(want),
                "{input}"
            );
        }
    }

    #[test]
    fn cni_args_need_two_non_empty_parts() {
        assert_eq!(
            parse_cni_args("IgnoreUnknown=1;IP=10.0.0.5").unwrap(),
            [
                ("IgnoreUnknown".into(), "1".into()),
                ("IP".into(), "10.0.0.5".into())
            ]
        );
        for bad in ["K", "K=", "=V", "K=V=W", "A=1;", "A=1;;B=2"] {
            let err = parse_cni_args(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid CNI_ARGS pair "), "{bad}: {err}");
        }
    }

    #[test]
    fn capability_args_must_be_an_object() {
        assert_eq!(
            parse_capability_args(r#"{"mac": "0a:00:00:00:00:01"}"#)
                .unwrap()
                .len(),
            1
        );
        assert!(parse_capability_args("null").unwrap().is_empty());
        assert!(parse_capability_args("[1]").is_err());
        assert!(parse_capability_args("{").is_err());
    }

    #[test]
    fn verbs() {
        assert_eq!(Verb::parse("add"), Some(Verb::Add));
        assert_eq!(Verb::parse("gc"), Some(Verb::Gc));
        assert_eq!(Verb::parse("ADD"), None);
    }
}
