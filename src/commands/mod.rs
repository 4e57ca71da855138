//! The commands of the `rmmc` command line, one module each, over the stages below.
//! `src/main.rs` parses the arguments (clap) and calls [`build::run`],
//! [`check::run`], ...; everything a command does and prints is here, so the binary
//! stays a thin layer and the commands can be called from a program.
//!
//! Each command takes its arguments (the clap-derived `Args` of its module), the
//! [`Backends`] and a [`Console`], and returns an [`Exit`] or a typed [`Failure`].

pub mod build;
pub mod check;
pub mod explain;
pub mod fixtures;
pub mod import;
pub mod list;
pub mod new;
mod report;
pub mod test;

use crate::backends::Backends;
use crate::error::{Error, ErrorKind, Errors};
use crate::lower::Target;
use crate::pack::{self, RuleSource};
use std::fmt;

/// Where a command prints: results on stdout, progress and summaries on stderr
/// (silenced by `-q`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Console {
    quiet: bool,
}

impl Console {
    /// A console; `quiet` (`-q`) prints errors and failures only.
    pub fn new(quiet: bool) -> Console {
        Console { quiet }
    }

    /// Was `-q` given?
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// One line on stdout. A closed stdout (`rmmc ... | head`) ends the program
    /// quietly instead of panicking: nothing after it would be read.
    pub fn say(&self, line: impl fmt::Display) {
        self.say_raw(format_args!("{line}\n"));
    }

    /// Text on stdout as it is (the caller ends its lines).
    pub fn say_raw(&self, text: impl fmt::Display) {
        use std::io::Write as _;
        if write!(std::io::stdout().lock(), "{text}").is_err() {
            std::process::exit(0);
        }
    }

    /// A JSON document on stdout, pretty-printed.
    pub fn json(&self, value: &serde_json::Value) {
        self.say(serde_json::to_string_pretty(value).expect("JSON serializes"));
    }

    /// Progress and summaries for people, on stderr; silenced by `-q`.
    pub fn note(&self, line: impl fmt::Display) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// A line on stderr that `-q` does not silence (a checked-in file was rewritten,
    /// a warning that comes with a failure).
    pub fn alert(&self, line: impl fmt::Display) {
        eprintln!("{line}");
    }
}

/// How a command ended, as the process exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success,
    /// 1: some input failed, the rest was done (an import with failed queries).
    Failed,
    /// 3: `build --check` found out/ stale or incomplete.
    Stale,
    /// 4: `test`: a fixture disagrees with the reference evaluator or its expected rows.
    TestFailed,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Stale => 3,
            Exit::TestFailed => 4,
        }
    }
}

/// Why a command did not run to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Bad input or a failed build (exit 1): every error found.
    Errors(Errors),
    /// Arguments that parse but do not fit together (exit 2, like clap's own usage
    /// errors): the message says what to give instead.
    Usage(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Errors(errors) => write!(f, "{errors}"),
            Failure::Usage(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Failure {}

impl From<Errors> for Failure {
    fn from(errors: Errors) -> Self {
        Failure::Errors(errors)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Errors(error.into())
    }
}

/// What a command returns.
pub type Outcome = Result<Exit, Failure>;

/// How diagnostics (errors, warnings, results) are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum DiagFormat {
    /// For people: `file:line:col: error[kind]: message` on stderr.
    #[default]
    Text,
    /// One JSON document on stdout: `{"ok", "diagnostics": [...], ...}`.
    Json,
    /// SARIF 2.1.0 on stdout (`check` only), for code-scanning UIs.
    Sarif,
    /// JUnit XML on stdout (`test` only), for CI test reports.
    Junit,
}

/// A `--target` value: one registered target, or `all` of them.
#[derive(Debug, Clone)]
pub struct TargetArg(pub Vec<Target>);

/// The `--target` parser: the registry's names and `all`, listed in `--help`.
pub fn target_arg() -> impl clap::builder::TypedValueParser<Value = TargetArg> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Target::all().map(Target::as_str).chain(["all"])).map(
        |name| match name.parse::<Target>() {
            Ok(target) => TargetArg(vec![target]),
            Err(_) => TargetArg(Target::all().collect()),
        },
    )
}

/// The targets of repeated or comma-separated `--target` values, in registry order,
/// each once.
pub fn targets(args: &[TargetArg]) -> Vec<Target> {
    Target::all()
        .filter(|t| args.iter().any(|a| a.0.contains(t)))
        .collect()
}

/// `--profile` values as one choice for [`Backends::profile_choice`]; `TARGET=` must
/// name a registered target.
pub fn profile_choice(values: &[String]) -> Result<Option<String>, Error> {
    for v in values {
        if let Some((t, _)) = v.split_once('=')
            && t.parse::<Target>().is_err()
        {
            return Err(Error::new(
                ErrorKind::UnknownTarget,
                format!(
                    "--profile {v}: unknown target `{t}`: expected one of {}",
                    Target::all()
                        .map(Target::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok((!values.is_empty()).then(|| values.join(",")))
}

/// Rule selection shared by the commands that read rules.
#[derive(Debug, clap::Args, Clone, Default)]
pub struct Select {
    /// Only rules for this tool (`tool:`, case-insensitive); repeatable.
    #[arg(long, value_name = "NAME")]
    pub tool: Vec<String>,
    /// Only rules naming this ATT&CK tactic or technique (CommandAndControl, T1219);
    /// repeatable.
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Only rules with this status; repeatable.
    #[arg(long, value_parser = ["experimental", "test", "stable", "deprecated"])]
    pub status: Vec<String>,
    /// Only rules with this severity; repeatable.
    #[arg(long, value_parser = ["informational", "low", "medium", "high", "critical"])]
    pub severity: Vec<String>,
}

impl Select {
    /// Does the selection name nothing (every rule)?
    pub fn is_empty(&self) -> bool {
        self.tool.is_empty()
            && self.tag.is_empty()
            && self.status.is_empty()
            && self.severity.is_empty()
    }

    /// Does the selection accept the rule?
    pub fn accepts(&self, rule: &crate::ir::Rule) -> bool {
        let m = &rule.meta;
        let any_or = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|x| f(x))
        };
        any_or(&self.tool, &|t| t.eq_ignore_ascii_case(&m.tool))
            && any_or(&self.tag, &|t| {
                m.tactics
                    .iter()
                    .chain(&m.techniques)
                    .any(|x| x.eq_ignore_ascii_case(t))
            })
            && any_or(&self.status, &|s| s == serde_name(&m.status))
            && any_or(&self.severity, &|s| s == serde_name(&m.severity))
    }
}

/// The name serde gives a unit enum value (`Status::Stable` → `stable`).
fn serde_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The rule files under `inputs` that `select` accepts (all of them, unparsed, when
/// it selects nothing).
pub fn selected(
    inputs: &[String],
    select: &Select,
    backends: &Backends,
) -> Result<Vec<RuleSource>, Errors> {
    chosen(pack::discover(inputs)?, inputs, select, backends)
}

/// The rules of `sources` that the selection accepts.
fn chosen(
    sources: Vec<RuleSource>,
    inputs: &[String],
    select: &Select,
    backends: &Backends,
) -> Result<Vec<RuleSource>, Errors> {
    if select.is_empty() {
        return Ok(sources);
    }
    let loaded = pack::load_rules(&sources, backends)?;
    let chosen: Vec<RuleSource> = loaded
        .into_iter()
        .filter(|(_, p)| select.accepts(&p.rule))
        .map(|(s, _)| s)
        .collect();
    if chosen.is_empty() {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "no rule under {} matches the selection (--tool, --tag, --status, --severity)",
                inputs.join(", ")
            ),
        )
        .into());
    }
    Ok(chosen)
}

/// A query as printed alone: its text with exactly one final newline.
fn query_text(query: &str) -> String {
    format!("{}\n", query.trim_end())
}
