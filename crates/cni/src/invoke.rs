//! Delegation: running another plugin (IPAM) found in `CNI_PATH` with the same environment
//! and stdin, only `CNI_COMMAND` changed (SPEC.md "Delegated plugins"; cni-notes §1.8).
//! The delegate's stderr goes to ours; its error object is returned with its code.

use crate::args::{CmdArgs, Command};
use crate::error::{Error, ErrorResult, Result, code};
use crate::result::CniResult;
use crate::version::Version;
use serde_json::Value;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

/// How often a spawn failing with ETXTBSY is retried, and the pause between tries (Go
/// `pkg/invoke/raw_exec.go`: 5 retries, 1 s apart). ETXTBSY happens when the binary was just
/// written and another process still holds it open for writing (an installer copying it,
/// or a fork of a thread that had it open).
const TEXT_FILE_BUSY_RETRIES: u32 = 5;
const TEXT_FILE_BUSY_PAUSE: Duration = Duration::from_secs(1);

/// Runs `plugin_type` with `command` and the request's stdin; returns its parsed stdout
/// (`None` when it printed nothing). A missing binary is code
/// [`crate::error::code::DELEGATE`]; an empty type fails like the reference
/// (`no plugin name provided`).
///
/// Spec: SPEC.md "Delegated plugins", cni-notes §1.8 and §1.9 "Exec details". The binary is
/// the first regular, executable file named `plugin_type` in `args.path`. It inherits our
/// environment with every `CNI_*` variable set from `args` (so a hand-built [`CmdArgs`]
/// works too) and `CNI_COMMAND` = `command`; its stdin is `args.stdin`, its stderr is ours.
/// On a non-zero exit its stdout is read as an error object and returned with its code
/// (code `DELEGATE` if there is none); a successful stdout that is not JSON is code 6.
pub fn delegate(plugin_type: &str, command: Command, args: &CmdArgs) -> Result<Option<Value>> {
    let binary = find_plugin(plugin_type, &args.path)?;
    log::debug!("delegating {command} to {}", binary.display());
    let output = run_plugin(&binary, command, args).map_err(|e| {
        Error::plugin(
            code::DELEGATE,
            format!("failed to run plugin {plugin_type:?}"),
            Some(format!("{}: {e}", binary.display())),
        )
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(match serde_json::from_str::<ErrorResult>(&stdout) {
            Ok(wire) => Error::from(wire),
            Err(_) => Error::plugin(
                code::DELEGATE,
                format!("plugin {plugin_type:?} failed ({})", output.status),
                (!stdout.trim().is_empty()).then(|| stdout.trim().to_owned()),
            ),
        });
    }
    if stdout.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&stdout)
        .map(Some)
        .map_err(|e| Error::Decode {
            msg: format!("failed to decode the output of plugin {plugin_type:?}: {e}"),
            details: Some(stdout.into_owned()),
        })
}

/// ADD through a delegate, its result converted to canonical form (IPAM results arrive in
/// the config's version).
///
/// A delegate that succeeds without printing a result is code
/// [`crate::error::code::DELEGATE`]; a result without `cniVersion` is read in `version`.
pub fn delegate_add(plugin_type: &str, args: &CmdArgs, version: Version) -> Result<CniResult> {
    let value = delegate(plugin_type, Command::Add, args)?.ok_or_else(|| {
        Error::plugin(
            code::DELEGATE,
            format!("plugin {plugin_type:?} returned no result for ADD"),
            None,
        )
    })?;
    CniResult::from_prev_result(&value, version)
}

/// The first regular, executable file named `plugin_type` in `path` (Go `FindInPath`, which
/// also rejects a type holding a path separator: it must not reach outside `CNI_PATH`).
fn find_plugin(plugin_type: &str, path: &[PathBuf]) -> Result<PathBuf> {
    if plugin_type.is_empty() {
        return Err(Error::invalid_config("no plugin name provided"));
    }
    if plugin_type.contains('/') {
        return Err(Error::InvalidConfig {
            msg: format!("invalid plugin name {plugin_type:?}: must not contain '/'"),
            details: None,
        });
    }
    path.iter()
        .map(|dir| dir.join(plugin_type))
        .find(|candidate| is_executable_file(candidate))
        .ok_or_else(|| {
            let dirs: Vec<String> = path.iter().map(|d| d.display().to_string()).collect();
            Error::plugin(
                code::DELEGATE,
                format!(
                    "failed to find plugin {plugin_type:?} in path [{}]",
                    dirs.join(" ")
                ),
                None,
            )
        })
}

/// A regular file (symlinks followed) with an execute bit.
fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Spawns the plugin (retrying ETXTBSY), feeds its stdin from a scoped thread so a plugin
/// that writes before reading cannot deadlock us, and collects stdout.
fn run_plugin(binary: &Path, command: Command, args: &CmdArgs) -> io::Result<Output> {
    let mut retries = 0;
    let mut child = loop {
        let spawned = std::process::Command::new(binary)
            .envs(args.to_env(command))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        match spawned {
            Err(e)
                if e.kind() == io::ErrorKind::ExecutableFileBusy
                    && retries < TEXT_FILE_BUSY_RETRIES =>
            {
                retries += 1;
                log::debug!("{}: {e}; retry {retries}", binary.display());
                std::thread::sleep(TEXT_FILE_BUSY_PAUSE);
            }
            other => break other?,
        }
    };
    let stdin = child.stdin.take();
    std::thread::scope(|scope| {
        if let Some(mut stdin) = stdin {
            scope.spawn(move || {
                // A plugin may exit without reading its stdin (EPIPE): its exit status and
                // stdout tell what happened, so the write error itself is not an error.
                if let Err(e) = stdin.write_all(&args.stdin) {
                    log::debug!("writing the delegate's stdin: {e}");
                }
            });
        }
        child.wait_with_output()
    })
}
