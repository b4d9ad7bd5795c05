//! The `CNI_*` environment: which verb, for which attachment, with the spec's validation
//! (SPEC.md "Parameters"; docs/spec.md#environment, docs/spec.md#dispatch).

use crate::error::{Error, Result};
use crate::names;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The verb in `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// ADD
    Add,
    /// DEL
    Del,
    /// CHECK (>= 0.4.0)
    Check,
    /// STATUS (>= 1.1.0)
    Status,
    /// VERSION
    Version,
    /// GC (>= 1.1.0)
    Gc,
}

impl Command {
    /// The wire name (`ADD`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
            Command::Gc => "GC",
        }
    }

    /// Which of `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_PATH` this verb requires
    /// (docs/spec.md#environment; STATUS follows the spec, where `CNI_PATH` is optional).
    fn required_vars(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &[CONTAINER_ID, NETNS, IFNAME, PATH],
            Command::Del => &[CONTAINER_ID, IFNAME, PATH],
            Command::Gc => &[PATH],
            Command::Status | Command::Version => &[],
        }
    }

    /// Whether the verb names one attachment, so container ID and ifname are required and
    /// validated.
    fn names_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

impl FromStr for Command {
    type Err = Error;

    /// The exact upper-case wire name; anything else is code 4 `unknown CNI_COMMAND: X`.
    fn from_str(s: &str) -> Result<Command> {
        [
            Command::Add,
            Command::Del,
            Command::Check,
            Command::Status,
            Command::Version,
            Command::Gc,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| Error::invalid_env(format!("unknown CNI_COMMAND: {s}")))
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const COMMAND: &str = "CNI_COMMAND";
const CONTAINER_ID: &str = "CNI_CONTAINERID";
const NETNS: &str = "CNI_NETNS";
const IFNAME: &str = "CNI_IFNAME";
const ARGS: &str = "CNI_ARGS";
const PATH: &str = "CNI_PATH";

/// One attachment's parameters, parsed and validated from the environment and stdin.
///
/// Spec rules live in the types: `netns` is always set for ADD and CHECK, may be `None`
/// for DEL; `container_id`/`ifname` are set for ADD, DEL and CHECK.
#[derive(Debug, Clone)]
pub struct CmdArgs {
    /// The verb.
    pub command: Command,
    /// `CNI_CONTAINERID` (validated: alphanumeric first, then alphanumerics, `_`, `.`, `-`).
    pub container_id: String,
    /// `CNI_NETNS`; `None` when empty (allowed for DEL, GC, STATUS).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (validated: kernel `dev_valid_name` rules, at most 15 bytes).
    pub ifname: String,
    /// `CNI_ARGS`, parsed.
    pub args: CniArgs,
    /// `CNI_PATH`, split on `:`.
    pub path: Vec<PathBuf>,
    /// The raw stdin bytes: passed unchanged to delegated (IPAM) plugins.
    pub stdin: Vec<u8>,
}

/// `CNI_ARGS`: `K=V;K2=V2` (Go `types.LoadArgs`).
///
/// Parsing never fails: only a plugin that reads `CNI_ARGS` validates it, through
/// [`CniArgs::check_known`], as the Go plugins do (loopback ignores `CNI_ARGS=none`, which
/// the reference's own test sends).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// Every well-formed pair, in order, keys case-sensitive.
    pub pairs: Vec<(String, String)>,
    /// Items without `=`, reported by [`CniArgs::check_known`].
    pub malformed: Vec<String>,
}

impl CniArgs {
    /// Parses `K=V;...` (empty string = no pairs). An item that does not split on `=` is
    /// kept in [`CniArgs::malformed`] (the Go lib's `ARGS: invalid pair "x"`), reported only
    /// when a plugin validates its arguments.
    ///
    /// The pair is split on its *first* `=`, so a value may itself contain `=` (the Go lib
    /// rejects `K=a=b`; accepting it loses nothing and base64 values need it).
    pub fn parse(raw: &str) -> CniArgs {
        let mut args = CniArgs::default();
        if raw.is_empty() {
            return args;
        }
        for item in raw.split(';') {
            match item.split_once('=') {
                Some((k, v)) => args.pairs.push((k.to_owned(), v.to_owned())),
                None => args.malformed.push(item.to_owned()),
            }
        }
        args
    }

    /// The value of `key` (case-sensitive), if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Checks that every key is in `known`, unless `IgnoreUnknown` is `1`/`true` (any case):
    /// the reference fails with `ARGS: unknown args [...]` otherwise.
    /// Code 4; the unknown pairs are listed as Go's `%q` prints a string slice.
    /// A malformed item is code 4 `invalid CNI_ARGS pair "x"` first.
    pub fn check_known(&self, known: &[&str]) -> Result<()> {
        if let Some(item) = self.malformed.first() {
            return Err(Error::invalid_env(format!(
                "invalid CNI_ARGS pair {item:?}"
            )));
        }
        let ignore_unknown = self
            .get(IGNORE_UNKNOWN)
            .is_some_and(|v| v.eq_ignore_ascii_case("1") || v.eq_ignore_ascii_case("true"));
        if ignore_unknown {
            return Ok(());
        }
        let unknown: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != IGNORE_UNKNOWN && !known.contains(&k.as_str()))
            .map(|(k, v)| format!("{:?}", format!("{k}={v}")))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid_env(format!(
                "ARGS: unknown args [{}]",
                unknown.join(" ")
            )))
        }
    }

    /// The pairs joined back into the `K=V;K2=V2` form (for a delegate's `CNI_ARGS`).
    pub fn to_env_string(&self) -> String {
        self.pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// The key that turns off [`CniArgs::check_known`] (Go `types.CommonArgs`).
const IGNORE_UNKNOWN: &str = "IgnoreUnknown";

impl CmdArgs {
    /// Reads and validates the `CNI_*` variables from `vars` (the process environment in
    /// production, a map in tests) for the verb they name; `stdin` is kept as is.
    ///
    /// Checks run in the Go skel's order (docs/spec.md#dispatch): the verb (code 4
    /// `unknown CNI_COMMAND: X`), then every required variable at once (code 4
    /// `required env variables [A,B] missing`; an empty value counts as missing), then the
    /// container ID and ifname for ADD, DEL and CHECK (code 4). STATUS and GC name no
    /// attachment: their `container_id` and `ifname` are empty even if the variables are set,
    /// so an unvalidated value never reaches a plugin.
    pub fn from_vars(vars: &BTreeMap<String, OsString>, stdin: Vec<u8>) -> Result<CmdArgs> {
        let non_empty = |name: &str| {
            vars.get(name)
                .map(OsString::as_os_str)
                .filter(|v| !v.is_empty())
        };
        let command: Command = match non_empty(COMMAND) {
            Some(raw) => utf8(COMMAND, raw)?.parse()?,
            None => return Err(missing(&[COMMAND])),
        };
        let missing_vars: Vec<&str> = command
            .required_vars()
            .iter()
            .copied()
            .filter(|name| non_empty(name).is_none())
            .collect();
        if !missing_vars.is_empty() {
            return Err(missing(&missing_vars));
        }

        let (container_id, ifname) = if command.names_attachment() {
            // Both are required for these verbs, so present; were one empty, the validators
            // would still reject it as missing.
            let value = |name| utf8(name, non_empty(name).unwrap_or_default());
            let container_id = value(CONTAINER_ID)?;
            names::validate_container_id(container_id)?;
            let ifname = value(IFNAME)?;
            names::validate_ifname(ifname)?;
            (container_id.to_owned(), ifname.to_owned())
        } else {
            (String::new(), String::new())
        };
        let args = match non_empty(ARGS) {
            Some(raw) => CniArgs::parse(utf8(ARGS, raw)?),
            None => CniArgs::default(),
        };
        let path = non_empty(PATH)
            .map(|raw| {
                std::env::split_paths(raw)
                    .filter(|dir| !dir.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(CmdArgs {
            command,
            container_id,
            netns: non_empty(NETNS).map(PathBuf::from),
            ifname,
            args,
            path,
            stdin,
        })
    }

    /// The attachment this call is about: (`CNI_CONTAINERID`, `CNI_IFNAME`), as GC's
    /// `cni.dev/valid-attachments` names them.
    pub fn attachment(&self) -> crate::Attachment {
        crate::Attachment {
            container_id: self.container_id.clone(),
            ifname: self.ifname.clone(),
        }
    }

    /// `CNI_NETNS`, for the verbs that require it (ADD, CHECK). [`CmdArgs::from_vars`] has
    /// refused those verbs without it already, so plugins need no check of their own; a
    /// `CmdArgs` built otherwise gets the dispatcher's code 4 message here.
    pub fn required_netns(&self) -> Result<&Path> {
        self.netns.as_deref().ok_or_else(|| missing(&[NETNS]))
    }

    /// The `CNI_*` variables describing this request, all present even when empty, as the Go
    /// lib sets them for a delegate (docs/spec.md#delegation), with `command` in
    /// `CNI_COMMAND`.
    pub fn to_env(&self, command: Command) -> Vec<(&'static str, OsString)> {
        let mut path = OsString::new();
        for (i, dir) in self.path.iter().enumerate() {
            if i > 0 {
                path.push(":");
            }
            path.push(dir);
        }
        vec![
            (COMMAND, command.as_str().into()),
            (CONTAINER_ID, self.container_id.clone().into()),
            (
                NETNS,
                self.netns
                    .as_ref()
                    .map(|p| p.clone().into_os_string())
                    .unwrap_or_default(),
            ),
            (IFNAME, self.ifname.clone().into()),
            (ARGS, self.args.to_env_string().into()),
            (PATH, path),
        ]
    }
}

/// Code 4 `required env variables [A,B] missing`, names in the fixed order given.
fn missing(names: &[&str]) -> Error {
    Error::invalid_env(format!(
        "required env variables [{}] missing",
        names.join(",")
    ))
}

/// The variable's value as UTF-8, else code 4 naming it.
fn utf8<'a>(name: &str, raw: &'a OsStr) -> Result<&'a str> {
    raw.to_str().ok_or_else(|| Error::InvalidEnvironment {
        msg: format!("invalid {name}: not valid UTF-8"),
        details: Some(raw.to_string_lossy().into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, OsString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect()
    }

    fn full(command: &str) -> BTreeMap<String, OsString> {
        vars(&[
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "Ctr-1.a_b"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni:"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web=1"),
        ])
    }

    fn env_err(vars: &BTreeMap<String, OsString>) -> Error {
        let err = CmdArgs::from_vars(vars, Vec::new()).unwrap_err();
        assert_eq!(err.code(), 4, "{err:?}");
        err
    }

    #[test]
    fn full_add_environment_parses() {
        let args = CmdArgs::from_vars(&full("ADD"), b"{}".to_vec()).unwrap();
        assert_eq!(args.command, Command::Add);
        assert_eq!(args.container_id, "Ctr-1.a_b");
        assert_eq!(args.netns, Some(PathBuf::from("/run/netns/x")));
        assert_eq!(args.ifname, "eth0");
        assert_eq!(
            args.path,
            [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        assert_eq!(args.args.get("K8S_POD_NAME"), Some("web=1"));
        assert_eq!(args.stdin, b"{}");
    }

    #[test]
    fn unknown_or_lower_case_command_is_code_4() {
        for command in ["FOO", "add"] {
            let err = env_err(&vars(&[("CNI_COMMAND", command)]));
            assert_eq!(err.msg(), format!("unknown CNI_COMMAND: {command}"));
        }
    }

    #[test]
    fn missing_variables_are_named_in_fixed_order() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("ADD", &[], "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"),
            (
                "CHECK",
                &[("CNI_IFNAME", "eth0")],
                "CNI_CONTAINERID,CNI_NETNS,CNI_PATH",
            ),
            ("DEL", &[], "CNI_CONTAINERID,CNI_IFNAME,CNI_PATH"),
            (
                "DEL",
                &[("CNI_CONTAINERID", "c"), ("CNI_IFNAME", "")],
                "CNI_IFNAME,CNI_PATH",
            ),
            ("GC", &[("CNI_CONTAINERID", "c")], "CNI_PATH"),
            ("ADD", &[("CNI_COMMAND", "")], "CNI_COMMAND"),
        ];
        for (command, extra, missing) in cases {
            let mut env = vars(&[("CNI_COMMAND", command)]);
            env.extend(vars(extra));
            let err = env_err(&env);
            assert_eq!(
                err.msg(),
                format!("required env variables [{missing}] missing"),
                "{command} {extra:?}"
            );
        }
    }

    #[test]
    fn del_without_netns_is_none() {
        let mut env = full("DEL");
        env.insert("CNI_NETNS".into(), "".into());
        assert_eq!(CmdArgs::from_vars(&env, Vec::new()).unwrap().netns, None);
        env.remove("CNI_NETNS");
        assert_eq!(CmdArgs::from_vars(&env, Vec::new()).unwrap().netns, None);
    }

    #[test]
    fn required_netns_is_the_path_or_the_dispatchers_code_4() {
        let add = CmdArgs::from_vars(&full("ADD"), Vec::new()).unwrap();
        assert_eq!(add.required_netns().unwrap(), Path::new("/run/netns/x"));
        let mut env = full("DEL");
        env.remove("CNI_NETNS");
        let err = CmdArgs::from_vars(&env, Vec::new())
            .unwrap()
            .required_netns()
            .unwrap_err();
        assert_eq!(
            (err.code(), err.msg()),
            (4, "required env variables [CNI_NETNS] missing".to_owned())
        );
    }

    #[test]
    fn status_version_and_gc_need_no_attachment() {
        for (command, env) in [
            ("STATUS", vars(&[("CNI_COMMAND", "STATUS")])),
            ("VERSION", vars(&[("CNI_COMMAND", "VERSION")])),
            ("GC", vars(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/bin")])),
            // Ids given anyway are not validated, and not handed on.
            ("GC", {
                let mut env = full("GC");
                env.insert("CNI_CONTAINERID".into(), "../bad".into());
                env
            }),
        ] {
            let args = CmdArgs::from_vars(&env, Vec::new()).unwrap();
            assert_eq!(args.command.as_str(), command);
            assert_eq!(args.container_id, "");
            assert_eq!(args.ifname, "");
        }
    }

    #[test]
    fn bad_container_id_and_ifname_are_code_4() {
        let cases = [
            (
                "CNI_CONTAINERID",
                "-leading-dash",
                "invalid characters in containerID",
            ),
            (
                "CNI_CONTAINERID",
                "a/b",
                "invalid characters in containerID",
            ),
            (
                "CNI_IFNAME",
                "waytoolonginterface",
                "invalid CNI_IFNAME: interface name is too long",
            ),
            (
                "CNI_IFNAME",
                "..",
                "invalid CNI_IFNAME: interface name is . or ..",
            ),
            (
                "CNI_IFNAME",
                "a:b",
                "invalid CNI_IFNAME: interface name contains / or : or whitespace characters",
            ),
        ];
        for command in ["ADD", "DEL", "CHECK"] {
            for (var, value, msg) in cases {
                let mut env = full(command);
                env.insert(var.into(), value.into());
                assert_eq!(env_err(&env).msg(), msg, "{command} {var}={value}");
            }
        }
    }

    #[test]
    fn non_utf8_value_is_code_4_naming_the_variable() {
        use std::os::unix::ffi::OsStringExt;
        let mut env = full("ADD");
        env.insert("CNI_IFNAME".into(), OsString::from_vec(vec![0xff]));
        assert_eq!(env_err(&env).msg(), "invalid CNI_IFNAME: not valid UTF-8");
    }

    #[test]
    fn bad_cni_args_pair_is_code_4_when_the_plugin_validates_them() {
        let mut env = full("ADD");
        env.insert("CNI_ARGS".into(), "A=1;novalue".into());
        let args = CmdArgs::from_vars(&env, Vec::new()).unwrap();
        let err = args.args.check_known(&["A"]).unwrap_err();
        assert_eq!(
            (err.code(), err.msg()),
            (4, r#"invalid CNI_ARGS pair "novalue""#.to_owned())
        );
    }

    #[test]
    fn cni_args_parse_table() {
        type Case<'a> = (&'a str, Option<&'a [(&'a str, &'a str)]>);
        let cases: &[Case] = &[
            ("", Some(&[])),
            ("A=1", Some(&[("A", "1")])),
            ("A=1;B=", Some(&[("A", "1"), ("B", "")])),
            ("A=b=c", Some(&[("A", "b=c")])),
            ("A=1;", None),
            (";", None),
            ("A", None),
        ];
        for (raw, want) in cases {
            let got = CniArgs::parse(raw);
            match want {
                Some(pairs) => {
                    let pairs: Vec<(String, String)> = pairs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    assert_eq!(got.pairs, pairs, "{raw:?}");
                    assert!(got.check_known(&["A", "B"]).is_ok(), "{raw:?}");
                }
                None => assert_eq!(got.check_known(&["A"]).unwrap_err().code(), 4, "{raw:?}"),
            }
        }
    }

    #[test]
    fn check_known_table() {
        let known = ["IP", "MAC"];
        let cases = [
            ("", None),
            ("IP=10.0.0.2;MAC=aa", None),
            ("IgnoreUnknown=0;IP=1", None),
            (
                "K8S_POD_NAME=x",
                Some(r#"ARGS: unknown args ["K8S_POD_NAME=x"]"#),
            ),
            ("A=1;IP=2;B=3", Some(r#"ARGS: unknown args ["A=1" "B=3"]"#)),
            ("IgnoreUnknown=0;A=1", Some(r#"ARGS: unknown args ["A=1"]"#)),
            ("IgnoreUnknown=1;A=1", None),
            ("A=1;IgnoreUnknown=TRUE", None),
            ("IgnoreUnknown=True;A=1", None),
        ];
        for (raw, want) in cases {
            let result = CniArgs::parse(raw).check_known(&known);
            match want {
                None => assert!(result.is_ok(), "{raw:?}: {result:?}"),
                Some(msg) => {
                    let err = result.unwrap_err();
                    assert_eq!((err.code(), err.msg().as_str()), (4, msg), "{raw:?}");
                }
            }
        }
    }

    #[test]
    fn to_env_sets_every_variable_even_when_empty() {
        let mut env = full("DEL");
        env.remove("CNI_NETNS");
        let args = CmdArgs::from_vars(&env, Vec::new()).unwrap();
        let got: Vec<(&str, String)> = args
            .to_env(Command::Check)
            .into_iter()
            .map(|(k, v)| (k, v.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            got,
            [
                ("CNI_COMMAND", "CHECK".to_owned()),
                ("CNI_CONTAINERID", "Ctr-1.a_b".to_owned()),
                ("CNI_NETNS", String::new()),
                ("CNI_IFNAME", "eth0".to_owned()),
                ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web=1".to_owned()),
                ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni".to_owned()),
            ]
        );
    }
}
