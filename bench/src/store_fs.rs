//! Where the host-local stores (`dataDir`) of a run live: on a journaled ext4, as
//! `/var/lib/cni` is on a node, mounted by the run from a sparse image file.
//!
//! Why not the machine's own `/tmp`: this VM's root is an ext4 *without* a journal, and there
//! the kernel's inode allocator passes over every inode freed in the last few seconds
//! (`find_inode_bit` → `recently_deleted` in fs/ext4/ialloc.c, checked only when the
//! filesystem has no journal), reading inode table blocks to do so. A benchmark deletes
//! thousands of lease files a minute, so every new lease file paid that scan: in a burst of
//! 200 bridge ADDs, perf put 23 % of our bridge's CPU there (`ext4_tmpfile` →
//! `__ext4_new_inode`), and the burst ran 2.78× faster than the reference's on that store
//! against 3.37× on a journaled one, in the same minute. No node keeps its CNI state on such
//! a filesystem, so the run does not either. When the mount fails (no loop device), the
//! stores fall back to the temp dir, and the report says so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

/// The image's size; sparse, so only what the stores write takes disk space.
const IMAGE_SIZE: u64 = 4 << 30;

/// The mounted filesystem, unmounted on drop.
pub struct StoreFs {
    mount_point: TempDir,
    _image_dir: TempDir,
}

/// The directory new stores are made in, and what it is (for the report).
static ROOT: OnceLock<(PathBuf, String)> = OnceLock::new();

/// Mounts the journaled filesystem and makes it the root of every store made after; on
/// failure, says why on stderr and leaves the stores in the temp dir.
pub fn set_up() -> Option<StoreFs> {
    match StoreFs::mount() {
        Ok(fs) => {
            let _ = ROOT.set((
                fs.mount_point.path().to_owned(),
                "a journaled ext4 (a loop-mounted sparse image made by the run)".into(),
            ));
            Some(fs)
        }
        Err(e) => {
            eprintln!("store filesystem: {e:#}; the host-local stores stay in the temp dir");
            let tmp = std::env::temp_dir();
            let what = format!("`{}` (journaled ext4 mount failed: {e})", tmp.display());
            let _ = ROOT.set((tmp, what));
            None
        }
    }
}

/// What the stores live on, for the report's context table.
pub fn described() -> String {
    ROOT.get()
        .map(|(_, what)| what.clone())
        .unwrap_or_else(|| format!("`{}`", std::env::temp_dir().display()))
}

/// A new, empty store directory named `prefix…`, removed on drop.
pub fn store_dir(prefix: &str) -> Result<TempDir> {
    let root = ROOT
        .get()
        .map(|(root, _)| root.clone())
        .unwrap_or_else(std::env::temp_dir);
    Ok(tempfile::Builder::new().prefix(prefix).tempdir_in(root)?)
}

/// A store directory on a journaled filesystem of its own, as fresh as the etcd that
/// cluster-ipam is measured against, so that phase does not depend on what the phases
/// before left on the run's shared one. Falls back to [`store_dir`] when no filesystem can
/// be mounted.
pub struct FreshStore {
    // Declared first, so removed before the filesystem is unmounted.
    dir: TempDir,
    _fs: Option<StoreFs>,
}

impl FreshStore {
    pub fn new(prefix: &str) -> Result<FreshStore> {
        match StoreFs::mount() {
            Ok(fs) => Ok(FreshStore {
                dir: tempfile::Builder::new()
                    .prefix(prefix)
                    .tempdir_in(fs.mount_point.path())?,
                _fs: Some(fs),
            }),
            Err(e) => {
                eprintln!("store filesystem: {e:#}; this store stays on the run's");
                Ok(FreshStore {
                    dir: store_dir(prefix)?,
                    _fs: None,
                })
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl StoreFs {
    fn mount() -> Result<StoreFs> {
        let image_dir = tempfile::Builder::new()
            .prefix("cni-bench-storefs-")
            .tempdir()?;
        let image = image_dir.path().join("store.ext4");
        std::fs::File::create(&image)?.set_len(IMAGE_SIZE)?;
        run("mkfs.ext4", &["-q", "-F", "-j", path_str(&image)?])?;
        let mount_point = tempfile::Builder::new()
            .prefix("cni-bench-stores-")
            .tempdir()?;
        run(
            "mount",
            &[
                "-o",
                "loop",
                path_str(&image)?,
                path_str(mount_point.path())?,
            ],
        )?;
        Ok(StoreFs {
            mount_point,
            _image_dir: image_dir,
        })
    }
}

impl Drop for StoreFs {
    fn drop(&mut self) {
        // Detached: a store a plugin still had open cannot keep the mount (and so its loop
        // device and image) alive past the run.
        if let Err(e) =
            nix::mount::umount2(self.mount_point.path(), nix::mount::MntFlags::MNT_DETACH)
        {
            eprintln!("unmounting {}: {e}", self.mount_point.path().display());
        }
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().context("a temp path that is not UTF-8")
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
