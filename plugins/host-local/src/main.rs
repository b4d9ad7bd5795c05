//! The `host-local` binary: the CNI dispatcher around [`cni_plugin_host_local::HostLocal`].

fn main() {
    let about = cni::About {
        name: "host-local",
        version: env!("CARGO_PKG_VERSION"),
    };
    cni::skel::run(cni_plugin_host_local::HostLocal, about)
}
