//! The `bandwidth` binary: the CNI dispatcher around [`cni_plugin_bandwidth::Bandwidth`].

#![cfg_attr(not(test), no_main)]

cni::plugin_main!(cni_plugin_bandwidth::Bandwidth, "bandwidth");
