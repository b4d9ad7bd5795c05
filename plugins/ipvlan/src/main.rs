//! The `ipvlan` binary: the CNI dispatcher around [`cni_plugin_ipvlan::Ipvlan`].

#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_main)]

cni::plugin_main!(cni_plugin_ipvlan::Ipvlan, "ipvlan");
