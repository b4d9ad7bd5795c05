//! The `CNI_*` environment: which verb, for which attachment, with the spec's validation
//! (SPEC.md "Parameters"; cni-notes §1.4, §1.11, §1.12).

use crate::error::Result;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// The verb in `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// ADD
    Add,
    /// DEL
    Del,
    /// CHECK (>= 0.4.0)
    Check,
    /// STATUS (>= 1.1.0)
    Status,
    /// VERSION
    Version,
    /// GC (>= 1.1.0)
    Gc,
}

impl Command {
    /// The wire name (`ADD`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
            Command::Gc => "GC",
        }
    }
}

/// One attachment's parameters, parsed and validated from the environment and stdin.
///
/// Spec rules live in the types: `netns` is always set for ADD and CHECK, may be `None`
/// for DEL; `container_id`/`ifname` are set for ADD, DEL and CHECK.
#[derive(Debug, Clone)]
pub struct CmdArgs {
    /// The verb.
    pub command: Command,
    /// `CNI_CONTAINERID` (validated: alphanumeric first, then alphanumerics, `_`, `.`, `-`).
    pub container_id: String,
    /// `CNI_NETNS`; `None` when empty (allowed for DEL, GC, STATUS).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (validated: kernel `dev_valid_name` rules, at most 15 bytes).
    pub ifname: String,
    /// `CNI_ARGS`, parsed.
    pub args: CniArgs,
    /// `CNI_PATH`, split on `:`.
    pub path: Vec<PathBuf>,
    /// The raw stdin bytes: passed unchanged to delegated (IPAM) plugins.
    pub stdin: Vec<u8>,
}

/// `CNI_ARGS`: `K=V;K2=V2` (Go `types.LoadArgs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// Every pair, in order, keys case-sensitive.
    pub pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parses `K=V;...` (empty string = no pairs). A pair that does not split on `=` into
    /// exactly two parts is an error (the Go lib says `ARGS: invalid pair "x"`).
    pub fn parse(raw: &str) -> Result<CniArgs> {
        todo!("{raw}")
    }

    /// The value of `key` (case-sensitive), if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Checks that every key is in `known`, unless `IgnoreUnknown` is `1`/`true` (any case):
    /// the reference fails with `ARGS: unknown args [...]` otherwise.
    pub fn check_known(&self, known: &[&str]) -> Result<()> {
        todo!("{known:?}")
    }
}

impl CmdArgs {
    /// Reads and validates the `CNI_*` variables from `vars` (the process environment in
    /// production, a map in tests) for the verb they name; `stdin` is kept as is.
    pub fn from_vars(vars: &BTreeMap<String, OsString>, stdin: Vec<u8>) -> Result<CmdArgs> {
        todo!("{vars:?} {stdin:?}")
    }
}
