//! Fuzz target: the reference evaluator over a rule and JSON events.
//! A property violation panics, which libFuzzer saves as a crash; copy it to
//! `fuzz/regressions/evaluator/` so `tests/suite/fuzz_replay.rs` replays it on stable.

#![no_main]

#[path = "../checks.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = checks::check_evaluator(checks::compiler(), data) {
        panic!("{e}");
    }
});
