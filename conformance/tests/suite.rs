//! The conformance suite run from `cargo test` (needs root): against our plugins (every
//! case must pass) and against the Go reference in `/usr/lib/cni` (exactly its known
//! defects must fail). The same runs are available as a tool:
//! `cargo run -p cni-conformance -- --bin-dir target/debug`, or
//! `bash scripts/conformance.sh` for the committed comparison report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cni_conformance::suite::{self, Implementation, NO_REFERENCE, Outcome, PLUGINS, SuiteOptions};
use cni_conformance::{REFERENCE_DIR, bin_dir, reference_plugin};

fn run_and_print(implementation: Implementation, options: &SuiteOptions) -> suite::Report {
    let report = suite::run(&[implementation], options);
    println!("{}", report.to_terminal());
    report
}

/// Every plugin of ours must be built, and every case must pass (or be n/a with a reason).
#[test]
fn conformance_suite_passes_on_our_plugins() {
    let dir = bin_dir();
    for plugin in PLUGINS {
        assert!(
            dir.join(plugin).is_file(),
            "{plugin} is not built in {}: run `cargo build --workspace --bins` first",
            dir.display()
        );
    }
    // `CNI_BIN_DIR=/usr/lib/cni cargo test` points every plugin test at the reference;
    // judge it as the reference then.
    let implementation = if dir == Path::new(REFERENCE_DIR) {
        Implementation::reference("go-reference", &dir)
    } else {
        Implementation::ours("ours", &dir)
    };
    let report = run_and_print(implementation, &SuiteOptions::default());
    let results = &report.results[0];
    assert!(
        results.as_expected(),
        "unexpected conformance results (table above): {:#?}",
        results
            .unexpected_failures()
            .into_iter()
            .chain(results.missing_expected_failures())
            .collect::<Vec<_>>()
    );
}

/// The Go reference fails exactly the cases listed in `KNOWN_DEFECTS`: a new failure (a
/// suite bug, or a changed reference) or a defect that no longer shows fails this test.
#[test]
fn go_reference_fails_exactly_its_known_defects() {
    for plugin in PLUGINS.iter().filter(|p| !NO_REFERENCE.contains(p)) {
        reference_plugin(plugin);
    }
    let report = run_and_print(
        Implementation::reference("go-reference", REFERENCE_DIR),
        &SuiteOptions::default(),
    );
    let results = &report.results[0];
    assert!(
        results.unexpected_failures().is_empty(),
        "the reference failed cases that are not known defects: {:#?}",
        results.unexpected_failures()
    );
    assert!(
        results.missing_expected_failures().is_empty(),
        "known defects of the reference did not show (update KNOWN_DEFECTS): {:#?}",
        results.missing_expected_failures()
    );
}

/// The ipvlan cases against our build, on a kernel with ipvlan (the VM lane). Here no
/// case may be n/a for lack of a kernel feature: that would be a lane that tests nothing.
#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_conformance_ipvlan() {
    let options = SuiteOptions {
        plugins: vec!["ipvlan".to_owned()],
        ..SuiteOptions::default()
    };
    let report = run_and_print(Implementation::ours("ours", bin_dir()), &options);
    let results = &report.results[0];
    let kernel_skips: Vec<_> = results
        .results
        .iter()
        .filter(|r| matches!(&r.outcome, Outcome::NotApplicable(why) if why.contains("kernel")))
        .collect();
    assert!(
        kernel_skips.is_empty(),
        "skipped for the kernel: {kernel_skips:#?}"
    );
    assert!(
        results.as_expected(),
        "ipvlan conformance failures: {:#?}",
        results.unexpected_failures()
    );
}
