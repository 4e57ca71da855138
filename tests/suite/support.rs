//! Helpers shared by the suite's modules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The rmmc binary, to run in `cwd`. Blessing this crate's goldens (`RMMC_BLESS`) must
/// not bless the scratch copies the tests run it on.
pub fn rmmc_command(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rmmc"));
    c.env_remove("RMMC_BLESS").current_dir(cwd);
    c
}

/// rmmc `args` run in `cwd`, to its end.
pub fn rmmc(args: &[&str], cwd: &Path) -> Output {
    rmmc_command(cwd).args(args).output().expect("rmmc runs")
}

/// What a run printed: its standard output, then its standard error.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir`, by path relative to it, with its bytes.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    files
}
