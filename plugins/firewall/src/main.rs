//! The `firewall` binary: the CNI dispatcher around [`cni_plugin_firewall::Firewall`].

#![cfg_attr(not(test), no_main)]

cni::plugin_main!(cni_plugin_firewall::Firewall, "firewall");
