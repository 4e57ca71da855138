//! `rmmc list`: the targets, the rules (or their coverage table) and the profiles.

use super::{Console, Exit, Outcome, Select, selected};
use crate::backends::Backends;
use crate::error::{Error, ErrorKind};
use crate::lower::Target;
use crate::pack::{self, BuildOptions};

/// What `rmmc list` lists: the registered targets, the rules under the given paths,
/// or each target's field-map profiles.
// The variants have no doc comments: clap would print them as value help.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ListWhat {
    Targets,
    Rules,
    Profiles,
}

/// How `rmmc list` prints: one line per item, or (rules only) the coverage table
/// of rules/README.md.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Text,
    Markdown,
}

/// The arguments of `rmmc list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to list.
    #[arg(value_enum)]
    pub what: ListWhat,
    /// Rule files, folders or glob patterns (for `rules`).
    #[arg(default_value = "rules")]
    pub rules: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: Select,
    /// `markdown` (rules only): the coverage table of rules/README.md, with each
    /// rule's fidelity verdict per target and totals.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ListFormat,
}

/// Run `rmmc list`.
pub fn run(args: &Args, backends: &Backends, console: Console) -> Outcome {
    if args.format == ListFormat::Markdown {
        return coverage_table(args, backends, console);
    }
    match args.what {
        ListWhat::Targets => {
            for t in Target::all() {
                console.say(format_args!("{:<6} {}", t.as_str(), t.describe()));
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
                    console.say(format_args!(
                        "{:<6} {}{default}: {}",
                        t.as_str(),
                        p.name,
                        p.description.trim()
                    ));
                    // The event selection changes which events a rule can match, so a
                    // reader choosing a profile must see it, not only the field map.
                    for (source, map) in &p.sources {
                        for (field, values) in &map.events {
                            console.say(format_args!(
                                "{:<6}   {source}: only events whose {field} is {}",
                                "",
                                values.join(" or ")
                            ));
                        }
                    }
                }
            }
        }
        ListWhat::Rules => {
            let sources = selected(&args.rules, &args.select, backends)?;
            let loaded = pack::load_rules(&sources, backends)?;
            let width = |f: &dyn Fn(&crate::ir::Rule) -> usize| {
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
                console.say(line.trim_end());
            }
        }
    }
    Ok(Exit::Success)
}

/// `--format markdown`: the coverage table (tool x kind x target) of the rules.
fn coverage_table(args: &Args, backends: &Backends, console: Console) -> Outcome {
    if !matches!(args.what, ListWhat::Rules) {
        return Err(Error::new(
            ErrorKind::Schema,
            "--format markdown lists rules only: rmmc list rules --format markdown",
        )
        .into());
    }
    let sources = selected(&args.rules, &args.select, backends)?;
    let loaded = pack::load_rules(&sources, backends)?;
    let options = BuildOptions {
        targets: Target::all().collect(),
        profile: None,
        strict: false,
    };
    let build = pack::build(&sources, backends, &options)?;
    console.say_raw(crate::coverage::markdown(&build, &loaded));
    Ok(Exit::Success)
}
