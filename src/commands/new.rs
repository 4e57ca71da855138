//! `rmmc new`: a commented skeleton rule and its fixtures file to edit.

use super::{Console, Exit, Outcome};
use crate::scaffold;
use std::path::PathBuf;

/// The arguments of `rmmc new`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tool's name as it appears in rule names (`tool:`).
    pub tool: String,
    /// What the rule looks at: filesig (file signatures), createproc (process
    /// creation) or netconn (network connections).
    #[arg(value_parser = scaffold::KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>())]
    pub kind: String,
    /// The rules folder to write into.
    #[arg(long, default_value = "rules")]
    pub into: PathBuf,
}

/// Run `rmmc new`.
pub fn run(args: &Args, console: Console) -> Outcome {
    for file in scaffold::new_rule(&args.into, &args.tool, &args.kind)? {
        console.say(format_args!("wrote {}", file.display()));
    }
    let folder = args.into.join(scaffold::tool_folder(&args.tool));
    console.note(format_args!(
        "next: edit both files, then `RMMC_BLESS=1 rmmc test {}`, `rmmc build` and `rmmc list rules --format markdown > {}`",
        folder.display(),
        args.into.join("README.md").display()
    ));
    Ok(Exit::Success)
}
