//! A small stderr logger for the `log` facade. Level from `CNI_LOG_LEVEL` (`error`, `warn`
//! (default), `info`, `debug`, `trace`). Nothing but the final JSON ever goes to stdout.

/// Installs the logger once; later calls are no-ops. Never panics.
pub fn init(plugin_name: &'static str) {
    let _ = plugin_name;
    todo!()
}
