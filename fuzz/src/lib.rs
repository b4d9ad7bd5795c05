//! What the fuzz targets share: a plugin that only parses, the process environment of a
//! call, and the check that whatever a plugin prints is what the spec allows.

use cni::skel::{About, Outcome, Plugin, Request};
use cni::{CniResult, Command, Version};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;

/// A plugin whose verbs only validate the request with `validate` (a real plugin's config
/// parsing, no kernel work). ADD returns the parsed `prevResult`, if any, so that the
/// printing of results in every version runs too.
pub struct ParseOnly<C> {
    /// The real plugin's validation of its typed config.
    pub validate: fn(&Request<C>) -> cni::Result<()>,
}

impl<C: DeserializeOwned> Plugin for ParseOnly<C> {
    type Config = C;

    fn add(&self, req: Request<C>) -> cni::Result<CniResult> {
        (self.validate)(&req)?;
        match &req.net.prev_result {
            Some(prev) => CniResult::from_prev_result(prev, req.net.cni_version),
            None => Ok(CniResult::default()),
        }
    }

    fn del(&self, req: Request<C>) -> cni::Result<()> {
        (self.validate)(&req)
    }

    fn check(&self, req: Request<C>) -> cni::Result<()> {
        (self.validate)(&req)
    }

    fn status(&self, req: Request<C>) -> cni::Result<()> {
        (self.validate)(&req)
    }

    fn gc(&self, req: Request<C>) -> cni::Result<()> {
        (self.validate)(&req)
    }
}

/// The about text's name; the dispatcher prints it only without `CNI_COMMAND`.
pub const ABOUT: About = About {
    name: "fuzz",
    version: "0.0.0",
};

/// The verbs a config is parsed for.
pub const COMMANDS: [Command; 5] = [
    Command::Add,
    Command::Del,
    Command::Check,
    Command::Status,
    Command::Gc,
];

/// A valid environment for `command`; `CNI_NETNS` names nothing, so no netns is opened.
pub fn vars_for(command: Command, cni_args: &str) -> BTreeMap<String, OsString> {
    [
        ("CNI_COMMAND", command.as_str()),
        ("CNI_CONTAINERID", "fuzz-container"),
        ("CNI_NETNS", "/nonexistent/cni-fuzz-netns"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent"),
        ("CNI_ARGS", cni_args),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), OsString::from(v)))
    .collect()
}

/// Checks one dispatch's output against the spec: success prints nothing (or, for ADD, a
/// result object in a known version) and exits 0; failure prints exactly the error object
/// (`code`, `msg`, optional `cniVersion` and `details`) and exits with its code (1 when it
/// does not fit an exit status). A panic turned into code 999 is a finding too.
pub fn assert_valid_outcome(command: Option<Command>, outcome: &Outcome) {
    if outcome.exit_code == 0 {
        match command {
            Some(Command::Add) => {
                let result: Value = serde_json::from_str(&outcome.stdout)
                    .unwrap_or_else(|e| panic!("ADD printed no JSON ({e}): {:?}", outcome.stdout));
                let version = result
                    .get("cniVersion")
                    .and_then(Value::as_str)
                    .expect("ADD result without cniVersion");
                version
                    .parse::<Version>()
                    .expect("result in a known version");
            }
            Some(Command::Version) => {
                serde_json::from_str::<Value>(&outcome.stdout).expect("VERSION prints JSON");
            }
            _ => assert_eq!(outcome.stdout, "", "only ADD and VERSION print on success"),
        }
        return;
    }
    let code = assert_error_object(&outcome.stdout);
    let expected_exit = i32::try_from(code)
        .ok()
        .filter(|c| (1..=255).contains(c))
        .unwrap_or(1);
    assert_eq!(
        outcome.exit_code, expected_exit,
        "exit code of error {code}"
    );
}

/// Checks that `stdout` is a CNI error object and returns its code.
pub fn assert_error_object(stdout: &str) -> u64 {
    let value: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("error output is not JSON ({e}): {stdout:?}"));
    let object = value.as_object().expect("error output is an object");
    for key in object.keys() {
        assert!(
            ["cniVersion", "code", "msg", "details"].contains(&key.as_str()),
            "unexpected key {key:?} in {stdout}"
        );
    }
    let code = object
        .get("code")
        .and_then(Value::as_u64)
        .expect("error object has a numeric code");
    assert!(code != 0, "error code 0: {stdout}");
    assert!(code != 999, "a panic became an error: {stdout}");
    let msg = object
        .get("msg")
        .and_then(Value::as_str)
        .expect("msg is a string");
    assert!(!msg.is_empty(), "empty msg: {stdout}");
    if let Some(details) = object.get("details") {
        assert!(details.is_string(), "details is a string: {stdout}");
    }
    if let Some(version) = object.get("cniVersion") {
        let version = version.as_str().expect("cniVersion is a string");
        version
            .parse::<Version>()
            .expect("cniVersion is a known version");
    }
    code
}

/// Checks a typed error the way a plugin would print it.
pub fn assert_valid_error(err: &cni::Error) -> u32 {
    let wire = err.to_wire(Some(Version::CURRENT.as_str()));
    let printed = serde_json::to_string(&wire).expect("an error object always encodes");
    let code = assert_error_object(&printed);
    assert_eq!(u64::from(err.code()), code);
    err.code()
}

/// Whether `value` holds a number that is not an integer. serde_json (its `float_roundtrip`
/// feature is off in the workspace) may read such a number back one unit in the last place
/// off (2.555555555555555e20 -> 2.5555555555555554e20), so round trips through text are
/// compared exactly only for documents without one.
pub fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}
