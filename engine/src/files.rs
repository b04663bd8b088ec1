//! Files under the state directory hold row values from error messages,
//! run ids and hosts: only their owner may read them (folders 0700, files
//! 0600), whatever the process's umask.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// Creates `dir` and its missing parents as 0700. A folder that already
/// exists keeps its mode: it may be the user's own (`--state-dir .`).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir)
}

/// Options that create a file as 0600.
pub fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    options.mode(0o600);
    options
}

/// Makes an existing file 0600 (one created by a library that does not take
/// a mode, or by an older SyncHub).
pub fn make_private(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode != 0o600 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
