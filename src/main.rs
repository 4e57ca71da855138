//! The `rmmc` command line: a thin layer over the library.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use rmmc::diagnostics::{self, Diagnostic, TestOutcome};
use rmmc::fixtures;
use rmmc::pack::{self, BuildOptions, Stale};
use rmmc::{Backends, Errors, Fidelity, Target};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `println!` that ends the program quietly when stdout is closed (`rmmc ... | head`)
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if write!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

/// `-q`: print errors and failures only.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// Progress and summaries for people (stderr), silenced by `-q`.
macro_rules! note {
    ($($arg:tt)*) => {{
        if !quiet() {
            eprintln!($($arg)*);
        }
    }};
}

const EXIT_ERROR: u8 = 1;
const EXIT_STALE: u8 = 3;
const EXIT_TEST_FAILED: u8 = 4;

#[derive(Parser)]
#[command(
    name = "rmmc",
    version,
    about = "Compile RMM-abuse detection rules to KQL, Splunk SPL, Elastic EQL and Sigma",
    long_about = "rmmc compiles detection rules for abused Remote Monitoring and Management tools \
(MITRE ATT&CK T1219) from one rule format (or Microsoft Sentinel hunting-query YAML) to KQL, \
Splunk SPL, Elastic EQL and Sigma, keeping each predicate's exact meaning, and reports per rule \
and target where a language can only approximate it.",
    after_help = "Examples:
  rmmc build                          build all targets for rules/ into out/
  rmmc build --target spl rules/netsupport
  rmmc build --check                  fail (exit 3) if out/ is stale, with diffs
  rmmc explain rules/netsupport/filesig.yaml --target kql
  rmmc test                           run every rule's fixtures

Exit codes:
  0  success
  1  bad input or a failed build (nothing is written)
  2  command-line usage error
  3  build --check: out/ is stale or incomplete
  4  test: a fixture disagrees with the reference evaluator or its expected rows"
)]
struct Cli {
    /// Read templates and field maps from DIR instead of the embedded backends/.
    #[arg(long, global = true, value_name = "DIR")]
    backends: Option<PathBuf>,
    /// Print errors and failures only: no warnings, summaries or progress.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// A `--target` value: one registered target, or `all` of them.
#[derive(Clone)]
struct TargetArg(Vec<Target>);

/// The targets of repeated or comma-separated `--target` values, in registry order,
/// each once.
fn targets(args: &[TargetArg]) -> Vec<Target> {
    Target::all()
        .filter(|t| args.iter().any(|a| a.0.contains(t)))
        .collect()
}

/// Rule selection shared by the commands that read rules.
#[derive(Args, Clone, Default)]
struct Select {
    /// Only rules for this tool (`tool:`, case-insensitive); repeatable.
    #[arg(long, value_name = "NAME")]
    tool: Vec<String>,
    /// Only rules naming this ATT&CK tactic or technique (CommandAndControl, T1219);
    /// repeatable.
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// Only rules with this status; repeatable.
    #[arg(long, value_parser = ["experimental", "test", "stable", "deprecated"])]
    status: Vec<String>,
    /// Only rules with this severity; repeatable.
    #[arg(long, value_parser = ["informational", "low", "medium", "high", "critical"])]
    severity: Vec<String>,
}

impl Select {
    fn is_empty(&self) -> bool {
        self.tool.is_empty()
            && self.tag.is_empty()
            && self.status.is_empty()
            && self.severity.is_empty()
    }

    fn accepts(&self, rule: &rmmc::Rule) -> bool {
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
fn selected(
    inputs: &[String],
    select: &Select,
    backends: &Backends,
) -> Result<Vec<pack::RuleSource>, Errors> {
    chosen(pack::discover(inputs)?, inputs, select, backends)
}

/// The rules of `sources` that the selection accepts.
fn chosen(
    sources: Vec<pack::RuleSource>,
    inputs: &[String],
    select: &Select,
    backends: &Backends,
) -> Result<Vec<pack::RuleSource>, Errors> {
    if select.is_empty() {
        return Ok(sources);
    }
    let loaded = pack::load_rules(&sources, backends)?;
    let chosen: Vec<pack::RuleSource> = loaded
        .into_iter()
        .filter(|(_, p)| select.accepts(&p.rule))
        .map(|(s, _)| s)
        .collect();
    if chosen.is_empty() {
        return Err(rmmc::Error::new(
            rmmc::ErrorKind::Io,
            format!(
                "no rule under {} matches the selection (--tool, --tag, --status, --severity)",
                inputs.join(", ")
            ),
        )
        .into());
    }
    Ok(chosen)
}

/// What a build compiles and which of those rules' files it replaces.
struct BuildPlan {
    /// Every rule compiled (for a subset build: the whole rules root, for the
    /// gathered files).
    sources: Vec<pack::RuleSource>,
    /// For a build of some rules: those rules; `None` replaces the folders whole.
    subset: Option<pack::Selection>,
    /// How many rules the inputs and selection name.
    selected: usize,
}

/// A build of the whole rules root (or `--clean`) replaces each target folder whole;
/// a build of some rules replaces only theirs and compiles the whole root for the
/// gathered files. The output folder is never read as rules.
fn plan_build(
    inputs: &[String],
    select: &Select,
    out: &Path,
    clean: bool,
    backends: &Backends,
) -> Result<BuildPlan, Errors> {
    let layout = pack::Layout {
        exclude: vec![out.to_path_buf()],
        ..pack::Layout::default()
    };
    let found = pack::discover_in(inputs, &layout)?;
    let whole = found.whole && select.is_empty();
    let chosen = chosen(found.sources, inputs, select, backends)?;
    let selected = chosen.len();
    if whole || clean || out.as_os_str() == "-" {
        return Ok(BuildPlan {
            sources: chosen,
            subset: None,
            selected,
        });
    }
    let subset = pack::Selection::of(&chosen);
    let mut all = if layout.root.is_dir() {
        pack::discover_in(&[layout.root.display().to_string()], &layout)?.sources
    } else {
        Vec::new()
    };
    all.extend(chosen);
    all.sort_by(|a, b| a.stem.cmp(&b.stem).then(a.path.cmp(&b.path)));
    all.dedup_by(|a, b| a.stem == b.stem && a.name == b.name);
    Ok(BuildPlan {
        sources: all,
        subset: Some(subset),
        selected,
    })
}

/// How diagnostics (errors, warnings, results) are printed.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
enum DiagFormat {
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

/// The `--target` parser: the registry's names and `all`, listed in `--help`.
fn target_arg() -> impl clap::builder::TypedValueParser<Value = TargetArg> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Target::all().map(Target::as_str).chain(["all"])).map(
        |name| match name.parse::<Target>() {
            Ok(target) => TargetArg(vec![target]),
            Err(_) => TargetArg(Target::all().collect()),
        },
    )
}

#[derive(Clone, Copy, ValueEnum)]
enum ListWhat {
    Targets,
    Rules,
    Profiles,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ListFormat {
    Text,
    Markdown,
}

#[derive(Clone, Copy, ValueEnum)]
enum IrFormat {
    Yaml,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Compile rules into packs under out/<target>/.
    #[command(after_help = "Examples:
  rmmc build
  rmmc build --target kql,spl --out packs 'rules/**/filesig.yaml'
  rmmc build --target kql --out - rules/netsupport/filesig.yaml   the query alone, on stdout
  rmmc build --profile eql=defender   one target's profile; the others keep their default
  rmmc build --strict            approximations the rules do not acknowledge become errors
  rmmc build --check             compare with out/, print diffs, exit 3 if stale
  rmmc build rules/netsupport    replace only NetSupport's files (and the gathered ones)

A build of the whole rules root (the default) replaces each out/<target>/ whole; a
build of some rules (files, globs, folders inside rules/, or a --tool/--tag/...
selection) replaces exactly those rules' files, keeps every other rule's files byte
for byte and rebuilds the gathered files from the whole rules root; --check of some
rules checks only their files.")]
    Build {
        /// Target languages: a comma list or repeated (kql,spl); `all` for every target.
        #[arg(long, value_parser = target_arg(), value_delimiter = ',', default_value = "all")]
        target: Vec<TargetArg>,
        /// Rule files, folders or glob patterns.
        #[arg(default_value = "rules")]
        rules: Vec<String>,
        #[command(flatten)]
        select: Select,
        /// Output root; each target writes OUT/<target>/. `-`: print the query of the one
        /// selected rule and target on stdout and write nothing.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Field-map profile (see `rmmc list profiles`): NAME for every target, or
        /// TARGET=NAME for one; comma list or repeated. Default: each target's default.
        #[arg(long, value_delimiter = ',')]
        profile: Vec<String>,
        /// Fail on any approximation the rule does not acknowledge
        /// (`acknowledged: [{warning: approximate, target: T}]`).
        #[arg(long)]
        strict: bool,
        /// Write nothing: compare with OUT and exit 3 if anything differs.
        #[arg(long)]
        check: bool,
        /// Replace each out/<target>/ whole even when building some rules only
        /// (removes the files of every rule not built).
        #[arg(long)]
        clean: bool,
        /// List every approximation of every rule.
        #[arg(long, short)]
        verbose: bool,
        /// How to print diagnostics: text (stderr) or json (stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: DiagFormat,
    },
    /// Parse, map and lower every rule for every target; write nothing.
    #[command(after_help = "Examples:
  rmmc check
  rmmc check --format sarif > rmmc.sarif      for code-scanning UIs
  rmmc check --tool AnyDesk --strict")]
    Check {
        /// Rule files, folders or glob patterns.
        #[arg(default_value = "rules")]
        rules: Vec<String>,
        #[command(flatten)]
        select: Select,
        /// Field-map profile: NAME, or TARGET=NAME; comma list or repeated.
        #[arg(long, value_delimiter = ',')]
        profile: Vec<String>,
        /// Fail on any approximation the rule does not acknowledge.
        #[arg(long)]
        strict: bool,
        /// List every approximation of every rule.
        #[arg(long, short)]
        verbose: bool,
        /// How to print diagnostics: text (stderr), json or sarif (stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: DiagFormat,
    },
    /// List targets, rules or profiles.
    #[command(after_help = "Examples:
  rmmc list rules
  rmmc list rules rules/anydesk --status experimental
  rmmc list rules --format markdown > rules/README.md   coverage table: tool x kind x target")]
    List {
        /// What to list.
        #[arg(value_enum)]
        what: ListWhat,
        /// Rule files, folders or glob patterns (for `rules`).
        #[arg(default_value = "rules")]
        rules: Vec<String>,
        #[command(flatten)]
        select: Select,
        /// `markdown` (rules only): the coverage table of rules/README.md, with each
        /// rule's fidelity verdict per target and totals.
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
    /// Print rules' IR, or with --target their queries and fidelity verdicts.
    #[command(after_help = "Examples:
  rmmc explain rules/netsupport/filesig.yaml
  rmmc explain rules/netsupport --target kql,spl
  rmmc explain rules/netsupport/filesig.yaml --target spl --raw | splunk search -
  rmmc explain rules/netsupport/filesig.yaml --target eql --format json")]
    Explain {
        /// Rule files, folders or glob patterns.
        #[arg(required = true)]
        rules: Vec<String>,
        /// Show the compiled query for these targets (comma list or repeated).
        #[arg(long, value_parser = target_arg(), value_delimiter = ',')]
        target: Vec<TargetArg>,
        /// Field-map profile: NAME, or TARGET=NAME; comma list or repeated.
        #[arg(long, value_delimiter = ',')]
        profile: Vec<String>,
        /// yaml or json: the IR, or with --target one JSON object per rule and target.
        #[arg(long, value_enum, default_value = "yaml")]
        format: IrFormat,
        /// With one rule and one --target: print only the query, nothing else.
        #[arg(long, requires = "target")]
        raw: bool,
    },
    /// Run each rule's fixtures (RULE.fixtures.yaml) through the reference evaluator
    /// and compare with RULE.expected.json. RMMC_BLESS=1 rewrites the expectations.
    #[command(after_help = "Examples:
  rmmc test
  RMMC_BLESS=1 rmmc test rules/anydesk     rewrite (and name) the expected rows
  rmmc test --format junit > rmmc-tests.xml")]
    Test {
        /// Rule files, folders or glob patterns.
        #[arg(default_value = "rules")]
        rules: Vec<String>,
        #[command(flatten)]
        select: Select,
        /// How to print results: text, json or junit (stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: DiagFormat,
    },
    /// Export each rule's fixture events mapped into a target's schema, with the
    /// compiled query and the expected results, as one JSON object per line: data to
    /// replay into a SIEM or an independent engine.
    Fixtures {
        /// Rule files, folders or glob patterns.
        #[arg(default_value = "rules")]
        rules: Vec<String>,
        /// Targets to export for (comma list or repeated; `all`).
        #[arg(long, value_parser = target_arg(), value_delimiter = ',', required = true)]
        target: Vec<TargetArg>,
        /// Field-map profile: NAME, or TARGET=NAME; comma list or repeated.
        #[arg(long, value_delimiter = ',')]
        profile: Vec<String>,
    },
    /// Import Microsoft Sentinel hunting queries (YAML, or the fenced KQL of
    /// RMM_AHQ_*.md files), or the LOLRMM catalogue, as rmmc rules under --into
    /// (default rules/).
    #[command(after_help = "Examples:
  rmmc import sentinel ../shared/corpus/rmm-upstream/RMM
  rmmc import sentinel RMM/AnyDesk/rmm_AnyDesk_filesig.yaml --into /tmp/rules
  rmmc import sentinel ../shared/corpus/rmm-upstream/RMM --fixtures   also (re)generate fixtures
  rmmc import sentinel --fixtures                                     only (re)generate fixtures
  rmmc import lolrmm ../shared/corpus/lolrmm/yaml --fixtures          the LOLRMM catalogue

sentinel: writes <into>/<tool>/<kind>.yaml per query. lolrmm: writes up to three rules per
tool (filesig, createproc, netconn); for a tool that <into> already has rules for (matched
by normalised name), only the indicators they lack, as <tool>/lolrmm-<kind>.yaml. Existing
files are kept; --force overwrites those the importer wrote (first line `# Generated by
`rmmc import ...``), never hand-written or hand-corrected ones. Warnings (repairs, flags,
malformed catalogue files) go to stderr, the summary to stdout; exit 1 if any query failed
or any catalogue file was malformed (the other tools are still imported).")]
    Import {
        /// `sentinel` or `lolrmm`.
        #[arg(value_parser = ["sentinel", "lolrmm"])]
        format: String,
        /// Files or folders to import (optional with --fixtures).
        #[arg(required_unless_present = "fixtures")]
        paths: Vec<PathBuf>,
        /// The rules folder: each query becomes INTO/<tool>/<kind>.yaml.
        #[arg(long, default_value = "rules")]
        into: PathBuf,
        /// Overwrite rule files the importer wrote before.
        #[arg(long)]
        force: bool,
        /// Then write <kind>.fixtures.yaml beside every rule under --into from the rule's
        /// values, where missing or generated before (hand-written fixtures are kept);
        /// `RMMC_BLESS=1 rmmc test` then writes the expected rows.
        #[arg(long)]
        fixtures: bool,
        /// How to print warnings and errors: text (stderr) or json (stdout).
        #[arg(long = "diagnostics", value_enum, default_value = "text")]
        diagnostics: DiagFormat,
        /// sentinel: every query is for this tool (`tool:` and the folder under --into),
        /// instead of the name its file, folder or rule name suggests.
        #[arg(long, value_name = "NAME")]
        tool: Option<String>,
    },
    /// Write a commented skeleton rule and its fixtures file to edit:
    /// INTO/<tool>/<kind>.yaml and <kind>.fixtures.yaml.
    #[command(after_help = "Examples:
  rmmc new FooRemote createproc      writes rules/fooremote/createproc.yaml and .fixtures.yaml
  rmmc new \"Zoho Assist\" netconn --into /tmp/rules")]
    New {
        /// The tool's name as it appears in rule names (`tool:`).
        tool: String,
        /// What the rule looks at: filesig (file signatures), createproc (process
        /// creation) or netconn (network connections).
        #[arg(value_parser = rmmc::scaffold::KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>())]
        kind: String,
        /// The rules folder to write into.
        #[arg(long, default_value = "rules")]
        into: PathBuf,
    },
    /// Print a shell completion script: `rmmc completions bash > /etc/bash_completion.d/rmmc`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `rmmc man > rmmc.1; man ./rmmc.1`.
    Man,
}

impl Command {
    /// The diagnostics format the command was asked for.
    fn diag_format(&self) -> DiagFormat {
        match self {
            Command::Build { format, .. }
            | Command::Check { format, .. }
            | Command::Test { format, .. } => *format,
            Command::Import { diagnostics, .. } => *diagnostics,
            _ => DiagFormat::Text,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let format = cli.command.diag_format();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(errors) => {
            match format {
                DiagFormat::Text => eprintln!("{errors}"),
                DiagFormat::Json => print_json(&serde_json::json!({
                    "ok": false,
                    "diagnostics": diagnostics::from_errors(&errors),
                })),
                DiagFormat::Sarif => {
                    print_json(&diagnostics::sarif(&diagnostics::from_errors(&errors)))
                }
                DiagFormat::Junit => eprintln!("{errors}"),
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn print_json(value: &serde_json::Value) {
    say!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON serializes")
    );
}

fn backends(dir: &Option<PathBuf>) -> Result<Backends, Errors> {
    Ok(match dir {
        Some(d) => Backends::from_dir(d)?,
        None => Backends::embedded()?,
    })
}

/// `--profile` values as one choice for [`Backends::profile_choice`]; `TARGET=` must
/// name a registered target.
fn profile_choice(values: &[String]) -> Result<Option<String>, Errors> {
    for v in values {
        if let Some((t, _)) = v.split_once('=')
            && t.parse::<Target>().is_err()
        {
            return Err(rmmc::Error::new(
                rmmc::ErrorKind::UnknownTarget,
                format!(
                    "--profile {v}: unknown target `{t}`: expected one of {}",
                    Target::all()
                        .map(Target::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .into());
        }
    }
    Ok((!values.is_empty()).then(|| values.join(",")))
}

fn usage_error(message: &str) -> Result<u8, Errors> {
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

/// SARIF is for `check`, JUnit for `test`.
fn check_format(command: &Command) -> Result<(), String> {
    let (name, allowed): (&str, &[DiagFormat]) = match command {
        Command::Build { .. } => ("build", &[DiagFormat::Text, DiagFormat::Json]),
        Command::Check { .. } => (
            "check",
            &[DiagFormat::Text, DiagFormat::Json, DiagFormat::Sarif],
        ),
        Command::Test { .. } => (
            "test",
            &[DiagFormat::Text, DiagFormat::Json, DiagFormat::Junit],
        ),
        Command::Import { .. } => ("import", &[DiagFormat::Text, DiagFormat::Json]),
        _ => return Ok(()),
    };
    let format = command.diag_format();
    if allowed.contains(&format) {
        return Ok(());
    }
    let names: Vec<String> = allowed
        .iter()
        .filter_map(|f| f.to_possible_value().map(|v| v.get_name().to_string()))
        .collect();
    Err(format!(
        "`{name}` prints diagnostics as {}",
        names.join(" or ")
    ))
}

fn run(cli: Cli) -> Result<u8, Errors> {
    if let Err(message) = check_format(&cli.command) {
        return usage_error(&message);
    }
    let backends = backends(&cli.backends)?;
    match cli.command {
        Command::Build {
            target,
            rules,
            select,
            out,
            profile,
            strict,
            check,
            clean,
            verbose,
            format,
        } => {
            let plan = plan_build(&rules, &select, &out, clean, &backends)?;
            let selected = plan.selected;
            let subset = plan.subset;
            let sources = plan.sources;
            let options = BuildOptions {
                targets: targets(&target),
                profile: profile_choice(&profile)?,
                strict,
            };
            if out.as_os_str() == "-" {
                if check || sources.len() != 1 || options.targets.len() != 1 {
                    return usage_error(&format!(
                        "--out - prints one query: select one rule and one target (got {} rule(s), {} target(s){})",
                        sources.len(),
                        options.targets.len(),
                        if check { ", and --check" } else { "" }
                    ));
                }
                let build = pack::build(&sources, &backends, &options)?;
                print_warnings(&build, format);
                say_raw!("{}", query_text(&build.rendered[0].query));
                return Ok(0);
            }
            let mut reporter = Reporter::new(verbose, format);
            let (stale, files) = if check {
                let stale =
                    pack::check_packs(&sources, &backends, &options, &out, subset.as_ref(), |r| {
                        reporter.rule(r)
                    })?;
                (stale, None)
            } else {
                let summary =
                    pack::write_packs(&sources, &backends, &options, &out, subset.as_ref(), |r| {
                        reporter.rule(r)
                    })?;
                (Vec::new(), Some(summary.files))
            };
            reporter.finish();
            if format == DiagFormat::Json {
                print_json(&serde_json::json!({
                    "ok": stale.is_empty(),
                    "diagnostics": reporter.diagnostics,
                    "rules": selected,
                    "targets": options.targets,
                    "files": files,
                    "stale": stale.iter().map(stale_json).collect::<Vec<_>>(),
                }));
                return Ok(if stale.is_empty() { 0 } else { EXIT_STALE });
            }
            if let Some(files) = files {
                if subset.is_some() {
                    note!(
                        "replaced the files of {selected} rule(s) x {} target(s) in {}; kept the other rules' files; rebuilt the gathered files from {} rule(s)",
                        options.targets.len(),
                        out.display(),
                        sources.len()
                    );
                } else {
                    note!(
                        "wrote {} file(s) for {} rule(s) x {} target(s) to {}",
                        files,
                        sources.len(),
                        options.targets.len(),
                        out.display()
                    );
                }
                return Ok(0);
            }
            for s in &stale {
                match s {
                    Stale::Missing(p) => say!("missing: {}", p.display()),
                    Stale::Extra(p) => {
                        say!("not produced by the rules (remove it): {}", p.display())
                    }
                    Stale::Changed { path, diff } => {
                        say!("stale: {}", path.display());
                        say_raw!("{diff}");
                    }
                }
            }
            if stale.is_empty() {
                if !quiet() {
                    say!(
                        "{} is up to date: {} rule(s) x {} target(s)",
                        out.display(),
                        selected,
                        options.targets.len()
                    );
                }
                Ok(0)
            } else {
                say!(
                    "{} file(s) in {} are stale: run `rmmc build`",
                    stale.len(),
                    out.display()
                );
                Ok(EXIT_STALE)
            }
        }
        Command::Check {
            rules,
            select,
            profile,
            strict,
            verbose,
            format,
        } => {
            let sources = selected(&rules, &select, &backends)?;
            let options = BuildOptions {
                targets: Target::all().collect(),
                profile: profile_choice(&profile)?,
                strict,
            };
            let mut reporter = Reporter::new(verbose, format);
            pack::stream(&sources, &backends, &options, &mut pack::DiscardSink, |r| {
                reporter.rule(r)
            })?;
            reporter.finish();
            match format {
                DiagFormat::Json => print_json(&serde_json::json!({
                    "ok": true,
                    "diagnostics": reporter.diagnostics,
                    "rules": sources.len(),
                    "targets": options.targets,
                })),
                DiagFormat::Sarif => print_json(&diagnostics::sarif(&reporter.diagnostics)),
                _ => {
                    if !quiet() {
                        say!(
                            "ok: {} rule(s) x {} target(s)",
                            sources.len(),
                            options.targets.len()
                        );
                    }
                }
            }
            Ok(0)
        }
        Command::List {
            what,
            rules,
            select,
            format,
        } => list(what, &rules, &select, format, &backends),
        Command::Explain {
            rules,
            target,
            profile,
            format,
            raw,
        } => explain(&rules, &targets(&target), &profile, format, raw, backends),
        Command::Test {
            rules,
            select,
            format,
        } => run_tests(&rules, &select, format, &backends),
        Command::New { tool, kind, into } => {
            for file in rmmc::scaffold::new_rule(&into, &tool, &kind)? {
                say!("wrote {}", file.display());
            }
            let folder = into.join(rmmc::scaffold::tool_folder(&tool));
            note!(
                "next: edit both files, then `RMMC_BLESS=1 rmmc test {}`, `rmmc build` and `rmmc list rules --format markdown > {}`",
                folder.display(),
                into.join("README.md").display()
            );
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "rmmc", &mut out);
            say_raw!("{}", String::from_utf8_lossy(&out));
            Ok(0)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(|e| rmmc::Error::new(rmmc::ErrorKind::Io, e.to_string()))?;
            say_raw!("{}", String::from_utf8_lossy(&out));
            Ok(0)
        }
        Command::Fixtures {
            rules,
            target,
            profile,
        } => export_fixtures(
            &rules,
            &targets(&target),
            profile_choice(&profile)?.as_deref(),
            backends,
        ),
        Command::Import {
            format,
            paths,
            into,
            force,
            fixtures,
            diagnostics: diag,
            tool,
        } => {
            let mut failed = false;
            let mut warnings: Vec<String> = Vec::new();
            let mut summary_text = String::new();
            if !paths.is_empty() && format == "lolrmm" {
                let options = rmmc::import::lolrmm::LolrmmOptions {
                    into: into.clone(),
                    force,
                };
                let summary = rmmc::import::lolrmm::import_lolrmm(&paths, &options, &backends)?;
                warnings.extend(summary.warnings().iter().map(|w| w.to_string()));
                summary_text += &summary.to_string();
                failed = !summary.warnings().is_empty();
            } else if !paths.is_empty() {
                let options = rmmc::import::ImportOptions {
                    into: into.clone(),
                    force,
                    tool: tool.clone(),
                };
                let summary = rmmc::import::import_sentinel_with(&paths, &options, &backends)?;
                warnings.extend(summary.warnings().iter().map(|w| w.to_string()));
                summary_text += &summary.to_string();
                failed = summary.failed() > 0;
            }
            if fixtures {
                let report = rmmc::fixtures::generate::write_all(&into, &backends)?;
                summary_text += &report.to_string();
            }
            if diag == DiagFormat::Json {
                print_json(&serde_json::json!({
                    "ok": !failed,
                    "diagnostics": warnings.iter().map(|w| import_diagnostic(w)).collect::<Vec<_>>(),
                    "summary": summary_text,
                }));
            } else {
                for w in &warnings {
                    if !quiet() || failed {
                        eprintln!("{w}");
                    }
                }
                if !quiet() {
                    say_raw!("{summary_text}");
                }
            }
            Ok(if failed { EXIT_ERROR } else { 0 })
        }
    }
}

/// An importer warning (`file:line:col: message` or `file: message`) as a diagnostic.
fn import_diagnostic(w: &str) -> Diagnostic {
    let mut parts = w.splitn(4, ':');
    let file = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    match rest.as_slice() {
        [l, c, message] if l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok() => {
            Diagnostic::from_warning(Path::new(file), &format!("{l}:{c}:{message}"))
        }
        _ => Diagnostic::from_warning(Path::new(file), w[file.len()..].trim_start_matches(": ")),
    }
}

/// A query as printed alone: its text with exactly one final newline.
fn query_text(query: &str) -> String {
    format!("{}\n", query.trim_end())
}

fn stale_json(s: &Stale) -> serde_json::Value {
    match s {
        Stale::Missing(p) => serde_json::json!({"missing": p}),
        Stale::Extra(p) => serde_json::json!({"not_produced": p}),
        Stale::Changed { path, diff } => serde_json::json!({"changed": path, "diff": diff}),
    }
}

fn warning_diagnostics(build: &pack::Build) -> Vec<Diagnostic> {
    build
        .warnings
        .iter()
        .map(|(file, w)| Diagnostic::from_warning(file, w))
        .collect()
}

/// Warnings on stderr (text format), unless quiet.
fn print_warnings(build: &pack::Build, format: DiagFormat) {
    if format == DiagFormat::Text {
        for d in warning_diagnostics(build) {
            note!("{}", d.text());
        }
    }
}

fn list(
    what: ListWhat,
    rules: &[String],
    select: &Select,
    format: ListFormat,
    backends: &Backends,
) -> Result<u8, Errors> {
    if format == ListFormat::Markdown {
        if !matches!(what, ListWhat::Rules) {
            return Err(rmmc::Error::new(
                rmmc::ErrorKind::Schema,
                "--format markdown lists rules only: rmmc list rules --format markdown",
            )
            .into());
        }
        let sources = selected(rules, select, backends)?;
        let loaded = pack::load_rules(&sources, backends)?;
        let options = BuildOptions {
            targets: Target::all().collect(),
            profile: None,
            strict: false,
        };
        let build = pack::build(&sources, backends, &options)?;
        say_raw!("{}", rmmc::coverage::markdown(&build, &loaded));
        return Ok(0);
    }
    match what {
        ListWhat::Targets => {
            for t in Target::all() {
                say!("{:<6} {}", t.as_str(), t.describe());
            }
        }
        ListWhat::Profiles => {
            for t in Target::all() {
                for p in backends.profiles(t) {
                    let default = if p.name == t.spec().default_profile {
                        " (default)"
                    } else {
                        ""
                    };
                    say!(
                        "{:<6} {}{default}: {}",
                        t.as_str(),
                        p.name,
                        p.description.trim()
                    );
                }
            }
        }
        ListWhat::Rules => {
            let sources = selected(rules, select, backends)?;
            let loaded = pack::load_rules(&sources, backends)?;
            let width = |f: &dyn Fn(&rmmc::Rule) -> usize| {
                loaded.iter().map(|(_, p)| f(&p.rule)).max().unwrap_or(0)
            };
            let source_width = width(&|r| r.source.as_str().len());
            let tool_width = width(&|r| r.meta.tool.chars().count());
            let name_width = width(&|r| r.meta.name.chars().count());
            for (s, p) in loaded {
                let line = format!(
                    "{}  {:<source_width$}  {:<tool_width$}  {:<name_width$}  {}",
                    p.rule.meta.id,
                    p.rule.source.as_str(),
                    p.rule.meta.tool,
                    p.rule.meta.name,
                    s.path.display()
                );
                say!("{}", line.trim_end());
            }
        }
    }
    Ok(0)
}

fn explain(
    inputs: &[String],
    targets: &[Target],
    profile: &[String],
    format: IrFormat,
    raw: bool,
    backends: Backends,
) -> Result<u8, Errors> {
    for input in inputs {
        if input.ends_with(".md") {
            return Err(rmmc::Error::new(
                rmmc::ErrorKind::Schema,
                "a Markdown file is not a rule: `rmmc import sentinel FILE.md` reads the KQL blocks of RMM_AHQ_*.md files into rules",
            )
            .in_file(input)
            .into());
        }
    }
    let sources = pack::discover(inputs)?;
    if raw && (sources.len() != 1 || targets.len() != 1) {
        return usage_error(&format!(
            "--raw prints one query: give one rule and one --target (got {} rule(s), {} target(s))",
            sources.len(),
            targets.len()
        ));
    }
    let profile = profile_choice(profile)?;
    let loaded = pack::load_rules(&sources, &backends)?;
    let compiler = rmmc::Compiler::with_backends(backends)?;
    let several = loaded.len() > 1;
    for (source, parsed) in &loaded {
        for w in &parsed.warnings {
            note!(
                "{}",
                Diagnostic::from_warning(&source.path, &w.to_string()).text()
            );
        }
        if targets.is_empty() {
            let text = match format {
                IrFormat::Yaml => {
                    let ir = serde_yaml::to_string(&parsed.rule).expect("IR serializes");
                    if several {
                        format!("# {}\n{ir}---\n", source.path.display())
                    } else {
                        ir
                    }
                }
                IrFormat::Json => {
                    serde_json::to_string_pretty(&parsed.rule).expect("IR serializes") + "\n"
                }
            };
            say_raw!("{text}");
            continue;
        }
        for &target in targets {
            let r =
                compiler.compile_file(&parsed.rule, &source.path, target, profile.as_deref())?;
            if raw {
                say_raw!("{}", query_text(&r.query));
            } else if let IrFormat::Json = format {
                say!(
                    "{}",
                    serde_json::json!({
                        "rule": source.path.to_string_lossy().replace('\\', "/"),
                        "id": parsed.rule.meta.id,
                        "target": target,
                        "query": r.query,
                        "fidelity": r.fidelity,
                    })
                );
            } else {
                if several {
                    say!("== {} {target} ==", source.path.display());
                } else {
                    say!("== {target} ==");
                }
                say!("{}", r.query.trim_end());
                say!("-- fidelity: {}", r.fidelity.as_str());
                for a in r.fidelity.approximations() {
                    say!("--   {}: {}", a.construct, a.reason());
                }
                if let Fidelity::Unsupported(u) = &r.fidelity {
                    say!("--   {u}");
                }
            }
        }
    }
    Ok(0)
}

/// Prints a streaming build's warnings as rules arrive (text format, unless quiet) and
/// keeps them as diagnostics; at the end, the totals: each approximation reason once
/// with its count, and the verdicts per target.
struct Reporter {
    verbose: bool,
    format: DiagFormat,
    diagnostics: Vec<Diagnostic>,
    reasons: std::collections::BTreeMap<(Target, String), usize>,
    /// Exact, approximate and unsupported rules per target.
    totals: std::collections::BTreeMap<Target, (usize, usize, usize)>,
}

impl Reporter {
    fn new(verbose: bool, format: DiagFormat) -> Reporter {
        Reporter {
            verbose,
            format,
            diagnostics: Vec::new(),
            reasons: Default::default(),
            totals: Default::default(),
        }
    }

    fn text(&self) -> bool {
        self.format == DiagFormat::Text
    }

    fn rule(&mut self, report: &pack::RuleReport) {
        for w in report.warnings {
            let d = Diagnostic::from_warning(&report.source.path, w);
            if self.text() {
                note!("{}", d.text());
            }
            self.diagnostics.push(d);
        }
        let file = report.source.path.display();
        for r in report.rendered {
            let t = self.totals.entry(r.target).or_default();
            match &r.fidelity {
                Fidelity::Exact => t.0 += 1,
                // Always said: no file is written for the rule on this target.
                Fidelity::Unsupported(u) => {
                    t.2 += 1;
                    if self.text() {
                        note!(
                            "{file}: unsupported [{} profile {}]: {u}",
                            r.target,
                            r.profile
                        );
                    }
                }
                Fidelity::Approximate(list) => {
                    t.1 += 1;
                    for a in list {
                        if self.verbose && self.text() {
                            note!(
                                "{file}: approximate [{}]: {}: {}",
                                r.target,
                                a.construct,
                                a.reason()
                            );
                        }
                        *self.reasons.entry((r.target, a.reason())).or_default() += 1;
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if !self.text() {
            return;
        }
        for ((target, reason), n) in &self.reasons {
            note!("approximate [{target}] x{n}: {reason}");
        }
        let line: Vec<String> = self
            .totals
            .iter()
            .map(|(t, (exact, approx, unsupported))| {
                format!("{t} {exact} exact / {approx} approximate / {unsupported} unsupported")
            })
            .collect();
        if !line.is_empty() {
            note!(
                "fidelity: {}{}",
                line.join(", "),
                if self.verbose {
                    ""
                } else {
                    " (--verbose lists each rule)"
                }
            );
        }
    }
}

/// One rule's fixtures: run, compare (or bless), and say what happened.
fn test_rule(
    source: &pack::RuleSource,
    rule: &rmmc::Rule,
    bless: bool,
) -> Result<TestOutcome, Errors> {
    let fixture = fixtures::fixture_path(&source.path);
    if !fixture.exists() {
        return Ok(TestOutcome::Skipped {
            reason: format!("no {}", file_name(&fixture)),
        });
    }
    let file = fixtures::load(&fixture)?;
    let outcome = fixtures::run(rule, &file, &fixture)?;
    let expected_file = fixtures::expected_path(&source.path);
    let mut problems = outcome.mismatches.clone();
    let rendered = serde_json::to_string_pretty(&outcome.expected).expect("serializes") + "\n";
    let existing = std::fs::read_to_string(&expected_file);
    if bless {
        if !existing.is_ok_and(|t| t == rendered) {
            std::fs::write(&expected_file, &rendered).map_err(|e| {
                rmmc::Error::new(rmmc::ErrorKind::Io, e.to_string()).in_file(&expected_file)
            })?;
            // Always said, even with -q: blessing changed a checked-in file.
            eprintln!("wrote {} (review it)", expected_file.display());
        }
    } else {
        match existing {
            Ok(existing) if existing == rendered => {}
            Ok(existing) => problems.push(format!(
                "result rows differ from {} (RMMC_BLESS=1 rmmc test rewrites it after review):\n{}",
                file_name(&expected_file),
                pack::unified_diff(&existing, &rendered, &expected_file)
            )),
            Err(_) => problems.push(format!(
                "{} is missing: run RMMC_BLESS=1 rmmc test and review it",
                file_name(&expected_file)
            )),
        }
    }
    Ok(if problems.is_empty() {
        TestOutcome::Passed {
            summary: format!(
                "{} events, {} matched, {} rows",
                file.events.len(),
                outcome.evaluation.matched.len(),
                outcome.evaluation.rows.len()
            ),
        }
    } else {
        TestOutcome::Failed { problems }
    })
}

fn run_tests(
    rules: &[String],
    select: &Select,
    format: DiagFormat,
    backends: &Backends,
) -> Result<u8, Errors> {
    let sources = selected(rules, select, backends)?;
    let loaded = pack::load_rules(&sources, backends)?;
    let bless = std::env::var_os("RMMC_BLESS").is_some_and(|v| !v.is_empty() && v != "0");
    let mut results = Vec::new();
    for (source, parsed) in &loaded {
        let outcome = test_rule(source, &parsed.rule, bless)?;
        let name = source.path.to_string_lossy().replace('\\', "/");
        if format == DiagFormat::Text {
            match &outcome {
                TestOutcome::Passed { summary } if !quiet() => say!("ok    {name} ({summary})"),
                TestOutcome::Skipped { reason } if !quiet() => say!("skip  {name} ({reason})"),
                TestOutcome::Failed { problems } => {
                    say!("FAIL  {name}");
                    for p in problems {
                        say!("      {p}");
                    }
                }
                _ => {}
            }
        }
        results.push((name, outcome));
    }
    let count = |f: fn(&TestOutcome) -> bool| results.iter().filter(|(_, o)| f(o)).count();
    let passed = count(|o| matches!(o, TestOutcome::Passed { .. }));
    let failed = count(|o| matches!(o, TestOutcome::Failed { .. }));
    let skipped = count(|o| matches!(o, TestOutcome::Skipped { .. }));
    match format {
        DiagFormat::Junit => say_raw!("{}", diagnostics::junit(&results)),
        DiagFormat::Json | DiagFormat::Sarif => print_json(&serde_json::json!({
            "ok": failed == 0,
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
            "rules": results.iter().map(|(rule, o)| {
                let mut v = serde_json::to_value(o).expect("serializes");
                v["rule"] = rule.clone().into();
                v
            }).collect::<Vec<_>>(),
        })),
        DiagFormat::Text => {
            if !quiet() || failed > 0 {
                say!("{passed} passed, {failed} failed, {skipped} skipped");
            }
        }
    }
    Ok(if failed > 0 { EXIT_TEST_FAILED } else { 0 })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn export_fixtures(
    rules: &[String],
    targets: &[Target],
    profile: Option<&str>,
    backends: Backends,
) -> Result<u8, Errors> {
    let sources = pack::discover(rules)?;
    let loaded = pack::load_rules(&sources, &backends)?;
    let compiler = rmmc::Compiler::with_backends(backends)?;
    for (source, parsed) in &loaded {
        let fixture = fixtures::fixture_path(&source.path);
        if !fixture.exists() {
            continue;
        }
        let file = fixtures::load(&fixture)?;
        let outcome = fixtures::run(&parsed.rule, &file, &fixture)?;
        for &target in targets {
            let p = compiler.backends().profile(target, profile)?;
            let rendered =
                compiler.compile_file(&parsed.rule, &source.path, target, Some(&p.name))?;
            let mut events = Vec::new();
            for e in &file.events {
                events.push(serde_json::json!({
                    "name": e.name,
                    "expect": e.expect,
                    "event": fixtures::map_event(&e.event, &parsed.rule, p)?,
                }));
            }
            let line = serde_json::json!({
                "rule": source.stem.to_string_lossy().replace('\\', "/"),
                "rule_file": source.path.to_string_lossy(),
                "id": parsed.rule.meta.id,
                "source": parsed.rule.source,
                "target": target,
                "profile": p.name,
                "settings": p.source(parsed.rule.source)?.settings,
                "field_map": p.source(parsed.rule.source)?.fields,
                "query": rendered.query,
                "files": rendered.files.iter().map(|(path, text)| (path.to_string_lossy().to_string(), text.clone())).collect::<std::collections::BTreeMap<_, _>>(),
                "fidelity": rendered.fidelity,
                "aggregation": parsed.rule.aggregation,
                "now": file.now,
                "events": events,
                "expected": outcome.expected,
            });
            say!("{line}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help` explains every option and argument of every command.
    #[test]
    fn every_option_has_a_help_line() {
        let mut missing = Vec::new();
        let root = Cli::command();
        let mut commands = vec![root.clone()];
        commands.extend(root.get_subcommands().cloned());
        for c in &commands {
            for a in c.get_arguments() {
                if a.get_help().is_none() && !["help", "version"].contains(&a.get_id().as_str()) {
                    missing.push(format!("{} {}", c.get_name(), a.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "no help line: {missing:?}");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
