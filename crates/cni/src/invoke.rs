//! Delegation: running another plugin (IPAM) found in `CNI_PATH` with the same environment
//! and stdin, only `CNI_COMMAND` changed (SPEC.md "Delegated plugins"; docs/spec.md#delegation).
//! The delegate's stderr goes to ours; its error object is returned with its code.

use crate::args::{CmdArgs, Command};
use crate::built_in::{self, BuiltIn};
use crate::error::{Error, ErrorResult, Result, code};
use crate::result::CniResult;
use crate::skel::Outcome;
use crate::version::Version;
use nix::fcntl::{FcntlArg, fcntl};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::{OsString, c_int};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Output, Stdio};
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
/// Spec: SPEC.md "Delegated plugins", docs/spec.md#delegation. The binary is
/// the first regular, executable file named `plugin_type` in `args.path`. It inherits our
/// environment with every `CNI_*` variable set from `args` (so a hand-built [`CmdArgs`]
/// works too) and `CNI_COMMAND` = `command`; its stdin is `args.stdin`, its stderr is ours.
/// On a non-zero exit its stdout is read as an error object and returned with its code
/// (code `DELEGATE` if there is none); a successful stdout that is not JSON is code 6.
pub fn delegate(plugin_type: &str, command: Command, args: &CmdArgs) -> Result<Option<Value>> {
    spawn_delegate(plugin_type, command, args)?.finish()
}

/// ADD through a delegate, its result converted to canonical form (IPAM results arrive in
/// the config's version).
///
/// A delegate that succeeds without printing a result is code
/// [`crate::error::code::DELEGATE`]; a result without `cniVersion` is read in `version`.
pub fn delegate_add(plugin_type: &str, args: &CmdArgs, version: Version) -> Result<CniResult> {
    spawn_delegate(plugin_type, Command::Add, args)?.finish_add(version)
}

/// Starts [`delegate`]'s process without waiting for it, so it runs while the caller does
/// other work: a process start costs about a millisecond and IPAM is independent of most
/// of an interface plugin's kernel work. The request goes to its stdin on
/// [`Pending::send`] (or [`Pending::finish`]): until then it waits, fully loaded, for its
/// input — so a DEL can start IPAM early yet release the address only after the interface
/// is gone.
///
/// When the file found is our own build of a plugin this binary carries
/// ([`crate::built_in`]), no process is started: the plugin runs in this process on
/// [`Pending::send`], with the environment and stdin the process would have had.
pub fn spawn_delegate(plugin_type: &str, command: Command, args: &CmdArgs) -> Result<Pending> {
    let binary = find_plugin(plugin_type, &args.path)?;
    let request = Some(args.stdin.clone());
    if let Some(plugin) = built_in::standing_in_for(plugin_type, &binary) {
        log::debug!(
            "delegating {command} to the built-in {plugin_type} ({} is ours)",
            binary.display()
        );
        return Ok(Pending {
            plugin_type: plugin_type.to_owned(),
            request,
            delegate: Delegate::BuiltIn {
                plugin,
                vars: delegate_vars(command, args),
                answer: None,
            },
        });
    }
    log::debug!("delegating {command} to {}", binary.display());
    let child = spawn_plugin(&binary, command, args).map_err(|e| {
        Error::plugin(
            code::DELEGATE,
            format!("failed to run plugin {plugin_type:?}"),
            Some(format!("{}: {e}", binary.display())),
        )
    })?;
    Ok(Pending {
        plugin_type: plugin_type.to_owned(),
        request,
        delegate: Delegate::Process {
            child: Some(child),
            writer: None,
        },
    })
}

/// A delegate that was started by [`spawn_delegate`] and not yet waited for.
///
/// Dropping a process unfinished sends the request if it was not sent and waits for the
/// process (never kills it): an IPAM plugin killed mid-way could hold a reservation nobody
/// knows about, while one that completes leaves a state the caller's rollback DEL undoes.
/// A built-in delegate dropped before its request was sent never runs.
pub struct Pending {
    plugin_type: String,
    request: Option<Vec<u8>>,
    delegate: Delegate,
}

enum Delegate {
    /// A child process; `writer` is the thread writing a request too large for the pipe.
    Process {
        child: Option<Child>,
        writer: Option<std::thread::JoinHandle<()>>,
    },
    /// Our own build of the plugin, run here when the request is sent.
    BuiltIn {
        plugin: &'static BuiltIn,
        vars: BTreeMap<String, OsString>,
        answer: Option<Answer>,
    },
}

impl Pending {
    /// Sends the request to the delegate's stdin (a built-in delegate runs now). Later
    /// calls do nothing.
    ///
    /// A request that fits in the pipe (grown with `F_SETPIPE_SZ` if it has to be) is
    /// written right here: that write cannot block, whatever the delegate does. Only a
    /// larger one is written from a thread, so a delegate that writes before it reads
    /// cannot deadlock us. Measured: a thread start puts glibc's thread code and a second
    /// malloc arena into the plugin's resident set (about 0.2 MB, see BENCHMARKS.md).
    pub fn send(&mut self) {
        let Some(request) = self.request.take() else {
            return;
        };
        match &mut self.delegate {
            Delegate::Process { child, writer } => {
                let Some(mut stdin) = child.as_mut().and_then(|c| c.stdin.take()) else {
                    return;
                };
                if pipe_holds(&stdin, request.len()) {
                    write_request(&mut stdin, &request);
                } else {
                    *writer = Some(std::thread::spawn(move || {
                        write_request(&mut stdin, &request)
                    }));
                }
            }
            Delegate::BuiltIn {
                plugin,
                vars,
                answer,
            } => *answer = Some(Answer::from(plugin.dispatch(vars, request))),
        }
    }

    /// Sends the request if not sent yet, waits, and parses the answer as [`delegate`] does.
    pub fn finish(mut self) -> Result<Option<Value>> {
        self.send();
        let plugin_type = std::mem::take(&mut self.plugin_type);
        let answer = self.wait().map_err(|e| {
            Error::plugin(
                code::DELEGATE,
                format!("failed to run plugin {plugin_type:?}"),
                Some(e.to_string()),
            )
        })?;
        parse_output(&plugin_type, &answer)
    }

    /// [`Pending::finish`] for ADD: the result in canonical form, read in `version` when it
    /// has no `cniVersion`; no result at all is code [`crate::error::code::DELEGATE`].
    pub fn finish_add(self, version: Version) -> Result<CniResult> {
        let plugin_type = self.plugin_type.clone();
        let value = self.finish()?.ok_or_else(|| {
            Error::plugin(
                code::DELEGATE,
                format!("plugin {plugin_type:?} returned no result for ADD"),
                None,
            )
        })?;
        CniResult::from_prev_result(&value, version)
    }

    fn wait(&mut self) -> io::Result<Answer> {
        let already = || io::Error::other("already waited for");
        match &mut self.delegate {
            Delegate::Process { child, writer } => {
                let output = child.take().ok_or_else(already)?.wait_with_output();
                if let Some(writer) = writer.take() {
                    let _ = writer.join();
                }
                output.map(Answer::from)
            }
            Delegate::BuiltIn { answer, .. } => answer.take().ok_or_else(already),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Delegate::Process { child: Some(_), .. } = self.delegate {
            self.send();
            if let Err(e) = self.wait() {
                log::warn!("waiting for delegate {:?}: {e}", self.plugin_type);
            }
        }
    }
}

/// The environment a delegate process gets: ours, with every `CNI_*` variable from `args`
/// and `CNI_COMMAND` = `command` (names that are not UTF-8 cannot be CNI variables and are
/// left out, as the dispatcher leaves them out).
fn delegate_vars(command: Command, args: &CmdArgs) -> BTreeMap<String, OsString> {
    let mut vars: BTreeMap<String, OsString> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
        .collect();
    vars.extend(
        args.to_env(command)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    vars
}

/// What a finished delegate left: its stdout, and how it ended if it failed.
struct Answer {
    stdout: Vec<u8>,
    failure: Option<String>,
}

impl From<Output> for Answer {
    fn from(output: Output) -> Answer {
        Answer {
            failure: (!output.status.success()).then(|| output.status.to_string()),
            stdout: output.stdout,
        }
    }
}

impl From<Outcome> for Answer {
    fn from(outcome: Outcome) -> Answer {
        // What the process would have written to the stderr it shares with ours.
        if !outcome.stderr.is_empty() {
            let _ = io::stderr().write_all(outcome.stderr.as_bytes());
        }
        Answer {
            failure: (outcome.exit_code != 0)
                .then(|| format!("exit status: {}", outcome.exit_code)),
            stdout: outcome.stdout.into_bytes(),
        }
    }
}

/// Writes a delegate's request and closes its stdin.
fn write_request(stdin: &mut ChildStdin, request: &[u8]) {
    // A plugin may exit without reading its stdin (EPIPE): its exit status and stdout
    // tell what happened, so the write error itself is not an error.
    if let Err(e) = stdin.write_all(request) {
        log::debug!("writing the delegate's stdin: {e}");
    }
}

/// The most a delegate's stdin pipe is grown to: Linux's default `pipe-max-size`, which
/// root could exceed, but the kernel buffer is ours to keep small.
const MAX_PIPE_SIZE: usize = 1 << 20;

/// Whether `len` bytes fit in the pipe behind `stdin` without blocking, growing the pipe
/// (Linux `F_SETPIPE_SZ`) up to [`MAX_PIPE_SIZE`] if needed.
fn pipe_holds(stdin: &ChildStdin, len: usize) -> bool {
    let Some(wanted) = (len <= MAX_PIPE_SIZE).then_some(len as c_int) else {
        return false;
    };
    let holds = |arg| fcntl(stdin, arg).is_ok_and(|capacity| capacity >= wanted);
    holds(FcntlArg::F_GETPIPE_SZ) || holds(FcntlArg::F_SETPIPE_SZ(wanted))
}

/// A finished delegate's output: its result (`None` if it printed nothing), or its error.
fn parse_output(plugin_type: &str, answer: &Answer) -> Result<Option<Value>> {
    let stdout = String::from_utf8_lossy(&answer.stdout);
    if let Some(failure) = &answer.failure {
        return Err(match serde_json::from_str::<ErrorResult>(&stdout) {
            Ok(wire) => Error::from(wire),
            Err(_) => Error::plugin(
                code::DELEGATE,
                format!("plugin {plugin_type:?} failed ({failure})"),
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

/// Spawns the plugin with piped stdin and stdout, retrying ETXTBSY.
fn spawn_plugin(binary: &Path, command: Command, args: &CmdArgs) -> io::Result<Child> {
    let mut retries = 0;
    loop {
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
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::CniArgs;
    use std::fs;
    use tempfile::TempDir;

    /// Writes an executable shell script `name` into `dir`.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn args_with_path(path: Vec<PathBuf>) -> CmdArgs {
        CmdArgs {
            command: Command::Add,
            container_id: "ctr1".into(),
            netns: Some("/run/netns/x".into()),
            ifname: "eth0".into(),
            args: CniArgs::parse("IgnoreUnknown=1;IP=10.0.0.9"),
            path,
            stdin: br#"{"cniVersion":"1.0.0","name":"n"}"#.to_vec(),
        }
    }

    #[test]
    fn plugin_names_are_checked_before_the_search() {
        let args = args_with_path(vec!["/nonexistent".into()]);
        let cases = [
            ("", 7, "no plugin name provided".to_owned()),
            (
                "../bin/sh",
                7,
                "invalid plugin name \"../bin/sh\": must not contain '/'".to_owned(),
            ),
            (
                "nothere",
                code::DELEGATE,
                "failed to find plugin \"nothere\" in path [/nonexistent]".to_owned(),
            ),
        ];
        for (plugin_type, code, msg) in cases {
            let err = delegate(plugin_type, Command::Add, &args).unwrap_err();
            assert_eq!((err.code(), err.msg()), (code, msg), "{plugin_type:?}");
        }
    }

    #[test]
    fn finds_the_first_regular_executable_file() {
        let (a, b, c) = (
            TempDir::new().unwrap(),
            TempDir::new().unwrap(),
            TempDir::new().unwrap(),
        );
        // Skipped: a directory and a file without an execute bit.
        fs::create_dir(a.path().join("ipam")).unwrap();
        fs::write(b.path().join("ipam"), "#!/bin/sh\necho '{}'\n").unwrap();
        script(c.path(), "ipam", "echo '{\"from\": \"c\"}'");
        let args = args_with_path(vec![a.path().into(), b.path().into(), c.path().into()]);
        let out = delegate("ipam", Command::Add, &args).unwrap();
        assert_eq!(out, Some(serde_json::json!({"from": "c"})));
    }

    #[test]
    fn a_spawned_delegate_gets_its_request_only_when_sent() {
        let dir = TempDir::new().unwrap();
        // The file appears only once stdin reached EOF, i.e. after the request was sent.
        script(
            dir.path(),
            "ipam",
            r#"cat > "$0.tmp"; mv "$0.tmp" "$0.stdin"; echo '{"ok": true}'"#,
        );
        let args = args_with_path(vec![dir.path().into()]);
        let pending = spawn_delegate("ipam", Command::Del, &args).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !dir.path().join("ipam.stdin").exists(),
            "the delegate must wait for its request"
        );
        assert_eq!(pending.finish().unwrap().unwrap()["ok"], true);
        assert_eq!(fs::read(dir.path().join("ipam.stdin")).unwrap(), args.stdin);
    }

    #[test]
    fn dropping_an_unfinished_delegate_sends_the_request_and_waits_for_it() {
        let dir = TempDir::new().unwrap();
        script(
            dir.path(),
            "ipam",
            r#"cat > "$0.tmp"; sleep 0.2; mv "$0.tmp" "$0.done""#,
        );
        let args = args_with_path(vec![dir.path().into()]);
        drop(spawn_delegate("ipam", Command::Add, &args).unwrap());
        assert_eq!(fs::read(dir.path().join("ipam.done")).unwrap(), args.stdin);
    }

    #[test]
    fn passes_environment_and_stdin_and_returns_stdout() {
        let dir = TempDir::new().unwrap();
        script(
            dir.path(),
            "ipam",
            r#"cat > "$0.stdin"
printf '{"env": "%s|%s|%s|%s|%s|%s"}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH""#,
        );
        let mut args = args_with_path(vec![dir.path().into(), "/second".into()]);
        args.netns = None;
        let out = delegate("ipam", Command::Del, &args).unwrap().unwrap();
        assert_eq!(
            out["env"],
            format!(
                "DEL|ctr1||eth0|IgnoreUnknown=1;IP=10.0.0.9|{}:/second",
                dir.path().display()
            )
        );
        assert_eq!(fs::read(dir.path().join("ipam.stdin")).unwrap(), args.stdin);
    }

    #[test]
    fn failures_keep_the_delegate_code_or_name_the_plugin() {
        let dir = TempDir::new().unwrap();
        script(
            dir.path(),
            "busy",
            r#"echo '{"cniVersion": "1.0.0", "code": 11, "msg": "try later"}'; exit 1"#,
        );
        script(
            dir.path(),
            "custom",
            r#"echo '{"code": 150, "msg": "m", "details": "d"}'; exit 2"#,
        );
        script(dir.path(), "silent", "exit 3");
        script(dir.path(), "garbage", "echo 'not json'; exit 1");
        let args = args_with_path(vec![dir.path().into()]);
        let cases = [
            ("busy", 11, "try later", None),
            ("custom", 150, "m", Some("d")),
            (
                "silent",
                code::DELEGATE,
                "plugin \"silent\" failed (exit status: 3)",
                None,
            ),
            (
                "garbage",
                code::DELEGATE,
                "plugin \"garbage\" failed (exit status: 1)",
                Some("not json"),
            ),
        ];
        for (plugin_type, code, msg, details) in cases {
            let err = delegate(plugin_type, Command::Check, &args).unwrap_err();
            assert_eq!(
                (err.code(), err.msg().as_str(), err.details()),
                (code, msg, details),
                "{plugin_type}"
            );
        }
    }

    #[test]
    fn success_output_empty_garbage_and_missing_add_result() {
        let dir = TempDir::new().unwrap();
        script(dir.path(), "quiet", "true");
        script(dir.path(), "noisy", "echo 'not json'");
        let args = args_with_path(vec![dir.path().into()]);
        assert_eq!(delegate("quiet", Command::Del, &args).unwrap(), None);
        assert_eq!(
            delegate("noisy", Command::Del, &args).unwrap_err().code(),
            6
        );
        let err = delegate_add("quiet", &args, Version::V1_0_0).unwrap_err();
        assert_eq!(err.code(), code::DELEGATE);
        assert_eq!(err.msg(), "plugin \"quiet\" returned no result for ADD");
    }

    #[test]
    fn delegate_add_reads_a_versionless_result_in_the_config_version() {
        let dir = TempDir::new().unwrap();
        script(
            dir.path(),
            "legacy",
            r#"echo '{"ip4": {"ip": "10.0.0.2/24"}}'"#,
        );
        script(
            dir.path(),
            "modern",
            r#"echo '{"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.3/24"}]}'"#,
        );
        let args = args_with_path(vec![dir.path().into()]);
        let legacy = delegate_add("legacy", &args, Version::V0_2_0).unwrap();
        assert_eq!(legacy.ips[0].address.to_string(), "10.0.0.2/24");
        let modern = delegate_add("modern", &args, Version::V0_4_0).unwrap();
        assert_eq!(modern.ips[0].address.to_string(), "10.0.0.3/24");
    }

    #[test]
    fn a_delegate_that_ignores_a_large_stdin_does_not_hang() {
        let dir = TempDir::new().unwrap();
        script(dir.path(), "deaf", "echo '{}'");
        let mut args = args_with_path(vec![dir.path().into()]);
        // Beyond the default 64 KiB pipe (grown, written inline) and beyond the most we
        // grow it to (written from a thread).
        for len in [512 << 10, 4 << 20] {
            args.stdin = vec![b' '; len];
            assert!(
                delegate("deaf", Command::Add, &args).unwrap().is_some(),
                "{len}"
            );
        }
    }

    #[test]
    fn text_file_busy_is_retried() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("fresh");
        let mut writer = fs::File::create(&path).unwrap();
        writer.write_all(b"#!/bin/sh\necho '{}'\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        // Still open for writing: exec fails with ETXTBSY until the writer is closed.
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            drop(writer);
        });
        let args = args_with_path(vec![dir.path().into()]);
        assert!(delegate("fresh", Command::Add, &args).unwrap().is_some());
        closer.join().unwrap();
    }
}
