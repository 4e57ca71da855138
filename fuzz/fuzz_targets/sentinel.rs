//! Fuzz target: Sentinel YAML or bare KQL -> the KQL reader, then every target with the same checks as rule_yaml.
//! A property violation panics, which libFuzzer saves as a crash; copy it to
//! `fuzz/regressions/sentinel/` so `tests/suite/fuzz_replay.rs` replays it on stable.

#![no_main]

#[path = "../checks.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = checks::check_sentinel_text(checks::compiler(), data) {
        panic!("{e}");
    }
});
