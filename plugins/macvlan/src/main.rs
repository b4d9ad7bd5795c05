//! The `macvlan` binary: the CNI dispatcher around [`cni_plugin_macvlan::Macvlan`].

#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_main)]

// host-local, the usual IPAM, runs in process when CNI_PATH holds our own build of it
// (cni::built_in: no process start per ADD).
cni::plugin_main!(
    cni_plugin_macvlan::Macvlan,
    "macvlan",
    built_in: [cni::BuiltIn::of::<cni_plugin_host_local::HostLocal>("host-local")]
);
