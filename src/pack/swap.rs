//! Replacing `out/<target>/` by a staged tree so that, whenever the process stops,
//! each target folder is either the old tree or the new one, never missing or half
//! written.
//!
//! - One build at a time per output folder: `OUT/.rmmc.lock` is locked for the whole
//!   write, so the leftovers of a killed build (`.rmmc-staging-*`, `.rmmc-old-*`) can
//!   be removed safely at the start of the next one.
//! - Staging names are random, never the PID (a reused PID in a container would
//!   collide with a killed build's leftovers).
//! - On Linux the swap is one `renameat2(RENAME_EXCHANGE)`: the live folder and the
//!   staged one trade places atomically. Where that call is unavailable (another OS,
//!   or a file system without it) the fallback is two renames, live → `.rmmc-old-*`
//!   then staged → live, with a window between them in which the folder is missing;
//!   the next build cleans up, and the README says so.

use super::sink::cannot_write;
use crate::error::Result;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

/// File-name prefixes of a build's temporary folders inside the output folder.
pub(crate) const STAGING_PREFIX: &str = ".rmmc-staging-";
pub(crate) const OLD_PREFIX: &str = ".rmmc-old-";
const LOCK_FILE: &str = ".rmmc.lock";

/// The output folder, locked for one build; unlocked when dropped.
pub(crate) struct OutLock {
    _file: File,
}

/// Lock `out_dir` (creating it) and remove what killed builds left behind.
pub(crate) fn lock(out_dir: &Path) -> Result<OutLock> {
    std::fs::create_dir_all(out_dir).map_err(|e| cannot_write(out_dir, e))?;
    let path = out_dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| cannot_write(&path, e))?;
    file.lock().map_err(|e| cannot_write(&path, e))?;
    let entries = std::fs::read_dir(out_dir).map_err(|e| cannot_write(out_dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(STAGING_PREFIX) || name.starts_with(OLD_PREFIX) {
            let leftover = entry.path();
            std::fs::remove_dir_all(&leftover).map_err(|e| cannot_write(&leftover, e))?;
        }
    }
    Ok(OutLock { _file: file })
}

/// A fresh, unpredictable name for a temporary folder inside `out_dir`.
pub(crate) fn temporary(out_dir: &Path, prefix: &str) -> PathBuf {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    out_dir.join(format!("{prefix}{:016x}", hasher.finish()))
}

/// Put the staged tree at `live`. Afterwards `staged` no longer exists.
pub(crate) fn swap_in(staged: &Path, live: &Path) -> Result<()> {
    if !live.exists() {
        return std::fs::rename(staged, live).map_err(|e| cannot_write(live, e));
    }
    if exchange(staged, live).is_ok() {
        // `staged` now holds the old tree.
        return std::fs::remove_dir_all(staged).map_err(|e| cannot_write(staged, e));
    }
    let parent = live.parent().unwrap_or(Path::new("."));
    let old = temporary(parent, OLD_PREFIX);
    std::fs::rename(live, &old).map_err(|e| cannot_write(live, e))?;
    pause_between_renames();
    std::fs::rename(staged, live).map_err(|e| cannot_write(live, e))?;
    std::fs::remove_dir_all(&old).map_err(|e| cannot_write(&old, e))
}

/// `renameat2(a, b, RENAME_EXCHANGE)`: both paths exist before and after.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let a = CString::new(a.as_os_str().as_bytes())?;
    let b = CString::new(b.as_os_str().as_bytes())?;
    pause_between_renames();
    // SAFETY: both arguments are NUL-terminated paths that live across the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// The kill test (`tests/suite/kill.rs`) widens the moment of the swap so that its kills
/// land there too: a pause of `RMMC_SWAP_PAUSE_MS` milliseconds before the exchange
/// (or between the fallback's two renames), only when that variable is set.
fn pause_between_renames() {
    if let Some(ms) = std::env::var("RMMC_SWAP_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
