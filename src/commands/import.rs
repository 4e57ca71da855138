//! `rmmc import`: Sentinel hunting queries or the LOLRMM catalogue as rmmc rules, and
//! with `--fixtures` fixtures for every rule.
// The argument docs are the `--help` text, which clap prints as written: `<target>`
// there is a placeholder for people, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use super::{Console, DiagFormat, Exit, Outcome};
use crate::backends::Backends;
use crate::diagnostics::Diagnostic;
use crate::import::{self, lolrmm};
use std::path::{Path, PathBuf};

/// The arguments of `rmmc import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `sentinel` or `lolrmm`.
    #[arg(value_parser = ["sentinel", "lolrmm"])]
    pub format: String,
    /// Files or folders to import (optional with --fixtures).
    #[arg(required_unless_present = "fixtures")]
    pub paths: Vec<PathBuf>,
    /// The rules folder: each query becomes INTO/<tool>/<kind>.yaml.
    #[arg(long, default_value = "rules")]
    pub into: PathBuf,
    /// Overwrite rule files the importer wrote before.
    #[arg(long)]
    pub force: bool,
    /// Then write <kind>.fixtures.yaml beside every rule under --into from the rule's
    /// values, where missing or generated before (hand-written fixtures are kept);
    /// `RMMC_BLESS=1 rmmc test` then writes the expected rows.
    #[arg(long)]
    pub fixtures: bool,
    /// How to print warnings and errors: text (stderr) or json (stdout).
    #[arg(long = "diagnostics", value_enum, default_value = "text")]
    pub diagnostics: DiagFormat,
    /// sentinel: every query is for this tool (`tool:` and the folder under --into),
    /// instead of the name its file, folder or rule name suggests.
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
}

/// Run `rmmc import`.
pub fn run(args: &Args, backends: &Backends, console: Console) -> Outcome {
    let mut failed = false;
    let mut warnings: Vec<Diagnostic> = Vec::new();
    let mut summary_text = String::new();
    if !args.paths.is_empty() && args.format == "lolrmm" {
        let options = lolrmm::LolrmmOptions {
            into: args.into.clone(),
            force: args.force,
        };
        let summary = lolrmm::import_lolrmm(&args.paths, &options, backends)?;
        let problems = summary.problems();
        warnings.extend(problems.iter().map(|e| Diagnostic::warning_from_error(e)));
        summary_text += &summary.to_string();
        failed = !problems.is_empty();
    } else if !args.paths.is_empty() {
        let options = import::ImportOptions {
            into: args.into.clone(),
            force: args.force,
            tool: args.tool.clone(),
        };
        let summary = import::import_sentinel_with(&args.paths, &options, backends)?;
        warnings.extend(
            summary
                .remarks()
                .iter()
                .map(|(label, r)| Diagnostic::from_warning(Path::new(label), r)),
        );
        summary_text += &summary.to_string();
        failed = summary.failed() > 0;
    }
    if args.fixtures {
        let report = crate::fixtures::generate::write_all(&args.into, backends)?;
        summary_text += &report.to_string();
    }
    if args.diagnostics == DiagFormat::Json {
        console.json(&serde_json::json!({
            "ok": !failed,
            "diagnostics": warnings,
            "summary": summary_text,
        }));
    } else {
        for w in &warnings {
            if !console.quiet() || failed {
                console.alert(w.text());
            }
        }
        if !console.quiet() {
            console.say_raw(summary_text);
        }
    }
    Ok(if failed { Exit::Failed } else { Exit::Success })
}
