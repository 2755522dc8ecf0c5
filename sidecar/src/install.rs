//! The `install` subcommand: the init container copies the (statically linked) sidecar into a
//! shared emptyDir so it runs inside any model image.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::errors::SidecarError;

/// File name of the installed copy.
pub const BINARY_NAME: &str = "modelserver-sidecar";
/// Mode of the installed copy.
const MODE: u32 = 0o755;

/// Copies the running executable to `dir/modelserver-sidecar` (atomically: copy, then rename).
pub fn install(dir: &Path) -> Result<PathBuf, SidecarError> {
    let fail = |what: &'static str| {
        move |source: std::io::Error| SidecarError::Install {
            dir: dir.to_path_buf(),
            what,
            cause: source,
        }
    };
    let exe = std::env::current_exe().map_err(fail("cannot find the running executable"))?;
    fs::create_dir_all(dir).map_err(fail("cannot create the directory"))?;
    let target = dir.join(BINARY_NAME);
    let partial = dir.join(format!(".{BINARY_NAME}.partial"));
    fs::copy(&exe, &partial).map_err(fail("cannot copy the executable"))?;
    fs::set_permissions(&partial, fs::Permissions::from_mode(MODE))
        .map_err(fail("cannot make the copy executable"))?;
    fs::rename(&partial, &target).map_err(fail("cannot move the copy into place"))?;
    Ok(target)
}
