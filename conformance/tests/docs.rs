//! The repository's citations stay inside it: every `docs/<page>.md#<anchor>` pointer in
//! the tree names a heading that exists, and no citation of the documents that lived outside
//! the repository before docs/ (by their old names) comes back. No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Directories never scanned: build output, VCS data, the VM lane's downloads.
const SKIPPED_DIRS: &[&str] = &["target", ".git", ".vm"];
/// Files that can hold citations.
const SCANNED_EXTENSIONS: &[&str] = &["rs", "md", "sh", "py", "toml"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Every scanned file under `dir`, recursively.
fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                text_files(&path, out);
            }
        } else if path
            .extension()
            .is_some_and(|ext| SCANNED_EXTENSIONS.contains(&ext.to_string_lossy().as_ref()))
        {
            out.push(path);
        }
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of one page's headings (outside code blocks).
fn anchors(page: &Path) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in fs::read_to_string(page).unwrap().lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.insert(anchor_of(line.trim_start_matches('#')));
        }
    }
    found
}

#[test]
fn every_docs_pointer_names_an_existing_heading_and_no_outside_document_is_cited() {
    let root = repo_root();
    let mut files = Vec::new();
    text_files(&root, &mut files);
    // Assembled at run time so that this file does not match its own search.
    let private = [format!("cni-{}", "notes"), format!("STYLE {}", '§')];
    let mut faults = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap_or_default();
        let shown = file.strip_prefix(&root).unwrap().display();
        for needle in &private {
            if text.contains(needle.as_str()) {
                faults.push(format!("{shown}: cites {needle:?}"));
            }
        }
        for (at, _) in text.match_indices("docs/") {
            let rest = &text[at + "docs/".len()..];
            let Some((page, tail)) = rest.split_once(".md#") else {
                continue;
            };
            if page.is_empty() || !page.chars().all(|c| c.is_ascii_lowercase()) {
                continue;
            }
            let anchor: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                .collect();
            if anchor.is_empty() {
                // A prefix (`starts_with("docs/reference.md#")`), not a pointer.
                continue;
            }
            let page_path = root.join("docs").join(format!("{page}.md"));
            if !page_path.exists() || !anchors(&page_path).contains(&anchor) {
                faults.push(format!("{shown}: no heading for docs/{page}.md#{anchor}"));
            }
        }
    }
    assert!(
        faults.is_empty(),
        "broken citations:\n{}",
        faults.join("\n")
    );
}
