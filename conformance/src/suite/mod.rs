//! The black-box conformance suite: spec scenarios run against any directory of CNI
//! plugin binaries, with a report comparing implementations.
//!
//! Each plugin type found in a directory gets its table of [`cases`](self): protocol
//! cases (VERSION, environment and config errors, version gates), results in every
//! version the plugin claims, the ADD → CHECK → DEL → DEL lifecycle, DEL without a
//! netns, tampering detected by CHECK, STATUS and GC, chaining, delegation to IPAM and
//! plugin-specific state, each followed by a leak check. Every case runs in its own
//! [`crate::Lab`] (throwaway host and container namespaces, private directory).
//!
//! A plugin is judged on what it claims: its VERSION answer gives the versions, and a
//! case whose behaviour came with a later spec version than the plugin's highest is
//! "n/a (claims ≤X)", not a failure.
//!
//! Known defects of the Go reference are listed in [`KNOWN_DEFECTS`]; an implementation
//! run as a reference ([`Implementation::reference`]) is expected to fail exactly those,
//! so a new failure, or a defect that went away, is caught on either side.

mod cases;
mod known_defects;
mod report;
mod shape;
mod world;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use known_defects::{KNOWN_DEFECTS, KnownDefect};
pub use report::Report;

/// The plugin types the suite knows, in report order.
pub const PLUGINS: [&str; 10] = [
    "bridge",
    "macvlan",
    "ipvlan",
    "host-local",
    "cluster-ipam",
    "loopback",
    "tuning",
    "bandwidth",
    "firewall",
    "portmap",
];

/// Plugins of ours that the Go reference has no counterpart of: its column shows them
/// n/a (no binary).
pub const NO_REFERENCE: [&str; 1] = ["cluster-ipam"];

/// Every CNI spec version, oldest first.
pub const ALL_VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// One set of plugin binaries to test.
#[derive(Debug, Clone)]
pub struct Implementation {
    /// The name in the report's column header, e.g. `ours` or `go-reference`.
    pub label: String,
    /// The directory holding the plugin binaries (made absolute: plugins run with the
    /// lab's directory as their working directory).
    pub bin_dir: PathBuf,
    /// Whether the failures listed in [`KNOWN_DEFECTS`] are expected here (the Go
    /// reference). For any other implementation every failure is unexpected.
    pub reference: bool,
}

impl Implementation {
    /// Our build (no failure expected).
    pub fn ours(label: &str, bin_dir: impl Into<PathBuf>) -> Implementation {
        let bin_dir = bin_dir.into();
        Implementation {
            label: label.to_owned(),
            bin_dir: std::path::absolute(&bin_dir).unwrap_or(bin_dir),
            reference: false,
        }
    }

    /// The Go reference: the defects in [`KNOWN_DEFECTS`] are expected to show.
    pub fn reference(label: &str, bin_dir: impl Into<PathBuf>) -> Implementation {
        Implementation {
            reference: true,
            ..Implementation::ours(label, bin_dir)
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The plugin types to test; those missing from a directory are reported as such.
    pub plugins: Vec<String>,
    /// How many cases run at once (each in its own namespaces).
    pub jobs: usize,
    /// Only cases whose id contains this text (e.g. `lifecycle`); `None` runs all.
    pub case_filter: Option<String>,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions {
            plugins: PLUGINS.iter().map(|p| p.to_string()).collect(),
            jobs: 4,
            case_filter: None,
        }
    }
}

/// How one case ended for one implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The behaviour matched the spec.
    Pass,
    /// It did not; the text says what was seen.
    Fail(String),
    /// The case does not apply, and why (e.g. `claims ≤1.0.0`, `kernel lacks ipvlan`).
    NotApplicable(String),
}

impl Outcome {
    /// Whether this is a failure.
    pub fn is_fail(&self) -> bool {
        matches!(self, Outcome::Fail(_))
    }
}

/// Why a case stopped early: a failure or "does not apply".
#[derive(Debug)]
pub(crate) enum Stop {
    Fail(String),
    NotApplicable(String),
}

impl From<String> for Stop {
    fn from(message: String) -> Stop {
        Stop::Fail(message)
    }
}

/// The result type of a case body.
pub(crate) type Checked = Result<(), Stop>;

/// Fails the case with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::suite::Stop::Fail(format!($($msg)+)));
        }
    };
}
pub(crate) use ensure;

/// One case's result for one implementation.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The plugin type.
    pub plugin: String,
    /// The case id, e.g. `lifecycle/add-check-del-del`.
    pub case: String,
    /// The spec version that introduced the behaviour.
    pub since: &'static str,
    /// What happened.
    pub outcome: Outcome,
    /// The known reference defect this failure is expected from, when the implementation
    /// is a reference and the case is listed in [`KNOWN_DEFECTS`].
    pub known_defect: Option<&'static KnownDefect>,
    /// How long the case took.
    pub duration: Duration,
}

impl CaseResult {
    /// A failure nobody expected: any failure of a non-reference implementation, or a
    /// reference failure not listed in [`KNOWN_DEFECTS`].
    pub fn is_unexpected_failure(&self) -> bool {
        self.outcome.is_fail() && self.known_defect.is_none()
    }

    /// A listed reference defect that did not show (the case passed or was n/a): the
    /// table of known defects is out of date.
    pub fn is_missing_expected_failure(&self) -> bool {
        self.known_defect.is_some() && !self.outcome.is_fail()
    }
}

/// All results of one implementation.
#[derive(Debug, Clone)]
pub struct ImplementationResults {
    /// Which implementation.
    pub implementation: Implementation,
    /// Every case of every plugin, in table order.
    pub results: Vec<CaseResult>,
    /// Wall time for the whole implementation.
    pub duration: Duration,
}

impl ImplementationResults {
    /// Failures nobody expected (see [`CaseResult::is_unexpected_failure`]).
    pub fn unexpected_failures(&self) -> Vec<&CaseResult> {
        self.results
            .iter()
            .filter(|r| r.is_unexpected_failure())
            .collect()
    }

    /// Known reference defects that did not show (see
    /// [`CaseResult::is_missing_expected_failure`]).
    pub fn missing_expected_failures(&self) -> Vec<&CaseResult> {
        self.results
            .iter()
            .filter(|r| r.is_missing_expected_failure())
            .collect()
    }

    /// `(pass, fail, n/a)` counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for result in &self.results {
            match result.outcome {
                Outcome::Pass => counts.0 += 1,
                Outcome::Fail(_) => counts.1 += 1,
                Outcome::NotApplicable(_) => counts.2 += 1,
            }
        }
        counts
    }

    /// Whether this implementation behaved exactly as expected.
    pub fn as_expected(&self) -> bool {
        self.unexpected_failures().is_empty() && self.missing_expected_failures().is_empty()
    }
}

/// What a plugin claims in its VERSION answer.
#[derive(Debug, Clone)]
pub(crate) struct Claims {
    pub versions: Vec<String>,
}

impl Claims {
    /// The highest claimed version.
    pub fn max(&self) -> &str {
        self.versions
            .iter()
            .max_by_key(|v| version_key(v))
            .map(String::as_str)
            .unwrap_or("0.1.0")
    }

    pub fn claims(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// n/a when the behaviour came with a spec version above the highest claimed one.
    pub fn gate(&self, since: &str) -> Checked {
        if version_key(self.max()) < version_key(since) {
            return Err(Stop::NotApplicable(format!("claims ≤{}", self.max())));
        }
        Ok(())
    }

    /// The highest claimed version below `limit`, for "refused below X" cases.
    pub fn highest_below(&self, limit: &str) -> Option<&str> {
        self.versions
            .iter()
            .filter(|v| version_key(v) < version_key(limit))
            .max_by_key(|v| version_key(v))
            .map(String::as_str)
    }
}

/// A version string as a comparable triple; unparsable parts count as 0.
pub(crate) fn version_key(version: &str) -> (u32, u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// What a case body gets: the plugin under test, where its binaries are, what it claims.
pub(crate) struct Ctx {
    pub kind: world::PluginKind,
    pub bin_dir: PathBuf,
    pub claims: Claims,
}

impl Ctx {
    pub fn binary(&self, plugin: &str) -> PathBuf {
        self.bin_dir.join(plugin)
    }
}

/// Runs the suite against every implementation, one after the other.
pub fn run(implementations: &[Implementation], options: &SuiteOptions) -> Report {
    let results = implementations
        .iter()
        .map(|implementation| run_implementation(implementation, options))
        .collect();
    Report { results }
}

/// Runs the suite against one implementation.
pub fn run_implementation(
    implementation: &Implementation,
    options: &SuiteOptions,
) -> ImplementationResults {
    let started = Instant::now();
    let mut jobs: Vec<(String, cases::Case, Option<Ctx>, Option<Outcome>)> = Vec::new();
    for plugin in PLUGINS
        .iter()
        .filter(|p| options.plugins.iter().any(|o| o == *p))
    {
        let kind = world::PluginKind::from_type(plugin).expect("PLUGINS are all known kinds");
        let binary = implementation.bin_dir.join(plugin);
        let claims = if binary.is_file() {
            catch_unwind(|| cases::read_claims(&binary))
                .unwrap_or_else(|panic| Err(panic_message(panic.as_ref())))
        } else {
            Err(format!(
                "no {plugin} binary in {}",
                implementation.bin_dir.display()
            ))
        };
        for case in cases::cases_for(kind) {
            if let Some(filter) = &options.case_filter {
                if !case.id.contains(filter.as_str()) {
                    continue;
                }
            }
            let (ctx, preset) = match &claims {
                Ok(claims) => (
                    Some(Ctx {
                        kind,
                        bin_dir: implementation.bin_dir.clone(),
                        claims: claims.clone(),
                    }),
                    None,
                ),
                Err(why) if !binary.is_file() => (None, Some(Outcome::NotApplicable(why.clone()))),
                Err(why) => (None, Some(Outcome::Fail(why.clone()))),
            };
            jobs.push((plugin.to_string(), case, ctx, preset));
        }
    }

    let slots: Vec<Mutex<Option<CaseResult>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            let worker = std::thread::Builder::new().name("conformance-case".to_owned());
            let spawned = worker.spawn_scoped(scope, || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some((plugin, case, ctx, preset)) = jobs.get(index) else {
                        break;
                    };
                    let case_started = Instant::now();
                    let outcome = match (preset, ctx) {
                        (Some(outcome), _) => outcome.clone(),
                        (None, Some(ctx)) => run_case(case, ctx),
                        (None, None) => unreachable!("a job has a context or a preset outcome"),
                    };
                    // Attached whatever the outcome, so a defect that went away shows too.
                    let known_defect = if implementation.reference {
                        known_defects::lookup(plugin, &case.id)
                    } else {
                        None
                    };
                    *slots[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(CaseResult {
                        plugin: plugin.clone(),
                        case: case.id.clone(),
                        since: case.since,
                        outcome,
                        known_defect,
                        duration: case_started.elapsed(),
                    });
                }
            });
            spawned.expect("cannot start a case worker thread");
        }
    });
    let results = slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every job ran")
        })
        .collect();
    ImplementationResults {
        implementation: implementation.clone(),
        results,
        duration: started.elapsed(),
    }
}

/// Runs one case body, turning a panic (a lab set-up failure, a timeout) into a failure.
fn run_case(case: &cases::Case, ctx: &Ctx) -> Outcome {
    if let Err(Stop::NotApplicable(why)) = ctx.claims.gate(case.since) {
        return Outcome::NotApplicable(why);
    }
    match catch_unwind(AssertUnwindSafe(|| (case.body)(ctx))) {
        Ok(Ok(())) => Outcome::Pass,
        Ok(Err(Stop::Fail(message))) => Outcome::Fail(message),
        Ok(Err(Stop::NotApplicable(why))) => Outcome::NotApplicable(why),
        Err(panic) => Outcome::Fail(format!("panicked: {}", panic_message(panic.as_ref()))),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".to_owned())
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pass => f.write_str("pass"),
            Outcome::Fail(_) => f.write_str("FAIL"),
            Outcome::NotApplicable(why) => write!(f, "n/a ({why})"),
        }
    }
}

/// `true` if `dir` holds at least one of the plugins the suite knows.
pub fn has_plugins(dir: &Path) -> bool {
    PLUGINS.iter().any(|p| dir.join(p).is_file())
}
