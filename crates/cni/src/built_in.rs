//! Delegates an interface plugin carries inside itself: when the file `CNI_PATH` finds for
//! a delegate is our own build of that plugin, the delegation runs the plugin's dispatcher
//! in this process instead of executing the file.
//!
//! Why: on a node the IPAM delegate of almost every ADD is host-local, and executing it
//! costs a process start (fork, exec, loader, about 1 ms of CPU) and, on a cold page cache,
//! reading its binary from disk. Both matter most when they are scarce: under a burst of
//! ADDs the two cores are the bottleneck, and after a boot the disk is. Running it in
//! process is only right when that file *is* our host-local: an operator who put another
//! host-local (the reference's, a wrapper script) in `CNI_PATH` gets that program run, as
//! the spec says. What the in-process run sees is what the process would have seen: the
//! same environment (ours with the request's `CNI_*` variables), the same stdin, and the
//! same dispatcher ([`crate::skel::dispatch`]), whose stdout and exit code are read back
//! exactly as a child's would be.
//!
//! How a binary is known to be ours: `plugin_main!` puts an ELF note in every plugin binary,
//! owner `cni-rs`, type [`NOTE_TYPE`], the plugin's name as its text. The linker places
//! notes in the file's first page, so the check is one read of [`HEAD_BYTES`] bytes, not a
//! scan of the file; a file without that note (a script, a Go binary, a truncated
//! download) is executed as before.

use crate::skel::Outcome;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

/// The note's owner name, as `plugin_main!` writes it (with its NUL).
const NOTE_OWNER: &[u8] = b"cni-rs\0";
/// The note's type: bumped if ever a delegate built into an older plugin could no longer
/// stand in for a newer build of itself (their shared state is the reference's on-disk
/// format, which does not change between our versions).
pub const NOTE_TYPE: u32 = 1;
/// How much of a binary is read to find the note: the ELF header, program headers and the
/// notes all sit in the first page of a binary linked by GNU ld or lld.
const HEAD_BYTES: usize = 4096;

/// A plugin compiled into this binary that may stand in for its own executable.
pub struct BuiltIn {
    /// The plugin type it answers for, e.g. `host-local`.
    pub name: &'static str,
    dispatch: fn(&'static str, &BTreeMap<String, OsString>, Vec<u8>) -> Outcome,
}

impl BuiltIn {
    /// The plugin `P` (its [`Default`] value) under the type `name`.
    pub const fn of<P: crate::Plugin + Default>(name: &'static str) -> BuiltIn {
        BuiltIn {
            name,
            dispatch: dispatch_default::<P>,
        }
    }

    /// Runs one request through the plugin's dispatcher: `vars` is the environment the
    /// process would have had, `stdin` its input.
    pub(crate) fn dispatch(&self, vars: &BTreeMap<String, OsString>, stdin: Vec<u8>) -> Outcome {
        (self.dispatch)(self.name, vars, stdin)
    }
}

fn dispatch_default<P: crate::Plugin + Default>(
    name: &'static str,
    vars: &BTreeMap<String, OsString>,
    stdin: Vec<u8>,
) -> Outcome {
    let about = crate::About {
        name,
        version: env!("CARGO_PKG_VERSION"),
    };
    crate::skel::dispatch(&P::default(), about, vars, stdin)
}

/// The plugins this binary carries; set once by `plugin_main!` before dispatching.
static CARRIED: OnceLock<&'static [BuiltIn]> = OnceLock::new();

/// Declares the plugins this binary carries (`plugin_main!(…, built_in: […])` calls it).
/// Only the first call counts.
pub fn carry(plugins: &'static [BuiltIn]) {
    let _ = CARRIED.set(plugins);
}

/// The carried plugin that may run in place of `binary`, found in `CNI_PATH` for
/// `plugin_type`: one is carried under that name and the file's note names it.
pub(crate) fn standing_in_for(plugin_type: &str, binary: &Path) -> Option<&'static BuiltIn> {
    let carried = CARRIED.get()?.iter().find(|p| p.name == plugin_type)?;
    let named = plugin_note(binary)?;
    (named == plugin_type.as_bytes()).then_some(carried)
}

/// The name in `binary`'s `cni-rs` note, if it is an ELF file carrying one.
fn plugin_note(binary: &Path) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD_BYTES);
    std::fs::File::open(binary)
        .ok()?
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .ok()?;
    note_in_head(&head)
}

/// Reads a little-endian ELF64 header's `PT_NOTE` segments that lie within `head` and
/// returns the text of the first `cni-rs` note of type [`NOTE_TYPE`], NUL stripped. Any
/// other shape of file is `None`: every offset is checked, nothing here can panic.
fn note_in_head(head: &[u8]) -> Option<Vec<u8>> {
    const PT_NOTE: u32 = 4;
    if head.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(head, 0x20)?).ok()?;
    let phentsize = usize::from(u16_at(head, 0x36)?);
    let phnum = usize::from(u16_at(head, 0x38)?);
    (0..phnum)
        .filter_map(|i| head.get(phoff.checked_add(i.checked_mul(phentsize)?)?..))
        .filter(|phdr| u32_at(phdr, 0) == Some(PT_NOTE))
        .find_map(|phdr| {
            let offset = usize::try_from(u64_at(phdr, 8)?).ok()?;
            let size = usize::try_from(u64_at(phdr, 32)?).ok()?;
            cni_rs_note(head.get(offset..offset.checked_add(size)?)?)
        })
}

/// The `cni-rs` note's text among the notes in `notes` (each: name size, text size, type,
/// then the name and the text, each padded to 4 bytes).
fn cni_rs_note(mut notes: &[u8]) -> Option<Vec<u8>> {
    let padded = |n: usize| n.checked_add(3).map(|n| n & !3);
    while notes.len() >= 12 {
        let name_size = usize::try_from(u32_at(notes, 0)?).ok()?;
        let text_size = usize::try_from(u32_at(notes, 4)?).ok()?;
        let note_type = u32_at(notes, 8)?;
        let text_start = 12usize.checked_add(padded(name_size)?)?;
        let name = notes.get(12..12usize.checked_add(name_size)?)?;
        let text = notes.get(text_start..text_start.checked_add(text_size)?)?;
        if name == NOTE_OWNER && note_type == NOTE_TYPE {
            return Some(text.strip_suffix(b"\0").unwrap_or(text).to_vec());
        }
        notes = notes.get(text_start.checked_add(padded(text_size)?)?..)?;
    }
    None
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 head: the header, one `PT_NOTE` program header, then `notes`.
    fn elf_with_notes(notes: &[u8]) -> Vec<u8> {
        let mut head = vec![0u8; 64 + 56];
        head[..6].copy_from_slice(b"\x7fELF\x02\x01");
        head[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        head[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        head[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        head[64..68].copy_from_slice(&4u32.to_le_bytes());
        head[64 + 8..64 + 16].copy_from_slice(&120u64.to_le_bytes());
        head[64 + 32..64 + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        head.extend_from_slice(notes);
        head
    }

    fn note(owner: &[u8], note_type: u32, text: &[u8]) -> Vec<u8> {
        let mut note = Vec::new();
        note.extend_from_slice(&(owner.len() as u32).to_le_bytes());
        note.extend_from_slice(&(text.len() as u32).to_le_bytes());
        note.extend_from_slice(&note_type.to_le_bytes());
        for part in [owner, text] {
            note.extend_from_slice(part);
            note.resize(note.len().next_multiple_of(4), 0);
        }
        note
    }

    #[test]
    fn finds_the_cni_rs_note_after_other_notes() {
        let mut notes = note(b"GNU\0", 3, &[0xab; 20]);
        notes.extend(note(b"cni-rs\0", NOTE_TYPE, b"host-local\0"));
        assert_eq!(
            note_in_head(&elf_with_notes(&notes)).as_deref(),
            Some(&b"host-local"[..])
        );
    }

    #[test]
    fn other_owners_types_and_shapes_are_not_ours() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("no note", elf_with_notes(&[])),
            (
                "another owner",
                elf_with_notes(&note(b"cni-go\0", NOTE_TYPE, b"host-local\0")),
            ),
            (
                "another type",
                elf_with_notes(&note(b"cni-rs\0", NOTE_TYPE + 1, b"host-local\0")),
            ),
            ("a script", b"#!/bin/sh\nexec true\n".to_vec()),
            ("empty", Vec::new()),
        ];
        for (what, head) in cases {
            assert_eq!(note_in_head(&head), None, "{what}");
        }
    }

    #[test]
    fn truncated_and_absurd_sizes_are_refused_without_panicking() {
        let whole = elf_with_notes(&note(b"cni-rs\0", NOTE_TYPE, b"host-local\0"));
        for len in 0..whole.len() {
            assert_eq!(note_in_head(&whole[..len]), None, "cut at {len}");
        }
        for at in [0x20, 0x36, 0x38, 64 + 8, 64 + 32, 120, 124] {
            let mut bent = whole.clone();
            bent[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            // Refused or (if the field was not load-bearing) still read: never a panic.
            let _ = note_in_head(&bent);
        }
    }
}
