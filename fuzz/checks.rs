//! Checks shared by the fuzz targets (`fuzz/fuzz_targets/`), their stable replay
//! (`tests/suite/fuzz_replay.rs`) and the property tests (`tests/hardening.rs`): every
//! output is read back with its own parser (serde_yaml, serde_json, a
//! savedsearches.conf reader), and text outside query literals must not change the
//! query. Included with `#[path]`, so the crate needs no test-only API.

#![allow(dead_code)]

use rmmc::{Compiler, Rule, Target};
use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::path::Path;
use std::sync::OnceLock;

/// One compiler per fuzzing process: built once, as every execution compiles with it.
pub fn compiler() -> &'static Compiler {
    static COMPILER: OnceLock<Compiler> = OnceLock::new();
    COMPILER.get_or_init(|| Compiler::embedded().expect("embedded backends"))
}

/// The file name generated headers name.
pub const RULE_FILE: &str = "rules/fuzz/rule.yaml";

/// One target's outputs, read back with their own parsers.
#[derive(Debug)]
pub struct Read {
    /// The query with its `//` comment lines left out, one entry per output that holds it.
    pub queries: Vec<String>,
    /// Comment lines, in order.
    pub comments: Vec<String>,
    /// Every structured document, keys in order (YAML and JSON as JSON values).
    pub docs: Vec<Json>,
    /// savedsearches.conf stanzas: name and keys with values.
    pub stanzas: Vec<(String, Vec<(String, String)>)>,
}

pub fn read_outputs(c: &Compiler, rule: &Rule, target: Target) -> Result<Read, String> {
    let r = c
        .compile_file(rule, Path::new(RULE_FILE), target, None)
        .map_err(|e| e.to_string())?;
    let mut read = Read {
        queries: Vec::new(),
        comments: Vec::new(),
        docs: Vec::new(),
        stanzas: Vec::new(),
    };
    let strip = |q: &str, comments: &mut Vec<String>| -> String {
        q.lines()
            .filter(|l| {
                let comment = l.starts_with("//");
                if comment {
                    comments.push(l.to_string());
                }
                !comment
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    if target.as_str() != "sigma" {
        // A Sigma rule's "query" is the whole file: its detection is compared below.
        read.queries.push(strip(&r.query, &mut read.comments));
    }
    for (path, text) in &r.files {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                for doc in serde_yaml::Deserializer::from_str(text) {
                    let y = Yaml::deserialize(doc).map_err(|e| format!("{e}\n{text}"))?;
                    let j: Json = serde_json::to_value(&y).map_err(|e| e.to_string())?;
                    if let Some(q) = j.get("query").and_then(Json::as_str) {
                        let mut scratch = Vec::new();
                        read.queries.push(strip(q, &mut scratch));
                    }
                    if let Some(Json::Object(d)) = j.get("detection") {
                        // Selections without their names: an exclusion's name names its filter.
                        let mut selections: Vec<String> =
                            d.values().map(|v| v.to_string()).collect();
                        selections.sort();
                        read.queries.push(selections.join("\n"));
                    }
                    read.docs.push(j);
                }
            }
            Some("ndjson") => {
                for line in text.lines() {
                    let j: Json = serde_json::from_str(line).map_err(|e| format!("{e}\n{line}"))?;
                    if let Some(q) = j.get("query").and_then(Json::as_str) {
                        read.queries.push(q.to_string());
                    }
                    read.docs.push(j);
                }
            }
            Some("conf") => {
                let (stanzas, comments) = read_conf(text)?;
                for (_, keys) in &stanzas {
                    if let Some((_, q)) = keys.iter().find(|(k, _)| k == "search") {
                        read.queries.push(q.clone());
                    }
                }
                read.comments.extend(comments);
                read.stanzas.extend(stanzas);
            }
            _ => {}
        }
    }
    Ok(read)
}

pub type Stanzas = Vec<(String, Vec<(String, String)>)>;

/// savedsearches.conf as Splunk reads it: `#` comment lines, `[stanza]` lines and
/// `key = value` lines, where a line ending in a backslash continues on the next
/// line (the backslash and line break become a line break of the value) and the
/// blanks around a value are not part of it.
pub fn read_conf(text: &str) -> Result<(Stanzas, Vec<String>), String> {
    let mut stanzas: Stanzas = Vec::new();
    let mut comments = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('#') {
            comments.push(line.to_string());
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| format!("stanza line {line:?} does not end in `]`"))?;
            stanzas.push((name.to_string(), Vec::new()));
            continue;
        }
        let (key, first) = line
            .split_once(" = ")
            .ok_or_else(|| format!("line {line:?} is no `key = value`"))?;
        let mut value = first.to_string();
        while value.ends_with('\\') {
            value.pop();
            let next = lines
                .next()
                .ok_or_else(|| format!("`{key}` continues past the end"))?;
            value.push('\n');
            value.push_str(next);
        }
        let stanza = stanzas
            .last_mut()
            .ok_or_else(|| format!("`{key}` outside a stanza"))?;
        stanza.1.push((key.to_string(), value.trim().to_string()));
    }
    Ok((stanzas, comments))
}

/// The shape of a JSON value: its keys and nesting, strings replaced by a marker,
/// and (Sigma) filter names by `filter_*` (an exclusion's name names its filter).
pub fn shape(j: &Json) -> Json {
    match j {
        Json::String(_) => Json::String("s".into()),
        Json::Array(xs) => Json::Array(xs.iter().map(shape).collect()),
        Json::Object(m) => {
            let mut pairs: Vec<Json> = m
                .iter()
                .map(|(k, v)| {
                    let key = if k.starts_with("filter_") {
                        "filter_*"
                    } else {
                        k
                    };
                    Json::Array(vec![Json::String(key.into()), shape(v)])
                })
                .collect();
            // Each pair's text once, not once per comparison: a sort by an uncached
            // key serialized every subtree O(log n) times at every level.
            pairs.sort_by_cached_key(|p| p.to_string());
            Json::Array(pairs)
        }
        other => other.clone(),
    }
}

/// The rule with every text outside query literals replaced by a plain value.
pub fn with_plain_metadata(rule: &Rule) -> Rule {
    let mut r = rule.clone();
    r.meta.name = "Plain name".into();
    r.meta.description = "Plain description.".into();
    r.meta.references = r
        .meta
        .references
        .iter()
        .map(|_| "https://example.com/".into())
        .collect();
    r.meta.author = r.meta.author.as_ref().map(|_| "Plain author".into());
    for (i, x) in r.exclusions.iter_mut().enumerate() {
        x.name = format!("plain_{i}");
        x.scenario = "Plain scenario".into();
        x.description = "Plain description.".into();
    }
    r
}

/// Compile a rule for every target; each output must read back with its own parser
/// and have the query and shape of the same rule with plain metadata. A target that
/// refuses the rule (an error) is fine; a panic or a changed structure is not.
pub fn check_rule(c: &Compiler, rule: &Rule) -> Result<(), String> {
    let plain_rule = with_plain_metadata(rule);
    for target in Target::all() {
        let Ok(got) = read_outputs(c, rule, target) else {
            // Either the target refuses the rule, or an output does not parse:
            // tell them apart by compiling again.
            if c.compile_file(rule, Path::new(RULE_FILE), target, None)
                .is_ok()
            {
                return Err(read_outputs(c, rule, target).unwrap_err());
            }
            continue;
        };
        let plain = read_outputs(c, &plain_rule, target)?;
        if got.queries != plain.queries {
            return Err(format!(
                "{target}: metadata changed the query:\n{:#?}\nvs\n{:#?}",
                got.queries, plain.queries
            ));
        }
        let shapes = |r: &Read| r.docs.iter().map(shape).collect::<Vec<_>>();
        if shapes(&got) != shapes(&plain) {
            return Err(format!(
                "{target}: metadata changed a document's shape: {:#?}",
                got.docs
            ));
        }
        if got.stanzas.len() != plain.stanzas.len() || got.comments.len() != plain.comments.len() {
            return Err(format!(
                "{target}: metadata changed the conf stanzas or comment lines"
            ));
        }
    }
    Ok(())
}

/// Rule text (rmmc or Sentinel YAML): parse it; if it parses, check every target.
pub fn check_rule_text(c: &Compiler, data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    match c.load_rule(RULE_FILE, text) {
        Ok(parsed) => check_rule(c, &parsed.rule),
        Err(_) => Ok(()),
    }
}

/// Sentinel YAML or a bare KQL query: the KQL reader on the text, then the rule.
pub fn check_sentinel_text(c: &Compiler, data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let _ = rmmc::parse::kql::parse_kql(text);
    check_rule_text(c, data)
}

/// The rule every evaluator input without its own rule is evaluated with.
pub const EVAL_RULE: &str = include_str!("../rules/netsupport/createproc.yaml");

/// Evaluator input: `RULE YAML` `\n#events\n` `JSON array of events`, or only the
/// events (evaluated with [`EVAL_RULE`]). Errors are fine; panics are not.
pub fn check_evaluator(c: &Compiler, data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let (rule_text, events_text) = text.split_once("\n#events\n").unwrap_or((EVAL_RULE, text));
    let Ok(parsed) = c.load_rule(RULE_FILE, rule_text) else {
        return Ok(());
    };
    let Ok(events) = serde_json::from_str::<Vec<rmmc::eval::Event>>(events_text) else {
        return Ok(());
    };
    let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("a fixed time")
        .with_timezone(&chrono::Utc);
    let _ = rmmc::eval::evaluate(&parsed.rule, &events, now);
    Ok(())
}
