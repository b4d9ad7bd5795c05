fn main() {
    cni::skel::run(
        cni_plugin_bridge::Bridge,
        cni::About {
            name: "bridge",
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}
