//! Sigma conformance with rsigma (an independent Rust Sigma parser and evaluator):
//! every rule's emitted Sigma file (detection rule and event_count correlation)
//! must parse without errors, match the reference evaluator's events, and the
//! correlation must give the evaluator's groups and counts.
//!
//! Sigma has no look-back window: the harness applies the rule's window (inclusive
//! at both ends, as KQL's `between`) before events reach rsigma. The correlation's
//! `timespan` then only has to cover the window.
//! `RMMC_CONFORMANCE_OUT=DIR` writes `DIR/sigma.json`. A disagreement fails the test,
//! except under `RMMC_CONFORMANCE_REPORT_ONLY=1` (`scripts/conformance` collects the
//! lines of every engine first and fails on them in its matrix).

#[path = "../conformance/harness/common.rs"]
mod common;

use chrono::{DateTime, Utc};
use common::{CaseEvent, RuleCase, Verdict};
use rmmc::Target;
use rsigma_eval::event::JsonEvent;
use rsigma_eval::{CorrelationConfig, CorrelationEngine, Engine, ResultBody, TimestampFallback};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A fixture event in a profile's data, or why the data cannot hold it.
type EventMap = Box<dyn Fn(&rmmc::eval::Event) -> Result<rmmc::eval::Event, String>>;

/// One rule's Sigma under one profile, ready for rsigma.
struct UnderTest {
    /// The base rule and, in a file of its own, its correlation: read together, as a
    /// user loading the folder would.
    text: String,
    fidelity: rmmc::Fidelity,
    /// The group fields the correlation has: (canonical, the data's name).
    groups: Vec<(String, String)>,
    /// A fixture event in the profile's data, or why the data cannot hold it.
    map: EventMap,
}

fn yml_text(files: &[(std::path::PathBuf, String)]) -> String {
    files
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .map(|(_, t)| t.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// One rule under a Sigma profile: `taxonomy` (the default, what `out/sigma/` holds)
/// or `defender`. A rule the profile's data cannot express is not checked, with the
/// verdict's reason.
fn under_profile(
    compiler: &rmmc::Compiler,
    case: &RuleCase,
    profile: &str,
) -> Result<UnderTest, String> {
    let rendered = compiler
        .compile(&case.rule, Target::Sigma, Some(profile))
        .map_err(|e| format!("does not compile with profile {profile}: {e}"))?;
    if let rmmc::Fidelity::Unsupported(u) = &rendered.fidelity {
        return Err(format!("unsupported with profile {profile}: {u}"));
    }
    let map = compiler
        .backends()
        .profile(Target::Sigma, Some(profile))
        .and_then(|p| p.source(case.rule.source).cloned())
        .map_err(|e| e.to_string())?;
    let names = map.names();
    let reads: std::collections::BTreeSet<String> = case
        .rule
        .tested_fields()
        .into_iter()
        .map(str::to_string)
        .collect();
    let groups = case
        .rule
        .aggregation
        .iter()
        .flat_map(|a| a.group_by.iter())
        .filter_map(|f| names.get(f).map(|n| (f.clone(), n.clone())))
        .collect();
    Ok(UnderTest {
        text: yml_text(&rendered.files),
        fidelity: rendered.fidelity,
        groups,
        map: Box::new(move |e| profile_event(&map, &reads, e)),
    })
}

/// A canonical event as a profile's data records it: fields the data lacks are left
/// out; under the taxonomy a file name (`process.name`) becomes the end of the path
/// field it lives in (`Image`): the event's own `process.executable` when that ends
/// with it, else a path in a fixed folder. An event whose file name holds a
/// backslash, or whose executable does not end with its file name, cannot occur in
/// such data; nor can one with a file name and no path where the rule reads the path
/// (`reads`: it would see the made-up folder), or a path and no file name where the
/// rule reads the file name (it would see the path's end).
fn profile_event(
    map: &rmmc::backends::SourceMap,
    reads: &std::collections::BTreeSet<String>,
    e: &rmmc::eval::Event,
) -> Result<rmmc::eval::Event, String> {
    let file_name_fields: Vec<&str> = map
        .settings
        .get("file_name_fields")
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let names = map.names();
    let mut out = rmmc::eval::Event::new();
    for (k, v) in e {
        if file_name_fields.contains(&k.as_str()) {
            continue;
        }
        if let Some(name) = names.get(k) {
            out.insert(name.clone(), v.clone());
        }
    }
    let text = |k: &str| match e.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    for f in file_name_fields {
        let Some(path_field) = names.get(f) else {
            continue;
        };
        // The other canonical fields the same data field holds (the path itself).
        let path_of: Vec<&String> = names
            .iter()
            .filter(|(k, v)| *v == path_field && k.as_str() != f)
            .map(|(k, _)| k)
            .collect();
        let has_path = path_of.iter().any(|k| text(k).is_some());
        let Some(name) = text(f) else {
            if has_path && reads.contains(f) {
                return Err(format!(
                    "`{f}` is missing or empty beside a path: the data's `{path_field}` ends with the file name, which the rule reads"
                ));
            }
            continue;
        };
        if !has_path && let Some(p) = path_of.iter().find(|k| reads.contains(k.as_str())) {
            return Err(format!(
                "`{f}` {name:?} with `{p}` missing or empty: the data's `{path_field}` is the path, which the rule reads"
            ));
        }
        if name.contains('\\') {
            return Err(format!(
                "`{f}` {name:?} holds a backslash: no file name does"
            ));
        }
        let path = match out.get(path_field) {
            Some(Value::String(p)) if !p.is_empty() => {
                if !p
                    .to_ascii_lowercase()
                    .ends_with(&format!("\\{}", name.to_ascii_lowercase()))
                {
                    return Err(format!("`{f}` {name:?} is not the file name of {p:?}"));
                }
                p.clone()
            }
            _ => format!("C:\\rmmc-fixture\\{name}"),
        };
        out.insert(path_field.clone(), Value::String(path));
    }
    Ok(out)
}

fn check_rule(
    compiler: &rmmc::Compiler,
    case: &RuleCase,
    profile: &str,
    oracle: &'static str,
) -> (Value, Verdict, String) {
    let sut = match under_profile(compiler, case, profile) {
        Ok(s) => s,
        Err(why) => {
            return (
                json!({"rule": case.stem, "target": "sigma", "oracle": oracle, "verdict": "not checked", "detail": why}),
                Verdict::NotChecked,
                format!("{}: not checked: {why}", case.stem),
            );
        }
    };
    let text = sut.text.clone();
    let common::Reference { events, answers } = common::reference(case);
    let documented = common::documented(&sut.fidelity);
    let fail = |msg: String| {
        (
            json!({"rule": case.stem, "target": "sigma", "oracle": oracle, "verdict": "disagree", "disagreements": [msg.clone()]}),
            Verdict::Disagree,
            format!("{}: disagree: {msg}", case.stem),
        )
    };
    let collection = match rsigma_parser::parse_sigma_yaml(&text) {
        Ok(c) => c,
        Err(e) => return fail(format!("rsigma does not parse the rule: {e}")),
    };
    if !collection.errors.is_empty() {
        return fail(format!("rsigma parse errors: {:?}", collection.errors));
    }
    if collection.rules.len() != 1 {
        return fail(format!(
            "expected one detection rule, found {}",
            collection.rules.len()
        ));
    }
    let want_correlation = case.rule.aggregation.is_some() && !sut.groups.is_empty();
    if want_correlation != (collection.correlations.len() == 1) {
        return fail(format!(
            "aggregation {} but {} correlation documents",
            want_correlation,
            collection.correlations.len()
        ));
    }
    let mut engine = Engine::new();
    if let Err(e) = engine.add_collection(&collection) {
        return fail(format!("rsigma does not compile the rule: {e}"));
    }
    // The window, applied by the harness (Sigma has none).
    let start = case.now - chrono::TimeDelta::seconds(case.rule.window.seconds as i64);
    // Events the profile's data cannot hold are left out (and counted).
    let mut unrepresentable = Vec::new();
    let mut mapped: BTreeMap<String, Value> = BTreeMap::new();
    for e in events {
        match (sut.map)(&e.event) {
            Ok(m) => {
                mapped.insert(e.name.clone(), Value::Object(m));
            }
            Err(why) => unrepresentable.push(format!("{}: {why}", e.name)),
        }
    }
    let events: Vec<CaseEvent> = events
        .iter()
        .filter(|e| mapped.contains_key(&e.name))
        .cloned()
        .collect();
    let mut windowed: Vec<(DateTime<Utc>, &CaseEvent, Value)> = events
        .iter()
        .filter_map(|e| {
            let t = common::event_time(&e.event)?;
            (start <= t && t <= case.now).then(|| (t, e, mapped[&e.name].clone()))
        })
        .collect();
    windowed.sort_by_key(|(t, _, _)| *t);
    let mut got = BTreeSet::new();
    for (_, e, v) in &windowed {
        if !engine.evaluate(&JsonEvent::borrow(v)).is_empty() {
            got.insert(e.name.clone());
        }
    }
    // rsigma folds case-insensitive values by Unicode lower-casing, so the Kelvin sign
    // K (U+212A) equals `k` there; KQL and the evaluator fold ASCII only. This is the
    // shared limit of folding engines (README), not a translation fault: such events
    // are "not checked by this oracle".
    let mut j = common::judge_matched(&events, &got, answers, documented, &[common::Fold::Unicode]);
    let mut detail = format!(
        "{} events in the window, {} matched",
        windowed.len(),
        got.len()
    );
    if !unrepresentable.is_empty() {
        detail.push_str(&format!(
            "; {} generated events not checked (the data cannot hold them, e.g. {})",
            unrepresentable.len(),
            unrepresentable[0]
        ));
    }

    if want_correlation {
        let by: Vec<String> = sut.groups.iter().map(|(_, n)| n.clone()).collect();
        let config = CorrelationConfig {
            timestamp_fallback: TimestampFallback::Skip,
            ..CorrelationConfig::default()
        };
        let mut ce = CorrelationEngine::new(config);
        if let Err(e) = ce.add_collection(&collection) {
            return fail(format!("rsigma does not compile the correlation: {e}"));
        }
        let mut counts: BTreeMap<Vec<String>, f64> = BTreeMap::new();
        for (t, _, v) in &windowed {
            for r in ce.process_event_at(&JsonEvent::borrow(v), t.timestamp()) {
                if let ResultBody::Correlation(c) = &r.body {
                    let key: Vec<String> = by
                        .iter()
                        .map(|f| {
                            c.group_key
                                .iter()
                                .find(|(k, _)| k == f)
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default()
                        })
                        .collect();
                    let n = counts.entry(key).or_insert(0.0);
                    *n = n.max(c.aggregated_value);
                }
            }
        }
        // The evaluator's groups: matched events grouped by the group-by texts.
        let exact = &answers[&common::Variant::EXACT.key()];
        let matched: BTreeSet<&str> = exact.matched.iter().map(String::as_str).collect();
        let mut want: BTreeMap<Vec<String>, f64> = BTreeMap::new();
        for e in events.iter().filter(|e| matched.contains(e.name.as_str())) {
            let key: Vec<String> = sut
                .groups
                .iter()
                .map(|(f, _)| e.event.get(f).map(common::scalar_text).unwrap_or_default())
                .collect();
            *want.entry(key).or_insert(0.0) += 1.0;
        }
        if j.same_as.as_deref() != Some("exact") {
            detail.push_str("; correlation not compared (matched events differ)");
        } else if counts == want {
            detail.push_str(&format!(
                "; event_count correlation: {} groups, counts equal the evaluator's",
                want.len()
            ));
            if !sut.fidelity.is_exact() {
                // min/max/make_set have no Sigma form (documented): counts only.
                j.documented.push(
                    "aggregation: the correlation gives groups and counts only (documented)".into(),
                );
            }
        } else {
            let msg = format!(
                "event_count correlation groups differ:\n      evaluator {want:?}\n      rsigma    {counts:?}"
            );
            let window_documented = match &sut.fidelity {
                rmmc::Fidelity::Approximate(list) => list
                    .iter()
                    .any(|a| a.kind.category() == rmmc::ApproxCategory::Window),
                rmmc::Fidelity::Exact | rmmc::Fidelity::Unsupported(_) => false,
            };
            if window_documented && counts.keys().eq(want.keys()) {
                j.documented
                    .push(format!("{msg} [documented: correlation timespan]"));
            } else {
                j.disagreements.push(msg);
            }
        }
        j.settle();
    }
    let line = json!({
        "rule": case.stem,
        "target": "sigma",
        "oracle": oracle,
        "verdict": j.verdict.as_str(),
        "detail": detail,
        "documented": j.documented,
        "oracle_limited": j.oracle_limited,
        "disagreements": j.disagreements,
        "note": "rsigma-eval 0.15.0 evaluates the Sigma rule and its event_count correlation (read from its own file); Sigma has no look-back window, so the harness applies the rule's window (inclusive) first; rsigma lower-cases by Unicode (Kelvin sign = k): events explained only by that are not checked by it",
    });
    let text = format!(
        "{}: {} ({detail}){}",
        case.stem,
        j.verdict.as_str(),
        j.disagreements
            .iter()
            .take(5)
            .map(|d| format!("\n    DISAGREE: {d}"))
            .collect::<String>()
    );
    (line, j.verdict, text)
}

#[test]
#[ignore = "heavy engine run: scripts/conformance runs it once, with --ignored"]
fn rsigma_agrees_with_the_reference_evaluator() {
    common::run_oracle("sigma/rsigma", "sigma.json", |c, case| {
        check_rule(c, case, "taxonomy", "rsigma")
    });
}

/// The same over the `defender` profile, on fixture events in Defender's columns.
#[test]
#[ignore = "heavy engine run: scripts/conformance runs it once, with --ignored"]
fn rsigma_agrees_over_defender_named_events() {
    common::run_oracle(
        "sigma/rsigma (defender)",
        "sigma_defender.json",
        |c, case| check_rule(c, case, "defender", "rsigma (defender)"),
    );
}
