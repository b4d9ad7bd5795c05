//! Where the plugin binaries under test are found.
//!
//! The same tests run against our binaries or against any other directory of CNI plugins,
//! for example the Go reference: `CNI_BIN_DIR=/usr/lib/cni cargo test -p cni-conformance`.

use std::path::{Path, PathBuf};

/// The environment variable that points the tests at a directory of plugin binaries.
pub const BIN_DIR_ENV: &str = "CNI_BIN_DIR";

/// The directory holding the plugins under test: `$CNI_BIN_DIR` if set, else the cargo
/// `target/<profile>/` directory this test executable was built into (test executables
/// live in `target/<profile>/deps/`, binaries one level up).
///
/// # Panics
/// If the path of the running executable cannot be found.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("cannot find the path of the test executable");
    let exe_dir = exe
        .parent()
        .expect("the test executable has no parent directory");
    if exe_dir.file_name().is_some_and(|name| name == "deps") {
        exe_dir.parent().unwrap_or(exe_dir).to_path_buf()
    } else {
        exe_dir.to_path_buf()
    }
}

/// The path of the plugin binary `name` (its CNI `type`, e.g. `host-local`) in
/// [`bin_dir`].
///
/// # Panics
/// If the file does not exist, with a message that says how to build it.
pub fn plugin_path(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.is_file() {
        panic!(
            "plugin binary {} not found; build the plugins first: cargo build --workspace \
             (or point {BIN_DIR_ENV} at a directory of CNI plugins, e.g. /usr/lib/cni)",
            path.display()
        );
    }
    path
}

/// Where Debian's containernetworking-plugins installs the Go reference plugins.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// The Go reference plugin `name` in [`REFERENCE_DIR`], for the side-by-side tests, which
/// fail rather than skip without it.
///
/// # Panics
/// If it is not installed, with a message that says how to install it.
pub fn reference_plugin(name: &str) -> PathBuf {
    let path = Path::new(REFERENCE_DIR).join(name);
    assert!(
        path.is_file(),
        "the Go reference plugin {} is missing: apt-get install containernetworking-plugins",
        path.display()
    );
    path
}

/// The directory a binary is in, for the default `CNI_PATH`.
pub(crate) fn parent_dir(binary: &Path) -> &Path {
    binary.parent().unwrap_or(Path::new("/"))
}
