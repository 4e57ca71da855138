//! # rmmc: one RMM-abuse rule, the same detection on every SIEM
//!
//! rmmc compiles detection rules for abused Remote Monitoring and Management tools
//! (MITRE ATT&CK T1219) to KQL, Splunk SPL, Elastic EQL and Sigma, keeping the exact
//! meaning of every predicate, and says per rule and target where a language can
//! only approximate it.
//!
//! ## Stages
//!
//! ```text
//!  rules/*.yaml ──┐
//!                 ├─ parse ──▶ ir::Rule ──▶ lower(target, profile) ──▶ render ──▶ pack
//!  Sentinel YAML ─┘  (parse)    (ir)         (lower: operators,         (render:   (pack: out/<target>/,
//!                                             escaping, field maps,      tera       atomic write,
//!                                             fidelity verdict)          templates) --check diffs)
//!                               └──▶ eval: reference evaluator over fixture events
//! ```
//!
//! Each stage is a module with one main entry point: [`parse::parse_rule`],
//! [`lower::lower`], [`render::Renderer::render_rule`], [`pack::build`] /
//! [`pack::write`], and [`eval::evaluate`]. The IR ([`ir`]) is plain data. The
//! command line drives them through [`commands`] (one module per command); the
//! binary only parses arguments and dispatches.
//!
//! ## Targets
//!
//! Every target is one entry of the registry ([`lower::TargetSpec`], a `targets!`
//! line in `lower/mod.rs` and `SPEC` in `lower/<target>.rs`): its name, description,
//! lowering, per-rule files, gathered files and default profile. The command line,
//! the embedded backends (every file under `backends/`), rendering, pack writing and
//! the tests read it; a new target is a `lower/<name>.rs`, a `backends/<name>/` folder
//! and one registry line (`scripts/dummy-target` adds one and builds it).
//!
//! ## Layers
//!
//! Modules import only modules below them (`tests/suite/layers.rs` checks that no import
//! closes a cycle):
//!
//! ```text
//!  commands                            each CLI command; main.rs only parses and dispatches (top)
//!  fixtures, coverage, scaffold, diagnostics   fixture runs, reports, new rules, CLI reports
//!  import                              Sentinel and LOLRMM importers
//!  pack                                discovery, streaming build, write, --check
//!  compiler                            parse -> lower -> render, the one compile path
//!  render                              tera over lowered rules
//!  parse                               rule text -> ir (reads the KQL profile for Sentinel columns)
//!  backends, lint                      templates and profiles of each target; authoring lints
//!  lower                               the target registry and each target's lowering
//!  eval                                reference evaluator
//!  profile, vocabulary, kql_operators  field maps, canonical fields, KQL operators
//!  ir, error, text, attack, golden     plain data and leaf helpers  (bottom)
//! ```
//!
//! ## Using the library
//!
//! Load a rule from text, look at its IR, and compile it, without touching the file
//! system (templates and field maps are embedded in the crate):
//!
//! ```
//! use rmmc::{Compiler, Target};
//!
//! let rule_text = r#"
//! id: 6f1c7a52-0b7e-4d33-9a4e-1f0c2d3e4b5a
//! name: Example - NetSupport signer
//! description: Files signed by NetSupport.
//! tool: NetSupport
//! tactics: [CommandAndControl]
//! techniques: [T1219]
//! source: file_signature
//! window: 5d
//! detection:
//!   field: file.code_signature.subject_name
//!   has: netsupport
//! "#;
//! let compiler = Compiler::embedded()?;
//! let parsed = compiler.load_rule("example.yaml", rule_text)?;
//! assert_eq!(parsed.rule.window.seconds, 5 * 86_400);
//!
//! let kql = compiler.compile(&parsed.rule, Target::Kql, None)?;
//! assert!(kql.query.contains(r#"| where Signer has "netsupport""#));
//! assert!(kql.fidelity.is_exact());
//!
//! let spl = compiler.compile(&parsed.rule, Target::Spl, None)?;
//! assert!(spl.query.contains(r#"Signer="*netsupport*""#));
//! # Ok::<(), rmmc::Error>(())
//! ```
//!
//! A Sentinel hunting query compiles the same way: [`Compiler::load_rule`] detects
//! the format from the text.
//!
//! ## Errors
//!
//! Every fallible function returns [`Error`], whose [`ErrorKind`] says what went
//! wrong and whose `Display` is `file:line:col: error[kind]: message`.

#![warn(missing_docs)]

pub mod attack;
pub mod backends;
pub mod commands;
pub mod compiler;
pub mod coverage;
pub mod diagnostics;
pub mod error;
pub mod eval;
pub mod fixtures;
pub mod golden;
pub mod import;
pub mod ir;
pub mod kql_operators;
pub mod lint;
pub mod lower;
pub mod pack;
pub mod parse;
pub mod profile;
pub mod render;
pub mod scaffold;
pub mod text;
pub mod vocabulary;

pub use backends::Backends;
pub use compiler::Compiler;
pub use error::{Error, ErrorKind, Errors, Result};
pub use ir::Rule;
pub use lower::{ApproxCategory, ApproxKind, Approximation, Fidelity, Target};
pub use parse::Parsed;
pub use render::Rendered;
