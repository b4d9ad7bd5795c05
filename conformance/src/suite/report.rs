//! The report: cases × implementations, as a terminal table and as Markdown.

use std::fmt::Write as _;

use super::{CaseResult, ImplementationResults, Outcome};

/// The results of a suite run over one or more implementations.
#[derive(Debug, Clone)]
pub struct Report {
    /// One entry per implementation, in the order given.
    pub results: Vec<ImplementationResults>,
}

/// The start of a failure message, for the Markdown report (the terminal shows it all).
fn excerpt(message: &str) -> String {
    const MAX_LINES: usize = 12;
    const MAX_LINE: usize = 400;
    let mut lines: Vec<String> = message
        .trim_end()
        .lines()
        .take(MAX_LINES)
        .map(|line| match line.char_indices().nth(MAX_LINE) {
            Some((cut, _)) => format!("{} …", &line[..cut]),
            None => line.to_owned(),
        })
        .collect();
    if message.trim_end().lines().count() > MAX_LINES {
        lines.push("…".to_owned());
    }
    lines.join("\n")
}

/// One line of the table.
struct Row<'a> {
    plugin: &'a str,
    case: &'a str,
    since: &'static str,
    cells: Vec<Option<&'a CaseResult>>,
}

/// The text of one cell.
fn cell(result: Option<&CaseResult>) -> String {
    let Some(result) = result else {
        return "–".to_owned();
    };
    match (&result.outcome, result.known_defect) {
        (Outcome::Fail(_), Some(defect)) => format!("FAIL (expected: {})", defect.reference),
        (Outcome::Fail(_), None) => "FAIL".to_owned(),
        (outcome, Some(defect)) => {
            format!("{outcome} (UNEXPECTED: {} did not show)", defect.reference)
        }
        (outcome, None) => outcome.to_string(),
    }
}

impl Report {
    /// Whether every implementation behaved exactly as expected.
    pub fn as_expected(&self) -> bool {
        self.results.iter().all(ImplementationResults::as_expected)
    }

    /// One row per (plugin, case) in first-seen order, with a cell per implementation.
    fn rows(&self) -> Vec<Row<'_>> {
        let mut seen = std::collections::BTreeSet::new();
        let mut rows: Vec<Row<'_>> = Vec::new();
        for implementation in &self.results {
            for result in &implementation.results {
                if seen.insert((result.plugin.as_str(), result.case.as_str())) {
                    rows.push(Row {
                        plugin: &result.plugin,
                        case: &result.case,
                        since: result.since,
                        cells: Vec::new(),
                    });
                }
            }
        }
        for row in &mut rows {
            row.cells = self
                .results
                .iter()
                .map(|imp| {
                    imp.results
                        .iter()
                        .find(|r| r.plugin == row.plugin && r.case == row.case)
                })
                .collect();
        }
        rows
    }

    fn summary_lines(&self) -> Vec<String> {
        // Directories under the working directory (the repository, where
        // scripts/conformance.sh runs) are shown relative to it: the report names no
        // machine's paths.
        let cwd = std::env::current_dir().unwrap_or_default();
        self.results
            .iter()
            .map(|imp| {
                let dir = &imp.implementation.bin_dir;
                let dir = dir.strip_prefix(&cwd).unwrap_or(dir);
                let (pass, fail, na) = imp.counts();
                let expected = imp.results.iter().filter(|r| r.outcome.is_fail() && r.known_defect.is_some()).count();
                format!(
                    "{} ({}): {pass} pass, {fail} FAIL ({expected} expected, {} unexpected), {na} n/a, \
                     {} known defects missing; {:.1} s",
                    imp.implementation.label,
                    dir.display(),
                    imp.unexpected_failures().len(),
                    imp.missing_expected_failures().len(),
                    imp.duration.as_secs_f64()
                )
            })
            .collect()
    }

    fn failure_details(&self) -> Vec<(String, String)> {
        let mut details = Vec::new();
        for imp in &self.results {
            for result in &imp.results {
                if let Outcome::Fail(message) = &result.outcome {
                    let expected = match result.known_defect {
                        Some(defect) => {
                            format!(" — expected, {}: {}", defect.reference, defect.defect)
                        }
                        None => " — UNEXPECTED".to_owned(),
                    };
                    details.push((
                        format!(
                            "{} · {} · {}{expected}",
                            imp.implementation.label, result.plugin, result.case
                        ),
                        message.clone(),
                    ));
                }
            }
        }
        details
    }

    /// The table for a terminal: aligned columns, failures' messages afterwards.
    pub fn to_terminal(&self) -> String {
        let headers: Vec<String> = ["plugin", "case", "since"]
            .iter()
            .map(|s| s.to_string())
            .chain(self.results.iter().map(|i| i.implementation.label.clone()))
            .collect();
        let rows: Vec<Vec<String>> = self
            .rows()
            .into_iter()
            .map(|row| {
                [row.plugin, row.case, row.since]
                    .into_iter()
                    .map(str::to_owned)
                    .chain(row.cells.into_iter().map(cell))
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = (0..headers.len())
            .map(|col| {
                rows.iter()
                    .map(|r| r[col].chars().count())
                    .chain([headers[col].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}", w = *w))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out = String::new();
        let _ = writeln!(out, "{}", line(&headers));
        for row in &rows {
            let _ = writeln!(out, "{}", line(row));
        }
        for (what, message) in self.failure_details() {
            let _ = writeln!(out, "\n--- {what}\n{}", message.trim_end());
        }
        let _ = writeln!(out);
        for summary in self.summary_lines() {
            let _ = writeln!(out, "{summary}");
        }
        out
    }

    /// The report as Markdown; `preamble` goes first (e.g. how to regenerate it).
    pub fn to_markdown(&self, preamble: &str) -> String {
        let mut out = String::new();
        out.push_str(preamble);
        out.push_str("\n## Summary\n\n");
        for summary in self.summary_lines() {
            let _ = writeln!(out, "- {summary}");
        }
        out.push_str("\n## Cases\n\n| plugin | case | since |");
        for imp in &self.results {
            let _ = write!(out, " {} |", imp.implementation.label);
        }
        out.push_str("\n|---|---|---|");
        for _ in &self.results {
            out.push_str("---|");
        }
        out.push('\n');
        for row in self.rows() {
            let _ = write!(out, "| {} | `{}` | {} |", row.plugin, row.case, row.since);
            for result in row.cells {
                let _ = write!(out, " {} |", cell(result).replace('|', "\\|"));
            }
            out.push('\n');
        }
        out.push_str("\n## Expected failures of the reference (known defects)\n\n");
        out.push_str("| plugin | case | defect | what |\n|---|---|---|---|\n");
        for defect in super::KNOWN_DEFECTS {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} |",
                defect.plugin, defect.case, defect.reference, defect.defect
            );
        }
        let details = self.failure_details();
        if !details.is_empty() {
            out.push_str("\n## Failure details\n");
            for (what, message) in details {
                let _ = writeln!(out, "\n### {what}\n\n```\n{}\n```", excerpt(&message));
            }
        }
        out
    }
}
