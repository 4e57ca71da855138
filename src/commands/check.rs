//! `rmmc check`: parse, map and lower every rule for every target; write nothing.

use super::report::Reporter;
use super::{Console, DiagFormat, Exit, Outcome, Select, profile_choice, selected};
use crate::backends::Backends;
use crate::diagnostics;
use crate::lower::Target;
use crate::pack::{self, BuildOptions};

/// The arguments of `rmmc check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rule files, folders or glob patterns.
    #[arg(default_value = "rules")]
    pub rules: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: Select,
    /// Field-map profile: NAME, or TARGET=NAME; comma list or repeated.
    #[arg(long, value_delimiter = ',')]
    pub profile: Vec<String>,
    /// Fail on any approximation the rule does not acknowledge.
    #[arg(long)]
    pub strict: bool,
    /// List every approximation of every rule.
    #[arg(long, short)]
    pub verbose: bool,
    /// How to print diagnostics: text (stderr), json or sarif (stdout).
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiagFormat,
}

/// Run `rmmc check`.
pub fn run(args: &Args, backends: &Backends, console: Console) -> Outcome {
    let sources = selected(&args.rules, &args.select, backends)?;
    let options = BuildOptions {
        targets: Target::all().collect(),
        profile: profile_choice(&args.profile)?,
        strict: args.strict,
    };
    let mut reporter = Reporter::new(console, args.verbose, args.format);
    pack::stream(&sources, backends, &options, &mut pack::DiscardSink, |r| {
        reporter.rule(r)
    })?;
    reporter.finish();
    match args.format {
        DiagFormat::Json => console.json(&serde_json::json!({
            "ok": true,
            "diagnostics": reporter.diagnostics,
            "rules": sources.len(),
            "targets": options.targets,
        })),
        DiagFormat::Sarif => console.json(&diagnostics::sarif(&reporter.diagnostics)),
        _ => {
            if !console.quiet() {
                console.say(format_args!(
                    "ok: {} rule(s) x {} target(s)",
                    sources.len(),
                    options.targets.len()
                ));
            }
        }
    }
    Ok(Exit::Success)
}
