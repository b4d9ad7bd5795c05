//! The test lab shared by every plugin's integration tests and by the conformance suite.
//!
//! It runs CNI plugin binaries as a container runtime would, but inside throwaway network
//! namespaces, so tests never touch the machine's own network:
//!
//! - [`Netns`]: a named network namespace, deleted when dropped, with read-back helpers
//!   (`ip -j` output, addresses, routes, sysctls);
//! - [`Lab`]: a fake host namespace (plugins run there), a container namespace and a
//!   private directory;
//! - [`Invocation`]: one call — verb, `CNI_*` environment, config on stdin, timeout;
//! - [`PluginRun`]: what the call produced, with assertions that print it all on failure;
//! - [`bin_dir`] and [`plugin_path`]: which binaries are tested (`CNI_BIN_DIR` or the
//!   cargo target directory);
//! - [`EtcdCluster`]: a real etcd cluster (one or more members) on loopback, for the
//!   tests of cluster-ipam, and [`LoopbackRelay`], which makes it reachable from a lab
//!   namespace's loopback; [`EtcdCluster::start_tls`] serves clients over TLS, and
//!   [`TestCa`] makes a CA of the test's own (another CA, for a client to distrust);
//! - [`suite`]: the black-box conformance suite built on all of the above, for any
//!   directory of CNI plugins, with its report (also the `cni-conformance` tool).
//!
//! Everything here needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and says so by panicking
//! when it is missing: a namespace test must never pass without having run.
//!
//! Clean-up: namespaces are removed by `Drop` (also during a panic), and at process exit
//! for guards that were never dropped. A test run killed with SIGKILL can still leave
//! `cnitest-*` namespaces behind; [`cleanup_stale`] removes those whose creating process
//! is gone.

#![warn(missing_docs)]
// This crate is test tooling: when setting up a namespace or a plugin run fails, the test
// must stop at once with a clear message, and a panic is how a test says that.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bins;
mod etcd;
mod invocation;
mod lab;
mod netns;
mod plugin_run;
mod relay;
pub mod suite;
mod tls;

pub use bins::{BIN_DIR_ENV, REFERENCE_DIR, bin_dir, plugin_path, reference_plugin};
pub use etcd::{ClientTls, ETCD_BIN, ETCDCTL_BIN, EtcdCluster, missing_etcd_binaries};
pub use invocation::{DEFAULT_TIMEOUT, Invocation, with_prev};
pub use lab::{Lab, host_local_leases};
pub use netns::{IpFamily, NETNS_DIR, NETNS_PREFIX, Netns, cleanup_stale};
pub use plugin_run::PluginRun;
pub use relay::LoopbackRelay;
pub use tls::{OPENSSL_BIN, TestCa};
