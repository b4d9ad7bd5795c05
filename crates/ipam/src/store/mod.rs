//! The on-disk lease store, in the reference's layout so a node can switch between the Go
//! plugin and this one without losing a lease (PL:backend/disk/backend.go; docs/design.md#lease-store):
//!
//! ```text
//! <dataDir>/<network>/            mode 0755, a real directory (a symlink is refused)
//!     lock                        flock(LOCK_EX) for the whole of one ADD/DEL/CHECK/STATUS/GC
//!     10.1.2.2                    "<containerID>\r\n<ifname>" (legacy files: "<containerID>")
//!     last_reserved_ip.0          "10.1.2.2": round-robin cursor of range set 0
//!     .attachments/<id>+<ifname>  our by-attachment index (see below); ignored by Go
//! ```
//!
//! Differences from the reference, all invisible to it:
//! * files are created 0600 and opened with `O_NOFOLLOW` (and `O_NONBLOCK`, so a planted FIFO
//!   cannot hang a read), relative to the directory descriptor validated at open time;
//! * a reservation is written to a file without a name (`O_TMPFILE`, made before the lock:
//!   [`Store::prepare_add`]), then `link()`ed to the address's name: the name appears
//!   atomically with its full content, `link` fails with `EEXIST` if the name exists
//!   (whatever it is: a planted symlink is never followed), and a crash leaves nothing.
//!   Without `O_TMPFILE` a named temp file is used instead, which the next lock holder
//!   removes if a crash left it. New index entries are made the same way; an existing entry
//!   is replaced with temp + `rename()`, and our own `last_reserved_ip.N` is overwritten in
//!   place (a foreign one is replaced with temp + `rename()`);
//! * an index entry per attachment lists its addresses, so DEL and CHECK read a handful of
//!   files instead of every lease. The Go plugin does not know the index, so an entry is a
//!   hint: every address in it is verified against its lease file, and any mismatch (or no
//!   entry at all) falls back to the reference's scan of the whole directory.
//!
//! Policy (which address to take) lives in [`crate::allocator`]; this module only stores.
//! Its parts, all behind [`LockedStore`]: `files` (the no-follow file operations every part
//! uses), `lease` (lease files and the round-robin cursor), `prepared` (the `O_TMPFILE`
//! files made before the lock), `index` (the by-attachment index) and `stamp` (the index
//! stamp that lets ADD skip the scan).

mod files;
mod index;
mod lease;
mod prepared;
mod stamp;

pub use lease::{Lease, Owner};
pub use prepared::Prepared;

use crate::error::{Error, Result};
use cni::Attachment;
use files::{DIR_MODE, FILE_MODE, open_real_dir, remove_if_present};
use index::{INDEX_DIR, INDEX_TEMP};
use lease::{LAST_RESERVED_TEMP, RESERVATION_TEMP};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, openat};
use nix::sys::stat::Mode;
use stamp::{STAMP_TEMP, StampState};
use std::cell::RefCell;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The lock file's name (shared with the Go plugin, which flocks the same file).
const LOCK_FILE: &str = "lock";

/// One network's store directory, opened and validated. Every operation needs the lock:
/// take it with [`Store::lock`].
#[derive(Debug)]
pub struct Store {
    dir: OwnedFd,
    path: PathBuf,
}

impl Store {
    /// Opens (creating as needed) `<data_dir>/<network>`. The network name is validated
    /// (code 7) so it cannot leave `data_dir`, and the directory must be a real directory: a
    /// symlink planted at its place is refused, not followed.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store> {
        cni::names::validate_network_name(network).map_err(Error::Rejected)?;
        std::os::unix::fs::DirBuilderExt::mode(
            std::fs::DirBuilder::new().recursive(true),
            DIR_MODE,
        )
        .create(data_dir)
        .map_err(|source| Error::Store {
            op: "create",
            path: data_dir.to_owned(),
            source,
        })?;
        let parent = nix::fcntl::open(
            data_dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::store("open", data_dir, e))?;
        let path = data_dir.join(network);
        let dir = open_real_dir(&parent, network, &path)?;
        Ok(Store { dir, path })
    }

    /// The store directory's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Takes the exclusive lock shared with the Go plugin, for one whole operation.
    pub fn lock(&self) -> Result<LockedStore<'_>> {
        self.lock_prepared(Prepared::default())
    }

    /// [`Store::lock`], with files made beforehand by [`Store::prepare_add`] for the
    /// locked store to link into place instead of creating them.
    pub fn lock_prepared(&self, prepared: Prepared) -> Result<LockedStore<'_>> {
        let fd = openat(
            &self.dir,
            LOCK_FILE,
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            FILE_MODE,
        )
        .map_err(|e| Error::store("open", self.path.join(LOCK_FILE), e))?;
        let mut file = File::from(fd);
        let lock = loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => break lock,
                // A signal interrupted the wait: wait again.
                Err((unlocked, Errno::EINTR)) => file = unlocked,
                Err((_, errno)) => {
                    return Err(Error::store("lock", self.path.join(LOCK_FILE), errno));
                }
            }
        };
        let locked = LockedStore {
            store: self,
            _lock: lock,
            prepared: RefCell::new(prepared),
            stamp: RefCell::default(),
        };
        locked.remove_stale_temps()?;
        locked.read_stamp()?;
        Ok(locked)
    }
}

/// The store with its lock held; the lock is released on drop.
#[derive(Debug)]
pub struct LockedStore<'a> {
    store: &'a Store,
    _lock: Flock<File>,
    prepared: RefCell<Prepared>,
    stamp: RefCell<StampState>,
}

impl Drop for LockedStore<'_> {
    /// Rewrites the stamp for what this holder changed, while the lock is still held (the
    /// fields, the lock among them, are dropped after this). Best effort: a stamp that is
    /// not rewritten no longer matches the directory, which only costs the next ADD a scan.
    fn drop(&mut self) {
        self.write_stamp_if_changed();
    }
}

impl LockedStore<'_> {
    fn path_of(&self, name: &str) -> PathBuf {
        self.store.path.join(name)
    }

    /// Every write happens under the lock, so a temp file present when the lock is taken
    /// was left by a process that died mid-write (an ADD killed with SIGKILL): remove it,
    /// so the DEL that follows leaves nothing behind.
    fn remove_stale_temps(&self) -> Result<()> {
        for temp in [RESERVATION_TEMP, LAST_RESERVED_TEMP, STAMP_TEMP] {
            remove_if_present(&self.store.dir, temp, || self.path_of(temp))?;
        }
        if let Some(index) = self.existing_index_dir()? {
            remove_if_present(&index, INDEX_TEMP, || {
                self.path_of(INDEX_DIR).join(INDEX_TEMP)
            })?;
        }
        Ok(())
    }
}

/// The attachment's names must be safe before they reach a file (code 4, as the spec's
/// environment checks).
fn validate(attachment: &Attachment) -> Result<()> {
    cni::names::validate_container_id(attachment.container_id.trim()).map_err(Error::Rejected)?;
    cni::names::validate_ifname(&attachment.ifname).map_err(Error::Rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::net::IpAddr;
    use std::os::unix::fs::symlink;

    pub(super) fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    pub(super) fn attachment(id: &str, ifname: &str) -> Attachment {
        Attachment {
            container_id: id.into(),
            ifname: ifname.into(),
        }
    }

    pub(super) fn names_in(dir: &Path) -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    #[test]
    fn hostile_names_never_reach_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        for network in ["../escape", "a/b", ".hidden", ""] {
            let err = Store::open(dir.path(), network).unwrap_err();
            assert_eq!(cni::Error::from(err).code(), 7, "{network}");
        }
        let store = Store::open(dir.path(), "net").unwrap();
        let locked = store.lock().unwrap();
        for (id, ifname) in [
            ("../../x", "eth0"),
            ("ok", "../x"),
            ("ok", "a/b"),
            ("bad\r\nid", "eth0"),
        ] {
            let err = locked
                .reserve(ip("10.0.0.2"), &attachment(id, ifname))
                .unwrap_err();
            assert_eq!(cni::Error::from(err).code(), 4, "{id:?} {ifname:?}");
        }
        assert!(locked.leases().unwrap().is_empty());
    }

    #[test]
    fn a_symlinked_network_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        symlink(elsewhere.path(), dir.path().join("net")).unwrap();
        let err = Store::open(dir.path(), "net").unwrap_err();
        assert!(matches!(err, Error::NotADirectory { .. }), "{err}");
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }

    /// An operation killed mid-write (SIGKILL during ADD) leaves a temp file; the next
    /// operation to take the lock removes every such file, so DEL leaves nothing behind.
    #[test]
    fn taking_the_lock_removes_temp_files_of_a_killed_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "net").unwrap();
        let net = dir.path().join("net");
        std::fs::create_dir(net.join(INDEX_DIR)).unwrap();
        for temp in [
            net.join(RESERVATION_TEMP),
            net.join(LAST_RESERVED_TEMP),
            net.join(INDEX_DIR).join(INDEX_TEMP),
        ] {
            std::fs::write(&temp, "partial").unwrap();
        }
        drop(store.lock().unwrap());
        assert!(!net.join(RESERVATION_TEMP).exists());
        assert!(!net.join(LAST_RESERVED_TEMP).exists());
        assert!(!net.join(INDEX_DIR).join(INDEX_TEMP).exists());
    }

    #[test]
    fn concurrent_reservations_from_many_threads_are_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let winners: Vec<Option<IpAddr>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..32)
                .map(|n| {
                    let path = dir.path();
                    scope.spawn(move || {
                        // Each thread opens its own store, as separate processes do.
                        let store = Store::open(path, "net").unwrap();
                        let locked = store.lock().unwrap();
                        let who = attachment(&format!("ctr{n}"), "eth0");
                        (2..=40u8)
                            .map(|last| IpAddr::from([10, 0, 0, last]))
                            .find(|ip| locked.reserve(*ip, &who).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let distinct: BTreeSet<IpAddr> = winners.iter().flatten().copied().collect();
        assert_eq!(distinct.len(), 32);
    }
}
