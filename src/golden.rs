//! Golden files: generated text compared with a committed file, and rewritten from
//! it after review when `RMMC_BLESS=1` is set. The one place that reads `RMMC_BLESS`
//! (the `rmmc test` command, the golden tests and the bad-input tests use it).

use std::path::Path;

/// Did the user ask to rewrite golden files (`RMMC_BLESS` set, not empty, not `0`)?
pub fn bless_requested() -> bool {
    std::env::var_os("RMMC_BLESS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A unified diff from `old` to `new`, labelled with the path.
pub fn unified_diff(old: &str, new: &str, path: &Path) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{} (in out/)", path.display()),
            &format!("{} (rebuilt)", path.display()),
        )
        .to_string()
}

/// Compare `text` with the golden file at `path`, or write it there when
/// [`bless_requested`]. A difference is an error with the unified diff; a missing
/// file is a difference from the empty text.
pub fn check_or_bless(path: &Path, text: &str) -> Result<(), String> {
    if bless_requested() {
        return std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()));
    }
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    if existing == text {
        Ok(())
    } else {
        Err(format!(
            "{} differs (RMMC_BLESS=1 rewrites it; review the diff):\n{}",
            path.display(),
            unified_diff(&existing, text, path)
        ))
    }
}
