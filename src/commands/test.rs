//! `rmmc test`: run each rule's fixtures through the reference evaluator and compare
//! with the checked-in expected rows (or rewrite them when blessing).

use super::{Console, DiagFormat, Exit, Outcome, Select, selected};
use crate::backends::Backends;
use crate::diagnostics::{self, TestOutcome};
use crate::fixtures::{self, RuleTest};
use crate::pack;

/// The arguments of `rmmc test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rule files, folders or glob patterns.
    #[arg(default_value = "rules")]
    pub rules: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: Select,
    /// How to print results: text, json or junit (stdout).
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiagFormat,
}

/// Run `rmmc test`.
pub fn run(args: &Args, backends: &Backends, console: Console) -> Outcome {
    let sources = selected(&args.rules, &args.select, backends)?;
    let loaded = pack::load_rules(&sources, backends)?;
    let mut results = Vec::new();
    for (source, parsed) in &loaded {
        let outcome = outcome(fixtures::check_rule(&parsed.rule, &source.path)?, console);
        let name = source.path.to_string_lossy().replace('\\', "/");
        if args.format == DiagFormat::Text {
            match &outcome {
                TestOutcome::Passed { summary } if !console.quiet() => {
                    console.say(format_args!("ok    {name} ({summary})"))
                }
                TestOutcome::Skipped { reason } if !console.quiet() => {
                    console.say(format_args!("skip  {name} ({reason})"))
                }
                TestOutcome::Failed { problems } => {
                    console.say(format_args!("FAIL  {name}"));
                    for p in problems {
                        console.say(format_args!("      {p}"));
                    }
                }
                _ => {}
            }
        }
        results.push((name, outcome));
    }
    let count = |f: fn(&TestOutcome) -> bool| results.iter().filter(|(_, o)| f(o)).count();
    let passed = count(|o| matches!(o, TestOutcome::Passed { .. }));
    let failed = count(|o| matches!(o, TestOutcome::Failed { .. }));
    let skipped = count(|o| matches!(o, TestOutcome::Skipped { .. }));
    match args.format {
        DiagFormat::Junit => console.say_raw(diagnostics::junit(&results)),
        DiagFormat::Json | DiagFormat::Sarif => console.json(&serde_json::json!({
            "ok": failed == 0,
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
            "rules": results.iter().map(|(rule, o)| {
                let mut v = serde_json::to_value(o).expect("serializes");
                v["rule"] = rule.clone().into();
                v
            }).collect::<Vec<_>>(),
        })),
        DiagFormat::Text => {
            if !console.quiet() || failed > 0 {
                console.say(format_args!(
                    "{passed} passed, {failed} failed, {skipped} skipped"
                ));
            }
        }
    }
    Ok(if failed > 0 {
        Exit::TestFailed
    } else {
        Exit::Success
    })
}

/// One rule's fixture check as a report outcome; a rewritten expectation is always
/// said, even with `-q`: blessing changed a checked-in file.
fn outcome(test: RuleTest, console: Console) -> TestOutcome {
    let file_name = |p: &std::path::Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    match test {
        RuleTest::NoFixtures { fixture } => TestOutcome::Skipped {
            reason: format!("no {}", file_name(&fixture)),
        },
        RuleTest::Ran {
            events,
            matched,
            rows,
            wrote,
            problems,
        } => {
            if let Some(path) = wrote {
                console.alert(format_args!("wrote {} (review it)", path.display()));
            }
            if problems.is_empty() {
                TestOutcome::Passed {
                    summary: format!("{events} events, {matched} matched, {rows} rows"),
                }
            } else {
                TestOutcome::Failed { problems }
            }
        }
    }
}
