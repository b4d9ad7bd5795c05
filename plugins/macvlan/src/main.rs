fn main() {
    cni::skel::run(
        cni_plugin_macvlan::Macvlan,
        cni::About {
            name: "macvlan",
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}
