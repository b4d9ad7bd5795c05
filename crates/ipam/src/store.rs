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

use crate::error::{Error, Result};
use cni::Attachment;
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, Flock, FlockArg, OFlag, openat, renameat};
use nix::sys::stat::{Mode, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, linkat, unlinkat};
use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The lock file's name (shared with the Go plugin, which flocks the same file).
const LOCK_FILE: &str = "lock";
/// Prefix of the per-range-set round-robin cursor files.
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// Temp name for a reservation being written (always under the lock, so one at a time).
const RESERVATION_TEMP: &str = ".reservation.tmp";
/// Temp name for a `last_reserved_ip.N` being replaced.
const LAST_RESERVED_TEMP: &str = ".last_reserved_ip.tmp";
/// The by-attachment index directory.
const INDEX_DIR: &str = ".attachments";
/// Temp name for an index entry being replaced (inside [`INDEX_DIR`]).
const INDEX_TEMP: &str = ".entry.tmp";
/// First line of every index entry. Go's scan compares whole file contents with
/// `<id>\r\n<ifname>` or `<id>`; this line guarantees an entry never looks like a lease.
const INDEX_HEADER: &str = "# host-local attachment index v1";
/// The index stamp (see [`LockedStore::held_for_add`]); not an address, so the Go plugin's
/// allocator never looks at it, and its header keeps Go's directory walk from ever taking
/// it for a lease.
const STAMP_FILE: &str = ".index-stamp";
/// Temp name for a stamp being created.
const STAMP_TEMP: &str = ".index-stamp.tmp";
/// First line of the stamp.
const STAMP_HEADER: &str = "# host-local index stamp v1";
/// Longest file content we read: leases are a container ID plus an ifname.
const MAX_FILE_SIZE: u64 = 4096;
/// Longest file name (NAME_MAX); longer index names are not written (the scan still works).
const NAME_MAX: usize = 255;
/// Mode of every file we create: leases name containers, nobody else needs to read them.
const FILE_MODE: Mode = Mode::S_IRUSR.union(Mode::S_IWUSR);
/// Mode of the directories we create (the reference's 0755).
const DIR_MODE: u32 = 0o755;

/// Who holds a lease, as read from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The container ID (trimmed, as the reference writes and compares it).
    pub container_id: String,
    /// The interface; `None` for legacy files that hold only the container ID.
    pub ifname: Option<String>,
}

impl Owner {
    /// Parses a lease file's content: `<id>\r\n<ifname>`, or a legacy `<id>`; surrounding
    /// whitespace is ignored, as the reference's `strings.TrimSpace` does.
    pub fn parse(content: &str) -> Owner {
        let content = content.trim();
        match content.split_once("\r\n") {
            Some((id, ifname)) => Owner {
                container_id: id.to_owned(),
                ifname: Some(ifname.to_owned()),
            },
            None => Owner {
                container_id: content.to_owned(),
                ifname: None,
            },
        }
    }

    /// Whether this lease belongs to `attachment` (a legacy file matches by ID alone).
    pub fn matches(&self, attachment: &Attachment) -> bool {
        self.container_id == attachment.container_id.trim()
            && self
                .ifname
                .as_ref()
                .is_none_or(|ifname| *ifname == attachment.ifname)
    }
}

/// One lease found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The reserved address.
    pub ip: IpAddr,
    /// Its holder.
    pub owner: Owner,
}

/// The lease file content the reference writes for `attachment`.
fn lease_content(attachment: &Attachment) -> String {
    format!(
        "{}\r\n{}",
        attachment.container_id.trim(),
        attachment.ifname
    )
}

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

    /// Makes, before the lock is taken, the files an ADD of `attachment` will link into
    /// place under the lock: `leases` lease files already holding the reference's content,
    /// and an empty index entry (only when the index directory exists already, so a failed
    /// first ADD leaves no index directory behind, as before).
    ///
    /// Why: allocating an inode is the slowest file operation of an ADD, and it was paid
    /// under the lock, i.e. in series by every concurrent ADD of the network. On an ext4
    /// without a journal (the benchmark machine's root), `find_inode_bit` skips every inode
    /// freed in the last minutes (`recently_deleted`), so after some churn one allocation
    /// took 0.2–1.7 ms (median ≈ 0.8 ms in a batch of 200 concurrent ADDs, measured with
    /// timestamps around each step), against ≈ 20 µs for the `link` left under the lock.
    ///
    /// The files are `O_TMPFILE` inodes: nameless until linked, so nothing can see them
    /// (not the Go plugin's directory walk either) and a killed ADD leaves nothing behind.
    /// Best effort: where `O_TMPFILE` (or `/proc/self/fd`, used to link them) is missing,
    /// or on any error, nothing is prepared and the locked store creates the files itself.
    pub fn prepare_add(&self, attachment: &Attachment, leases: usize) -> Prepared {
        let mut prepared = Prepared::default();
        if validate(attachment).is_err() {
            return prepared;
        }
        let content = lease_content(attachment);
        for _ in 0..leases {
            match anonymous_file(&self.dir, content.as_bytes()) {
                Some(file) => prepared.leases.push(file),
                None => return Prepared::default(),
            }
        }
        if index_name(attachment).is_some() {
            if let Ok(Some(index)) = existing_dir(&self.dir, INDEX_DIR) {
                prepared.index = anonymous_file(&index, &[]);
            }
        }
        prepared.attachment = Some(attachment.clone());
        prepared
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

/// Creates `name` under `parent` if missing and opens it, refusing anything but a directory
/// (`O_NOFOLLOW`: a symlink gives `ELOOP`, a file `ENOTDIR`).
fn open_real_dir(parent: &impl AsFd, name: &str, path: &Path) -> Result<OwnedFd> {
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

/// Files made by [`Store::prepare_add`] for one attachment, linked into place under the lock
/// (unused ones vanish when dropped: they have no name).
#[derive(Debug, Default)]
pub struct Prepared {
    attachment: Option<Attachment>,
    /// Lease files, holding the lease content already.
    leases: Vec<File>,
    /// An empty file in the index directory, for the attachment's index entry.
    index: Option<File>,
}

impl Prepared {
    fn for_attachment(&mut self, attachment: &Attachment) -> Option<&mut Prepared> {
        (self.attachment.as_ref() == Some(attachment)).then_some(self)
    }
}

/// A new nameless regular file (mode 0600) in `dir` holding `content`; `None` on any error.
fn anonymous_file(dir: &impl AsFd, content: &[u8]) -> Option<File> {
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
fn link_anonymous(file: &File, dir: &impl AsFd, name: &str) -> nix::Result<()> {
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    linkat(
        nix::fcntl::AT_FDCWD,
        source.as_str(),
        dir,
        name,
        AtFlags::AT_SYMLINK_FOLLOW,
    )
}

/// The address-named entries of the store directory in brief: how many, and the XOR of a
/// hash of each (name, inode) pair, so that one entry's arrival or departure updates it
/// without listing the directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Listing {
    count: u64,
    hash: u64,
}

impl Listing {
    fn toggle(&mut self, name: &str, ino: u64, added: bool) {
        self.count = if added {
            self.count.wrapping_add(1)
        } else {
            self.count.wrapping_sub(1)
        };
        // FNV-1a: stable across builds and versions, unlike std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in name.bytes().chain([0]).chain(ino.to_le_bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.hash ^= hash;
    }
}

/// What the index stamp says and what this lock holder did to it.
#[derive(Debug, Default)]
struct StampState {
    /// The listing the stamp vouches for, when the mtime it records is the directory's
    /// mtime as the lock was taken (nobody changed the directory since it was written).
    claimed: Option<Listing>,
    /// The listing as our own changes move it, while it is known: from the stamp, or from
    /// a scan that found every lease indexed. `None`: unknown, the stamp is left stale.
    tracked: Option<Listing>,
    /// The stamp must be rewritten when the lock is released.
    dirty: bool,
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
        let state = self.stamp.get_mut();
        if let (true, Some(listing)) = (state.dirty, state.tracked) {
            if let Err(e) = self.write_stamp(listing) {
                log::debug!("index stamp not written: {e}");
            }
        }
    }
}

impl LockedStore<'_> {
    fn path_of(&self, name: &str) -> PathBuf {
        self.store.path.join(name)
    }

    /// Reserves `ip` for `attachment`. `Ok(false)` when the address's name exists already
    /// (a lease, or anything else planted there).
    pub fn reserve(&self, ip: IpAddr, attachment: &Attachment) -> Result<bool> {
        validate(attachment)?;
        let dir = &self.store.dir;
        let name = ip.to_string();
        if let Some(prepared) = self.prepared.borrow_mut().for_attachment(attachment) {
            if let Some(file) = prepared.leases.last() {
                match link_anonymous(file, dir, &name) {
                    Ok(()) => {
                        prepared.leases.pop();
                        self.note_lease_name(&name, true);
                        return Ok(true);
                    }
                    Err(Errno::EEXIST) => return Ok(false),
                    // No /proc, say: create the file here instead, as without preparation
                    // (a real fault of the directory then shows in that path's error).
                    Err(e) => {
                        log::debug!("linking a prepared lease: {e}");
                        *prepared = Prepared::default();
                    }
                }
            }
        }
        // A crash may have left the temp file behind; it never holds a lease.
        remove_if_present(dir, RESERVATION_TEMP, || self.path_of(RESERVATION_TEMP))?;
        write_new_file(
            dir,
            RESERVATION_TEMP,
            lease_content(attachment).as_bytes(),
            || self.path_of(RESERVATION_TEMP),
        )?;
        let linked = linkat(dir, RESERVATION_TEMP, dir, name.as_str(), AtFlags::empty());
        remove_if_present(dir, RESERVATION_TEMP, || self.path_of(RESERVATION_TEMP))?;
        match linked {
            Ok(()) => {
                self.note_lease_name(&name, true);
                Ok(true)
            }
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(Error::store("link", self.path_of(&name), e)),
        }
    }

    /// Whether `ip`'s name exists (a lease or anything planted there: not allocatable).
    pub fn is_reserved(&self, ip: IpAddr) -> Result<bool> {
        let name = ip.to_string();
        match fstatat(&self.store.dir, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(Error::store("stat", self.path_of(&name), e)),
        }
    }

    /// The holder of `ip`'s lease; `None` when there is no lease file (or something that is
    /// not a regular file is at its name).
    pub fn owner_of(&self, ip: IpAddr) -> Result<Option<Owner>> {
        let name = ip.to_string();
        Ok(
            read_small_file(&self.store.dir, &name, || self.path_of(&name))?
                .map(|content| Owner::parse(&content)),
        )
    }

    /// Releases `ip` if `attachment` holds it; `Ok(false)` if it does not.
    pub fn release(&self, ip: IpAddr, attachment: &Attachment) -> Result<bool> {
        if !self
            .owner_of(ip)?
            .is_some_and(|owner| owner.matches(attachment))
        {
            return Ok(false);
        }
        self.remove_lease_name(&ip.to_string())
    }

    /// The round-robin cursor of range set `set`, if recorded and readable.
    pub fn last_reserved_ip(&self, set: usize) -> Result<Option<IpAddr>> {
        let name = format!("{LAST_RESERVED_PREFIX}{set}");
        Ok(
            read_small_file(&self.store.dir, &name, || self.path_of(&name))?
                .and_then(|text| crate::range::parse_ip(text.trim())),
        )
    }

    /// Records `ip` as range set `set`'s cursor.
    ///
    /// Our own cursor file (a regular file, mode 0600, one link, ours) is overwritten in
    /// place; anything else there (none yet, the Go plugin's 0644 file, a planted symlink)
    /// is replaced with temp file + rename, which leaves exactly that file behind.
    ///
    /// Why in place: replacing it costs an inode allocation plus, on ext4, the freeing of
    /// the old file's data block (a synchronous discard with `-o discard`) and the
    /// `auto_da_alloc` flush of the new one. Measured on the benchmark machine's ext4:
    /// 460 µs per rename-over against 15 µs in place (600 µs of a 960 µs lock hold in a
    /// quiet ADD), and it ran under the lock, so every concurrent ADD of the network paid
    /// it in series. The cursor is a hint that only picks where the round robin starts; a
    /// SIGKILL between the write and the truncation (shorter address) can leave a wrong
    /// start, never a wrong lease, as the reference's truncate-then-write can leave an
    /// empty file.
    pub fn set_last_reserved_ip(&self, set: usize, ip: IpAddr) -> Result<()> {
        let dir = &self.store.dir;
        let name = format!("{LAST_RESERVED_PREFIX}{set}");
        let content = ip.to_string();
        if overwrite_own_file(dir, &name, content.as_bytes(), || self.path_of(&name))? {
            return Ok(());
        }
        replace_file(dir, LAST_RESERVED_TEMP, &name, content.as_bytes(), |n| {
            self.path_of(n)
        })
    }

    /// The store directory opened for reading its entries.
    fn open_listing(&self) -> Result<Dir> {
        Dir::openat(
            &self.store.dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::store("open", &self.store.path, e))
    }

    /// Every lease in the directory (the reference's full scan). Names that are not
    /// addresses, and entries that are not regular files, are skipped.
    pub fn leases(&self) -> Result<Vec<Lease>> {
        let mut dir = self.open_listing()?;
        let mut leases = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| Error::store("read", &self.store.path, e))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .ok()
                .and_then(|name| name.parse::<IpAddr>().ok())
            else {
                continue;
            };
            if let Some(owner) = self.owner_of(ip)? {
                leases.push(Lease { ip, owner });
            }
        }
        Ok(leases)
    }

    /// The addresses `attachment` holds: from its index entry when every address in it is
    /// verified, else by scanning every lease.
    pub fn find(&self, attachment: &Attachment) -> Result<Vec<IpAddr>> {
        validate(attachment)?;
        if let Some(ips) = self.verified_index_entry(attachment)? {
            return Ok(ips);
        }
        Ok(self
            .leases()?
            .into_iter()
            .filter(|lease| lease.owner.matches(attachment))
            .map(|lease| lease.ip)
            .collect())
    }

    /// [`LockedStore::find`] for ADD's duplicate check: the same answer, without reading
    /// every lease when the index stamp shows that nobody else touched the lease names
    /// since our last write.
    ///
    /// Why: a new container has no index entry, so `find` scanned the whole directory on
    /// every ADD (open and read of each lease: ≈ 10 µs per lease, under the lock), which
    /// made ADD linear in the leases held and was most of the lock hold once the files
    /// were made outside it (≈ 1.4 ms of a 1.6 ms hold in 200 concurrent ADDs).
    ///
    /// The stamp (`.index-stamp`) records, after each of our writes, the directory's mtime
    /// and a [`Listing`] of its address-named entries, and we write it only while every
    /// lease belongs to an attachment with an index entry. If the mtime still matches (no
    /// entry was created, removed or renamed since: with the kernel's fine-grained
    /// timestamps any change after our read moves it) and so does the listing (which also
    /// catches a change within one coarse clock tick), every lease is still indexed, so an
    /// attachment without an entry holds nothing. Anything else — the Go plugin's writes,
    /// our older versions, a crash mid-write — falls back to the scan, which rebuilds the
    /// stamp when it finds every lease indexed. It relies on lease files never being
    /// rewritten in place, which neither plugin does (both create them with `O_EXCL`).
    pub fn held_for_add(&self, attachment: &Attachment) -> Result<Vec<IpAddr>> {
        validate(attachment)?;
        if let Some(ips) = self.verified_index_entry(attachment)? {
            return Ok(ips);
        }
        let claimed = self.stamp.borrow().claimed;
        if let Some(claimed) = claimed {
            if self.listing()? == claimed {
                return Ok(Vec::new());
            }
            self.stamp.borrow_mut().tracked = None;
        }
        let (leases, listing, indexed) = self.scan()?;
        if indexed {
            let mut state = self.stamp.borrow_mut();
            state.tracked = Some(listing);
            state.dirty = true;
        }
        Ok(leases
            .into_iter()
            .filter(|lease| lease.owner.matches(attachment))
            .map(|lease| lease.ip)
            .collect())
    }

    /// The address-named entries of the directory, whatever they are.
    fn listing(&self) -> Result<Listing> {
        let mut listing = Listing::default();
        for (name, ino) in self.address_entries()? {
            listing.toggle(&name, ino, true);
        }
        Ok(listing)
    }

    /// Names (and inodes) of the directory's entries that parse as addresses.
    fn address_entries(&self) -> Result<Vec<(String, u64)>> {
        let mut dir = self.open_listing()?;
        let mut entries = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| Error::store("read", &self.store.path, e))?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name.parse::<IpAddr>().is_ok() {
                entries.push((name.to_owned(), entry.ino()));
            }
        }
        Ok(entries)
    }

    /// Every lease (as [`LockedStore::leases`]), the listing, and whether every lease
    /// belongs to an attachment that has an index entry.
    fn scan(&self) -> Result<(Vec<Lease>, Listing, bool)> {
        let mut leases = Vec::new();
        let mut listing = Listing::default();
        for (name, ino) in self.address_entries()? {
            listing.toggle(&name, ino, true);
            let Ok(ip) = name.parse::<IpAddr>() else {
                continue;
            };
            if let Some(owner) = self.owner_of(ip)? {
                leases.push(Lease { ip, owner });
            }
        }
        let index = self.existing_index_dir()?;
        let mut indexed = true;
        for lease in &leases {
            let entry = lease.owner.ifname.as_ref().and_then(|ifname| {
                index_name(&Attachment {
                    container_id: lease.owner.container_id.clone(),
                    ifname: ifname.clone(),
                })
            });
            let exists = match (&index, entry) {
                (Some(index), Some(name)) => {
                    fstatat(index, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
                }
                // A legacy lease (no ifname), or no index at all.
                _ => false,
            };
            if !exists {
                indexed = false;
                break;
            }
        }
        Ok((leases, listing, indexed))
    }

    /// Counts our own new or removed address name into the tracked listing.
    fn note_lease_name(&self, name: &str, added: bool) {
        let mut state = self.stamp.borrow_mut();
        let Some(listing) = state.tracked.as_mut() else {
            return;
        };
        match fstatat(&self.store.dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => {
                listing.toggle(name, stat.st_ino, added);
                state.dirty = true;
            }
            Err(_) => state.tracked = None,
        }
    }

    /// Removes the address name `name`, keeping the tracked listing up to date.
    fn remove_lease_name(&self, name: &str) -> Result<bool> {
        let ino = match fstatat(&self.store.dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat.st_ino,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(Error::store("stat", self.path_of(name), e)),
        };
        let removed = remove_if_present(&self.store.dir, name, || self.path_of(name))?;
        if removed {
            let mut state = self.stamp.borrow_mut();
            if let Some(listing) = state.tracked.as_mut() {
                listing.toggle(name, ino, false);
                state.dirty = true;
            }
        }
        Ok(removed)
    }

    /// Reads the stamp as the lock is taken: trusted only if the directory's mtime is the
    /// one it records.
    fn read_stamp(&self) -> Result<()> {
        let Some(content) =
            read_small_file(&self.store.dir, STAMP_FILE, || self.path_of(STAMP_FILE))?
        else {
            return Ok(());
        };
        let mut lines = content.lines();
        if lines.next() != Some(STAMP_HEADER) {
            return Ok(());
        }
        let fields: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        let [sec, nsec, count, hash] = fields.as_slice() else {
            return Ok(());
        };
        let (Ok(sec), Ok(nsec), Ok(count), Ok(hash)) = (
            sec.parse::<i64>(),
            nsec.parse::<i64>(),
            count.parse::<u64>(),
            u64::from_str_radix(hash, 16),
        ) else {
            return Ok(());
        };
        if self.dir_mtime()? == (sec, nsec) {
            let listing = Listing { count, hash };
            let mut state = self.stamp.borrow_mut();
            state.claimed = Some(listing);
            state.tracked = Some(listing);
        }
        Ok(())
    }

    /// Writes the stamp for `listing` and the directory's mtime now.
    fn write_stamp(&self, listing: Listing) -> Result<()> {
        let dir = &self.store.dir;
        let content = |(sec, nsec): (i64, i64)| {
            // Fixed width: every rewrite is one pwrite of the same length.
            format!(
                "{STAMP_HEADER}\n{sec:020} {nsec:09} {:020} {:016x}\n",
                listing.count, listing.hash
            )
        };
        // The file must exist before the mtime is read: creating it changes the mtime.
        if !overwrite_own_file(dir, STAMP_FILE, content((0, 0)).as_bytes(), || {
            self.path_of(STAMP_FILE)
        })? {
            replace_file(
                dir,
                STAMP_TEMP,
                STAMP_FILE,
                content((0, 0)).as_bytes(),
                |n| self.path_of(n),
            )?;
        }
        let written = content(self.dir_mtime()?);
        if overwrite_own_file(dir, STAMP_FILE, written.as_bytes(), || {
            self.path_of(STAMP_FILE)
        })? {
            Ok(())
        } else {
            Err(Error::store(
                "write",
                self.path_of(STAMP_FILE),
                Errno::EAGAIN,
            ))
        }
    }

    /// The directory's modification time (seconds, nanoseconds).
    fn dir_mtime(&self) -> Result<(i64, i64)> {
        let stat = nix::sys::stat::fstat(&self.store.dir)
            .map_err(|e| Error::store("stat", &self.store.path, e))?;
        Ok((stat.st_mtime, stat.st_mtime_nsec))
    }

    /// Releases every address `attachment` holds and forgets its index entry; releasing
    /// nothing is success (DEL is idempotent). Returns the released addresses.
    pub fn release_all(&self, attachment: &Attachment) -> Result<Vec<IpAddr>> {
        let ips = self.find(attachment)?;
        for ip in &ips {
            self.remove_lease_name(&ip.to_string())?;
        }
        self.forget(attachment)?;
        Ok(ips)
    }

    /// Records that `attachment` holds `ips` (added to what a verified entry already lists).
    pub fn remember(&self, attachment: &Attachment, ips: &[IpAddr]) -> Result<()> {
        let Some(name) = index_name(attachment) else {
            return Ok(());
        };
        let mut all = self.verified_index_entry(attachment)?.unwrap_or_default();
        for ip in ips {
            if !all.contains(ip) {
                all.push(*ip);
            }
        }
        let index = self.index_dir()?;
        let content: String = std::iter::once(INDEX_HEADER.to_owned())
            .chain(all.iter().map(IpAddr::to_string))
            .map(|line| line + "\n")
            .collect();
        let prepared = self
            .prepared
            .borrow_mut()
            .for_attachment(attachment)
            .and_then(|prepared| prepared.index.take());
        if let Some(mut file) = prepared {
            // A new entry appears complete; an existing one (EEXIST) is replaced below.
            if file.write_all(content.as_bytes()).is_ok()
                && link_anonymous(&file, &index, &name).is_ok()
            {
                return Ok(());
            }
        }
        replace_file(&index, INDEX_TEMP, &name, content.as_bytes(), |n| {
            self.path_of(INDEX_DIR).join(n)
        })
    }

    /// Drops `attachment`'s index entry, if any.
    pub fn forget(&self, attachment: &Attachment) -> Result<()> {
        let Some(name) = index_name(attachment) else {
            return Ok(());
        };
        let Some(index) = self.existing_index_dir()? else {
            return Ok(());
        };
        remove_if_present(&index, &name, || self.path_of(INDEX_DIR).join(&name)).map(drop)
    }

    /// Drops every index entry whose attachment `keep` rejects (GC).
    pub fn forget_unless(&self, keep: impl Fn(&Attachment) -> bool) -> Result<()> {
        // Whether every lease kept still has its entry depends on how `keep` compares
        // attachments: leave the stamp stale, for the next ADD to rebuild by scanning.
        self.stamp.borrow_mut().tracked = None;
        let Some(index) = self.existing_index_dir()? else {
            return Ok(());
        };
        let index_path = self.path_of(INDEX_DIR);
        let mut dir = Dir::openat(
            &index,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::store("open", &index_path, e))?;
        let mut doomed = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| Error::store("read", &index_path, e))?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if let Some((container_id, ifname)) = name.split_once('+') {
                let attachment = Attachment {
                    container_id: container_id.to_owned(),
                    ifname: ifname.to_owned(),
                };
                if !keep(&attachment) {
                    doomed.push(name.to_owned());
                }
            }
        }
        for name in doomed {
            remove_if_present(&index, &name, || index_path.join(&name))?;
        }
        Ok(())
    }

    /// The index entry's addresses if it exists and every one is still held by
    /// `attachment`; `None` sends the caller to the full scan.
    fn verified_index_entry(&self, attachment: &Attachment) -> Result<Option<Vec<IpAddr>>> {
        let Some(name) = index_name(attachment) else {
            return Ok(None);
        };
        let Some(index) = self.existing_index_dir()? else {
            return Ok(None);
        };
        let Some(content) = read_small_file(&index, &name, || self.path_of(INDEX_DIR).join(&name))?
        else {
            return Ok(None);
        };
        let mut lines = content.lines();
        if lines.next() != Some(INDEX_HEADER) {
            return Ok(None);
        }
        let mut ips = Vec::new();
        for line in lines {
            let Ok(ip) = line.parse::<IpAddr>() else {
                return Ok(None);
            };
            // The Go plugin may have released (and re-leased) it since: then the entry is
            // stale, and only a scan tells what the attachment holds now.
            if !self
                .owner_of(ip)?
                .is_some_and(|owner| owner.matches(attachment))
            {
                return Ok(None);
            }
            ips.push(ip);
        }
        Ok(Some(ips))
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

    fn index_dir(&self) -> Result<OwnedFd> {
        open_real_dir(&self.store.dir, INDEX_DIR, &self.path_of(INDEX_DIR))
    }

    fn existing_index_dir(&self) -> Result<Option<OwnedFd>> {
        existing_dir(&self.store.dir, INDEX_DIR).map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => Error::NotADirectory {
                path: self.path_of(INDEX_DIR),
            },
            e => Error::store("open", self.path_of(INDEX_DIR), e),
        })
    }
}

/// Opens the directory `name` under `parent` if it exists (`O_NOFOLLOW`: a symlink is
/// `ELOOP`, a file `ENOTDIR`).
fn existing_dir(parent: &impl AsFd, name: &str) -> nix::Result<Option<OwnedFd>> {
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

/// The attachment's names must be safe before they reach a file (code 4, as the spec's
/// environment checks).
fn validate(attachment: &Attachment) -> Result<()> {
    cni::names::validate_container_id(attachment.container_id.trim()).map_err(Error::Rejected)?;
    cni::names::validate_ifname(&attachment.ifname).map_err(Error::Rejected)
}

/// `<id>+<ifname>`: unambiguous, as container IDs never hold `+`. `None` when too long for a
/// file name (such attachments are simply found by scanning).
fn index_name(attachment: &Attachment) -> Option<String> {
    let name = format!("{}+{}", attachment.container_id.trim(), attachment.ifname);
    (name.len() <= NAME_MAX).then_some(name)
}

/// Removes `name` under `dir`; `Ok(false)` if it was not there.
fn remove_if_present(dir: &impl AsFd, name: &str, path: impl Fn() -> PathBuf) -> Result<bool> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(Error::store("remove", path(), e)),
    }
}

/// Creates `name` (which must not exist) with `content`, mode 0600, never following links.
fn write_new_file(
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
fn replace_file(
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
fn overwrite_own_file(
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
fn read_small_file(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn attachment(id: &str, ifname: &str) -> Attachment {
        Attachment {
            container_id: id.into(),
            ifname: ifname.into(),
        }
    }

    #[test]
    fn reservation_file_has_the_reference_content_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "net").unwrap();
        let locked = store.lock().unwrap();
        assert!(
            locked
                .reserve(ip("10.0.0.2"), &attachment("ctr1", "eth0"))
                .unwrap()
        );
        assert!(
            !locked
                .reserve(ip("10.0.0.2"), &attachment("ctr2", "eth0"))
                .unwrap()
        );
        let path = dir.path().join("net/10.0.0.2");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "ctr1\r\neth0");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: BTreeSet<String> = std::fs::read_dir(dir.path().join("net"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["10.0.0.2".into(), "lock".into()]),
            "no temp file left"
        );
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

    #[test]
    fn a_symlink_planted_under_an_ip_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let store = Store::open(dir.path(), "net").unwrap();
        symlink(&victim, dir.path().join("net/10.0.0.2")).unwrap();
        let locked = store.lock().unwrap();
        // Not reserved over, not read as a lease, not released.
        assert!(
            !locked
                .reserve(ip("10.0.0.2"), &attachment("ctr", "eth0"))
                .unwrap()
        );
        assert!(locked.leases().unwrap().is_empty());
        assert_eq!(locked.owner_of(ip("10.0.0.2")).unwrap(), None);
        std::fs::write(&victim, "ctr\r\neth0").unwrap();
        assert!(
            !locked
                .release(ip("10.0.0.2"), &attachment("ctr", "eth0"))
                .unwrap()
        );
        assert!(
            locked
                .release_all(&attachment("ctr", "eth0"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "ctr\r\neth0");
        // last_reserved_ip over a symlink replaces the link, not its target.
        symlink(&victim, dir.path().join("net/last_reserved_ip.0")).unwrap();
        locked.set_last_reserved_ip(0, ip("10.0.0.3")).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "ctr\r\neth0");
        assert_eq!(locked.last_reserved_ip(0).unwrap(), Some(ip("10.0.0.3")));
    }

    #[test]
    fn a_fifo_planted_in_the_store_does_not_hang_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "net").unwrap();
        nix::unistd::mkfifo(
            &dir.path().join("net/10.0.0.9"),
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .unwrap();
        let locked = store.lock().unwrap();
        assert!(locked.leases().unwrap().is_empty());
        assert!(locked.is_reserved(ip("10.0.0.9")).unwrap());
    }

    /// Crash safety: whatever step a crash interrupts, the visible state is either "no
    /// reservation" or "a complete reservation". Simulated by leaving the temp file behind
    /// with partial content, as a crash between write and link would.
    #[test]
    fn a_crash_before_link_leaves_no_half_written_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "net").unwrap();
        std::fs::write(dir.path().join("net").join(RESERVATION_TEMP), "ctr1\r").unwrap();
        let locked = store.lock().unwrap();
        assert!(
            locked.leases().unwrap().is_empty(),
            "a temp file is not a lease"
        );
        assert!(
            locked
                .reserve(ip("10.0.0.2"), &attachment("ctr2", "eth0"))
                .unwrap()
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("net/10.0.0.2")).unwrap(),
            "ctr2\r\neth0"
        );
        assert!(!dir.path().join("net").join(RESERVATION_TEMP).exists());
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
    fn legacy_and_whitespace_contents_are_matched() {
        assert_eq!(
            Owner::parse("  ctr1\r\neth0\n"),
            Owner {
                container_id: "ctr1".into(),
                ifname: Some("eth0".into())
            }
        );
        let legacy = Owner::parse("ctr1\n");
        assert!(legacy.matches(&attachment("ctr1", "eth7")));
        assert!(!legacy.matches(&attachment("ctr2", "eth0")));
        assert!(!Owner::parse("ctr1\r\neth1").matches(&attachment("ctr1", "eth0")));
    }

    #[test]
    fn the_index_is_verified_and_falls_back_to_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net");
        let store = Store::open(dir.path(), "net").unwrap();
        let locked = store.lock().unwrap();
        let a = attachment("ctr", "eth0");
        assert!(locked.reserve(ip("10.0.0.2"), &a).unwrap());
        locked.remember(&a, &[ip("10.0.0.2")]).unwrap();
        let entry = net.join(INDEX_DIR).join("ctr+eth0");
        let content = std::fs::read_to_string(&entry).unwrap();
        assert_eq!(content, format!("{INDEX_HEADER}\n10.0.0.2\n"));
        assert_ne!(
            content.trim(),
            "ctr\r\neth0",
            "Go's scan must never take it for a lease"
        );
        assert_eq!(locked.find(&a).unwrap(), [ip("10.0.0.2")]);

        // The Go plugin releases .2 and leases .3 to the same attachment: the entry is stale.
        std::fs::remove_file(net.join("10.0.0.2")).unwrap();
        std::fs::write(net.join("10.0.0.3"), "ctr\r\neth0").unwrap();
        assert_eq!(locked.find(&a).unwrap(), [ip("10.0.0.3")]);

        // Another container took over .2 meanwhile: never released on our behalf.
        std::fs::write(net.join("10.0.0.2"), "other\r\neth0").unwrap();
        assert_eq!(locked.release_all(&a).unwrap(), [ip("10.0.0.3")]);
        assert!(net.join("10.0.0.2").exists() && !entry.exists());
    }

    fn names_in(dir: &Path) -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    /// Files made before the lock end up exactly as the ones made under it: the reference's
    /// content, mode 0600, the index entry's format, and no other name left behind.
    #[test]
    fn prepared_files_are_linked_with_the_same_content_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net");
        let store = Store::open(dir.path(), "net").unwrap();
        std::fs::create_dir(net.join(INDEX_DIR)).unwrap();
        std::fs::write(net.join("10.0.0.2"), "other\r\neth0").unwrap();
        let a = attachment("ctr", "eth0");
        let prepared = store.prepare_add(&a, 2);
        assert_eq!(prepared.leases.len(), 2);
        assert!(prepared.index.is_some());
        assert!(
            names_in(&net)
                .iter()
                .all(|n| n == "10.0.0.2" || n == INDEX_DIR),
            "prepared files have no name: {:?}",
            names_in(&net)
        );
        let locked = store.lock_prepared(prepared).unwrap();
        // Taken: the prepared file stays for the next candidate.
        assert!(!locked.reserve(ip("10.0.0.2"), &a).unwrap());
        assert!(locked.reserve(ip("10.0.0.3"), &a).unwrap());
        assert!(locked.reserve(ip("2001:db8::3"), &a).unwrap());
        // Another attachment's reservation never gets this one's prepared file.
        assert!(
            locked
                .reserve(ip("10.0.0.4"), &attachment("ctr2", "eth0"))
                .unwrap()
        );
        locked
            .remember(&a, &[ip("10.0.0.3"), ip("2001:db8::3")])
            .unwrap();
        drop(locked);
        for (name, content) in [
            ("10.0.0.3", "ctr\r\neth0"),
            ("2001:db8::3", "ctr\r\neth0"),
            ("10.0.0.4", "ctr2\r\neth0"),
        ] {
            let path = net.join(name);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), content, "{name}");
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
            assert_eq!(meta.nlink(), 1, "{name}");
        }
        let entry = net.join(INDEX_DIR).join("ctr+eth0");
        assert_eq!(
            std::fs::read_to_string(&entry).unwrap(),
            format!("{INDEX_HEADER}\n10.0.0.3\n2001:db8::3\n")
        );
        assert_eq!(
            std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            names_in(&net),
            BTreeSet::from(
                [
                    "10.0.0.2",
                    "10.0.0.3",
                    "10.0.0.4",
                    "2001:db8::3",
                    "lock",
                    INDEX_DIR
                ]
                .map(String::from)
            )
        );
        assert_eq!(
            names_in(&net.join(INDEX_DIR)),
            BTreeSet::from(["ctr+eth0".to_owned()])
        );
    }

    /// Our own cursor is rewritten in place (same inode, longer or shorter text); anything
    /// else under its name is replaced by our 0600 file, as before.
    #[test]
    fn the_cursor_is_overwritten_in_place_and_a_foreign_one_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("net/last_reserved_ip.0");
        let store = Store::open(dir.path(), "net").unwrap();
        let locked = store.lock().unwrap();
        locked.set_last_reserved_ip(0, ip("10.0.0.9")).unwrap();
        let ino = std::fs::metadata(&path).unwrap().ino();
        for text in ["10.0.0.100", "10.0.0.7", "2001:db8::1:2", "10.0.0.8"] {
            locked.set_last_reserved_ip(0, ip(text)).unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
            assert_eq!(std::fs::metadata(&path).unwrap().ino(), ino, "{text}");
        }
        // The Go plugin's file (Debian 1.1.1 writes 0644): replaced by ours.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        locked.set_last_reserved_ip(0, ip("10.0.0.5")).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_ne!(meta.ino(), ino);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "10.0.0.5");
        // A second name for the file (a hard link planted elsewhere) is never written through.
        let other = dir.path().join("elsewhere");
        std::fs::hard_link(&path, &other).unwrap();
        locked.set_last_reserved_ip(0, ip("10.0.0.6")).unwrap();
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "10.0.0.5");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "10.0.0.6");
        assert_eq!(
            names_in(&dir.path().join("net")).len(),
            2,
            "no temp file left"
        );
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
