//! File operations relative to a directory descriptor, none of which follows a symlink or
//! waits on a FIFO planted in the store: what every part of the store writes and reads with.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{UnlinkatFlags, linkat, unlinkat};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Longest file content we read: leases are a container ID plus an ifname.
const MAX_FILE_SIZE: u64 = 4096;
/// Mode of every file we create: leases name containers, nobody else needs to read them.
pub(super) const FILE_MODE: Mode = Mode::S_IRUSR.union(Mode::S_IWUSR);
/// Mode of the directories we create (the reference's 0755).
pub(super) const DIR_MODE: u32 = 0o755;

/// Creates `name` under `parent` if missing and opens it, refusing anything but a directory
/// (`O_NOFOLLOW`: a symlink gives `ELOOP`, a file `ENOTDIR`).
pub(super) fn open_real_dir(parent: &impl AsFd, name: &str, path: &Path) -> Result<OwnedFd> {
    match mkdirat(parent, name, Mode::from_bits_truncate(DIR_MODE)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(Error::store("create", path, e)),
    }
    openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => Error::NotADirectory {
            path: path.to_owned(),
        },
        e => Error::store("open", path, e),
    })
}

/// Opens the directory `name` under `parent` if it exists (`O_NOFOLLOW`: a symlink is
/// `ELOOP`, a file `ENOTDIR`).
pub(super) fn existing_dir(parent: &impl AsFd, name: &str) -> nix::Result<Option<OwnedFd>> {
    match openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A new nameless regular file (mode 0600) in `dir` holding `content`; `None` on any error.
pub(super) fn anonymous_file(dir: &impl AsFd, content: &[u8]) -> Option<File> {
    let fd = openat(
        dir,
        ".",
        OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        FILE_MODE,
    )
    .map_err(|e| log::debug!("O_TMPFILE: {e}"))
    .ok()?;
    let mut file = File::from(fd);
    file.write_all(content).ok()?;
    Some(file)
}

/// Gives the nameless `file` the name `name` in `dir` (`linkat` through `/proc/self/fd`,
/// which needs no capability, unlike `AT_EMPTY_PATH`). Fails with `EEXIST` if `name`
/// exists, whatever it is.
pub(super) fn link_anonymous(file: &File, dir: &impl AsFd, name: &str) -> nix::Result<()> {
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    linkat(
        nix::fcntl::AT_FDCWD,
        source.as_str(),
        dir,
        name,
        AtFlags::AT_SYMLINK_FOLLOW,
    )
}

/// Removes `name` under `dir`; `Ok(false)` if it was not there.
pub(super) fn remove_if_present(
    dir: &impl AsFd,
    name: &str,
    path: impl Fn() -> PathBuf,
) -> Result<bool> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(Error::store("remove", path(), e)),
    }
}

/// Creates `name` (which must not exist) with `content`, mode 0600, never following links.
pub(super) fn write_new_file(
    dir: &impl AsFd,
    name: &str,
    content: &[u8],
    path: impl Fn() -> PathBuf,
) -> Result<()> {
    let fd = openat(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        FILE_MODE,
    )
    .map_err(|e| Error::store("create", path(), e))?;
    File::from(fd)
        .write_all(content)
        .map_err(|source| Error::Store {
            op: "write",
            path: path(),
            source,
        })
}

/// Atomically replaces `name` with `content` via `temp` + rename (a symlink at `name` is
/// replaced, not followed).
pub(super) fn replace_file(
    dir: &impl AsFd,
    temp: &str,
    name: &str,
    content: &[u8],
    path: impl Fn(&str) -> PathBuf,
) -> Result<()> {
    remove_if_present(dir, temp, || path(temp))?;
    write_new_file(dir, temp, content, || path(temp))?;
    renameat(dir, temp, dir, name).map_err(|e| Error::store("rename", path(name), e))
}

/// Opens the existing file `name` in `dir` with `access` (`O_RDONLY`, `O_WRONLY`), never
/// following a symlink or waiting on a FIFO; `None` when it is absent, a symlink, a FIFO
/// without a peer or a directory opened for writing.
fn open_existing(
    dir: &impl AsFd,
    name: &str,
    access: OFlag,
    path: impl Fn() -> PathBuf,
) -> Result<Option<File>> {
    let flags = access | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(Errno::ENOENT | Errno::ELOOP | Errno::ENXIO | Errno::EISDIR) => Ok(None),
        Err(e) => Err(Error::store("open", path(), e)),
    }
}

/// Overwrites `name` with `content` if it is a file exactly as [`write_new_file`] leaves
/// it (regular, mode 0600, one link, owned by us); `Ok(false)`, with nothing written,
/// otherwise. One `pwrite`, plus an `ftruncate` when the new content is shorter.
pub(super) fn overwrite_own_file(
    dir: &impl AsFd,
    name: &str,
    content: &[u8],
    path: impl Fn() -> PathBuf,
) -> Result<bool> {
    // Absent, a symlink, a FIFO without reader, a directory: the caller replaces it.
    let Some(file) = open_existing(dir, name, OFlag::O_WRONLY, &path)? else {
        return Ok(false);
    };
    let io_error = |op| {
        let path = &path;
        move |source| Error::Store {
            op,
            path: path(),
            source,
        }
    };
    let meta = file.metadata().map_err(io_error("stat"))?;
    let own = meta.file_type().is_file()
        && meta.mode() & 0o7777 == FILE_MODE.bits()
        && meta.nlink() == 1
        && meta.uid() == nix::unistd::geteuid().as_raw();
    if !own {
        return Ok(false);
    }
    file.write_all_at(content, 0).map_err(io_error("write"))?;
    if meta.len() > content.len() as u64 {
        file.set_len(content.len() as u64)
            .map_err(io_error("truncate"))?;
    }
    Ok(true)
}

/// Reads a small regular file; `None` when absent or not a regular file (a symlink, FIFO or
/// directory planted in the store is ignored, never followed or waited on).
pub(super) fn read_small_file(
    dir: &impl AsFd,
    name: &str,
    path: impl Fn() -> PathBuf,
) -> Result<Option<String>> {
    let Some(file) = open_existing(dir, name, OFlag::O_RDONLY, &path)? else {
        return Ok(None);
    };
    let io_error = |source| Error::Store {
        op: "read",
        path: path(),
        source,
    };
    if !file.metadata().map_err(io_error)?.is_file() {
        return Ok(None);
    }
    let mut content = String::new();
    match file.take(MAX_FILE_SIZE).read_to_string(&mut content) {
        Ok(_) => Ok(Some(content)),
        // Not text: not one of ours, and not the reference's either.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(None),
        Err(e) => Err(io_error(e)),
    }
}
