//! Rule fixtures: events in the canonical vocabulary beside each rule
//! (`filesig.fixtures.yaml`), each marked `match` or `no_match`, and the result rows
//! the reference evaluator gives for them, checked in as `filesig.expected.json`.
//!
//! The files are plain data so the independent-engine suite reads them unchanged:
//! it maps the events with [`map_event`] (the backends' field maps), runs each
//! target's engine, and compares with the expected rows.

pub mod generate;

use crate::error::{Error, ErrorKind, Result};
use crate::eval::{self, Evaluation, Event};
use crate::ir::Rule;
use crate::lower::missing_exclusion_fields;
use crate::profile::Profile;
use crate::render::Rendered;
use crate::vocabulary;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A fixture file (`RULE.fixtures.yaml`): events to run a rule over, and when.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureFile {
    /// The query time: the window ends here.
    pub now: String,
    /// The events, each with the expected verdict.
    pub events: Vec<FixtureEvent>,
}

/// One fixture event.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureEvent {
    /// A name unique in the file, used in reports and expectations.
    pub name: String,
    /// Whether the rule should match it.
    pub expect: Expect,
    /// What the event shows, for the reader.
    #[serde(default)]
    pub why: Option<String>,
    /// The event's fields, by canonical name.
    pub event: Event,
}

/// What a fixture event expects of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// The rule matches the event.
    Match,
    /// The rule does not match the event.
    NoMatch,
}

/// The checked-in expectation: which events match, and the result rows.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Expected {
    /// The fixture file's `now`.
    pub now: String,
    /// The names of the matched events, in event order.
    pub matched: Vec<String>,
    /// The result rows (aggregated rules: one per group).
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// `rules/x/filesig.yaml` → `rules/x/filesig.fixtures.yaml`.
pub fn fixture_path(rule_file: &Path) -> PathBuf {
    rule_file.with_extension("fixtures.yaml")
}

/// `rules/x/filesig.yaml` → `rules/x/filesig.expected.json`.
pub fn expected_path(rule_file: &Path) -> PathBuf {
    rule_file.with_extension("expected.json")
}

/// Read and parse a fixture file.
pub fn load(path: &Path) -> Result<FixtureFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    crate::error::from_yaml(path, &text)
}

/// Parse a fixture file's `now` (RFC 3339), naming the file on error.
pub fn parse_now(now: &str, path: &Path) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(now)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidValue,
                format!("`now: {now}` is not an RFC 3339 time: {e}"),
            )
            .in_file(path)
        })
}

/// The rule as it runs on its data source: exclusions whose fields the source
/// lacks are documented, not applied.
pub fn applied(rule: &Rule) -> Rule {
    let mut r = rule.clone();
    r.exclusions
        .retain(|x| missing_exclusion_fields(rule.source, x).is_empty());
    r
}

/// Every field of every event is in the vocabulary of the rule's data source: a
/// misspelled field would read as missing and let the fixture pass vacuously.
pub fn check_fields(rule: &Rule, fixtures: &FixtureFile, path: &Path) -> Result<()> {
    for e in &fixtures.events {
        let Some(field) = e
            .event
            .keys()
            .find(|k| !vocabulary::has_field(rule.source, k))
        else {
            continue;
        };
        let known: Vec<&str> = vocabulary::fields(rule.source)
            .iter()
            .map(|(n, _)| *n)
            .collect();
        let err = Error::new(
            ErrorKind::UnknownField,
            format!(
                "event `{}` has field `{field}`, which data source `{}` does not have: expected one of {}",
                e.name,
                rule.source,
                known.join(", ")
            ),
        )
        .in_file(path);
        return Err(match locate_field(path, &e.name, field) {
            Some((line, column)) => err.at(line, column),
            None => err,
        });
    }
    Ok(())
}

/// Where `field:` is written inside the event named `event` (read again only to
/// report an error).
fn locate_field(path: &Path, event: &str, field: &str) -> Option<(usize, usize)> {
    let text = std::fs::read_to_string(path).ok()?;
    let start = [
        format!("name: {event}"),
        format!("name: \"{event}\""),
        format!("name: '{event}'"),
    ]
    .iter()
    .find_map(|n| text.find(n.as_str()))
    .unwrap_or(0);
    let offset = [
        format!("{field}:"),
        format!("\"{field}\":"),
        format!("'{field}':"),
    ]
    .iter()
    .filter_map(|needle| text[start..].find(needle.as_str()))
    .min()?;
    Some(crate::parse::rule_yaml::line_col(&text, start + offset))
}

/// The outcome of one rule's fixtures.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the reference evaluator returned.
    pub evaluation: Evaluation,
    /// The expectation file's content for this run.
    pub expected: Expected,
    /// Events whose `expect` disagrees with the evaluator.
    pub mismatches: Vec<String>,
}

/// Run the fixtures through the reference evaluator.
pub fn run(rule: &Rule, fixtures: &FixtureFile, path: &Path) -> Result<Outcome> {
    check_fields(rule, fixtures, path)?;
    let now = parse_now(&fixtures.now, path)?;
    let events: Vec<Event> = fixtures.events.iter().map(|e| e.event.clone()).collect();
    let evaluation = eval::evaluate(&applied(rule), &events, now)
        .map_err(|e| Error::new(ErrorKind::InvalidValue, e.to_string()).in_file(path))?;
    let mut mismatches = Vec::new();
    for (i, e) in fixtures.events.iter().enumerate() {
        let matched = evaluation.matched.contains(&i);
        let expected = e.expect == Expect::Match;
        if matched != expected {
            mismatches.push(format!(
                "event `{}`: expected {}, the evaluator says {}",
                e.name,
                if expected { "match" } else { "no match" },
                if matched { "match" } else { "no match" }
            ));
        }
    }
    let expected = Expected {
        now: fixtures.now.clone(),
        matched: evaluation
            .matched
            .iter()
            .map(|&i| fixtures.events[i].name.clone())
            .collect(),
        rows: evaluation.rows.clone(),
    };
    Ok(Outcome {
        evaluation,
        expected,
        mismatches,
    })
}

/// An event renamed into a target's schema with the profile's field map. A field
/// the map lacks is an error, so a fixture can never hide a mapping gap; a field the
/// profile's data does not record (`unsupported`) is left out, as the data would.
pub fn map_event(event: &Event, rule: &Rule, profile: &Profile) -> Result<Event> {
    let map = profile.source(rule.source)?;
    let mut out = Event::new();
    for (k, v) in event {
        let mapping = map.fields.get(k).ok_or_else(|| {
            Error::new(
                ErrorKind::UnmappedField,
                format!(
                    "fixture field `{k}` has no mapping in profile `{}` for `{}`",
                    profile.name, rule.source
                ),
            )
            .in_file(&profile.path)
        })?;
        if let Some(name) = mapping.name() {
            out.insert(name.to_string(), v.clone());
        }
    }
    Ok(out)
}

/// The keys every fixture-bundle line shares: one rule compiled for one target with
/// the profile's field map and settings, and `events` already mapped into the
/// target's schema. The data an independent engine or a SIEM replays; `rmmc fixtures`
/// and the conformance suite each add their own keys (expected rows, answers).
pub fn bundle_line(
    stem: &str,
    rule_file: &Path,
    rule: &Rule,
    profile: &Profile,
    rendered: &Rendered,
    events: Vec<serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let map = profile.source(rule.source)?;
    let files: std::collections::BTreeMap<String, &String> = rendered
        .files
        .iter()
        .map(|(path, text)| (path.to_string_lossy().to_string(), text))
        .collect();
    let line = serde_json::json!({
        "rule": stem,
        "rule_file": rule_file.to_string_lossy(),
        "id": rule.meta.id,
        "source": rule.source,
        "target": rendered.target,
        "profile": profile.name,
        "settings": map.settings,
        "field_map": map.names(),
        "query": rendered.query,
        "files": files,
        "fidelity": rendered.fidelity,
        "aggregation": rule.aggregation,
        "events": events,
    });
    match line {
        serde_json::Value::Object(map) => Ok(map),
        _ => unreachable!("json! of an object literal is an object"),
    }
}

/// The result of checking one rule's fixtures ([`check_rule`]).
#[derive(Debug, Clone)]
pub enum RuleTest {
    /// The rule has no fixture file.
    NoFixtures {
        /// The fixture file that would hold them.
        fixture: PathBuf,
    },
    /// The fixtures ran.
    Ran {
        /// How many fixture events there are.
        events: usize,
        /// How many the rule matched.
        matched: usize,
        /// How many result rows it produced.
        rows: usize,
        /// The expectation file written because blessing was asked for
        /// ([`crate::golden::bless_requested`]) and its text changed.
        wrote: Option<PathBuf>,
        /// What disagrees, one sentence (with a diff where rows differ) each; empty
        /// when the rule passes.
        problems: Vec<String>,
    },
}

/// Run one rule's fixtures through the reference evaluator and compare the result
/// rows with `RULE.expected.json`, or write that file when blessing.
pub fn check_rule(rule: &Rule, rule_file: &Path) -> Result<RuleTest> {
    let fixture = fixture_path(rule_file);
    if !fixture.exists() {
        return Ok(RuleTest::NoFixtures { fixture });
    }
    let file = load(&fixture)?;
    let outcome = run(rule, &file, &fixture)?;
    let expected_file = expected_path(rule_file);
    let mut problems = outcome.mismatches.clone();
    let mut wrote = None;
    let rendered = serde_json::to_string_pretty(&outcome.expected).expect("serializes") + "\n";
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    if crate::golden::bless_requested() {
        let unchanged = std::fs::read_to_string(&expected_file).is_ok_and(|t| t == rendered);
        if !unchanged {
            std::fs::write(&expected_file, &rendered)
                .map_err(|e| Error::new(ErrorKind::Io, e.to_string()).in_file(&expected_file))?;
            wrote = Some(expected_file);
        }
    } else {
        match std::fs::read_to_string(&expected_file) {
            Ok(existing) if existing == rendered => {}
            Ok(existing) => problems.push(format!(
                "result rows differ from {} (RMMC_BLESS=1 rmmc test rewrites it after review):\n{}",
                name(&expected_file),
                crate::golden::unified_diff(&existing, &rendered, &expected_file)
            )),
            Err(_) => problems.push(format!(
                "{} is missing: run RMMC_BLESS=1 rmmc test and review it",
                name(&expected_file)
            )),
        }
    }
    Ok(RuleTest::Ran {
        events: file.events.len(),
        matched: outcome.evaluation.matched.len(),
        rows: outcome.evaluation.rows.len(),
        wrote,
        problems,
    })
}

/// The bundle lines (`rmmc fixtures`) of one rule with fixtures, one per target:
/// [`bundle_line`] with the fixture's `now` and the expected rows. A rule without
/// fixtures has none.
pub fn export_rule(
    compiler: &crate::Compiler,
    rule: &Rule,
    rule_file: &Path,
    stem: &Path,
    targets: &[crate::Target],
    profile: Option<&str>,
) -> Result<Vec<serde_json::Value>> {
    let fixture = fixture_path(rule_file);
    if !fixture.exists() {
        return Ok(Vec::new());
    }
    let file = load(&fixture)?;
    let outcome = run(rule, &file, &fixture)?;
    let mut lines = Vec::new();
    for &target in targets {
        let p = compiler.backends().profile(target, profile)?;
        let rendered = compiler.compile_file(rule, rule_file, target, Some(&p.name))?;
        let events = file
            .events
            .iter()
            .map(|e| {
                Ok(serde_json::json!({
                    "name": e.name,
                    "expect": e.expect,
                    "event": map_event(&e.event, rule, p)?,
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        let stem = stem.to_string_lossy().replace('\\', "/");
        let mut line = bundle_line(&stem, rule_file, rule, p, &rendered, events)?;
        line.insert("now".into(), serde_json::json!(file.now));
        line.insert("expected".into(), serde_json::json!(outcome.expected));
        lines.push(serde_json::Value::Object(line));
    }
    Ok(lines)
}
