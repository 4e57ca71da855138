//! The `rmmc` command line: a thin layer over the library.

use clap::{Parser, Subcommand, ValueEnum};
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
    #[command(subcommand)]
    command: Command,
}

/// A `--target` value: one registered target, or `all` of them.
#[derive(Clone)]
struct TargetArg(Vec<Target>);

impl TargetArg {
    fn targets(&self) -> Vec<Target> {
        self.0.clone()
    }
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
  rmmc build --target kql --out packs 'rules/**/filesig.yaml'
  rmmc build --strict            approximations become errors
  rmmc build --check             compare with out/, print diffs, exit 3 if stale")]
    Build {
        /// Target language.
        #[arg(long, value_parser = target_arg(), default_value = "all")]
        target: TargetArg,
        /// Rule files, folders or glob patterns.
        #[arg(default_value = "rules")]
        rules: Vec<String>,
        /// Output root; each target writes OUT/<target>/.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Field-map profile (see `rmmc list profiles`); default: each target's default.
        #[arg(long)]
        profile: Option<String>,
        /// Fail on any approximation instead of reporting it.
        #[arg(long)]
        strict: bool,
        /// Write nothing: compare with OUT and exit 3 if anything differs.
        #[arg(long)]
        check: bool,
        /// List every approximation of every rule.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Parse, map and lower every rule for every target; write nothing.
    Check {
        #[arg(default_value = "rules")]
        rules: Vec<String>,
        #[arg(long)]
        profile: Option<String>,
        #[arg(long)]
        strict: bool,
        #[arg(long, short)]
        verbose: bool,
    },
    /// List targets, rules or profiles.
    #[command(after_help = "Examples:
  rmmc list rules
  rmmc list rules --format markdown > rules/README.md   coverage table: tool x kind x target")]
    List {
        #[arg(value_enum)]
        what: ListWhat,
        #[arg(long, default_value = "rules")]
        rules: Vec<String>,
        /// `markdown` (rules only): the coverage table of rules/README.md, with each
        /// rule's fidelity verdict per target and totals.
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
    /// Print a rule's IR, or with --target its query and fidelity verdict.
    Explain {
        rule: PathBuf,
        #[arg(long, value_parser = target_arg())]
        target: Option<TargetArg>,
        #[arg(long)]
        profile: Option<String>,
        #[arg(long, value_enum, default_value = "yaml")]
        format: IrFormat,
    },
    /// Run each rule's fixtures (RULE.fixtures.yaml) through the reference evaluator
    /// and compare with RULE.expected.json. RMMC_BLESS=1 rewrites the expectations.
    Test {
        #[arg(default_value = "rules")]
        rules: Vec<String>,
    },
    /// Export each rule's fixture events mapped into a target's schema, with the
    /// compiled query and the expected results, as one JSON object per line: data to
    /// replay into a SIEM or an independent engine.
    Fixtures {
        #[arg(default_value = "rules")]
        rules: Vec<String>,
        #[arg(long, value_parser = target_arg())]
        target: TargetArg,
        #[arg(long)]
        profile: Option<String>,
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
    },
    /// Write a commented skeleton rule and its fixtures file to edit:
    /// RULES/<tool>/<kind>.yaml and <kind>.fixtures.yaml.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn backends(dir: &Option<PathBuf>) -> Result<Backends, Errors> {
    Ok(match dir {
        Some(d) => Backends::from_dir(d)?,
        None => Backends::embedded()?,
    })
}

fn run(cli: Cli) -> Result<u8, Errors> {
    let backends = backends(&cli.backends)?;
    match cli.command {
        Command::Build {
            target,
            rules,
            out,
            profile,
            strict,
            check,
            verbose,
        } => {
            let sources = pack::discover(&rules)?;
            let options = BuildOptions {
                targets: target.targets(),
                profile,
                strict,
            };
            let mut reporter = Reporter::new(verbose);
            if check {
                let stale =
                    pack::check_packs(&sources, &backends, &options, &out, |r| reporter.rule(r))?;
                reporter.finish();
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
                    say!(
                        "{} is up to date: {} rule(s) x {} target(s)",
                        out.display(),
                        sources.len(),
                        options.targets.len()
                    );
                    Ok(0)
                } else {
                    say!(
                        "{} file(s) in {} are stale: run `rmmc build`",
                        stale.len(),
                        out.display()
                    );
                    Ok(EXIT_STALE)
                }
            } else {
                let summary =
                    pack::write_packs(&sources, &backends, &options, &out, |r| reporter.rule(r))?;
                reporter.finish();
                say!(
                    "wrote {} file(s) for {} rule(s) x {} target(s) to {}",
                    summary.files,
                    sources.len(),
                    options.targets.len(),
                    out.display()
                );
                Ok(0)
            }
        }
        Command::Check {
            rules,
            profile,
            strict,
            verbose,
        } => {
            let sources = pack::discover(&rules)?;
            let options = BuildOptions {
                targets: Target::all().collect(),
                profile,
                strict,
            };
            let mut reporter = Reporter::new(verbose);
            pack::stream(&sources, &backends, &options, &mut pack::DiscardSink, |r| {
                reporter.rule(r)
            })?;
            reporter.finish();
            say!(
                "ok: {} rule(s) x {} target(s)",
                sources.len(),
                options.targets.len()
            );
            Ok(0)
        }
        Command::List {
            what,
            rules,
            format,
        } => {
            if format == ListFormat::Markdown {
                if !matches!(what, ListWhat::Rules) {
                    return Err(rmmc::Error::new(
                        rmmc::ErrorKind::Schema,
                        "--format markdown lists rules only: rmmc list rules --format markdown",
                    )
                    .into());
                }
                let sources = pack::discover(&rules)?;
                let loaded = pack::load_rules(&sources, &backends)?;
                let options = BuildOptions {
                    targets: Target::all().collect(),
                    profile: None,
                    strict: false,
                };
                let build = pack::build(&sources, &backends, &options)?;
                say_raw!("{}", rmmc::import::coverage::markdown(&build, &loaded));
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
                    let sources = pack::discover(&rules)?;
                    let loaded = pack::load_rules(&sources, &backends)?;
                    for (s, p) in loaded {
                        say!(
                            "{}  {:<18} {:<12} {}  ({})",
                            p.rule.meta.id,
                            p.rule.source.as_str(),
                            p.rule.meta.tool,
                            p.rule.meta.name,
                            s.path.display()
                        );
                    }
                }
            }
            Ok(0)
        }
        Command::Explain {
            rule,
            target,
            profile,
            format,
        } => {
            let text = std::fs::read_to_string(&rule).map_err(|e| {
                rmmc::Error::new(
                    rmmc::ErrorKind::Io,
                    format!("cannot read `{}`: {e}", rule.display()),
                )
                .in_file(&rule)
            })?;
            if rule.extension().is_some_and(|e| e == "md") {
                return Err(rmmc::Error::new(
                    rmmc::ErrorKind::Schema,
                    "a Markdown file is not a rule: `rmmc import sentinel FILE.md` reads the KQL blocks of RMM_AHQ_*.md files into rules",
                )
                .in_file(&rule)
                .into());
            }
            let compiler = rmmc::Compiler::with_backends(backends)?;
            let parsed = rmmc::parse::parse_rule(&rule, &text, compiler.backends())?;
            for w in &parsed.warnings {
                eprintln!("{}", warning_line(&rule, w));
            }
            match target {
                None => {
                    let out = match format {
                        IrFormat::Yaml => {
                            serde_yaml::to_string(&parsed.rule).expect("IR serializes")
                        }
                        IrFormat::Json => {
                            serde_json::to_string_pretty(&parsed.rule).expect("IR serializes")
                                + "\n"
                        }
                    };
                    say_raw!("{out}");
                }
                Some(t) => {
                    for target in t.targets() {
                        let r = compiler.compile_file(
                            &parsed.rule,
                            &rule,
                            target,
                            profile.as_deref(),
                        )?;
                        say!("== {target} ==");
                        say!("{}", r.query.trim_end());
                        say!("-- fidelity: {}", verdict(&r.fidelity));
                        if let Fidelity::Approximate(list) = &r.fidelity {
                            for a in list {
                                say!("--   {}: {}", a.construct, a.reason);
                            }
                        }
                    }
                }
            }
            Ok(0)
        }
        Command::Test { rules } => run_tests(&rules, &backends),
        Command::New { tool, kind, into } => {
            for file in rmmc::scaffold::new_rule(&into, &tool, &kind)? {
                say!("wrote {}", file.display());
            }
            let folder = into.join(rmmc::scaffold::tool_folder(&tool));
            say!(
                "next: edit both files, then `RMMC_BLESS=1 rmmc test {}`, `rmmc build` and `rmmc list rules --format markdown > {}`",
                folder.display(),
                into.join("README.md").display()
            );
            Ok(0)
        }
        Command::Fixtures {
            rules,
            target,
            profile,
        } => export_fixtures(&rules, &target.targets(), profile.as_deref(), backends),
        Command::Import {
            format,
            paths,
            into,
            force,
            fixtures,
        } => {
            let mut failed = false;
            if !paths.is_empty() && format == "lolrmm" {
                let options = rmmc::import::lolrmm::LolrmmOptions {
                    into: into.clone(),
                    force,
                };
                let summary = rmmc::import::lolrmm::import_lolrmm(&paths, &options, &backends)?;
                for w in summary.warnings() {
                    eprintln!("{w}");
                }
                say_raw!("{summary}");
                failed = !summary.warnings().is_empty();
            } else if !paths.is_empty() {
                let options = rmmc::import::ImportOptions {
                    into: into.clone(),
                    force,
                };
                let summary = rmmc::import::import_sentinel_with(&paths, &options, &backends)?;
                for w in summary.warnings() {
                    eprintln!("{w}");
                }
                say_raw!("{summary}");
                failed = summary.failed() > 0;
            }
            if fixtures {
                let report = rmmc::import::fixtures_gen::write_all(&into, &backends)?;
                say_raw!("{report}");
            }
            Ok(if failed { EXIT_ERROR } else { 0 })
        }
    }
}

/// `file:line:col: warning: ...` for warnings located in the file (they start with
/// `line:col: `), else `file: warning: ...`.
fn warning_line(file: &Path, warning: &str) -> String {
    let located = warning.split_once(": ").filter(|(at, _)| {
        at.split(':').count() == 2 && at.split(':').all(|n| n.parse::<usize>().is_ok())
    });
    match located {
        Some((at, rest)) => format!("{}:{at}: warning: {rest}", file.display()),
        None => format!("{}: warning: {warning}", file.display()),
    }
}

fn verdict(f: &Fidelity) -> &'static str {
    if f.is_exact() { "exact" } else { "approximate" }
}

/// Prints a streaming build's warnings as rules arrive and, at the end, the totals:
/// each approximation reason once with its count, and the verdicts per target.
struct Reporter {
    verbose: bool,
    reasons: std::collections::BTreeMap<(Target, String), usize>,
    totals: std::collections::BTreeMap<Target, (usize, usize)>,
}

impl Reporter {
    fn new(verbose: bool) -> Reporter {
        Reporter {
            verbose,
            reasons: Default::default(),
            totals: Default::default(),
        }
    }

    fn rule(&mut self, report: &pack::RuleReport) {
        for w in report.warnings {
            eprintln!("{}", warning_line(&report.source.path, w));
        }
        let file = report.source.path.display();
        for r in report.rendered {
            let t = self.totals.entry(r.target).or_default();
            match &r.fidelity {
                Fidelity::Exact => t.0 += 1,
                Fidelity::Approximate(list) => {
                    t.1 += 1;
                    for a in list {
                        if self.verbose {
                            eprintln!(
                                "{file}: approximate [{}]: {}: {}",
                                r.target, a.construct, a.reason
                            );
                        }
                        *self
                            .reasons
                            .entry((r.target, a.reason.clone()))
                            .or_default() += 1;
                    }
                }
            }
        }
    }

    fn finish(&self) {
        for ((target, reason), n) in &self.reasons {
            eprintln!("approximate [{target}] x{n}: {reason}");
        }
        let line: Vec<String> = self
            .totals
            .iter()
            .map(|(t, (exact, approx))| format!("{t} {exact} exact / {approx} approximate"))
            .collect();
        if !line.is_empty() {
            eprintln!(
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

fn run_tests(rules: &[String], backends: &Backends) -> Result<u8, Errors> {
    let sources = pack::discover(rules)?;
    let loaded = pack::load_rules(&sources, backends)?;
    let bless = std::env::var_os("RMMC_BLESS").is_some_and(|v| !v.is_empty() && v != "0");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (source, parsed) in &loaded {
        let fixture = fixtures::fixture_path(&source.path);
        if !fixture.exists() {
            say!(
                "skip  {} (no {})",
                source.path.display(),
                file_name(&fixture)
            );
            skipped += 1;
            continue;
        }
        let file = fixtures::load(&fixture)?;
        let outcome = fixtures::run(&parsed.rule, &file, &fixture)?;
        let expected_file = fixtures::expected_path(&source.path);
        let mut problems = outcome.mismatches.clone();
        let rendered = serde_json::to_string_pretty(&outcome.expected).expect("serializes") + "\n";
        if bless {
            let unchanged = std::fs::read_to_string(&expected_file).is_ok_and(|t| t == rendered);
            if !unchanged {
                std::fs::write(&expected_file, &rendered).map_err(|e| {
                    rmmc::Error::new(rmmc::ErrorKind::Io, e.to_string()).in_file(&expected_file)
                })?;
                say!("wrote {} (review it)", expected_file.display());
            }
        } else {
            match std::fs::read_to_string(&expected_file) {
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
        if problems.is_empty() {
            say!(
                "ok    {} ({} events, {} matched, {} rows)",
                source.path.display(),
                file.events.len(),
                outcome.evaluation.matched.len(),
                outcome.evaluation.rows.len()
            );
            passed += 1;
        } else {
            say!("FAIL  {}", source.path.display());
            for p in problems {
                say!("      {p}");
            }
            failed += 1;
        }
    }
    say!("{passed} passed, {failed} failed, {skipped} skipped");
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
