//! Fuzz target: Sentinel YAML or bare KQL -> the KQL reader, then every target with the same checks as rule_yaml.
//! A property violation panics, which libFuzzer saves as a crash; copy it to
//! `fuzz/regressions/sentinel/` so `tests/fuzz_replay.rs` replays it on stable.

#![no_main]

#[path = "../checks.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn compiler() -> &'static rmmc::Compiler {
    static COMPILER: OnceLock<rmmc::Compiler> = OnceLock::new();
    COMPILER.get_or_init(|| rmmc::Compiler::embedded().expect("embedded backends"))
}

fuzz_target!(|data: &[u8]| {
    if let Err(e) = checks::check_sentinel_text(compiler(), data) {
        panic!("{e}");
    }
});
