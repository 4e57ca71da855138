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

fn check_rule(compiler: &rmmc::Compiler, case: &RuleCase) -> (Value, Verdict, String) {
    let compiled = common::compile(compiler, case, Target::Sigma);
    let text = compiled
        .rendered
        .files
        .iter()
        .find(|(p, _)| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| compiled.rendered.query.clone());
    let events: Vec<CaseEvent> = case.events();
    let answers = common::answers(case, &events);
    let documented = common::documented(&compiled.rendered.fidelity);
    let fail = |msg: String| {
        (
            json!({"rule": case.stem, "target": "sigma", "oracle": "rsigma", "verdict": "disagree", "disagreements": [msg.clone()]}),
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
    let want_correlation = case.rule.aggregation.is_some();
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
    let mut windowed: Vec<(DateTime<Utc>, &CaseEvent, Value)> = events
        .iter()
        .filter_map(|e| {
            let t = common::event_time(&e.event)?;
            (start <= t && t <= case.now)
                .then(|| (t, e, Value::Object(common::map_event(&compiled, &e.event))))
        })
        .collect();
    windowed.sort_by_key(|(t, _, _)| *t);
    let mut got = BTreeSet::new();
    for (_, e, v) in &windowed {
        if !engine.evaluate(&JsonEvent::borrow(v)).is_empty() {
            got.insert(e.name.clone());
        }
    }
    let mut j = common::judge_matched(&events, &got, &answers, documented, &[]);
    let mut detail = format!(
        "{} events in the window, {} matched",
        windowed.len(),
        got.len()
    );

    if want_correlation {
        let agg = case.rule.aggregation.as_ref().expect("aggregation");
        let by: Vec<String> = agg
            .group_by
            .iter()
            .map(|f| compiled.field_map[f].clone())
            .collect();
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
            let key: Vec<String> = agg
                .group_by
                .iter()
                .map(|f| e.event.get(f).map(common::scalar_text).unwrap_or_default())
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
            if !compiled.rendered.fidelity.is_exact() {
                // min/max/make_set have no Sigma form (documented): counts only.
                j.documented.push(
                    "aggregation: the correlation gives groups and counts only (documented)".into(),
                );
            }
        } else {
            let msg = format!(
                "event_count correlation groups differ:\n      evaluator {want:?}\n      rsigma    {counts:?}"
            );
            let window_documented = match &compiled.rendered.fidelity {
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
        "oracle": "rsigma",
        "verdict": j.verdict.as_str(),
        "detail": detail,
        "documented": j.documented,
        "oracle_limited": j.oracle_limited,
        "disagreements": j.disagreements,
        "note": "rsigma-eval 0.15.0 evaluates the Sigma rule and its event_count correlation; Sigma has no look-back window, so the harness applies the rule's window (inclusive) first",
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
#[ignore = "heavy engine run: scripts/conformance runs it once, with --include-ignored"]
fn rsigma_agrees_with_the_reference_evaluator() {
    common::run_oracle("sigma/rsigma", "sigma.json", check_rule);
}
