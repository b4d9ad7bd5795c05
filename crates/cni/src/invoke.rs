//! Delegation: running another plugin (IPAM) found in `CNI_PATH` with the same environment
//! and stdin, only `CNI_COMMAND` changed (SPEC.md "Delegated plugins"; cni-notes §1.8).
//! The delegate's stderr goes to ours; its error object is returned with its code.

use crate::args::{CmdArgs, Command};
use crate::error::Result;
use crate::result::CniResult;
use crate::version::Version;
use serde_json::Value;

/// Runs `plugin_type` with `command` and the request's stdin; returns its parsed stdout
/// (`None` when it printed nothing). A missing binary is code
/// [`crate::error::code::DELEGATE`]; an empty type fails like the reference
/// (`no plugin name provided`).
pub fn delegate(plugin_type: &str, command: Command, args: &CmdArgs) -> Result<Option<Value>> {
    todo!("{plugin_type} {command:?} {args:?}")
}

/// ADD through a delegate, its result converted to canonical form (IPAM results arrive in
/// the config's version).
pub fn delegate_add(plugin_type: &str, args: &CmdArgs, version: Version) -> Result<CniResult> {
    todo!("{plugin_type} {args:?} {version}")
}
