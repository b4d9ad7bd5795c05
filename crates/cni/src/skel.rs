//! The dispatcher every plugin's `main` calls: reads the environment and stdin, answers
//! VERSION, validates, calls the plugin's verb, prints exactly one JSON document and exits
//! with 0 or the error's code (never panics: a panic becomes a code-999 error).
//! Order of checks follows the Go skel (docs/spec.md#dispatch), with the differences noted there.

use crate::args::{CmdArgs, Command};
use crate::config::NetConf;
use crate::document::{Document, NotADocument};
use crate::error::{Error, Result};
use crate::json;
use crate::names;
use crate::result::CniResult;
use crate::version::Version;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::panic::{self, AssertUnwindSafe};

/// The largest network config read from stdin: 1 MiB, a thousand times a large real one
/// (a conflist entry with `runtimeConfig` and a `prevResult` is a few KiB). A longer input
/// is refused with code 7 before it is parsed, so a runaway or hostile runtime cannot make
/// the plugin build a JSON tree many times its size in memory (a 100 MB array of numbers
/// took 1.66 GB). Documented in README.md ("Limits").
pub const MAX_STDIN_BYTES: usize = 1024 * 1024;

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

    /// The oldest spec version the plugin speaks: VERSION lists it and the newer ones, and
    /// a config of an older version is refused with code 1, as the Go skel refuses it.
    const OLDEST_VERSION: Version = Version::V0_1_0;

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
///
/// Order (docs/spec.md#dispatch): no `CNI_COMMAND` (absent or empty, as Go's `Getenv` cannot tell
/// them apart) → the about text on stderr, exit 0; VERSION → the version document (stdin
/// ignored); the environment (code 4); stdin's size ([`MAX_STDIN_BYTES`], code 7); stdin as
/// JSON (code 6); the network name (code 7); `cniVersion` (code 1 unknown, 6 malformed); the
/// CHECK/STATUS/GC version gates (code 1); the typed config (code 7 naming the field, 2 for
/// an unknown key in a strict section or an array where an object is required); an ADD or
/// DEL in the plugin's own netns (code 8; DEL first runs without the netns); the verb. ADD
/// prints its result in the request's version; other verbs print nothing.
/// An error prints the spec's error object, with `cniVersion` when stdin named a known one.
/// A panic anywhere becomes code 999 `plugin panicked: ...`.
pub fn dispatch<P: Plugin>(
    plugin: &P,
    about: About,
    vars: &BTreeMap<String, OsString>,
    stdin: Vec<u8>,
) -> Outcome {
    dispatch_reading(plugin, about, vars, || Ok(stdin), &mut io::sink())
}

/// The plugin's `main`: installs the stderr logger, reads the process environment and stdin,
/// dispatches, prints, exits.
///
/// Stdin is read only for verbs that use it (not for VERSION or the about text), so a
/// runtime that leaves stdin open cannot hang a VERSION probe. The exit code is the error's
/// code when it fits in 1..=255, else 1 (999 for instance), where the Go skel always exits
/// with 1: a runtime reads the code from stdout either way, and a person gets a hint.
pub fn run<P: Plugin>(plugin: P, about: About) -> ! {
    // std's runtime start-up, which `plugin_main!` skips, ignores SIGPIPE so that a closed
    // stdout is an EPIPE error rather than a kill; keep that. Children get the default
    // back: std::process resets SIGPIPE in every child it spawns.
    // SAFETY: installs SIG_IGN, no handler code; nothing else in the process handles SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    guard_standard_fds();
    crate::log::init(about.name);
    panic::set_hook(Box::new(|info| {
        log::error!("{info}");
    }));
    // Non-UTF-8 variable *names* cannot be CNI variables; values stay raw (CNI_NETNS, CNI_PATH).
    let vars: BTreeMap<String, OsString> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
        .collect();
    let read_stdin = || {
        let mut stdin = Vec::new();
        // One byte past the limit is enough to know it is exceeded.
        let limit = MAX_STDIN_BYTES as u64 + 1;
        io::stdin().lock().take(limit).read_to_end(&mut stdin)?;
        Ok(stdin)
    };
    // Not io::stdout(): std reports a write to a closed (EBADF) stdout as a success, and
    // the result of an ADD must be known to have been written.
    // SAFETY: fd 1 is open (guard_standard_fds); ManuallyDrop leaves it open after use.
    let mut stdout =
        std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(libc::STDOUT_FILENO) });
    let outcome = dispatch_reading(&plugin, about, &vars, read_stdin, &mut *stdout);
    // Nothing useful can be done if the runtime closed our stderr.
    let _ = io::stderr().lock().write_all(outcome.stderr.as_bytes());
    // Everything is written: leave without libc's exit path (atexit handlers, stdio
    // teardown), code that would only be paged in to run once.
    // SAFETY: _exit ends the process at once; nothing of ours is left to flush or join.
    unsafe { libc::_exit(outcome.exit_code) }
}

/// Puts `/dev/null` on whichever of fds 0, 1 and 2 the runtime left closed, as std's
/// start-up does (skipped by `plugin_main!`): else the next file or socket opened would get
/// the number, and the result would be written into it. Stdout gets a read-only
/// `/dev/null`, so writing an ADD result to it fails and the ADD is undone: a runtime that
/// closed our stdout cannot receive the result.
fn guard_standard_fds() {
    for (fd, flags) in [
        (libc::STDIN_FILENO, libc::O_RDONLY),
        (libc::STDOUT_FILENO, libc::O_RDONLY),
        (libc::STDERR_FILENO, libc::O_WRONLY),
    ] {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
            && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
        if closed {
            // open returns the lowest free number, which is `fd`: the lower ones are open.
            // SAFETY: a NUL-terminated path; the descriptor is deliberately kept for life.
            unsafe { libc::open(c"/dev/null".as_ptr(), flags) };
        }
    }
}

/// Defines a plugin binary's entry point: a C `main` that calls [`run`] with the plugin
/// and its name (the version is the calling crate's). Put `#![cfg_attr(not(test),
/// no_main)]` at the top of the binary's `main.rs`.
///
/// Why not `fn main`: std's runtime start-up (`lang_start`) finds the main thread's stack
/// bounds through glibc's `pthread_getattr_np`, which reads `/proc/self/maps` with stdio
/// and `sscanf`, and installs the stack-overflow signal handlers with their alternate
/// stack. Measured on a hello-world with the release profile: peak RSS 1.62 -> 1.27 MB and
/// 66 -> 45 syscalls (strace lines) without it. What the plugins lose is the "has
/// overflowed its stack" message (a stack overflow is still a SIGSEGV) — and the SIGPIPE
/// setting, which [`run`] restores.
///
/// `plugin_main!(plugin, "name", otherwise: admin)` also serves a command line: when
/// `CNI_COMMAND` is unset or empty and the binary has arguments, `admin(&args)` (a
/// `fn(&[String]) -> i32`) runs instead of the dispatcher and its value is the exit code.
///
/// `plugin_main!(plugin, "name", built_in: [cni::BuiltIn::of::<P>("type"), …])` carries
/// delegates that run in process when `CNI_PATH` finds our own build of them
/// ([`crate::built_in`]). Every form also marks the binary with the note that such a
/// check reads: owner `cni-rs`, the plugin's name as its text.
#[macro_export]
macro_rules! plugin_main {
    ($plugin:expr, $name:literal, built_in: [$($carried:expr),+ $(,)?]) => {
        $crate::plugin_main!(@note $name);
        $crate::plugin_main!(@entry {
            static CARRIED: &[$crate::BuiltIn] = &[$($carried),+];
            $crate::built_in::carry(CARRIED);
            $crate::plugin_main!(@run $plugin, $name)
        });
    };
    ($plugin:expr, $name:literal, otherwise: $admin:path) => {
        $crate::plugin_main!(@note $name);
        $crate::plugin_main!(@entry {
            let args: Vec<String> = ::std::env::args_os()
                .skip(1)
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect();
            let cni_call = ::std::env::var_os("CNI_COMMAND").is_some_and(|c| !c.is_empty());
            if cni_call || args.is_empty() {
                $crate::plugin_main!(@run $plugin, $name)
            }
            $admin(&args)
        });
        // Unit-test builds have no entry point; this keeps `admin` counted as used there.
        #[cfg(test)]
        const _: fn(&[String]) -> i32 = $admin;
    };
    ($plugin:expr, $name:literal) => {
        $crate::plugin_main!(@note $name);
        $crate::plugin_main!(@entry { $crate::plugin_main!(@run $plugin, $name) });
    };
    // The ELF note `crate::built_in` looks for (type 1 = `built_in::NOTE_TYPE`): an SHT_NOTE
    // section, which the linker gathers with the other notes into the file's first page.
    (@note $name:literal) => {
        ::core::arch::global_asm!(
            ".pushsection .note.cni-rs,\"a\",@note",
            ".balign 4",
            ".long 7",
            ".long 2f - 1f",
            ".long 1",
            ".asciz \"cni-rs\"",
            ".balign 4",
            "1:",
            concat!(".asciz \"", $name, "\""),
            "2:",
            ".balign 4",
            ".popsection",
        );
    };
    (@entry $body:block) => {
        #[cfg(not(test))]
        #[unsafe(no_mangle)]
        extern "C" fn main(
            _argc: ::std::ffi::c_int,
            _argv: *const *const ::std::ffi::c_char,
        ) -> ::std::ffi::c_int $body
    };
    (@run $plugin:expr, $name:literal) => {
        $crate::skel::run(
            $plugin,
            $crate::About {
                name: $name,
                version: env!("CARGO_PKG_VERSION"),
            },
        )
    };
}

/// [`dispatch`] with stdin read lazily by `read_stdin`, after the environment is valid, and
/// the outcome's stdout written to `out`.
///
/// An ADD result that cannot be written (stdout closed, full, a broken pipe) leaves the
/// runtime unable to know what was configured, and it would treat the empty output as a
/// failure anyway: the attachment is removed again with the plugin's own DEL, and the
/// outcome is an I/O error (code 5), so the process exits non-zero.
fn dispatch_reading<P: Plugin>(
    plugin: &P,
    about: About,
    vars: &BTreeMap<String, OsString>,
    read_stdin: impl FnOnce() -> io::Result<Vec<u8>>,
    out: &mut dyn Write,
) -> Outcome {
    // The request's version, once stdin named a known one: error objects carry it.
    let mut known_version = None;
    let mut added = None;
    let result = catch_panic(|| {
        dispatch_checked(
            plugin,
            about,
            vars,
            read_stdin,
            &mut known_version,
            &mut added,
        )
    });
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(err) => error_outcome(&err, known_version),
    };
    let written = out
        .write_all(outcome.stdout.as_bytes())
        .and_then(|()| out.flush());
    match (written, added) {
        (Err(write_error), Some(added)) if outcome.exit_code == 0 => {
            let undone = catch_panic(|| added.undo(plugin, &outcome.stdout));
            let err = Error::Io {
                msg: format!("cannot write the ADD result: {write_error}"),
                details: Some(match undone {
                    Ok(()) => "the ADD was undone".into(),
                    Err(e) => format!("undoing the ADD failed: {e}"),
                }),
            };
            log::error!("{err}: {}", err.details().unwrap_or_default());
            let failed = error_outcome(&err, known_version);
            // Most likely this fails too; the exit code tells the runtime.
            let _ = out
                .write_all(failed.stdout.as_bytes())
                .and_then(|()| out.flush());
            failed
        }
        // Nothing useful can be done if the runtime closed our stdout on another verb.
        _ => outcome,
    }
}

/// Runs `f`, turning a panic into a code-999 `plugin panicked: ...` error.
fn catch_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".into());
        Err(Error::internal(format!("plugin panicked: {what}")))
    })
}

/// What a successful ADD leaves to undo should its result not reach the runtime: the
/// request's environment and config, from which the DEL request is made.
struct AddedAttachment {
    args: CmdArgs,
    version: Version,
}

impl AddedAttachment {
    /// Runs the plugin's DEL for the same attachment, with `printed` (the ADD result as
    /// printed) as `prevResult` from 0.4.0 on, as a runtime sends it (SPEC.md "DEL").
    fn undo<P: Plugin>(self, plugin: &P, printed: &str) -> Result<()> {
        let AddedAttachment { mut args, version } = self;
        let mut config: Value = serde_json::from_slice(&args.stdin)
            .map_err(|e| Error::internal(format!("cannot parse the ADD request again: {e}")))?;
        if let Some(object) = config.as_object_mut() {
            object.insert("cniVersion".into(), version.as_str().into());
            if version.allows_check() {
                if let Ok(result) = serde_json::from_str::<Value>(printed) {
                    object.insert("prevResult".into(), result);
                }
            }
        }
        args.command = Command::Del;
        args.stdin = serde_json::to_vec(&config).map_err(|e| Error::internal(e.to_string()))?;
        let (net, config) = decode_request(&parse_document(&args.stdin)?)?;
        plugin.del(Request { args, net, config })
    }
}

/// Every step of [`dispatch`]; errors are printed by the caller.
fn dispatch_checked<P: Plugin>(
    plugin: &P,
    about: About,
    vars: &BTreeMap<String, OsString>,
    read_stdin: impl FnOnce() -> io::Result<Vec<u8>>,
    known_version: &mut Option<Version>,
    added: &mut Option<AddedAttachment>,
) -> Result<Outcome> {
    match vars.get("CNI_COMMAND").filter(|c| !c.is_empty()) {
        None => {
            return Ok(Outcome::success(
                String::new(),
                about_text(about, P::OLDEST_VERSION),
            ));
        }
        Some(command) if command == "VERSION" => {
            return Ok(Outcome::success(
                version_document(P::OLDEST_VERSION),
                String::new(),
            ));
        }
        Some(_) => {}
    }
    let mut args = CmdArgs::from_vars(vars, Vec::new())?;
    args.stdin = read_stdin().map_err(|e| Error::Io {
        msg: "error reading from stdin".into(),
        details: Some(e.to_string()),
    })?;
    if args.stdin.len() > MAX_STDIN_BYTES {
        return Err(Error::invalid_config(format!(
            "network config on stdin is larger than {MAX_STDIN_BYTES} bytes"
        )));
    }

    let mut doc = parse_document(&args.stdin)?;
    *known_version = doc.get("cniVersion").and_then(|v| v.as_str()?.parse().ok());
    let version = network_name_and_version(&doc)?;
    if version < P::OLDEST_VERSION {
        return Err(Error::IncompatibleVersion {
            msg: "incompatible CNI versions".into(),
            details: Some(format!(
                "config is {:?}, plugin supports [{}]",
                version.as_str(),
                supported(P::OLDEST_VERSION)
                    .map(|v| format!("{:?}", v.as_str()))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        });
    }
    // Both the plugin and NetConf see the version as resolved ("" and absent mean 0.1.0).
    doc.set_str("cniVersion", version.as_str());
    check_version_allows(args.command, version)?;

    let own_netns = match args.command {
        Command::Add | Command::Del if !netns_override(vars) => {
            refuse_own_netns(args.netns.as_deref()).err()
        }
        _ => None,
    };
    let (net, config) = decode_request(&doc)?;
    // Frees the values built for the decodes; `args` (its stdin is borrowed) can then move.
    drop(doc);
    let request = Request { args, net, config };
    if let Some(refused) = own_netns {
        return Err(refuse_in_own_netns(plugin, request, refused));
    }
    let stdout = match request.args.command {
        Command::Add => {
            let args = request.args.clone();
            let printed = plugin.add(request)?.to_json_string(version)?;
            *added = Some(AddedAttachment { args, version });
            printed
        }
        Command::Del => plugin.del(request).map(|()| String::new())?,
        Command::Check => plugin.check(request).map(|()| String::new())?,
        Command::Status => plugin.status(request).map(|()| String::new())?,
        Command::Gc => plugin.gc(request).map(|()| String::new())?,
        // Answered before the environment was read.
        Command::Version => version_document(P::OLDEST_VERSION),
    };
    Ok(Outcome::success(stdout, String::new()))
}

/// Stdin as a config document: code 6 when it is not JSON or not an object.
fn parse_document(stdin: &[u8]) -> Result<Document<'_>> {
    Document::parse(stdin).map_err(|e| Error::Decode {
        msg: match e {
            NotADocument::Syntax(e) => format!("error unmarshalling network config: {e}"),
            NotADocument::NotAnObject => {
                "error unmarshalling network config: expected a JSON object".into()
            }
        },
        details: None,
    })
}

/// Validates the network name (code 7) and reads `cniVersion` (code 6 malformed, 1
/// unknown; absent or empty means 0.1.0).
fn network_name_and_version(doc: &Document<'_>) -> Result<Version> {
    match doc.get("name") {
        None | Some(Value::Null) => names::validate_network_name("")?,
        Some(Value::String(name)) => names::validate_network_name(&name)?,
        Some(other) => {
            return Err(Error::InvalidConfig {
                msg: "invalid network name: expected a string".into(),
                details: Some(other.to_string()),
            });
        }
    }
    match doc.get("cniVersion") {
        None | Some(Value::Null) => Ok(Version::default()),
        Some(Value::String(s)) if s.is_empty() => Ok(Version::default()),
        Some(Value::String(s)) => s.parse(),
        Some(other) => Err(Error::Decode {
            msg: "invalid cniVersion: expected a string".into(),
            details: Some(other.to_string()),
        }),
    }
}

/// The `refused` error of an ADD or DEL whose `CNI_NETNS` is the plugin's own netns. A DEL
/// first runs without the netns: what lives outside it (the IPAM reservation, host-side
/// rules) is still the attachment's and must be released, and nothing inside the netns is
/// touched, as if it were already gone.
fn refuse_in_own_netns<P: Plugin>(
    plugin: &P,
    mut request: Request<P::Config>,
    refused: Error,
) -> Error {
    if request.args.command != Command::Del {
        return refused;
    }
    request.args.netns = None;
    match plugin.del(request) {
        Ok(()) => refused,
        Err(e) => with_details(refused, format!("DEL without the netns: {e}")),
    }
}

/// `CNI_NETNS_OVERRIDE` = `1` or `true` (any case) turns the guard below off (Go lib).
fn netns_override(vars: &BTreeMap<String, OsString>) -> bool {
    vars.get("CNI_NETNS_OVERRIDE")
        .and_then(|v| v.to_str())
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Code 8 when `CNI_NETNS` is the plugin's own netns: a stale `/proc/<pid>/ns/net` that now
/// points at the host must not get the host's interfaces changed (plugins #714). The Go lib
/// checks this only after ADD/DEL ran; we refuse ADD before it runs, and run DEL without the
/// netns before refusing. A path that cannot be read counts as "not the same", as in Go.
fn refuse_own_netns(netns: Option<&std::path::Path>) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let id = |path: &std::path::Path| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let Some(target) = netns.and_then(id) else {
        return Ok(());
    };
    if id(std::path::Path::new("/proc/thread-self/ns/net")) == Some(target) {
        return Err(Error::plugin(
            8,
            "plugin's netns and netns from CNI_NETNS should not be the same",
            netns.map(|p| p.display().to_string()),
        ));
    }
    Ok(())
}

/// `err` with `more` appended to its details.
fn with_details(err: Error, more: String) -> Error {
    let details = match err.details() {
        Some(details) => format!("{details}; {more}"),
        None => more,
    };
    Error::plugin(err.code(), err.to_string(), Some(details))
}

/// The Go skel's minimum versions: CHECK needs 0.4.0, STATUS and GC 1.1.0 (code 1).
fn check_version_allows(command: Command, version: Version) -> Result<()> {
    let allowed = match command {
        Command::Check => version.allows_check(),
        Command::Status | Command::Gc => version.allows_status_and_gc(),
        Command::Add | Command::Del | Command::Version => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::IncompatibleVersion {
            msg: format!("config version does not allow {command}"),
            details: Some(format!("config is {:?}", version.as_str())),
        })
    }
}

/// The well-known keys and the plugin's own, each decoded from the document as
/// [`crate::config::decode`] decodes (the well-known keys' errors first).
fn decode_request<C: DeserializeOwned>(doc: &Document<'_>) -> Result<(NetConf, C)> {
    Ok((
        crate::config::decode_document(doc)?,
        crate::config::decode_document(doc)?,
    ))
}

/// `CNI <name> plugin v<version>` and the supported versions, for a person at a shell.
fn about_text(about: About, oldest: Version) -> String {
    format!(
        "CNI {} plugin v{}\nCNI protocol versions supported: {}\n",
        about.name,
        about.version,
        supported(oldest)
            .map(Version::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The versions from `oldest` on, oldest first.
fn supported(oldest: Version) -> impl Iterator<Item = Version> {
    Version::ALL.into_iter().filter(move |v| *v >= oldest)
}

/// The VERSION answer, compact with a trailing newline like the Go skel's
/// (docs/spec.md#version): `cniVersion` is always the newest version, stdin is not consulted.
fn version_document(oldest: Version) -> String {
    #[derive(Serialize)]
    struct VersionInfo {
        #[serde(rename = "cniVersion")]
        cni_version: Version,
        #[serde(rename = "supportedVersions")]
        supported_versions: Vec<Version>,
    }
    let info = VersionInfo {
        cni_version: Version::CURRENT,
        supported_versions: supported(oldest).collect(),
    };
    match serde_json::to_string(&info) {
        Ok(json) => json + "\n",
        // Unreachable: two strings and a list of strings always encode.
        Err(e) => format!("{{\"error\":{:?}}}\n", e.to_string()),
    }
}

/// The error object on stdout and the exit code.
fn error_outcome(err: &Error, version: Option<Version>) -> Outcome {
    let wire = err.to_wire(version.map(Version::as_str));
    log::debug!("returning error {}: {}", wire.code, wire.msg);
    let stdout = json::to_go_pretty(&wire).unwrap_or_else(|e| {
        // Unreachable: the error object is strings and a number.
        format!(
            "{{\n    \"code\": {},\n    \"msg\": {:?}\n}}",
            wire.code,
            e.to_string()
        )
    });
    Outcome {
        stdout,
        stderr: String::new(),
        exit_code: exit_code_for(err.code()),
    }
}

/// The process exit code for an error code: itself when the OS can carry it (1..=255),
/// else 1.
fn exit_code_for(code: u32) -> i32 {
    i32::try_from(code)
        .ok()
        .filter(|c| (1..=255).contains(c))
        .unwrap_or(1)
}

impl Outcome {
    fn success(stdout: String, stderr: String) -> Outcome {
        Outcome {
            stdout,
            stderr,
            exit_code: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Cidr, Interface, IpConfig};
    use serde::Deserialize;
    use std::cell::Cell;

    const ABOUT: About = About {
        name: "fake",
        version: "0.1.0",
    };

    /// What the fake plugin does, chosen by its config.
    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct FakeConfig {
        #[serde(default)]
        mtu: u32,
        /// Fail every verb with this code.
        #[serde(default)]
        fail_code: Option<u32>,
        /// Panic in every verb.
        #[serde(default)]
        panic: bool,
        /// Return a result without IPs from ADD.
        #[serde(default)]
        layer2: bool,
        #[serde(default)]
        #[allow(dead_code)]
        strict: Option<StrictSection>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StrictSection {
        #[serde(default)]
        #[allow(dead_code)]
        known: bool,
    }

    struct Fake;

    thread_local! {
        /// The netns and stdin of every DEL the fake plugin ran on this thread.
        static DELS: std::cell::RefCell<Vec<(Option<std::path::PathBuf>, Vec<u8>)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// A stdout the runtime closed.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_add_result_that_cannot_be_written_is_undone_and_fails() {
        for (version, with_prev) in [("0.3.1", false), ("1.0.0", true)] {
            DELS.with_borrow_mut(Vec::clear);
            let stdin = format!(r#"{{"cniVersion": "{version}", "name": "n"}}"#);
            let outcome = dispatch_reading(
                &Fake,
                ABOUT,
                &env("ADD"),
                || Ok(stdin.into_bytes()),
                &mut ClosedPipe,
            );
            assert_error(&outcome, 5, "cannot write the ADD result: broken pipe");
            assert_eq!(
                error_of(&outcome).details.as_deref(),
                Some("the ADD was undone")
            );
            let dels = DELS.with_borrow(Clone::clone);
            assert_eq!(dels.len(), 1, "{version}: one DEL");
            let del: Value = serde_json::from_slice(&dels[0].1).unwrap();
            assert_eq!(del["name"], "n");
            assert_eq!(
                del["prevResult"]["ips"][0]["address"].as_str(),
                with_prev.then_some("10.0.0.2/24"),
                "{version}: {del}"
            );
        }
        // Other verbs have nothing to undo: a closed stdout changes nothing for them.
        DELS.with_borrow_mut(Vec::clear);
        let stdin = br#"{"cniVersion": "1.0.0", "name": "n"}"#.to_vec();
        let outcome = dispatch_reading(&Fake, ABOUT, &env("DEL"), || Ok(stdin), &mut ClosedPipe);
        assert_eq!(outcome.exit_code, 0);
        assert_eq!(DELS.with_borrow(Vec::len), 1);
    }

    impl Fake {
        fn act(&self, req: &Request<FakeConfig>) -> Result<()> {
            if req.config.panic {
                panic!("boom in {}", req.args.command);
            }
            match req.config.fail_code {
                Some(code) => Err(Error::from(crate::ErrorResult {
                    cni_version: None,
                    code,
                    msg: "failed on purpose".into(),
                    details: Some("details here".into()),
                })),
                None => Ok(()),
            }
        }
    }

    impl Plugin for Fake {
        type Config = FakeConfig;

        fn add(&self, req: Request<FakeConfig>) -> Result<CniResult> {
            self.act(&req)?;
            let mut result = CniResult {
                interfaces: vec![Interface {
                    name: req.args.ifname.clone(),
                    mtu: Some(req.config.mtu),
                    sandbox: req.args.netns.map(|p| p.display().to_string()),
                    ..Interface::default()
                }],
                ..CniResult::default()
            };
            if !req.config.layer2 {
                result.ips.push(IpConfig {
                    interface: Some(0),
                    address: "10.0.0.2/24".parse::<Cidr>()?,
                    gateway: None,
                });
            }
            Ok(result)
        }

        fn del(&self, req: Request<FakeConfig>) -> Result<()> {
            DELS.with_borrow_mut(|dels| {
                dels.push((req.args.netns.clone(), req.args.stdin.clone()))
            });
            self.act(&req)
        }

        fn check(&self, req: Request<FakeConfig>) -> Result<()> {
            assert_eq!(req.net.name, "net1");
            self.act(&req)
        }

        fn status(&self, req: Request<FakeConfig>) -> Result<()> {
            self.act(&req)
        }
    }

    /// [`Fake`] speaking 0.4.0 and up only.
    struct FromV040;

    impl Plugin for FromV040 {
        type Config = FakeConfig;
        const OLDEST_VERSION: Version = Version::V0_4_0;

        fn add(&self, req: Request<FakeConfig>) -> Result<CniResult> {
            Fake.add(req)
        }
        fn del(&self, req: Request<FakeConfig>) -> Result<()> {
            Fake.del(req)
        }
        fn check(&self, req: Request<FakeConfig>) -> Result<()> {
            Fake.check(req)
        }
    }

    #[test]
    fn versions_older_than_the_plugins_oldest_are_refused_and_not_claimed() {
        let version = dispatch(&FromV040, ABOUT, &env("VERSION"), Vec::new());
        assert_eq!(
            version.stdout,
            "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
        );
        let stdin = br#"{"cniVersion": "0.3.1", "name": "n"}"#.to_vec();
        let outcome = dispatch(&FromV040, ABOUT, &env("ADD"), stdin);
        assert_error(&outcome, 1, "incompatible CNI versions");
        assert_eq!(
            error_of(&outcome).details.as_deref(),
            Some(r#"config is "0.3.1", plugin supports ["0.4.0" "1.0.0" "1.1.0"]"#)
        );
        let stdin = br#"{"cniVersion": "0.4.0", "name": "n"}"#.to_vec();
        let outcome = dispatch(&FromV040, ABOUT, &env("ADD"), stdin);
        assert_eq!(outcome.exit_code, 0, "{outcome:?}");
        let about = dispatch(&FromV040, ABOUT, &BTreeMap::new(), Vec::new());
        assert!(
            about.stderr.ends_with("supported: 0.4.0, 1.0.0, 1.1.0\n"),
            "{about:?}"
        );
    }

    fn env(command: &str) -> BTreeMap<String, OsString> {
        [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "ctr1"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect()
    }

    fn run_fake(command: &str, stdin: &str) -> Outcome {
        dispatch(&Fake, ABOUT, &env(command), stdin.as_bytes().to_vec())
    }

    /// The parsed error object, after checking the outcome is a well-formed error.
    fn error_of(outcome: &Outcome) -> crate::ErrorResult {
        assert!(!outcome.stdout.ends_with('\n'), "{outcome:?}");
        assert!(outcome.stderr.is_empty(), "{outcome:?}");
        let wire: crate::ErrorResult = serde_json::from_str(&outcome.stdout).unwrap();
        assert_eq!(outcome.exit_code, exit_code_for(wire.code), "{outcome:?}");
        wire
    }

    fn assert_error(outcome: &Outcome, code: u32, msg: &str) {
        let wire = error_of(outcome);
        assert_eq!((wire.code, wire.msg.as_str()), (code, msg), "{outcome:?}");
    }

    const VERSION_DOC: &str = "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n";

    #[test]
    fn add_and_del_refuse_the_plugins_own_netns_unless_overridden() {
        let config = r#"{"cniVersion":"1.0.0","name":"net1"}"#;
        for command in ["ADD", "DEL"] {
            let mut vars = env(command);
            vars.insert("CNI_NETNS".into(), "/proc/thread-self/ns/net".into());
            DELS.with_borrow_mut(Vec::clear);
            let outcome = dispatch(&Fake, ABOUT, &vars, config.as_bytes().to_vec());
            assert_error(
                &outcome,
                8,
                "plugin's netns and netns from CNI_NETNS should not be the same",
            );
            // DEL still releases what lies outside the netns: it runs without the netns.
            let dels: Vec<_> = DELS.with_borrow(|d| d.iter().map(|(ns, _)| ns.clone()).collect());
            let want = if command == "DEL" { vec![None] } else { vec![] };
            assert_eq!(dels, want, "{command}");
            vars.insert("CNI_NETNS_OVERRIDE".into(), "TRUE".into());
            let outcome = dispatch(&Fake, ABOUT, &vars, config.as_bytes().to_vec());
            assert_eq!(outcome.exit_code, 0, "{outcome:?}");
        }
    }

    #[test]
    fn malformed_cni_args_reach_only_plugins_that_validate_them() {
        let mut vars = env("ADD");
        vars.insert("CNI_ARGS".into(), "none".into());
        let outcome = dispatch(
            &Fake,
            ABOUT,
            &vars,
            br#"{"cniVersion":"1.0.0","name":"net1"}"#.to_vec(),
        );
        assert_eq!(outcome.exit_code, 0, "{outcome:?}");
    }

    #[test]
    fn version_ignores_stdin_and_other_variables() {
        let only_command = BTreeMap::from([("CNI_COMMAND".to_owned(), "VERSION".into())]);
        for vars in [only_command, env("VERSION")] {
            let outcome = dispatch(&Fake, ABOUT, &vars, b"\xff not json".to_vec());
            assert_eq!(outcome, Outcome::success(VERSION_DOC.into(), String::new()));
        }
    }

    #[test]
    fn without_a_command_prints_the_about_text() {
        let want = "CNI fake plugin v0.1.0\nCNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n";
        let mut empty_command = env("");
        for vars in [BTreeMap::new(), std::mem::take(&mut empty_command)] {
            let outcome = dispatch(&Fake, ABOUT, &vars, Vec::new());
            assert_eq!(outcome, Outcome::success(String::new(), want.into()));
        }
    }

    #[test]
    fn stdin_is_read_only_after_the_environment_checks() {
        let read = Cell::new(false);
        let reader = || {
            read.set(true);
            Ok(b"{}".to_vec())
        };
        let mut bad_env = env("ADD");
        bad_env.remove("CNI_IFNAME");
        for vars in [BTreeMap::new(), env("VERSION"), bad_env] {
            dispatch_reading(&Fake, ABOUT, &vars, reader, &mut io::sink());
            assert!(!read.get(), "{vars:?}");
        }
    }

    #[test]
    fn stdin_over_the_limit_is_code_7() {
        let mut stdin = br#"{"cniVersion": "1.0.0", "name": "n", "pad": ""#.to_vec();
        stdin.resize(MAX_STDIN_BYTES - 2, b' ');
        stdin.extend_from_slice(b"\"}");
        assert_eq!(
            dispatch(&Fake, ABOUT, &env("ADD"), stdin.clone()).exit_code,
            0
        );
        stdin.insert(stdin.len() - 2, b' ');
        let outcome = dispatch(&Fake, ABOUT, &env("ADD"), stdin);
        assert_error(
            &outcome,
            7,
            "network config on stdin is larger than 1048576 bytes",
        );
    }

    #[test]
    fn stdin_read_error_is_code_5() {
        let outcome = dispatch_reading(
            &Fake,
            ABOUT,
            &env("ADD"),
            || Err(io::Error::other("broken pipe")),
            &mut io::sink(),
        );
        assert_error(&outcome, 5, "error reading from stdin");
        assert_eq!(error_of(&outcome).details.as_deref(), Some("broken pipe"));
    }

    #[test]
    fn environment_errors_are_code_4() {
        let mut no_ifname = env("ADD");
        no_ifname.remove("CNI_IFNAME");
        let mut bad_id = env("DEL");
        bad_id.insert("CNI_CONTAINERID".into(), "_x".into());
        let mut long_ifname = env("CHECK");
        long_ifname.insert("CNI_IFNAME".into(), "a234567890123456".into());
        let mut gc_without_path = env("GC");
        gc_without_path.remove("CNI_PATH");
        let cases = [
            (env("BOGUS"), "unknown CNI_COMMAND: BOGUS"),
            (no_ifname, "required env variables [CNI_IFNAME] missing"),
            (bad_id, "invalid characters in containerID"),
            (
                long_ifname,
                "invalid CNI_IFNAME: interface name is too long",
            ),
            (gc_without_path, "required env variables [CNI_PATH] missing"),
        ];
        for (vars, msg) in cases {
            let outcome = dispatch(&Fake, ABOUT, &vars, br#"{"name":"n"}"#.to_vec());
            assert_error(&outcome, 4, msg);
        }
    }

    #[test]
    fn error_object_is_pretty_printed_without_cni_version_when_unknown() {
        let outcome = dispatch(
            &Fake,
            ABOUT,
            &BTreeMap::from([("CNI_COMMAND".to_owned(), "ADD".into())]),
            Vec::new(),
        );
        assert_eq!(
            outcome.stdout,
            "{\n    \"code\": 4,\n    \"msg\": \"required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing\"\n}"
        );
        assert_eq!(outcome.exit_code, 4);
    }

    #[test]
    fn stdin_errors_in_dispatch_order() {
        let cases = [
            (
                "",
                6,
                "error unmarshalling network config: EOF while parsing a value at line 1 column 0",
            ),
            (
                "{\"name\": ",
                6,
                "error unmarshalling network config: EOF while parsing a value at line 1 column 9",
            ),
            (
                "[]",
                6,
                "error unmarshalling network config: expected a JSON object",
            ),
            ("{}", 7, "missing network name"),
            (r#"{"name": ""}"#, 7, "missing network name"),
            (
                r#"{"name": 5}"#,
                7,
                "invalid network name: expected a string",
            ),
            (
                r#"{"name": "-x", "cniVersion": "9.9.9"}"#,
                7,
                "invalid network name: must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$ and be at most 255 bytes",
            ),
            (
                r#"{"name": "n", "cniVersion": "9.9.9"}"#,
                1,
                "incompatible CNI versions",
            ),
            (
                r#"{"name": "n", "cniVersion": "1.0"}"#,
                6,
                "invalid cniVersion \"1.0\"",
            ),
            (
                r#"{"name": "n", "cniVersion": 1}"#,
                6,
                "invalid cniVersion: expected a string",
            ),
        ];
        for (stdin, code, msg) in cases {
            assert_error(&run_fake("ADD", stdin), code, msg);
        }
    }

    #[test]
    fn error_object_carries_a_known_cni_version() {
        let outcome = run_fake(
            "ADD",
            r#"{"cniVersion": "0.4.0", "name": "n", "mtu": "big"}"#,
        );
        assert_eq!(
            outcome.stdout,
            "{\n    \"cniVersion\": \"0.4.0\",\n    \"code\": 7,\n    \"msg\": \"invalid network config: mtu: invalid type: string \\\"big\\\", expected u32\"\n}"
        );
        for stdin in [
            r#"{"cniVersion": "9.9.9"}"#,
            r#"{"name": "n", "mtu": "x"}"#,
            "{",
        ] {
            assert_eq!(
                error_of(&run_fake("ADD", stdin)).cni_version,
                None,
                "{stdin}"
            );
        }
    }

    #[test]
    fn version_gates_for_check_status_and_gc() {
        let cases = [
            (
                "CHECK",
                "0.1.0",
                Some("config version does not allow CHECK"),
            ),
            (
                "CHECK",
                "0.3.1",
                Some("config version does not allow CHECK"),
            ),
            ("CHECK", "0.4.0", None),
            ("CHECK", "1.1.0", None),
            (
                "STATUS",
                "1.0.0",
                Some("config version does not allow STATUS"),
            ),
            ("STATUS", "1.1.0", None),
            ("GC", "0.4.0", Some("config version does not allow GC")),
            ("GC", "1.1.0", None),
        ];
        for (command, version, want) in cases {
            let stdin = format!(r#"{{"cniVersion": "{version}", "name": "net1"}}"#);
            let outcome = run_fake(command, &stdin);
            match want {
                Some(msg) => assert_error(&outcome, 1, msg),
                None => assert_eq!(outcome, Outcome::success(String::new(), String::new())),
            }
        }
    }

    #[test]
    fn config_type_errors_name_the_field() {
        let cases = [
            (
                r#"{"name": "n", "ipMasq": "yes"}"#,
                7,
                "invalid network config: ipMasq: invalid type: string \"yes\", expected a boolean",
            ),
            (
                r#"{"name": "n", "ipam": {"type": 1}}"#,
                7,
                "invalid network config: ipam.type: invalid type: integer `1`, expected a string",
            ),
            (
                r#"{"name": "n", "mtu": -1}"#,
                7,
                "invalid network config: mtu: invalid value: integer `-1`, expected u32",
            ),
            (
                r#"{"name": "n", "strict": {"known": true, "bogus": [1]}}"#,
                2,
                "unsupported field \"strict.bogus\" with value \"[1]\"",
            ),
        ];
        for (stdin, code, msg) in cases {
            assert_error(&run_fake("ADD", stdin), code, msg);
        }
    }

    /// serde's derived struct decoding takes an array positionally; the reference takes
    /// only objects, and so do we, at any depth.
    #[test]
    fn arrays_in_place_of_objects_are_refused() {
        let cases = [
            (
                r#""ipam": []"#,
                2,
                r#"unsupported field "ipam" with value "[]""#,
            ),
            (
                r#""ipam": ["x"]"#,
                2,
                r#"unsupported field "ipam" with value "[\"x\"]""#,
            ),
            (
                r#""args": []"#,
                2,
                r#"unsupported field "args" with value "[]""#,
            ),
            (
                r#""args": {"cni": []}"#,
                2,
                r#"unsupported field "args.cni" with value "[]""#,
            ),
            (
                r#""args": {"cni": true}"#,
                7,
                "invalid network config: args.cni: invalid type: boolean `true`, expected a map",
            ),
            (
                r#""strict": [true]"#,
                2,
                r#"unsupported field "strict" with value "[true]""#,
            ),
            (
                r#""runtimeConfig": [1]"#,
                2,
                r#"unsupported field "runtimeConfig" with value "[1]""#,
            ),
        ];
        for (keys, code, msg) in cases {
            let stdin = format!(r#"{{"cniVersion": "1.0.0", "name": "n", {keys}}}"#);
            assert_error(&run_fake("ADD", &stdin), code, msg);
        }
        let stdin = r#"{"cniVersion": "1.0.0", "name": "n", "args": {"cni": {"ips": ["10.0.0.9"]}, "k8s": 1}, "ipam": {"type": "x"}}"#;
        assert_eq!(run_fake("ADD", stdin).exit_code, 0);
    }

    /// Go's `encoding/json` keeps the last of a repeated key, at any depth; serde's derive
    /// would refuse it as a duplicate field.
    #[test]
    fn a_repeated_key_takes_its_last_value() {
        let stdin = r#"{"cniVersion": "0.4.0", "name": "n", "mtu": 1, "cniVersion": "1.1.0",
            "strict": {"known": true, "known": false}, "mtu": 9000}"#;
        let outcome = run_fake("ADD", stdin);
        assert_eq!(outcome.exit_code, 0, "{outcome:?}");
        assert!(
            outcome.stdout.contains("\"cniVersion\": \"1.1.0\""),
            "{outcome:?}"
        );
        assert!(outcome.stdout.contains("\"mtu\": 9000"), "{outcome:?}");
    }

    #[test]
    fn add_prints_the_result_in_the_request_version() {
        let cases = [
            (
                "0.2.0",
                "{\n    \"cniVersion\": \"0.2.0\",\n    \"ip4\": {\n        \"ip\": \"10.0.0.2/24\"\n    },\n    \"dns\": {}\n}",
            ),
            (
                "0.4.0",
                "{\n    \"cniVersion\": \"0.4.0\",\n    \"interfaces\": [\n        {\n            \"name\": \"eth0\",\n            \"sandbox\": \"/run/netns/x\"\n        }\n    ],\n    \"ips\": [\n        {\n            \"version\": \"4\",\n            \"interface\": 0,\n            \"address\": \"10.0.0.2/24\"\n        }\n    ],\n    \"dns\": {}\n}",
            ),
            (
                "1.1.0",
                "{\n    \"cniVersion\": \"1.1.0\",\n    \"interfaces\": [\n        {\n            \"mtu\": 9000,\n            \"name\": \"eth0\",\n            \"sandbox\": \"/run/netns/x\"\n        }\n    ],\n    \"ips\": [\n        {\n            \"address\": \"10.0.0.2/24\",\n            \"interface\": 0\n        }\n    ]\n}",
            ),
        ];
        for (version, want) in cases {
            let stdin = format!(r#"{{"cniVersion": "{version}", "name": "n", "mtu": 9000}}"#);
            let outcome = run_fake("ADD", &stdin);
            assert_eq!(
                outcome,
                Outcome::success(want.into(), String::new()),
                "{version}"
            );
        }
    }

    #[test]
    fn missing_or_empty_version_means_0_1_0() {
        for stdin in [r#"{"name": "n"}"#, r#"{"name": "n", "cniVersion": ""}"#] {
            let outcome = run_fake("ADD", stdin);
            assert_eq!(outcome.exit_code, 0, "{outcome:?}");
            assert!(
                outcome
                    .stdout
                    .starts_with("{\n    \"cniVersion\": \"0.1.0\",\n    \"ip4\"")
            );
        }
    }

    #[test]
    fn layer_2_add_in_0_2_0_is_a_conversion_error() {
        let outcome = run_fake(
            "ADD",
            r#"{"cniVersion": "0.2.0", "name": "n", "layer2": true}"#,
        );
        assert_error(
            &outcome,
            crate::error::code::CONVERSION,
            "cannot convert: no valid IP addresses",
        );
        assert_eq!(error_of(&outcome).cni_version.as_deref(), Some("0.2.0"));
    }

    #[test]
    fn del_prints_nothing_and_tolerates_an_empty_netns() {
        let mut vars = env("DEL");
        vars.insert("CNI_NETNS".into(), "".into());
        let outcome = dispatch(
            &Fake,
            ABOUT,
            &vars,
            br#"{"cniVersion":"1.0.0","name":"n"}"#.to_vec(),
        );
        assert_eq!(outcome, Outcome::success(String::new(), String::new()));
    }

    #[test]
    fn plugin_errors_keep_their_code_and_exit_with_it_when_it_fits() {
        for (code, exit_code) in [(3, 3), (11, 11), (150, 150), (255, 255), (999, 1), (0, 1)] {
            let stdin = format!(r#"{{"cniVersion": "1.0.0", "name": "n", "failCode": {code}}}"#);
            let outcome = run_fake("DEL", &stdin);
            let wire = error_of(&outcome);
            assert_eq!(wire.code, code);
            assert_eq!(outcome.exit_code, exit_code);
            if code >= 100 {
                assert_eq!(wire.details.as_deref(), Some("details here"));
            }
        }
    }

    #[test]
    fn a_panicking_plugin_is_code_999() {
        let outcome = run_fake(
            "ADD",
            r#"{"cniVersion": "1.0.0", "name": "n", "panic": true}"#,
        );
        assert_error(&outcome, 999, "plugin panicked: boom in ADD");
        assert_eq!(outcome.exit_code, 1);
        assert_eq!(error_of(&outcome).cni_version.as_deref(), Some("1.0.0"));
    }

    /// Set in a child test process to make [`run_entry_in_child`] call [`run`].
    const CHILD_MARKER: &str = "CNI_SKEL_TEST_RUN_CHILD";

    /// Not a test on its own: [`run_child`] re-executes this test binary with only this test
    /// selected and the marker set, so [`run`] runs as a real process (stdin, exit code).
    #[test]
    fn run_entry_in_child() {
        if std::env::var_os(CHILD_MARKER).is_some() {
            run(Fake, ABOUT);
        }
    }

    /// Runs [`run`] in a child process with `vars` as its whole environment. With `stdin`
    /// `None` the child's stdin stays open and unwritten, so a read would block: the child is
    /// killed after 20 s and the test fails.
    fn run_child(vars: &[(&str, &str)], stdin: Option<&[u8]>) -> Outcome {
        use std::process::{Command as Process, Stdio};
        use std::time::{Duration, Instant};
        let mut child = Process::new(std::env::current_exe().unwrap())
            .args(["--exact", "skel::tests::run_entry_in_child", "--quiet"])
            .args(["--nocapture", "--test-threads=1"])
            .env_clear()
            .env(CHILD_MARKER, "1")
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut open_stdin = child.stdin.take();
        if let (Some(bytes), Some(mut pipe)) = (stdin, open_stdin.take()) {
            pipe.write_all(bytes).unwrap();
        }
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(20) {
                child.kill().unwrap();
                panic!("the child blocked (reading stdin?)");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(open_stdin);
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        // libtest announces the test before it runs; `run` exits before libtest says more.
        let (_, stdout) = stdout.split_once("running 1 test\n").unwrap();
        Outcome {
            stdout: stdout.to_owned(),
            stderr: String::from_utf8(output.stderr).unwrap(),
            exit_code: output.status.code().unwrap(),
        }
    }

    const CHILD_ENV: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "ctr1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];

    #[test]
    fn run_answers_version_and_about_without_reading_stdin() {
        let outcome = run_child(&[("CNI_COMMAND", "VERSION")], None);
        assert_eq!(outcome, Outcome::success(VERSION_DOC.into(), String::new()));
        let outcome = run_child(&[], None);
        assert_eq!(outcome.exit_code, 0);
        assert!(
            outcome.stderr.starts_with("CNI fake plugin v0.1.0\n"),
            "{outcome:?}"
        );
    }

    #[test]
    fn run_reads_stdin_and_exits_with_the_error_code() {
        let outcome = run_child(&CHILD_ENV, Some(br#"{"cniVersion": "1.0.0", "name": "n"}"#));
        assert_eq!(outcome.exit_code, 0, "{outcome:?}");
        assert!(outcome.stdout.contains("\"10.0.0.2/24\""), "{outcome:?}");

        let outcome = run_child(&CHILD_ENV, Some(b"{"));
        assert_eq!(outcome.exit_code, 6, "{outcome:?}");
        assert!(
            outcome.stdout.starts_with("{\n    \"code\": 6,"),
            "{outcome:?}"
        );
    }

    #[test]
    fn run_logs_a_panic_instead_of_printing_it() {
        let stdin = br#"{"cniVersion": "1.0.0", "name": "n", "panic": true}"#;
        let outcome = run_child(&CHILD_ENV, Some(stdin));
        assert_eq!(outcome.exit_code, 1);
        // Not `assert_error`: stderr holds the log line here.
        let wire: crate::ErrorResult = serde_json::from_str(&outcome.stdout).unwrap();
        assert_eq!(
            (wire.code, wire.msg.as_str()),
            (999, "plugin panicked: boom in ADD")
        );
        assert!(
            outcome.stderr.contains("] ERROR panicked at"),
            "{outcome:?}"
        );
        assert!(!outcome.stderr.contains("thread '"), "{outcome:?}");
    }
}
