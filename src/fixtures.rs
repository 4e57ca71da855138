//! Rule fixtures: events in the canonical vocabulary beside each rule
//! (`filesig.fixtures.yaml`), each marked `match` or `no_match`, and the result rows
//! the reference evaluator gives for them, checked in as `filesig.expected.json`.
//!
//! The files are plain data so the independent-engine suite reads them unchanged:
//! it maps the events with [`map_event`] (the backends' field maps), runs each
//! target's engine, and compares with the expected rows.

use crate::backends::Profile;
use crate::error::{Error, ErrorKind, Result};
use crate::eval::{self, Evaluation, Event};
use crate::ir::Rule;
use crate::lower::missing_exclusion_fields;
use crate::vocabulary;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureFile {
    /// The query time: the window ends here.
    pub now: String,
    pub events: Vec<FixtureEvent>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureEvent {
    pub name: String,
    pub expect: Expect,
    /// What the event shows, for the reader.
    #[serde(default)]
    pub why: Option<String>,
    pub event: Event,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Match,
    NoMatch,
}

/// The checked-in expectation: which events match, and the result rows.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Expected {
    pub now: String,
    pub matched: Vec<String>,
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

pub fn load(path: &Path) -> Result<FixtureFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_yaml::from_str(&text).map_err(|e| crate::error::yaml_error(path, &e))
}

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
    pub evaluation: Evaluation,
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
/// the map lacks is an error, so a fixture can never hide a mapping gap.
pub fn map_event(event: &Event, rule: &Rule, profile: &Profile) -> Result<Event> {
    let map = profile.source(rule.source)?;
    let mut out = Event::new();
    for (k, v) in event {
        let name = map.fields.get(k).ok_or_else(|| {
            Error::new(
                ErrorKind::UnmappedField,
                format!(
                    "fixture field `{k}` has no mapping in profile `{}` for `{}`",
                    profile.name, rule.source
                ),
            )
            .in_file(&profile.path)
        })?;
        out.insert(name.clone(), v.clone());
    }
    Ok(out)
}
