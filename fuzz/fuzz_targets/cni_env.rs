//! The `CNI_*` environment and `CNI_ARGS`.
//!
//! Input: the values of CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and
//! CNI_PATH, then stdin, separated by NUL bytes (raw bytes: values need not be UTF-8; a
//! missing field is an unset variable).
//! Properties: a parse error is code 4; what parses survives the trip through the
//! environment a delegate gets (`to_env`, then `from_vars`) whenever a delegate can run; `CNI_ARGS` pairs survive
//! `to_env_string`; a whole dispatch prints what the spec allows.
#![no_main]

use cni::args::{CmdArgs, CniArgs};
use cni::skel::dispatch;
use cni_fuzz::{ABOUT, ParseOnly, assert_valid_error, assert_valid_outcome};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

const NAMES: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

fn accept_anything(_: &cni::Request<serde_json::Value>) -> cni::Result<()> {
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut fields = data.split(|&b| b == 0);
    let mut vars = BTreeMap::new();
    for name in NAMES {
        if let Some(value) = fields.next() {
            vars.insert(name.to_owned(), OsString::from_vec(value.to_vec()));
        }
    }
    let stdin: Vec<u8> = fields.collect::<Vec<_>>().join(&0u8);

    match CmdArgs::from_vars(&vars, stdin.clone()) {
        // With no usable CNI_PATH entry (`:`) no delegate can be found, so none is run.
        Ok(args) if args.path.is_empty() => check_cni_args(&args.args),
        Ok(args) => {
            let env: BTreeMap<String, OsString> = args
                .to_env(args.command)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            let again = CmdArgs::from_vars(&env, Vec::new())
                .unwrap_or_else(|e| panic!("a delegate's environment is refused: {e:?}"));
            assert_eq!(again.command, args.command);
            assert_eq!(again.container_id, args.container_id);
            assert_eq!(again.netns, args.netns);
            assert_eq!(again.ifname, args.ifname);
            assert_eq!(again.args.pairs, args.args.pairs);
            assert_eq!(again.path, args.path);
            check_cni_args(&args.args);
        }
        Err(err) => assert_eq!(assert_valid_error(&err), 4, "{err:?}"),
    }
    if let Some(raw) = vars.get("CNI_ARGS").and_then(|v| v.to_str()) {
        check_cni_args(&CniArgs::parse(raw));
    }

    let command = vars
        .get("CNI_COMMAND")
        .and_then(|c| c.to_str())
        .and_then(|c| c.parse().ok());
    let outcome = dispatch(
        &ParseOnly {
            validate: accept_anything,
        },
        ABOUT,
        &vars,
        stdin,
    );
    assert_valid_outcome(command, &outcome);
});

fn check_cni_args(args: &CniArgs) {
    let again = CniArgs::parse(&args.to_env_string());
    assert_eq!(
        again.pairs, args.pairs,
        "CNI_ARGS pairs lost in to_env_string"
    );
    assert!(again.malformed.is_empty());
    if let Err(err) = args.check_known(&["IP", "MAC", "K8S_POD_NAME"]) {
        assert_eq!(assert_valid_error(&err), 4, "{err:?}");
    }
}
