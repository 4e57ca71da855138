//! `rmmc fixtures`: each rule's fixture events mapped into a target's schema, with
//! the compiled query and the expected rows, one JSON line per rule and target
//! ([`crate::fixtures::export_rule`], the bundle line the conformance suite uses too).

use super::{Console, Exit, Outcome, TargetArg, profile_choice, target_arg, targets};
use crate::backends::Backends;
use crate::compiler::Compiler;
use crate::fixtures;
use crate::pack;

/// The arguments of `rmmc fixtures`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rule files, folders or glob patterns.
    #[arg(default_value = "rules")]
    pub rules: Vec<String>,
    /// Targets to export for (comma list or repeated; `all`).
    #[arg(long, value_parser = target_arg(), value_delimiter = ',', required = true)]
    pub target: Vec<TargetArg>,
    /// Field-map profile: NAME, or TARGET=NAME; comma list or repeated.
    #[arg(long, value_delimiter = ',')]
    pub profile: Vec<String>,
}

/// Run `rmmc fixtures`.
pub fn run(args: &Args, backends: Backends, console: Console) -> Outcome {
    let targets = targets(&args.target);
    let profile = profile_choice(&args.profile)?;
    let sources = pack::discover(&args.rules)?;
    let loaded = pack::load_rules(&sources, &backends)?;
    let compiler = Compiler::with_backends(backends)?;
    for (source, parsed) in &loaded {
        let lines = fixtures::export_rule(
            &compiler,
            &parsed.rule,
            &source.path,
            &source.stem,
            &targets,
            profile.as_deref(),
        )?;
        for line in lines {
            console.say(line);
        }
    }
    Ok(Exit::Success)
}
