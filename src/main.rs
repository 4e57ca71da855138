//! The `rmmc` command line: argument parsing (clap) and dispatch to the library's
//! [`rmmc::commands`], one module per command. Errors meet `anyhow` here, at the
//! boundary; the library keeps its typed errors ([`rmmc::Errors`], [`Failure`]).

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use rmmc::Backends;
use rmmc::commands::{self, Console, DiagFormat, Exit, Failure};
use rmmc::diagnostics;
use std::path::PathBuf;
use std::process::ExitCode;

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
    Build(commands::build::Args),
    /// Parse, map and lower every rule for every target; write nothing.
    #[command(after_help = "Examples:
  rmmc check
  rmmc check --format sarif > rmmc.sarif      for code-scanning UIs
  rmmc check --tool AnyDesk --strict")]
    Check(commands::check::Args),
    /// List targets, rules or profiles.
    #[command(after_help = "Examples:
  rmmc list rules
  rmmc list rules rules/anydesk --status experimental
  rmmc list rules --format markdown > rules/README.md   coverage table: tool x kind x target")]
    List(commands::list::Args),
    /// Print rules' IR, or with --target their queries and fidelity verdicts.
    #[command(after_help = "Examples:
  rmmc explain rules/netsupport/filesig.yaml
  rmmc explain rules/netsupport --target kql,spl
  rmmc explain rules/netsupport/filesig.yaml --target spl --raw | splunk search -
  rmmc explain rules/netsupport/filesig.yaml --target eql --format json")]
    Explain(commands::explain::Args),
    /// Run each rule's fixtures (RULE.fixtures.yaml) through the reference evaluator
    /// and compare with RULE.expected.json. RMMC_BLESS=1 rewrites the expectations.
    #[command(after_help = "Examples:
  rmmc test
  RMMC_BLESS=1 rmmc test rules/anydesk     rewrite (and name) the expected rows
  rmmc test --format junit > rmmc-tests.xml")]
    Test(commands::test::Args),
    /// Export each rule's fixture events mapped into a target's schema, with the
    /// compiled query and the expected results, as one JSON object per line: data to
    /// replay into a SIEM or an independent engine.
    Fixtures(commands::fixtures::Args),
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
    Import(commands::import::Args),
    /// Write a commented skeleton rule and its fixtures file to edit:
    /// INTO/<tool>/<kind>.yaml and <kind>.fixtures.yaml.
    #[command(after_help = "Examples:
  rmmc new FooRemote createproc      writes rules/fooremote/createproc.yaml and .fixtures.yaml
  rmmc new \"Zoho Assist\" netconn --into /tmp/rules")]
    New(commands::new::Args),
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
            Command::Build(args) => args.format,
            Command::Check(args) => args.format,
            Command::Test(args) => args.format,
            Command::Import(args) => args.diagnostics,
            _ => DiagFormat::Text,
        }
    }

    /// The diagnostics formats the command prints: SARIF is for `check`, JUnit for
    /// `test`.
    fn diag_formats(&self) -> Option<(&'static str, &'static [DiagFormat])> {
        Some(match self {
            Command::Build(_) => ("build", &[DiagFormat::Text, DiagFormat::Json]),
            Command::Check(_) => (
                "check",
                &[DiagFormat::Text, DiagFormat::Json, DiagFormat::Sarif],
            ),
            Command::Test(_) => (
                "test",
                &[DiagFormat::Text, DiagFormat::Json, DiagFormat::Junit],
            ),
            Command::Import(_) => ("import", &[DiagFormat::Text, DiagFormat::Json]),
            _ => return None,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let console = Console::new(cli.quiet);
    let format = cli.command.diag_format();
    match run(cli, console) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => report(&error, format, console),
    }
}

/// A failed command: usage errors as clap prints its own (exit 2), the library's
/// errors in the asked format (exit 1).
fn report(error: &anyhow::Error, format: DiagFormat, console: Console) -> ExitCode {
    let errors = match error.downcast_ref::<Failure>() {
        Some(Failure::Usage(message)) => usage_error(message),
        Some(Failure::Errors(errors)) => errors,
        None => {
            eprintln!("error: {error:#}");
            return ExitCode::from(Exit::Failed.code());
        }
    };
    match format {
        DiagFormat::Text | DiagFormat::Junit => eprintln!("{errors}"),
        DiagFormat::Json => console.json(&serde_json::json!({
            "ok": false,
            "diagnostics": diagnostics::from_errors(errors),
        })),
        DiagFormat::Sarif => console.json(&diagnostics::sarif(&diagnostics::from_errors(errors))),
    }
    ExitCode::from(Exit::Failed.code())
}

fn usage_error(message: &str) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

/// `--format` values a command does not print: a usage error naming the ones it does.
fn check_format(command: &Command) -> Result<(), Failure> {
    let Some((name, allowed)) = command.diag_formats() else {
        return Ok(());
    };
    if allowed.contains(&command.diag_format()) {
        return Ok(());
    }
    let names: Vec<String> = allowed
        .iter()
        .filter_map(|f| f.to_possible_value().map(|v| v.get_name().to_string()))
        .collect();
    Err(Failure::Usage(format!(
        "`{name}` prints diagnostics as {}",
        names.join(" or ")
    )))
}

fn backends(dir: &Option<PathBuf>) -> Result<Backends, Failure> {
    Ok(match dir {
        Some(d) => Backends::from_dir(d)?,
        None => Backends::embedded()?,
    })
}

fn run(cli: Cli, console: Console) -> anyhow::Result<Exit> {
    check_format(&cli.command)?;
    let backends = backends(&cli.backends)?;
    let exit = match cli.command {
        Command::Build(args) => commands::build::run(&args, &backends, console)?,
        Command::Check(args) => commands::check::run(&args, &backends, console)?,
        Command::List(args) => commands::list::run(&args, &backends, console)?,
        Command::Explain(args) => commands::explain::run(&args, backends, console)?,
        Command::Test(args) => commands::test::run(&args, &backends, console)?,
        Command::Fixtures(args) => commands::fixtures::run(&args, backends, console)?,
        Command::Import(args) => commands::import::run(&args, &backends, console)?,
        Command::New(args) => commands::new::run(&args, console)?,
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "rmmc", &mut out);
            console.say_raw(String::from_utf8_lossy(&out));
            Exit::Success
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .context("rendering the manual page")?;
            console.say_raw(String::from_utf8_lossy(&out));
            Exit::Success
        }
    };
    Ok(exit)
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
