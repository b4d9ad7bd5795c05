//! Regression tests for hostile input to the bridge plugin: a `CNI_NETNS` that is a FIFO,
//! an ADD whose result cannot be written, arrays where objects are required, an oversized
//! stdin, a DEL whose `CNI_NETNS` is the plugin's own netns, and too few free descriptors.
//! Each one is a real binary run in the lab's throwaway namespaces.

// A test says "this cannot happen" by panicking with the run in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use cni_conformance::{Invocation, Lab};
use common::*;

/// A FIFO named by `CNI_NETNS` is refused at once with a CNI error, before anything is
/// made: opening it blocking would wait for a writer forever.
#[test]
fn a_fifo_as_netns_fails_at_once_and_creates_nothing() {
    let lab = Lab::new();
    let fifo = lab.dir().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let conf = full_conf(&lab, "nftables");
    for invocation in [
        Invocation::add(lab.container(), "eth0"),
        Invocation::check(lab.container(), "eth0"),
        Invocation::del(lab.container(), "eth0"),
    ] {
        let command = invocation.command().to_owned();
        let started = Instant::now();
        let run = lab.run(
            "bridge",
            &invocation
                .netns_path(&fifo)
                .config(conf.clone())
                .timeout(Duration::from_secs(10)),
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{command}: {run}"
        );
        assert!(!run.succeeded(), "{command}: {run}");
        assert!(run.error_code().is_some(), "{command}: {run}");
        assert!(
            run.stdout.contains("fifo"),
            "{command}: names the path: {run}"
        );
        assert!(lab.host().link("cni0").is_none(), "{command}: bridge made");
        assert_nothing_left(&lab, &[lab.container()], "eth0", &command);
    }
}
