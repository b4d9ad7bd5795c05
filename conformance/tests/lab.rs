//! Tests of the test lab itself, with real namespaces (needs root).

// Test code, helpers included: a failed step must stop the test with a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cni_conformance::{Invocation, IpFamily, Lab, Netns, cleanup_stale};
use serde_json::json;

/// Writes an executable shell script into `dir` to stand in for a plugin.
fn write_fake_plugin(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn netns_inode(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

#[test]
fn netns_exists_while_guard_lives_and_is_removed_on_drop() {
    let ns = Netns::new();
    let path = ns.path().to_owned();
    assert!(ns.name().starts_with("cnitest-"), "{}", ns.name());
    assert_eq!(path, Path::new("/run/netns").join(ns.name()));
    // A separate namespace: a different inode from ours.
    assert_ne!(
        netns_inode(&path),
        netns_inode(Path::new("/proc/self/ns/net"))
    );
    drop(ns);
    assert!(!path.exists(), "{} still exists after drop", path.display());
}

#[test]
fn netns_is_removed_when_the_test_panics() {
    let (path_tx, path_rx) = std::sync::mpsc::channel();
    let outcome = std::panic::catch_unwind(move || {
        let ns = Netns::with_label("panics");
        path_tx.send(ns.path().to_owned()).unwrap();
        panic!("simulated test failure");
    });
    assert!(outcome.is_err());
    let path = path_rx.recv().unwrap();
    assert!(!path.exists(), "{} survived the panic", path.display());
}

#[test]
fn fresh_netns_has_only_a_down_loopback_until_brought_up() {
    let ns = Netns::new();
    let lo = ns.link("lo").expect("lo exists");
    assert_eq!(lo["operstate"], "DOWN", "{lo}");
    assert!(ns.link("eth0").is_none());
    assert!(ns.addresses("lo").is_empty());

    ns.bring_up_loopback();
    assert!(ns.addresses("lo").contains(&"127.0.0.1/8".to_owned()));
    assert!(
        ns.exec(&["ping", "-c1", "-W1", "127.0.0.1"])
            .status
            .success()
    );
}

#[test]
fn read_back_helpers_see_the_namespace_state() {
    let ns = Netns::new();
    ns.ip(&[
        "link", "add", "vtest0", "type", "veth", "peer", "name", "vtest1",
    ]);
    ns.ip(&["addr", "add", "10.9.8.7/24", "dev", "vtest0"]);
    ns.ip(&["link", "set", "vtest0", "up"]);

    assert_eq!(ns.link("vtest0").unwrap()["linkinfo"]["info_kind"], "veth");
    assert_eq!(
        ns.addresses("vtest0").first().map(String::as_str),
        Some("10.9.8.7/24")
    );
    let routes = ns.routes(IpFamily::V4);
    assert!(
        routes
            .iter()
            .any(|route| route["dst"] == "10.9.8.0/24" && route["dev"] == "vtest0"),
        "{routes:?}"
    );
    // A new netns inherits ip_forward from the machine's (devconf_inherit_init_net=0),
    // so its value here depends on the machine: only check that it reads.
    let ip_forward = ns.sysctl("net.ipv4.ip_forward");
    assert!(ip_forward == "0" || ip_forward == "1", "{ip_forward}");
    // Proves the sysctl is read in the namespace: set it there, then read it back.
    ns.exec(&["sysctl", "-qw", "net.ipv4.conf.vtest0.forwarding=1"]);
    assert_eq!(ns.sysctl("net/ipv4/conf/vtest0/forwarding"), "1");
    // The test thread's own /proc/sys/net is the machine's namespace: nothing leaked there.
    assert!(!Path::new("/proc/sys/net/ipv4/conf/vtest0").exists());
}

#[test]
fn run_inside_passes_results_and_panics_back() {
    let ns = Netns::new();
    let inode = ns.run_inside(|| netns_inode(Path::new("/proc/thread-self/ns/net")));
    assert_eq!(inode, netns_inode(ns.path()));
    let outcome = std::panic::catch_unwind(|| ns.run_inside(|| panic!("inside")));
    assert!(outcome.is_err());
    // The test thread itself never moved.
    assert_ne!(
        netns_inode(Path::new("/proc/thread-self/ns/net")),
        netns_inode(ns.path())
    );
}

#[test]
fn plugin_runs_in_the_host_netns_with_exactly_the_cni_environment() {
    let lab = Lab::new();
    // The shell's own initial environment, as exec gave it, then the netns inode and stdin.
    let plugin = write_fake_plugin(
        lab.dir(),
        "fake",
        r#"tr '\0' '\n' < /proc/$$/environ
echo "netns=$(stat -L -c %i /proc/self/ns/net)"
echo "cwd=$(pwd)"
echo "stdin=$(cat)""#,
    );
    let invocation = Invocation::add(lab.container(), "eth0")
        .args("IP=10.1.2.3")
        .env("CNI_EXTRA", "yes")
        .config(json!({"cniVersion": "1.1.0", "name": "n"}));
    let run = lab.run_binary(&plugin, &invocation).assert_success();

    let mut env = BTreeMap::new();
    let mut facts = BTreeMap::new();
    for line in run.stdout.lines() {
        let (key, value) = line.split_once('=').unwrap();
        match key {
            "netns" | "cwd" | "stdin" => facts.insert(key, value),
            _ => env.insert(key, value),
        };
    }
    let container = lab.container();
    let path_var = std::env::var("PATH").unwrap();
    let expected = BTreeMap::from([
        ("PATH", path_var.as_str()),
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", container.name()),
        ("CNI_NETNS", container.path().to_str().unwrap()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", "IP=10.1.2.3"),
        ("CNI_PATH", lab.dir().to_str().unwrap()),
        ("CNI_EXTRA", "yes"),
    ]);
    assert_eq!(env, expected);
    assert_eq!(facts["netns"], netns_inode(lab.host().path()).to_string());
    assert_eq!(facts["cwd"], lab.dir().to_str().unwrap());
    assert_eq!(facts["stdin"], r#"{"cniVersion":"1.1.0","name":"n"}"#);
}

#[test]
fn unset_and_no_netns_remove_variables() {
    let lab = Lab::new();
    let plugin = write_fake_plugin(lab.dir(), "fake", r#"tr '\0' '\n' < /proc/$$/environ"#);
    let run = lab
        .run_binary(
            &plugin,
            &Invocation::del(lab.container(), "eth0")
                .no_netns()
                .unset("CNI_PATH"),
        )
        .assert_success();
    let names: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for name in ["PATH", "CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

#[test]
fn assert_error_checks_exit_status_and_json_code() {
    let lab = Lab::new();
    let failing = write_fake_plugin(
        lab.dir(),
        "failing",
        r#"echo '{"code": 7, "msg": "invalid config"}'; echo 'log line' >&2; exit 1"#,
    );
    let run = lab
        .run_binary(&failing, &Invocation::version())
        .assert_error(7);
    assert_eq!(run.exit_code, Some(1));
    assert_eq!(run.stderr, "log line\n");

    let wrong_code = std::panic::catch_unwind(|| {
        lab.run_binary(&failing, &Invocation::version())
            .assert_error(4)
    });
    let message = panic_message(wrong_code.unwrap_err());
    assert!(message.contains("not with error code 4"), "{message}");
    assert!(
        message.contains("log line"),
        "stderr missing from: {message}"
    );

    // Exit 0 with an error object is not an error by the spec.
    let lying = write_fake_plugin(lab.dir(), "lying", r#"echo '{"code": 7, "msg": "x"}'"#);
    let outcome = std::panic::catch_unwind(|| {
        lab.run_binary(&lying, &Invocation::version())
            .assert_error(7)
    });
    assert!(panic_message(outcome.unwrap_err()).contains("succeeded, expected error code 7"));
}

#[test]
fn a_plugin_past_its_timeout_is_killed_and_fails_the_test() {
    let lab = Lab::new();
    let marker = lab.dir().join("child-still-alive");
    // A background child in the same process group must die too.
    let hanging = write_fake_plugin(
        lab.dir(),
        "hanging",
        &format!("(sleep 3; touch {}) & sleep 30", marker.display()),
    );
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(|| {
        lab.run_binary(
            &hanging,
            &Invocation::version().timeout(Duration::from_millis(300)),
        )
    });
    let message = panic_message(outcome.unwrap_err());
    assert!(message.contains("timed out after 300ms"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "kill took {:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(3500));
    assert!(!marker.exists(), "the plugin's child survived the timeout");
}

#[test]
fn new_containers_are_distinct_and_removed_by_their_guard() {
    let lab = Lab::new();
    let second = lab.new_container();
    assert_ne!(second.name(), lab.container().name());
    assert!(second.name().ends_with("-ctr2"), "{}", second.name());
    let path = second.path().to_owned();
    drop(second);
    assert!(!path.exists());
}

#[test]
fn lab_removes_everything_on_drop() {
    let lab = Lab::new();
    let paths = [
        lab.host().path().to_owned(),
        lab.container().path().to_owned(),
        lab.dir().to_owned(),
    ];
    drop(lab);
    for path in paths {
        assert!(!path.exists(), "{} survived the lab", path.display());
    }
}

#[test]
fn cleanup_stale_keeps_namespaces_of_live_processes() {
    let ns = Netns::new();
    let removed = cleanup_stale();
    assert!(!removed.contains(&ns.name().to_owned()));
    assert!(ns.path().exists());
}

#[test]
fn cleanup_stale_removes_namespaces_of_dead_processes() {
    let mut exited = std::process::Command::new("true").spawn().unwrap();
    exited.wait().unwrap();
    let name = format!("cnitest-{}-0-0000-stale", exited.id());
    let created = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap();
    assert!(created.success());
    let removed = cleanup_stale();
    assert!(removed.contains(&name), "{removed:?}");
    assert!(!Path::new("/run/netns").join(&name).exists());
}

/// Set in the child run of `a_leaked_guard_is_removed_at_process_exit`.
const LEAK_CHILD_ENV: &str = "CNITEST_LEAK_CHILD";

#[test]
fn a_leaked_guard_is_removed_at_process_exit() {
    if std::env::var_os(LEAK_CHILD_ENV).is_some() {
        // Child: leak a guard, so that only the atexit safety net can remove it.
        let ns = Netns::with_label("leaked");
        println!("leaked={}", ns.path().display());
        std::mem::forget(ns);
        return;
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_leaked_guard_is_removed_at_process_exit",
            "--nocapture",
        ])
        .env(LEAK_CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success(), "{stdout}");
    let leaked = stdout
        .lines()
        .find_map(|line| line.strip_prefix("leaked="))
        .unwrap_or_else(|| panic!("the child did not run: {stdout}"));
    assert!(!Path::new(leaked).exists(), "{leaked} outlived its process");
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}
