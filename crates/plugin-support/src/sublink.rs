//! What the sub-interface plugins (macvlan, ipvlan) share beyond the namespaces and IPAM:
//! both find a `master` link, make a sub-interface of it and hand that to the container
//! under `CNI_IFNAME`; DEL removes it, CHECK checks its parent.
//! Policy-free about the link kind: the caller passes a closure that creates its kind of
//! link.

use crate::check::check_failed;
use crate::{
    Namespaces, Rollback, combine_errors, delete_container_link, delete_link_and_release_ip,
    fault_point, kernel_error,
};
use cni::{CmdArgs, Error, NetConf, Result};
use cni_netlink::{Handle, IpFamily, Link, Netns, UnknownMode, sysctl};
use std::path::Path;
use std::str::FromStr;

/// The keys macvlan and ipvlan share about the master: which link, where, and the MTU
/// wanted for the sub-interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterConfig {
    /// The master's name (`None`: the default route's interface).
    pub name: Option<String>,
    /// `mtu` as configured: 0 = the master's; checked against it in [`MasterConfig::resolve`].
    pub mtu: i64,
    /// `linkInContainer`: the master lives in the container netns.
    pub link_in_container: bool,
}

impl MasterConfig {
    /// The master link (named, or the default route's; in the host or, with
    /// `linkInContainer`, the container netns) and the MTU to set, checked against it.
    pub fn resolve(&self, ns: &Namespaces) -> Result<(Link, Option<u32>)> {
        let master = resolve_master(self.side(ns), self.name.as_deref())?;
        let mtu = validate_mtu(self.mtu, &master)?;
        Ok((master, mtu))
    }

    /// The handle of the netns the master lives in.
    fn side<'a>(&self, ns: &'a Namespaces) -> &'a Handle {
        ns.master_side(self.link_in_container)
    }
}

/// A sub-interface's `mode` key: absent or empty means `default` (the reference's
/// `modeFromString`); a word that names no mode is code 7.
pub fn parse_mode<M: FromStr<Err = UnknownMode>>(word: Option<&str>, default: M) -> Result<M> {
    match word.filter(|w| !w.is_empty()) {
        Some(word) => word
            .parse()
            .map_err(|e: UnknownMode| Error::invalid_config(e.to_string())),
        None => Ok(default),
    }
}

/// The master by name, or — when none is configured — the interface of the first IPv4
/// default route of the netns the master is looked up in (the reference's
/// `GetDefaultRouteInterfaceName`). Code 7: the config names no usable parent.
pub fn resolve_master(side: &Handle, name: Option<&str>) -> Result<Link> {
    match name {
        Some(name) => side.link_by_name(name).map_err(|e| {
            if e.is_not_found() {
                Error::invalid_config(format!("failed to lookup master {name:?}: {e}"))
            } else {
                kernel_error(e)
            }
        }),
        None => side
            .default_route_interface(IpFamily::V4)
            .map_err(kernel_error)?
            .ok_or_else(|| Error::invalid_config("no default route interface found")),
    }
}

/// Checks `mtu` against the master's, with the reference macvlan's message.
fn validate_mtu(mtu: i64, master: &Link) -> Result<Option<u32>> {
    match u32::try_from(mtu) {
        Ok(0) => Ok(None),
        Ok(m) if m <= master.mtu => Ok(Some(m)),
        _ => Err(Error::invalid_config(format!(
            "invalid MTU {mtu}, must be [0, master MTU({})]",
            master.mtu
        ))),
    }
}

/// Creates the sub-interface as `CNI_IFNAME` straight into the container and registers
/// its deletion.
///
/// A link created with `IFLA_NET_NS_FD` is registered, and its name checked, in the target
/// netns, and on Linux 6.18 that is all: a host link named like `CNI_IFNAME` does not
/// clash. Older kernels (6.1 does) first look the name up in the creating netns and fail
/// with EEXIST when the host has it; only then is the link made under
/// [`temporary_name`] and renamed in the container (see
/// docs/design.md#creating-links-from-the-host). That name is the attachment's own, so a
/// DEL after an ADD killed between the two steps still finds the link ([`del`]).
///
/// `create` makes the link: on the socket it is given (that of the master's netns), under
/// the name it is given, straight into the netns it is given (`None` with
/// `linkInContainer`: the create runs on the container's socket, so the link is born
/// there, next to its master, and an EEXIST can only mean the container has the name).
/// `plugin` prefixes the fault point `<plugin>-after-create`.
pub fn create_in_container(
    ns: &Namespaces,
    args: &CmdArgs,
    plugin: &'static str,
    master: &MasterConfig,
    rollback: &mut Rollback,
    create: impl Fn(&Handle, &str, Option<&Netns>) -> cni_netlink::Result<()>,
) -> Result<Link> {
    let ifname = args.ifname.as_str();
    let into = (!master.link_in_container).then_some(&ns.netns);
    let name = match create(master.side(ns), ifname, into) {
        Ok(()) => ifname.to_owned(),
        Err(e) if e.is_exists() && into.is_some() => {
            let temp = temporary_name(plugin, args);
            create(master.side(ns), &temp, into).map_err(kernel_error)?;
            temp
        }
        // Made there since `Namespaces::open_for_add` checked: the same refusal.
        Err(e) if e.is_exists() => return Err(ns.ifname_taken(ifname)),
        Err(e) => return Err(kernel_error(e)),
    };
    let link = ns.container.link_by_name(&name).map_err(kernel_error)?;
    let (path, index) = (ns.netns.path().to_owned(), link.index);
    rollback.push("container link", move || delete_link_by_index(&path, index));
    fault_point(&format!("{plugin}-after-create"))?;
    if name != ifname {
        ns.container
            .rename_link(link.index, ifname)
            .map_err(kernel_error)?;
    }
    ns.container.link_by_index(link.index).map_err(kernel_error)
}

/// The name an attachment's link has between its creation and its rename: `<plugin>` and
/// 8 hex digits of a hash (32-bit FNV-1a) of the container ID and `CNI_IFNAME`, so that
/// DEL, given the same two, can find it after an ADD killed before the rename.
fn temporary_name(plugin: &str, args: &CmdArgs) -> String {
    let key = format!("{}/{}", args.container_id, args.ifname);
    let hash = key.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{plugin}{hash:08x}")
}

/// Undo of [`create_in_container`]: reopens the netns (the undo must be `'static`).
fn delete_link_by_index(path: &Path, index: u32) -> Result<()> {
    let netns = Netns::from_path(path).map_err(kernel_error)?;
    let container = Handle::for_netns(&netns).map_err(kernel_error)?;
    container
        .delete_link_if_present(index)
        .map_err(kernel_error)
}

/// Announces the new interface's MAC to neighbours when it comes up or gets an address
/// (gratuitous ARP, unsolicited NA) — a macvlan/ipvlan gets a fresh MAC or shares the
/// master's, and peers may hold a stale neighbour entry for a reused IP. Errors are only
/// logged, as the reference ignores them: `ndisc_notify` is absent when IPv6 is off.
pub fn set_notify_sysctls(netns: &Netns, ifname: &str) -> Result<()> {
    let ifname = ifname.to_owned();
    netns
        .run(move || {
            for key in [
                format!("net/ipv4/conf/{ifname}/arp_notify"),
                format!("net/ipv6/conf/{ifname}/ndisc_notify"),
            ] {
                if let Err(e) = sysctl::ensure(&key, "1") {
                    log::warn!("cannot set {key}=1: {e}");
                }
            }
        })
        .map_err(kernel_error)
}

/// DEL: IPAM DEL and deletion of `CNI_IFNAME` in the container, each attempted whatever
/// the other did, every failure reported. Needs nothing but the attachment and the IPAM
/// type — never the master, nor a default route — so it works after the master is gone
/// or on a host without a default route. A missing netns or link is the goal state.
///
/// Also deletes the attachment's [`temporary_name`] link, left by an ADD killed before its
/// rename. `plugin` is the prefix ADD gave it.
pub fn del(net: &NetConf, args: &CmdArgs, plugin: &str) -> Result<()> {
    let mut errors = delete_link_and_release_ip(net, args);
    if let Some(path) = &args.netns {
        if let Err(e) = delete_container_link(path, &temporary_name(plugin, args)) {
            errors.push(e);
        }
    }
    combine_errors(errors)
}

/// The sub-interface still hangs off `master` (`IFLA_LINK` is the parent's index in the
/// parent's netns, also across namespaces).
pub fn check_parent(link: &Link, master: &Link) -> Result<()> {
    if link.link == Some(master.index) {
        Ok(())
    } else {
        Err(check_failed(format!(
            "interface {} is not a sub-interface of master {:?}",
            link.name, master.name
        )))
    }
}
