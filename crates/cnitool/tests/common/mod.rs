//! Running the built `cnitool` in a lab, shared by the test files of this directory.

use cni_conformance::{Lab, Netns, bin_dir};
use std::process::Output;

/// Runs `cnitool <args>` in the lab's fake host netns with a clean environment: the
/// configurations in `<lab>/net.d`, the plugins under test on `CNI_PATH`, the result cache
/// in `<lab>/cache`, `extra` added; killed after 60 s.
pub fn cnitool(lab: &Lab, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let tool = env!("CARGO_BIN_EXE_cnitool");
    let mut argv: Vec<String> = vec![
        "timeout".into(),
        "60".into(),
        "env".into(),
        "-i".into(),
        format!(
            "PATH={}",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        ),
        format!("NETCONFPATH={}", lab.dir().join("net.d").display()),
        format!("CNI_PATH={}", bin_dir().display()),
        format!("CNI_CACHE_DIR={}", lab.dir().join("cache").display()),
    ];
    argv.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
    argv.push(tool.into());
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    lab.host().exec(&argv)
}

/// `cnitool <verb> <network> <netns>`, asserting success; returns stdout.
pub fn cnitool_ok(
    lab: &Lab,
    verb: &str,
    network: &str,
    container: &Netns,
    extra: &[(&str, &str)],
) -> String {
    let path = container.path().to_str().unwrap();
    let out = cnitool(lab, &[verb, network, path], extra);
    assert!(
        out.status.success(),
        "cnitool {verb} {network} {path} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
