//! `cnitool add|check|del|status|gc <network> <netns-path>`: runs a CNI network
//! configuration against a network namespace, as the CNI project's cnitool does.
//! See the `cnitool` crate docs and README.md ("cnitool") for the environment it reads.

#![forbid(unsafe_code)]

use anyhow::{Context, bail};
use cnitool::tool::{self, Verb};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: cnitool [-i IFNAME] add|check|del|status|gc <network-name> <netns-path>

Environment:
  NETCONFPATH    network configuration directory (default /etc/cni/net.d)
  CNI_PATH       plugin search path (':'-separated)
  CNI_ARGS       extra arguments, K=V;K2=V2
  CAP_ARGS       capability arguments, a JSON object
  CNI_IFNAME     interface name (default eth0; -i/--ifname wins)
  CNI_CACHE_DIR  result cache directory (default /var/lib/cni)";

fn main() -> ExitCode {
    cni::log::init("cnitool");
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{e}`, not `{e:#}`: our errors already quote their cause in libcni's wording
            // (`plugin type="x" failed (add): <cause>`); the chain would repeat it.
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut ifname: Option<String> = None;
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "-i" | "--ifname" => ifname = Some(args.next().context("-i/--ifname needs a value")?),
            _ if arg.starts_with("--ifname=") => ifname = Some(arg["--ifname=".len()..].to_owned()),
            _ => positional.push(arg),
        }
    }
    let [verb, network, netns] = positional.as_slice() else {
        bail!("{USAGE}");
    };
    let Some(verb) = Verb::parse(verb) else {
        bail!("unknown command {verb:?}\n{USAGE}");
    };
    let output = tool::run(
        verb,
        network,
        Path::new(netns),
        ifname.as_deref(),
        &|name| std::env::var_os(name),
    )?;
    if let Some(output) = output {
        // No trailing newline: byte-identical to the Go cnitool's output.
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(output.as_bytes())?;
        stdout.flush()?;
    }
    Ok(())
}
