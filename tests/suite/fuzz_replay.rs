//! The fuzz targets' inputs replayed on stable Rust, without libFuzzer: every rule
//! under `rules/`, every case under `tests/errors/` and `tests/sentinel/`, the saved
//! inputs and past crashes under `fuzz/regressions/<target>/`, and a local
//! `fuzz/corpus/<target>/` when `scripts/fuzz` has built one. Each input goes
//! through the same check as its fuzz target (`fuzz/checks.rs`): no panic, every
//! output readable by its own parser, metadata never changing a query.

#[path = "../../fuzz/checks.rs"]
mod checks;

use rmmc::Compiler;
use std::path::{Path, PathBuf};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn inputs(target: &str, seeds: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in seeds {
        files_under(Path::new(dir), &mut out);
    }
    files_under(&Path::new("fuzz/regressions").join(target), &mut out);
    files_under(&Path::new("fuzz/corpus").join(target), &mut out);
    out.sort();
    out
}

type Check = fn(&Compiler, &[u8]) -> Result<(), String>;

fn replay(target: &str, seeds: &[&str], check: Check, at_least: usize) {
    let c = Compiler::embedded().unwrap();
    let files = inputs(target, seeds);
    assert!(
        files.len() >= at_least,
        "{target}: only {} inputs",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&c, &data))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("{}: {e}", f.display())),
            Err(_) => failures.push(format!("{}: panicked", f.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn rule_yaml_inputs_replay() {
    replay(
        "rule_yaml",
        &["rules", "tests/errors"],
        checks::check_rule_text,
        200,
    );
}

#[test]
fn sentinel_inputs_replay() {
    replay(
        "sentinel",
        &["tests/sentinel"],
        checks::check_sentinel_text,
        3,
    );
}

#[test]
fn evaluator_inputs_replay() {
    replay(
        "evaluator",
        &["rules/netsupport"],
        checks::check_evaluator,
        3,
    );
}
