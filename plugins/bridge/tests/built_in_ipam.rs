//! host-local built into bridge: when the `host-local` that `CNI_PATH` finds is our own build,
//! bridge runs it in process instead of executing it; any other `host-local` (a script, the
//! reference's) is executed as before. Asserted on what each path leaves: the address in the
//! container, the lease files, and which program ran.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_conformance::{Invocation, Lab, Netns, PluginRun, plugin_path};
use common::*;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A directory `name` in the lab, to be the `CNI_PATH` of one test, holding `host-local`
/// with `contents`, executable.
fn cni_path_with_host_local(lab: &Lab, name: &str, contents: &[u8]) -> PathBuf {
    let dir = lab.dir().join(name);
    std::fs::create_dir(&dir).unwrap();
    let host_local = dir.join("host-local");
    std::fs::write(&host_local, contents).unwrap();
    std::fs::set_permissions(&host_local, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn run_in(lab: &Lab, invocation: Invocation, cni_path: &Path, conf: &Value) -> PluginRun {
    lab.run(
        "bridge",
        &invocation.config(conf.clone()).cni_path(cni_path),
    )
}

#[test]
fn our_host_local_serves_in_process_even_when_its_file_cannot_run() {
    let lab = Lab::new();
    // The first page of our host-local (where its identity note is) and nothing more: the
    // kernel cannot run that file, so an ADD through it succeeds only if bridge never
    // executes it.
    let ours = std::fs::read(plugin_path("host-local")).unwrap();
    let cni_path = cni_path_with_host_local(&lab, "bin-truncated", &ours[..4096]);
    let direct = std::process::Command::new(cni_path.join("host-local"))
        .env("CNI_COMMAND", "VERSION")
        .output();
    assert!(
        direct.is_err() || !direct.as_ref().unwrap().status.success(),
        "the truncated file ran by itself: {direct:?}"
    );
    let conf = conf("1.0.0", json!({"ipam": ipam_v4(&lab, "10.77.0.0/24")}));

    let added = run_in(
        &lab,
        Invocation::add(lab.container(), "eth0"),
        &cni_path,
        &conf,
    )
    .assert_success();
    assert_eq!(added.result()["ips"][0]["address"], "10.77.0.2/24");
    assert!(
        lab.container()
            .addresses("eth0")
            .contains(&"10.77.0.2/24".to_owned())
    );
    assert!(
        leases(&lab).contains(&"10.77.0.2".to_owned()),
        "{:?}",
        leases(&lab)
    );

    let check_conf = with_prev(&conf, added.result());
    run_in(
        &lab,
        Invocation::check(lab.container(), "eth0"),
        &cni_path,
        &check_conf,
    )
    .assert_success();
    run_in(
        &lab,
        Invocation::del(lab.container(), "eth0"),
        &cni_path,
        &check_conf,
    )
    .assert_success();
    assert_eq!(leases(&lab), Vec::<String>::new());
}

#[test]
fn a_host_local_that_is_not_ours_is_executed_and_answers_the_same() {
    let lab = Lab::new();
    // A wrapper script has no identity note: bridge must execute it, as it would the
    // reference's host-local. It records each verb it was run for.
    let ran = lab.dir().join("ran");
    let wrapper = format!(
        "#!/bin/sh\necho \"$CNI_COMMAND\" >> {}\nexec {} \"$@\"\n",
        ran.display(),
        plugin_path("host-local").display()
    );
    let wrapped = cni_path_with_host_local(&lab, "bin-wrapped", wrapper.as_bytes());
    let conf = conf("1.0.0", json!({"ipam": ipam_v4(&lab, "10.78.0.0/24")}));
    let executed = run_in(
        &lab,
        Invocation::add(lab.container(), "eth0"),
        &wrapped,
        &conf,
    )
    .assert_success();
    let check_conf = with_prev(&conf, executed.result());
    run_in(
        &lab,
        Invocation::check(lab.container(), "eth0"),
        &wrapped,
        &check_conf,
    )
    .assert_success();

    // The same network through our own host-local (the built binaries' directory), in a
    // second container: the built-in answers what the executed program answered.
    let second = Netns::new();
    let built_in = add_in(&lab, &second, "eth0", &conf).assert_success();
    let comparable = |run: &PluginRun| {
        let mut ip = run.result()["ips"][0].clone();
        ip.as_object_mut().unwrap().remove("address");
        (
            ip,
            run.result().get("routes").cloned(),
            run.result().get("dns").cloned(),
        )
    };
    assert_eq!(comparable(&executed), comparable(&built_in));
    assert_eq!(executed.result()["ips"][0]["address"], "10.78.0.2/24");
    assert_eq!(built_in.result()["ips"][0]["address"], "10.78.0.3/24");
    assert_eq!(
        leases(&lab)
            .iter()
            .filter(|l| l.starts_with("10.78."))
            .count(),
        2
    );

    run_in(
        &lab,
        Invocation::del(lab.container(), "eth0"),
        &wrapped,
        &check_conf,
    )
    .assert_success();
    del_in(&lab, &second, "eth0", &conf).assert_success();
    assert_eq!(leases(&lab), Vec::<String>::new());
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        "ADD\nCHECK\nDEL\n",
        "the wrapper ran for exactly the verbs sent through it"
    );
}

#[test]
fn every_plugin_binary_names_itself_in_its_identity_note() {
    for plugin in ["bridge", "host-local", "macvlan", "ipvlan", "loopback"] {
        let out = std::process::Command::new("readelf")
            .args(["-n", plugin_path(plugin).to_str().unwrap()])
            .output()
            .expect("readelf (binutils) runs");
        let notes = String::from_utf8_lossy(&out.stdout);
        let ours = notes
            .split("Displaying notes found in:")
            .find(|section| section.contains("cni-rs"))
            .unwrap_or_else(|| panic!("{plugin}: no cni-rs note in\n{notes}"));
        let name_hex: Vec<String> = plugin.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            ours.contains(&format!("{} 00", name_hex.join(" "))),
            "{plugin}: the note does not name it:\n{ours}"
        );
    }
}
