//! Our by-attachment index (`.attachments/<id>+<ifname>`): which addresses an attachment
//! holds, so DEL and CHECK read a handful of files instead of every lease. A hint only, since
//! the Go plugin does not know it: every address listed is verified against its lease.

use super::files::{
    existing_dir, link_anonymous, open_real_dir, read_small_file, remove_if_present, replace_file,
};
use super::{LockedStore, validate};
use crate::error::{Error, Result};
use cni::Attachment;
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::OwnedFd;

/// The by-attachment index directory.
pub(super) const INDEX_DIR: &str = ".attachments";
/// Temp name for an index entry being replaced (inside [`INDEX_DIR`]).
pub(super) const INDEX_TEMP: &str = ".entry.tmp";
/// First line of every index entry. Go's scan compares whole file contents with
/// `<id>\r\n<ifname>` or `<id>`; this line guarantees an entry never looks like a lease.
pub(super) const INDEX_HEADER: &str = "# host-local attachment index v1";
/// Longest file name (NAME_MAX); longer index names are not written (the scan still works).
const NAME_MAX: usize = 255;

/// `<id>+<ifname>`: unambiguous, as container IDs never hold `+`. `None` when too long for a
/// file name (such attachments are simply found by scanning).
pub(super) fn index_name(attachment: &Attachment) -> Option<String> {
    let name = format!("{}+{}", attachment.container_id.trim(), attachment.ifname);
    (name.len() <= NAME_MAX).then_some(name)
}

impl LockedStore<'_> {
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
        self.leave_stamp_stale();
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
    pub(super) fn verified_index_entry(
        &self,
        attachment: &Attachment,
    ) -> Result<Option<Vec<IpAddr>>> {
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

    pub(super) fn index_dir(&self) -> Result<OwnedFd> {
        open_real_dir(&self.store.dir, INDEX_DIR, &self.path_of(INDEX_DIR))
    }

    pub(super) fn existing_index_dir(&self) -> Result<Option<OwnedFd>> {
        existing_dir(&self.store.dir, INDEX_DIR).map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => Error::NotADirectory {
                path: self.path_of(INDEX_DIR),
            },
            e => Error::store("open", self.path_of(INDEX_DIR), e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::tests::{attachment, ip};

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
}
