//! What both ipvlan test files build on: the network config on the lab's `dummy` master
//! and the IPAM store it writes to.

use cni_conformance::{Lab, host_local_leases};
use serde_json::{Value, json};

use crate::common::{MASTER, PEER_IP, SUBNET};

/// The `mvnet` config on [`MASTER`], host-local IPAM in the lab's directory, with `routes`.
pub fn conf_with_routes(lab: &Lab, routes: Value) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "mvnet",
        "type": "ipvlan",
        "master": MASTER,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": SUBNET, "rangeStart": "10.77.0.10", "gateway": PEER_IP}]],
            "routes": routes,
            "dataDir": lab.dir().join("ipam"),
        },
    })
}

/// The leases held in `mvnet`'s store.
pub fn leases(lab: &Lab) -> Vec<String> {
    host_local_leases(&lab.dir().join("ipam").join("mvnet"))
}
