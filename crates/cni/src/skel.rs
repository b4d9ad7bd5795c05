//! The dispatcher every plugin's `main` calls: reads the environment and stdin, answers
//! VERSION, validates, calls the plugin's verb, prints exactly one JSON document and exits
//! with 0 or the error's code (never panics: a panic becomes a code-999 error).
//! Order of checks follows the Go skel (cni-notes §1.12), with the differences noted there.

use crate::args::CmdArgs;
use crate::config::NetConf;
use crate::error::Result;
use crate::result::CniResult;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::ffi::OsString;

/// What a plugin is, for VERSION and for a person running the binary by hand.
#[derive(Debug, Clone, Copy)]
pub struct About {
    /// The plugin type, e.g. `bridge`.
    pub name: &'static str,
    /// The suite's version (the crate version).
    pub version: &'static str,
}

/// One validated request, handed to a plugin's verb.
#[derive(Debug, Clone)]
pub struct Request<C> {
    /// The environment.
    pub args: CmdArgs,
    /// The well-known config keys (version, name, ipam type, prevResult, ...).
    pub net: NetConf,
    /// The plugin's own config keys, parsed from the same stdin.
    pub config: C,
}

/// A CNI plugin: implements the verbs; the dispatcher does the rest.
pub trait Plugin {
    /// The plugin-specific configuration (unknown keys ignored).
    type Config: DeserializeOwned;

    /// ADD: returns the result, printed by the dispatcher in the request's version.
    fn add(&self, req: Request<Self::Config>) -> Result<CniResult>;
    /// DEL: best effort, idempotent.
    fn del(&self, req: Request<Self::Config>) -> Result<()>;
    /// CHECK.
    fn check(&self, req: Request<Self::Config>) -> Result<()>;
    /// STATUS (1.1.0); default: ready.
    fn status(&self, req: Request<Self::Config>) -> Result<()> {
        let _ = req;
        Ok(())
    }
    /// GC (1.1.0); default: nothing to collect.
    fn gc(&self, req: Request<Self::Config>) -> Result<()> {
        let _ = req;
        Ok(())
    }
}

/// What one dispatch produced: exactly what the process prints and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Stdout (one JSON document, or empty).
    pub stdout: String,
    /// Stderr text (the about text when run by hand; logs go through `log`).
    pub stderr: String,
    /// Exit code: 0 or the error code (clamped to 1..=255 for the OS; see `run`).
    pub exit_code: i32,
}

/// Dispatches one invocation without touching the process (testable): `vars` is the
/// environment, `stdin` the input.
pub fn dispatch<P: Plugin>(
    plugin: &P,
    about: About,
    vars: &BTreeMap<String, OsString>,
    stdin: Vec<u8>,
) -> Outcome {
    todo!(
        "{plugin:p} {about:?} {vars:?} {stdin:?}",
        plugin = plugin as *const P
    )
}

/// The plugin's `main`: installs the stderr logger, reads the process environment and stdin,
/// dispatches, prints, exits.
pub fn run<P: Plugin>(plugin: P, about: About) -> ! {
    todo!("{:p} {about:?}", &plugin)
}
