//! The `tuning` binary: the CNI dispatcher around [`cni_plugin_tuning::Tuning`].

#![cfg_attr(not(test), no_main)]

cni::plugin_main!(cni_plugin_tuning::Tuning, "tuning");
