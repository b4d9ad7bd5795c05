fn main() {
    cni::skel::run(
        cni_plugin_ipvlan::Ipvlan,
        cni::About {
            name: "ipvlan",
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}
