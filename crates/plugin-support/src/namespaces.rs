//! The namespaces one ADD or CHECK works in: the container netns from `CNI_NETNS`, with a
//! netlink socket on each side, and the steps that only need them.

use crate::kernel_error;
use cni::error::code;
use cni::{CmdArgs, Error, Interface, Result};
use cni_netlink::{Handle, Link, Netns, format_mac};

/// The opened namespaces one ADD or CHECK works with.
pub struct Namespaces {
    /// The container netns (`CNI_NETNS`).
    pub netns: Netns,
    /// A netlink socket in the netns the plugin runs in (the host).
    pub host: Handle,
    /// A netlink socket bound to the container netns.
    pub container: Handle,
}

impl Namespaces {
    /// Opens `CNI_NETNS` (ADD and CHECK require it) and a socket on each side.
    pub fn open(args: &CmdArgs) -> Result<Namespaces> {
        let netns = Netns::from_path(args.required_netns()?).map_err(kernel_error)?;
        let host = Handle::current().map_err(kernel_error)?;
        let container = Handle::for_netns(&netns).map_err(kernel_error)?;
        Ok(Namespaces {
            netns,
            host,
            container,
        })
    }

    /// The handle of the netns the master lives in: the container's with
    /// `linkInContainer` (a secondary NIC already moved into the pod), else the host's.
    pub fn master_side(&self, link_in_container: bool) -> &Handle {
        if link_in_container {
            &self.container
        } else {
            &self.host
        }
    }

    /// [`Namespaces::open`] for ADD: also refuses a `CNI_IFNAME` that already exists in
    /// the container, before any change (the spec: a second ADD of one attachment must
    /// fail; failing first changes nothing).
    pub fn open_for_add(args: &CmdArgs) -> Result<Namespaces> {
        let ns = Namespaces::open(args)?;
        ns.ensure_ifname_free(&args.ifname)?;
        Ok(ns)
    }

    fn ensure_ifname_free(&self, ifname: &str) -> Result<()> {
        match self.container.link_by_name(ifname) {
            Ok(_) => Err(self.ifname_taken(ifname)),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(kernel_error(e)),
        }
    }

    /// The refusal of an ADD whose `CNI_IFNAME` already exists in the container.
    pub(crate) fn ifname_taken(&self, ifname: &str) -> Error {
        Error::plugin(
            code::KERNEL,
            format!("container interface {ifname:?} already exists"),
            Some(format!("in netns {}", self.netns.path().display())),
        )
    }

    /// The result's entry for `link`, an interface in the container.
    pub fn container_interface(&self, link: &Link) -> Interface {
        Interface {
            name: link.name.clone(),
            mac: link.mac.as_ref().map(format_mac),
            sandbox: Some(self.netns.path().display().to_string()),
            ..Default::default()
        }
    }
}
