//! Fuzz target: rmmc rule YAML -> every target, each output read back by its own parser, metadata never changing a query.
//! A property violation panics, which libFuzzer saves as a crash; copy it to
//! `fuzz/regressions/rule_yaml/` so `tests/suite/fuzz_replay.rs` replays it on stable.

#![no_main]

#[path = "../checks.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = checks::check_rule_text(checks::compiler(), data) {
        panic!("{e}");
    }
});
