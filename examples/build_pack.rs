//! Build one tool's pack for every target with the rmmc library.
//!
//! ```text
//! cargo run --example build_pack -- anydesk            # into a fresh temporary folder
//! cargo run --example build_pack -- level /tmp/packs   # into /tmp/packs/<target>/
//! ```
//!
//! It reads `rules/<tool>/*.yaml`, loads each rule from its text with
//! [`rmmc::Compiler`] (no file system involved: templates and field maps are embedded),
//! prints each target's verdict, then compiles the pack with [`rmmc::pack::build`] and
//! writes it with [`rmmc::pack::write`], as `rmmc build rules/<tool>` does.

use rmmc::pack::{self, BuildOptions};
use rmmc::{Backends, Compiler, Target};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        // `build_pack | head`: a closed stdout is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tool = args
        .next()
        .unwrap_or_else(|| "anydesk".to_string())
        .to_lowercase();
    let out: PathBuf = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("rmmc-pack-{tool}-{}", std::process::id())),
    };
    let rules_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("rules")
        .join(&tool);
    if !rules_dir.is_dir() {
        return Err(format!(
            "no rules for `{tool}`: {} is not a folder",
            rules_dir.display()
        )
        .into());
    }

    let mut stdout = std::io::stdout().lock();
    // 1. Each rule from its text: parse, look at the IR, compile per target.
    let compiler = Compiler::embedded()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rules_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| pack::is_rule_file(p))
        .collect();
    files.sort();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let parsed = compiler.load_rule(&file.display().to_string(), &text)?;
        let rule = &parsed.rule;
        write!(
            stdout,
            "{} ({}, {} window):",
            rule.meta.name,
            rule.source,
            rule.window.shorthand()
        )?;
        for target in Target::ALL {
            let rendered = compiler.compile(rule, target, None)?;
            let verdict = if rendered.fidelity.is_exact() {
                "exact"
            } else {
                "approximate"
            };
            write!(stdout, " {target} {verdict};")?;
        }
        writeln!(stdout)?;
    }

    // 2. The pack: every rule of the tool x every target, written atomically.
    let backends = Backends::embedded()?;
    let sources = pack::discover(&[rules_dir.display().to_string()])?;
    let options = BuildOptions {
        targets: Target::ALL.to_vec(),
        profile: None,
        strict: false,
    };
    let build = pack::build(&sources, &backends, &options)?;
    pack::write(&build, &out)?;
    writeln!(
        stdout,
        "wrote {} file(s) for {} rule(s) x {} target(s) to {}",
        build.files.len(),
        sources.len(),
        options.targets.len(),
        out.display()
    )?;
    for rel in build.files.keys() {
        writeln!(stdout, "  {}", out.join(rel).display())?;
    }
    Ok(())
}
