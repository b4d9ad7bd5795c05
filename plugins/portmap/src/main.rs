//! The `portmap` binary: the CNI dispatcher around [`cni_plugin_portmap::PortMap`].

#![cfg_attr(not(test), no_main)]

cni::plugin_main!(cni_plugin_portmap::PortMap, "portmap");
