//! Opens a handle on the calling thread's netns, dumps its links and prints how many: the
//! smallest real use of the crate, for timing process start-up to exit (see `startup.rs`).

fn main() -> cni_netlink::Result<()> {
    let handle = cni_netlink::Handle::current()?;
    println!("{}", handle.links()?.len());
    Ok(())
}
