//! SPL conformance: every rule's emitted SPL, parsed from its text and run by the
//! SPL-subset engine in `tests/spl_engine/` (written from the Splunk documentation,
//! not from the emitter), over the rule's fixture events and generated adversarial
//! events mapped by the SPL field map. Matched events and result rows must equal
//! the reference evaluator's; differences a documented approximation explains (e.g.
//! `latest` is exclusive in Splunk) are reported as approximate-as-documented.
//!
//! No Splunk runs here: SPL is checked against this engine, not against Splunk.
//! `RMMC_CONFORMANCE_OUT=DIR` writes `DIR/spl.json` for `scripts/conformance`. A
//! disagreement fails the test, except under `RMMC_CONFORMANCE_REPORT_ONLY=1`
//! (`scripts/conformance` collects every engine's lines first and fails in its matrix).

#[path = "../conformance/harness/common.rs"]
mod common;
mod spl_engine;

use chrono::{DateTime, SecondsFormat, Utc};
use common::{Answer, CaseEvent, RuleCase, Verdict};
use rmmc::Target;
use rmmc::ir::{AggFunction, TIMESTAMP_FIELD};
use serde_json::{Value, json};
use spl_engine::{SplEvent, V};
use std::collections::{BTreeMap, BTreeSet};

fn epoch(ts: &str) -> f64 {
    let t = DateTime::parse_from_rfc3339(ts).expect("RFC 3339 _time");
    t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9
}

fn rfc3339(secs: f64) -> String {
    let ms = (secs * 1000.0).round() as i64;
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An event as Splunk would index it: the mapped fields, `_time` as epoch seconds,
/// and the index/sourcetype the profile's Splunk Add-on convention gives the
/// Defender table (`index=defender sourcetype="defender:<Table>"`).
fn ingest(mapped: &serde_json::Map<String, Value>, table: &str) -> SplEvent {
    let mut e = spl_engine::event_from_json(mapped);
    if let Some(V::Str(t)) = e.get("_time").cloned() {
        e.insert("_time".into(), V::Num(epoch(&t)));
    }
    e.insert("index".into(), V::Str("defender".into()));
    e.insert("sourcetype".into(), V::Str(format!("defender:{table}")));
    e
}

/// The evaluator's rows in a comparable form: output names as they are, group-by
/// fields renamed to the target's names, values as text (sets sorted).
fn norm_expected(
    case: &RuleCase,
    answer: &Answer,
    map: &BTreeMap<String, String>,
) -> Vec<BTreeMap<String, Value>> {
    let mut out: Vec<BTreeMap<String, Value>> = answer
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|(k, v)| {
                    let name = map.get(k).cloned().unwrap_or_else(|| k.clone());
                    let v = match v {
                        Value::Array(xs) => {
                            let mut t: Vec<String> = xs.iter().map(common::scalar_text).collect();
                            t.sort();
                            json!(t)
                        }
                        other => json!(common::scalar_text(other)),
                    };
                    (name, v)
                })
                .collect()
        })
        .collect();
    out.sort_by_key(|r| serde_json::to_string(r).expect("json"));
    let _ = case;
    out
}

fn norm_got(
    case: &RuleCase,
    rows: &[BTreeMap<String, V>],
    map: &BTreeMap<String, String>,
) -> Vec<BTreeMap<String, Value>> {
    let agg = case.rule.aggregation.as_ref().expect("aggregation");
    let time_col = &map[TIMESTAMP_FIELD];
    let time_outputs: BTreeSet<&str> = agg
        .outputs
        .iter()
        .filter(|o| {
            matches!(&o.function, AggFunction::Min(f) | AggFunction::Max(f) if map.get(f) == Some(time_col))
        })
        .map(|o| o.name.as_str())
        .collect();
    let mut out: Vec<BTreeMap<String, Value>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|(k, v)| {
                    let value = if let Some(list) = spl_engine::multivalue(v) {
                        let mut l = list;
                        l.sort();
                        json!(l)
                    } else if time_outputs.contains(k.as_str()) {
                        match v {
                            V::Num(n) => json!(rfc3339(*n)),
                            V::Null => json!(""),
                            other => json!(format!("{other:?}")),
                        }
                    } else {
                        match v {
                            V::Num(n) => json!(spl_engine::num_text(*n)),
                            V::Str(s) => json!(s),
                            V::Null => json!(""),
                            V::Bool(b) => json!(b.to_string()),
                        }
                    };
                    (k.clone(), value)
                })
                .collect()
        })
        .collect();
    out.sort_by_key(|r| serde_json::to_string(r).expect("json"));
    out
}

fn table_of(compiler: &rmmc::Compiler, case: &RuleCase) -> String {
    let kql = compiler
        .backends()
        .profile(Target::Kql, None)
        .expect("kql profile");
    kql.setting(case.rule.source, "table")
        .expect("kql table")
        .to_string()
}

struct Outcome {
    line: Value,
    verdict: Verdict,
    text: String,
}

fn check_rule(compiler: &rmmc::Compiler, case: &RuleCase) -> Outcome {
    let compiled = common::compile(compiler, case, Target::Spl);
    let events: Vec<CaseEvent> = case.events();
    let answers = common::answers(case, &events);
    let documented = common::documented(&compiled.rendered.fidelity);
    let table = table_of(compiler, case);
    let spl_events: Vec<SplEvent> = events
        .iter()
        .map(|e| ingest(&common::map_event(&compiled, &e.event), &table))
        .collect();
    let now = epoch(&case.fixtures.now);
    let result = spl_engine::parse(&compiled.rendered.query)
        .and_then(|q| spl_engine::run(&q, &spl_events, now));
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            return Outcome {
                line: json!({"rule": case.stem, "target": "spl", "oracle": "spl-subset-engine", "verdict": "disagree",
                             "disagreements": [format!("the emitted SPL is outside the engine's subset or fails: {e}")]}),
                verdict: Verdict::Disagree,
                text: format!("{e}\n{}", compiled.rendered.query),
            };
        }
    };
    let got: BTreeSet<String> = output
        .matched
        .iter()
        .map(|&i| events[i].name.clone())
        .collect();
    let mut j = common::judge_matched(&events, &got, &answers, documented, &[]);
    let mut rows_note = String::from("no aggregation: rows are the matched events");
    if case.rule.aggregation.is_some() {
        match &j.same_as {
            Some(key) => {
                let want = norm_expected(case, &answers[key], &compiled.field_map);
                let have = norm_got(case, &output.rows, &compiled.field_map);
                if want == have {
                    rows_note = format!("{} rows equal the evaluator's ({key})", have.len());
                } else {
                    j.disagreements.push(format!(
                        "result rows differ ({key}):\n  evaluator {}\n  engine    {}",
                        serde_json::to_string(&want).expect("json"),
                        serde_json::to_string(&have).expect("json")
                    ));
                    j.verdict = Verdict::Disagree;
                }
            }
            None => rows_note = "rows not compared: matched events differ".into(),
        }
    }
    let fixture_names: BTreeSet<&str> = case
        .fixtures
        .events
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let line = json!({
        "rule": case.stem,
        "target": "spl",
        "oracle": "spl-subset-engine",
        "verdict": j.verdict.as_str(),
        "events": events.len(),
        "fixture_events": fixture_names.len(),
        "matched": got.len(),
        "rows": rows_note,
        "documented": j.documented,
        "oracle_limited": j.oracle_limited,
        "disagreements": j.disagreements,
        "note": "SPL is checked by the SPL-subset engine in tests/spl_engine (from the Splunk docs), not by Splunk; match() runs on the Rust regex crate, whose `$` does not match before a final newline as PCRE's does",
    });
    let text = format!(
        "{}: {} ({} events, {} matched; {}){}{}",
        case.stem,
        j.verdict.as_str(),
        events.len(),
        got.len(),
        rows_note,
        j.documented
            .iter()
            .map(|d| format!("\n    documented: {d}"))
            .collect::<String>(),
        j.disagreements
            .iter()
            .map(|d| format!("\n    DISAGREE: {d}"))
            .collect::<String>()
    );
    Outcome {
        line,
        verdict: j.verdict,
        text,
    }
}

#[test]
#[ignore = "heavy engine run: scripts/conformance runs it once, with --include-ignored"]
fn spl_engine_agrees_with_the_reference_evaluator() {
    common::run_oracle("spl", "spl.json", |compiler, case| {
        let o = check_rule(compiler, case);
        (o.line, o.verdict, o.text)
    });
}

/// The engine refuses what is outside the subset instead of guessing.
#[test]
fn spl_engine_rejects_what_is_outside_the_subset() {
    for q in [
        "index=a netsupport",
        "index=a | rex field=x \"(?<y>.)\"",
        "index=a | where like(x, \"%a\")",
        "index=a earliest=-1d@d",
        "index=a | where x == \"\\n\"",
        "index=a | stats avg(x) by y",
        "index=a x=\"unterminated",
        "index=a | fillnull value=\"\"",
        "index=a x=1",
    ] {
        assert!(
            spl_engine::parse(q).is_err(),
            "accepted outside the subset: {q}"
        );
    }
}

/// Documented SPL facts the engine implements, checked on small cases.
#[test]
fn spl_engine_semantics() {
    let ev = |pairs: &[(&str, &str)], t: f64| -> SplEvent {
        let mut e: SplEvent = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), V::Str(v.to_string())))
            .collect();
        e.insert("_time".into(), V::Num(t));
        e
    };
    let events = vec![
        ev(&[("a", "NetSupport Ltd"), ("b", "x")], 100.0),
        ev(&[("a", "other"), ("b", "y")], 100.0),
        ev(&[("b", "y")], 100.0),
        ev(&[("a", "NetSupport Ltd")], 200.0),
    ];
    let run = |q: &str| {
        let q = spl_engine::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        spl_engine::run(&q, &events, 200.0).expect("runs").matched
    };
    // Search values fold case and match the whole value; `*` is a wildcard.
    assert_eq!(run("a=\"*netsupport*\""), vec![0]);
    assert_eq!(run("a=\"netsupport\""), Vec::<usize>::new());
    // latest is exclusive, earliest inclusive.
    assert_eq!(run("earliest=-100s latest=now a=\"*\""), vec![0, 1]);
    assert_eq!(run("earliest=-100s latest=+1s a=\"*\""), vec![0, 1, 3]);
    // OR binds tighter than AND in search; NOT applies to the next term.
    assert_eq!(run("b=x OR b=y a=other latest=+1s"), vec![1]);
    assert_eq!(run("NOT a=other latest=+1s"), vec![0, 2, 3]);
    // IN takes wildcards.
    assert_eq!(run("b IN (\"z\", \"Y*\")"), vec![1, 2]);
    // where: == is case-sensitive; a missing field is null, and NOT null is not true.
    assert_eq!(run("latest=+1s | where a==\"other\""), vec![1]);
    assert_eq!(run("latest=+1s | where a==\"OTHER\""), Vec::<usize>::new());
    assert_eq!(run("latest=+1s | where NOT (a==\"other\")"), vec![0, 3]);
    assert_eq!(
        run("latest=+1s | fillnull value=\"\" a | where NOT (a==\"other\")"),
        vec![0, 2, 3]
    );
    // match() is a partial match; (?i) folds case.
    assert_eq!(
        run("latest=+1s | where match(a, \"(?i)support\")"),
        vec![0, 3]
    );
    assert_eq!(
        run("latest=+1s | where _time<=now() AND match(a, \"^N\")"),
        vec![0, 3]
    );
    // AND binds tighter than OR in where.
    assert_eq!(
        run("latest=+1s | where b==\"x\" OR b==\"y\" AND a==\"zzz\""),
        vec![0]
    );
    // stats drops null by-fields; values() is sorted and distinct.
    let q =
        spl_engine::parse("latest=+1s | stats count as n values(b) as bs by a").expect("parses");
    let out = spl_engine::run(&q, &events, 200.0).expect("runs");
    assert_eq!(out.rows.len(), 2);
    assert_eq!(out.rows[0]["a"], V::Str("NetSupport Ltd".into()));
    assert_eq!(out.rows[0]["n"], V::Num(2.0));
    assert_eq!(
        spl_engine::multivalue(&out.rows[0]["bs"]),
        Some(vec!["x".to_string()])
    );
}
