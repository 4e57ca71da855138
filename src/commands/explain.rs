//! `rmmc explain`: a rule's IR, or its queries and fidelity verdicts per target.

use super::{
    Console, Exit, Failure, Outcome, TargetArg, profile_choice, query_text, target_arg, targets,
};
use crate::backends::Backends;
use crate::compiler::Compiler;
use crate::diagnostics::Diagnostic;
use crate::error::{Error, ErrorKind};
use crate::lower::Fidelity;
use crate::pack;

/// How `rmmc explain` prints the IR (and, with `--target`, the queries).
// The variants have no doc comments: clap would print them as value help.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IrFormat {
    Yaml,
    Json,
}

/// The arguments of `rmmc explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rule files, folders or glob patterns.
    #[arg(required = true)]
    pub rules: Vec<String>,
    /// Show the compiled query for these targets (comma list or repeated).
    #[arg(long, value_parser = target_arg(), value_delimiter = ',')]
    pub target: Vec<TargetArg>,
    /// Field-map profile: NAME, or TARGET=NAME; comma list or repeated.
    #[arg(long, value_delimiter = ',')]
    pub profile: Vec<String>,
    /// yaml or json: the IR, or with --target one JSON object per rule and target.
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: IrFormat,
    /// With one rule and one --target: print only the query, nothing else.
    #[arg(long, requires = "target")]
    pub raw: bool,
}

/// Run `rmmc explain`.
pub fn run(args: &Args, backends: Backends, console: Console) -> Outcome {
    let targets = targets(&args.target);
    for input in &args.rules {
        if input.ends_with(".md") {
            return Err(Error::new(
                ErrorKind::Schema,
                "a Markdown file is not a rule: `rmmc import sentinel FILE.md` reads the KQL blocks of RMM_AHQ_*.md files into rules",
            )
            .in_file(input)
            .into());
        }
    }
    let sources = pack::discover(&args.rules)?;
    if args.raw && (sources.len() != 1 || targets.len() != 1) {
        return Err(Failure::Usage(format!(
            "--raw prints one query: give one rule and one --target (got {} rule(s), {} target(s))",
            sources.len(),
            targets.len()
        )));
    }
    let profile = profile_choice(&args.profile)?;
    let loaded = pack::load_rules(&sources, &backends)?;
    let compiler = Compiler::with_backends(backends)?;
    let several = loaded.len() > 1;
    for (source, parsed) in &loaded {
        for w in &parsed.warnings {
            console.note(Diagnostic::from_warning(&source.path, &w.remark()).text());
        }
        if targets.is_empty() {
            let text = match args.format {
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
            console.say_raw(text);
            continue;
        }
        for &target in &targets {
            let r =
                compiler.compile_file(&parsed.rule, &source.path, target, profile.as_deref())?;
            if args.raw {
                console.say_raw(query_text(&r.query));
            } else if let IrFormat::Json = args.format {
                console.say(serde_json::json!({
                    "rule": source.path.to_string_lossy().replace('\\', "/"),
                    "id": parsed.rule.meta.id,
                    "target": target,
                    "query": r.query,
                    "fidelity": r.fidelity,
                }));
            } else {
                if several {
                    console.say(format_args!("== {} {target} ==", source.path.display()));
                } else {
                    console.say(format_args!("== {target} =="));
                }
                console.say(r.query.trim_end());
                console.say(format_args!("-- fidelity: {}", r.fidelity.as_str()));
                for a in r.fidelity.approximations() {
                    console.say(format_args!("--   {}: {}", a.construct, a.reason()));
                }
                if let Fidelity::Unsupported(u) = &r.fidelity {
                    console.say(format_args!("--   {u}"));
                }
            }
        }
    }
    Ok(Exit::Success)
}
