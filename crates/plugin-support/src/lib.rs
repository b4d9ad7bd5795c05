//! What the interface plugins share, so each stays thin: the one mapping from kernel errors
//! to CNI codes ([`kernel_error`]), the ADD undo stack ([`Rollback`]), the test-only fault
//! points ([`fault_point`]), and configuring addresses and routes inside a container
//! ([`configure_iface`], the reference's `ConfigureIface`).
#![warn(missing_docs)]

mod iface;
mod rollback;

pub use iface::{configure_iface, random_link_name};
pub use rollback::Rollback;

use cni::error::code;

/// The one place a kernel (netlink, netns, sysctl) error becomes a CNI error: a link kind
/// or feature the kernel lacks is [`code::KERNEL_FEATURE`], anything else [`code::KERNEL`].
pub fn kernel_error(err: cni_netlink::Error) -> cni::Error {
    let code = if err.is_unsupported() {
        code::KERNEL_FEATURE
    } else {
        code::KERNEL
    };
    let details = err
        .errno()
        .map(|errno| std::io::Error::from_raw_os_error(errno).to_string());
    cni::Error::plugin(code, err.to_string(), details)
}

/// A test-only fault point: in debug builds, fails with code 999 when the environment
/// variable `CNI_TEST_FAIL_AT` names this point, so tests can make each ADD step fail in
/// turn and prove the rollback. Release builds compile it to nothing.
pub fn fault_point(name: &str) -> cni::Result<()> {
    #[cfg(debug_assertions)]
    if std::env::var("CNI_TEST_FAIL_AT").is_ok_and(|at| at == name) {
        return Err(cni::Error::internal(format!("injected fault at {name}")));
    }
    let _ = name;
    Ok(())
}
