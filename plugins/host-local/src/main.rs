//! The `host-local` binary: the CNI dispatcher around [`cni_plugin_host_local::HostLocal`].

#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_main)]

cni::plugin_main!(cni_plugin_host_local::HostLocal, "host-local");
