//! What one plugin call produced, with assertions that print everything on failure.

use std::fmt;

use serde_json::Value;

/// The outcome of one plugin call: exit status, both output streams, and stdout parsed as
/// JSON when it is JSON.
///
/// The assertions take and return `self`, so they chain:
/// `let result = lab.run(...).assert_success();`. On failure they panic with the whole
/// run (command, exit code, stdout, stderr) in the message.
#[derive(Debug, Clone)]
pub struct PluginRun {
    /// What was run, e.g. `host-local ADD`, for messages.
    pub label: String,
    /// The exit code, or `None` if the plugin was killed by a signal.
    pub exit_code: Option<i32>,
    /// Everything the plugin wrote to stdout.
    pub stdout: String,
    /// Everything the plugin wrote to stderr (its logs).
    pub stderr: String,
    /// stdout parsed as JSON; `None` if stdout is empty or not JSON.
    pub json: Option<Value>,
}

impl PluginRun {
    pub(crate) fn new(
        label: String,
        exit_code: Option<i32>,
        stdout: String,
        stderr: String,
    ) -> PluginRun {
        let json = serde_json::from_str(&stdout).ok();
        PluginRun {
            label,
            exit_code,
            stdout,
            stderr,
            json,
        }
    }

    /// Whether the plugin exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// The `code` of a CNI error object on stdout, if there is one.
    pub fn error_code(&self) -> Option<u64> {
        self.json.as_ref()?.get("code")?.as_u64()
    }

    /// The JSON on stdout (an ADD result, a VERSION answer, an error object).
    ///
    /// # Panics
    /// If stdout was empty or not JSON.
    pub fn result(&self) -> &Value {
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("{} printed no JSON on stdout\n{self}", self.label))
    }

    /// Checks that the plugin exited with status 0.
    ///
    /// # Panics
    /// Otherwise, printing the whole run.
    pub fn assert_success(self) -> PluginRun {
        if !self.succeeded() {
            panic!("{} failed\n{self}", self.label);
        }
        self
    }

    /// Checks that the plugin failed as the spec says a plugin fails: non-zero exit status
    /// and a JSON error object on stdout whose `code` is `code`.
    ///
    /// # Panics
    /// Otherwise, printing the whole run.
    pub fn assert_error(self, code: u64) -> PluginRun {
        if self.succeeded() {
            panic!(
                "{} succeeded, expected error code {code}\n{self}",
                self.label
            );
        }
        if self.error_code() != Some(code) {
            panic!(
                "{} failed, but not with error code {code} on stdout\n{self}",
                self.label
            );
        }
        self
    }
}

impl fmt::Display for PluginRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exit = match self.exit_code {
            Some(code) => code.to_string(),
            None => "killed by a signal".to_owned(),
        };
        writeln!(f, "--- {}: exit {exit}", self.label)?;
        writeln!(f, "--- stdout:\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr:\n{}", self.stderr.trim_end())
    }
}
