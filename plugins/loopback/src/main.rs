fn main() {
    cni::skel::run(
        cni_plugin_loopback::Loopback,
        cni::About {
            name: "loopback",
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}
