//! The test suite `cargo test` runs, one binary: each module is what was one test file
//! (a binary of its own, linked against every dependency: 20 links where one does).
//! The conformance steps (`tests/conformance_*.rs`) and the hardening test stay binaries
//! of their own: `scripts/conformance` runs each one's `#[ignore]`d heavy tests by name.
//! A new module here is `mod name;` below; its tests run in `cargo test` like the rest.

mod support;

mod bad_input;
mod cli;
mod constructs;
mod data_fields;
mod escaping;
mod fuzz_replay;
mod golden;
mod import_roundtrip;
mod kibana_schema;
mod kill;
mod kql_parser;
mod layers;
mod lolrmm;
mod registry;
mod rule_fixtures;
mod rule_library;
mod sentinel;
mod sentinel_checks;
mod splunk_app;
mod subset_build;
