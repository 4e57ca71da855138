//! `rmmc build`: compile rules into packs under `out/<target>/`, or with `--check`
//! compare with them.
// The argument docs are the `--help` text, which clap prints as written: `<target>`
// there is a placeholder for people, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use super::report::Reporter;
use super::{
    Console, DiagFormat, Exit, Failure, Outcome, Select, TargetArg, chosen, profile_choice,
    query_text, target_arg, targets,
};
use crate::backends::Backends;
use crate::diagnostics::Diagnostic;
use crate::error::Errors;
use crate::pack::{self, BuildOptions, RuleSource, Stale};
use std::path::{Path, PathBuf};

/// The arguments of `rmmc build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Target languages: a comma list or repeated (kql,spl); `all` for every target.
    #[arg(long, value_parser = target_arg(), value_delimiter = ',', default_value = "all")]
    pub target: Vec<TargetArg>,
    /// Rule files, folders or glob patterns.
    #[arg(default_value = "rules")]
    pub rules: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: Select,
    /// Output root; each target writes OUT/<target>/. `-`: print the query of the one
    /// selected rule and target on stdout and write nothing.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Field-map profile (see `rmmc list profiles`): NAME for every target, or
    /// TARGET=NAME for one; comma list or repeated. Default: each target's default.
    #[arg(long, value_delimiter = ',')]
    pub profile: Vec<String>,
    /// Fail on any approximation the rule does not acknowledge
    /// (`acknowledged: [{warning: approximate, target: T}]`).
    #[arg(long)]
    pub strict: bool,
    /// Write nothing: compare with OUT and exit 3 if anything differs.
    #[arg(long)]
    pub check: bool,
    /// Replace each out/<target>/ whole even when building some rules only
    /// (removes the files of every rule not built).
    #[arg(long)]
    pub clean: bool,
    /// List every approximation of every rule.
    #[arg(long, short)]
    pub verbose: bool,
    /// How to print diagnostics: text (stderr) or json (stdout).
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiagFormat,
}

/// What a build compiles and which of those rules' files it replaces.
struct BuildPlan {
    /// Every rule compiled (for a subset build: the whole rules root, for the
    /// gathered files).
    sources: Vec<RuleSource>,
    /// For a build of some rules: those rules; `None` replaces the folders whole.
    subset: Option<pack::Selection>,
    /// How many rules the inputs and selection name.
    selected: usize,
}

/// A build of the whole rules root (or `--clean`) replaces each target folder whole;
/// a build of some rules replaces only theirs and compiles the whole root for the
/// gathered files. The output folder is never read as rules.
fn plan_build(args: &Args, backends: &Backends) -> Result<BuildPlan, Errors> {
    let (inputs, select, out) = (&args.rules, &args.select, &args.out);
    let layout = pack::Layout {
        exclude: vec![out.to_path_buf()],
        ..pack::Layout::default()
    };
    let found = pack::discover_in(inputs, &layout)?;
    let whole = found.whole && select.is_empty();
    let chosen = chosen(found.sources, inputs, select, backends)?;
    let selected = chosen.len();
    if whole || args.clean || out.as_os_str() == "-" {
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

/// Run `rmmc build`.
pub fn run(args: &Args, backends: &Backends, console: Console) -> Outcome {
    let plan = plan_build(args, backends)?;
    let options = BuildOptions {
        targets: targets(&args.target),
        profile: profile_choice(&args.profile)?,
        strict: args.strict,
    };
    if args.out.as_os_str() == "-" {
        return print_query(args, &plan.sources, &options, backends, console);
    }
    let out = &args.out;
    let format = args.format;
    let mut reporter = Reporter::new(console, args.verbose, format);
    let subset = plan.subset.as_ref();
    let (stale, files) = if args.check {
        let stale = pack::check_packs(&plan.sources, backends, &options, out, subset, |r| {
            reporter.rule(r)
        })?;
        (stale, None)
    } else {
        let summary = pack::write_packs(&plan.sources, backends, &options, out, subset, |r| {
            reporter.rule(r)
        })?;
        (Vec::new(), Some(summary.files))
    };
    reporter.finish();
    if format == DiagFormat::Json {
        console.json(&serde_json::json!({
            "ok": stale.is_empty(),
            "diagnostics": reporter.diagnostics,
            "rules": plan.selected,
            "targets": options.targets,
            "files": files,
            "stale": stale.iter().map(stale_json).collect::<Vec<_>>(),
        }));
        return Ok(if stale.is_empty() {
            Exit::Success
        } else {
            Exit::Stale
        });
    }
    if let Some(files) = files {
        if plan.subset.is_some() {
            console.note(format_args!(
                "replaced the files of {} rule(s) x {} target(s) in {}; kept the other rules' files; rebuilt the gathered files from {} rule(s)",
                plan.selected,
                options.targets.len(),
                out.display(),
                plan.sources.len()
            ));
        } else {
            console.note(format_args!(
                "wrote {} file(s) for {} rule(s) x {} target(s) to {}",
                files,
                plan.sources.len(),
                options.targets.len(),
                out.display()
            ));
        }
        return Ok(Exit::Success);
    }
    report_stale(&stale, out, plan.selected, options.targets.len(), console)
}

/// `--out -`: the query of the one selected rule and target, on stdout.
fn print_query(
    args: &Args,
    sources: &[RuleSource],
    options: &BuildOptions,
    backends: &Backends,
    console: Console,
) -> Outcome {
    if args.check || sources.len() != 1 || options.targets.len() != 1 {
        return Err(Failure::Usage(format!(
            "--out - prints one query: select one rule and one target (got {} rule(s), {} target(s){})",
            sources.len(),
            options.targets.len(),
            if args.check { ", and --check" } else { "" }
        )));
    }
    let build = pack::build(sources, backends, options)?;
    if args.format == DiagFormat::Text {
        for (file, w) in &build.warnings {
            console.note(Diagnostic::from_warning(file, w).text());
        }
    }
    console.say_raw(query_text(&build.rendered[0].query));
    Ok(Exit::Success)
}

/// `--check`: each stale file with its diff, and the verdict.
fn report_stale(
    stale: &[Stale],
    out: &Path,
    selected: usize,
    targets: usize,
    console: Console,
) -> Outcome {
    for s in stale {
        match s {
            Stale::Missing(p) => console.say(format_args!("missing: {}", p.display())),
            Stale::Extra(p) => console.say(format_args!(
                "not produced by the rules (remove it): {}",
                p.display()
            )),
            Stale::Changed { path, diff } => {
                console.say(format_args!("stale: {}", path.display()));
                console.say_raw(diff);
            }
        }
    }
    if stale.is_empty() {
        if !console.quiet() {
            console.say(format_args!(
                "{} is up to date: {selected} rule(s) x {targets} target(s)",
                out.display(),
            ));
        }
        Ok(Exit::Success)
    } else {
        console.say(format_args!(
            "{} file(s) in {} are stale: run `rmmc build`",
            stale.len(),
            out.display()
        ));
        Ok(Exit::Stale)
    }
}

fn stale_json(s: &Stale) -> serde_json::Value {
    match s {
        Stale::Missing(p) => serde_json::json!({"missing": p}),
        Stale::Extra(p) => serde_json::json!({"not_produced": p}),
        Stale::Changed { path, diff } => serde_json::json!({"changed": path, "diff": diff}),
    }
}
