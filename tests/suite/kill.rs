//! A build killed at any moment leaves every `out/<target>/` whole: the old tree or
//! the new one, never missing, never half written; the next build cleans up what the
//! killed one left and succeeds.
//!
//! `rmmc build` of ten bundled tools' rules is killed (SIGKILL) a few dozen times at random
//! moments, some of them inside the swap, which `RMMC_SWAP_PAUSE_MS` widens. Every
//! build writes the same packs, so after each kill each target folder must equal the
//! reference build file for file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{rmmc_command, tree};

const KILLS: usize = 24;
const TARGETS: [&str; 4] = ["kql", "spl", "eql", "sigma"];

fn rmmc(cwd: &Path) -> Command {
    let mut c = rmmc_command(cwd);
    c.args(["build", "--out", "out", "rules"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// A small deterministic generator (the seed is printed, so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&p, to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn killed_builds_never_leave_a_missing_or_partial_target_folder() {
    let ws = std::env::temp_dir().join(format!("rmmc-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&ws);
    // Ten tools' rules: a build quick enough to be killed many times, still many files.
    let mut tools: Vec<PathBuf> = std::fs::read_dir("rules")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    tools.sort();
    for tool in tools.iter().take(10) {
        copy_dir(tool, &ws.join("rules").join(tool.file_name().unwrap()));
    }

    assert!(rmmc(&ws).status().unwrap().success(), "the first build");
    let started = Instant::now();
    assert!(rmmc(&ws).status().unwrap().success(), "a build over packs");
    let one_build = started.elapsed().as_millis() as u64;
    let reference: BTreeMap<&str, _> = TARGETS
        .iter()
        .map(|t| (*t, tree(&ws.join("out").join(t))))
        .collect();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    for kill in 0..KILLS {
        // Half of the builds pause before each target's swap for up to a build's
        // time, so that most of their kills land inside the swap.
        let pause = if kill % 2 == 0 {
            one_build / 4 + rng.below(one_build)
        } else {
            0
        };
        let delay = rng.below(one_build + 4 * pause + 20);
        let mut child = rmmc(&ws)
            .env("RMMC_SWAP_PAUSE_MS", pause.to_string())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        for t in TARGETS {
            let dir = ws.join("out").join(t);
            assert!(
                dir.is_dir(),
                "seed {seed}, kill {kill} after {delay} ms (pause {pause}): out/{t} is missing"
            );
            assert!(
                tree(&dir) == reference[t],
                "seed {seed}, kill {kill} after {delay} ms (pause {pause}): out/{t} is partial"
            );
        }
    }

    assert!(rmmc(&ws).status().unwrap().success(), "a build after kills");
    let leftovers: Vec<String> = std::fs::read_dir(ws.join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".rmmc-staging-") || n.starts_with(".rmmc-old-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the next build cleans up: {leftovers:?}"
    );
    let _ = std::fs::remove_dir_all(&ws);
}
