//! A small stderr logger for the `log` facade. Level from `CNI_LOG_LEVEL` (`error`, `warn`
//! (default), `info`, `debug`, `trace`, `off`; any case). Nothing but the final JSON ever goes
//! to stdout (SPEC.md: stderr may carry free-form logs; docs/design.md#logging).

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::OnceLock;

/// The environment variable that sets the level.
pub const LEVEL_VAR: &str = "CNI_LOG_LEVEL";

/// Writes `[<plugin> <pid>] LEVEL message` lines to stderr.
struct StderrLogger {
    plugin_name: &'static str,
    pid: u32,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            // A closed or full stderr must not fail the plugin (eprintln! would panic).
            let _ = writeln!(
                std::io::stderr().lock(),
                "[{} {}] {} {}",
                self.plugin_name,
                self.pid,
                record.level(),
                record.args()
            );
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

static LOGGER: OnceLock<StderrLogger> = OnceLock::new();

/// Installs the logger once; later calls are no-ops. Never panics.
///
/// An unknown or unreadable `CNI_LOG_LEVEL` means `warn`.
pub fn init(plugin_name: &'static str) {
    let logger = LOGGER.get_or_init(|| StderrLogger {
        plugin_name,
        pid: std::process::id(),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level_from(std::env::var(LEVEL_VAR).ok().as_deref()));
    }
}

/// The level named by `CNI_LOG_LEVEL`'s value.
fn level_from(value: Option<&str>) -> LevelFilter {
    value
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(LevelFilter::Warn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_defaults_to_warn_and_parses_any_case() {
        let cases = [
            (None, LevelFilter::Warn),
            (Some(""), LevelFilter::Warn),
            (Some("bogus"), LevelFilter::Warn),
            (Some("debug"), LevelFilter::Debug),
            (Some("TRACE"), LevelFilter::Trace),
            (Some(" info "), LevelFilter::Info),
            (Some("off"), LevelFilter::Off),
        ];
        for (value, want) in cases {
            assert_eq!(level_from(value), want, "{value:?}");
        }
    }

    /// The second call keeps the first logger and leaves the level alone (the only test in
    /// this binary that installs the global logger).
    #[test]
    fn init_twice_keeps_the_first_logger_and_level() {
        init("test");
        let installed = LOGGER.get().expect("init installs the logger");
        assert_eq!(installed.plugin_name, "test");
        assert!(std::ptr::addr_eq(log::logger(), installed));
        // Off, not a chattier level: the other tests' logs on stderr are not captured.
        let level = log::max_level();
        log::set_max_level(LevelFilter::Off);
        init("other");
        let kept = log::max_level();
        log::set_max_level(level);
        assert_eq!(LOGGER.get().map(|l| l.plugin_name), Some("test"));
        assert!(std::ptr::addr_eq(log::logger(), installed));
        assert_eq!(kept, LevelFilter::Off, "the level is not reset");
    }
}
