//! SPL conformance: every rule's emitted SPL, as the Splunk app deploys it (the
//! `search =` line of its stanza in `default/savedsearches.conf`, macros expanded from
//! the app's `default/macros.conf`), parsed from its text and run by the SPL-subset
//! engine in `tests/spl_engine/` (written from the Splunk documentation, not from the
//! emitter), over the rule's fixture events and generated adversarial events mapped
//! into the layout of Splunk's Defender add-on (`properties.<Column>`, every column
//! the event lacks as the string `"null"`). Matched events and result rows must equal
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
use common::{Answer, RuleCase, Verdict};
use rmmc::Target;
use rmmc::ir::{AggFunction, TIMESTAMP_FIELD};
use rmmc::lower::escape::spl_working_name;
use serde_json::{Value, json};
use spl_engine::{SplEvent, V};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

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

/// An event as Splunk's Defender add-on indexes it (`../shared/reference/splunk/
/// TA-microsoft-365-defender-advanced-hunting`): one sourcetype, the table in
/// `category`, the mapped `properties.<Column>` fields, `_time` as epoch seconds, and
/// every other column of the profile's map as the string `"null"` (Defender exports
/// every column; the add-on's JSON extraction writes a JSON null as `"null"`).
fn ingest(
    mapped: &serde_json::Map<String, Value>,
    table: &str,
    columns: &BTreeMap<String, String>,
) -> SplEvent {
    let mut e = spl_engine::event_from_json(mapped);
    if let Some(V::Str(t)) = e.get("_time").cloned() {
        e.insert("_time".into(), V::Num(epoch(&t)));
    }
    for column in columns.values() {
        if column != "_time" && !e.contains_key(column) {
            e.insert(column.clone(), V::Str("null".into()));
        }
    }
    e.insert(
        "sourcetype".into(),
        V::Str("mscs:azure:eventhub:defender:advancedhunting".into()),
    );
    e.insert(
        "category".into(),
        V::Str(format!("AdvancedHunting-{table}")),
    );
    e
}

/// The Splunk app built from every rule, once: its files by path under `out/`.
fn app() -> &'static BTreeMap<std::path::PathBuf, String> {
    static APP: OnceLock<BTreeMap<std::path::PathBuf, String>> = OnceLock::new();
    APP.get_or_init(|| {
        let backends = rmmc::Backends::embedded().expect("backends");
        let rules = common::root().join("rules");
        let sources =
            rmmc::pack::discover(&[rules.to_string_lossy().to_string()]).expect("discover rules");
        let options = rmmc::pack::BuildOptions {
            targets: vec![Target::Spl],
            profile: None,
            strict: false,
        };
        rmmc::pack::build(&sources, &backends, &options)
            .expect("the SPL pack builds")
            .files
    })
}

/// The search a rule's alert runs: the `search =` line of its stanza, with the
/// macros of the app's `macros.conf` expanded.
fn deployed_search(stem: &str) -> Result<String, spl_engine::SplError> {
    let files = app();
    let conf = files
        .get(&Path::new("spl").join(format!("{stem}.conf")))
        .ok_or_else(|| spl_engine::SplError(format!("no stanza for {stem}")))?;
    let gathered = &files[&Path::new("spl").join("default/savedsearches.conf")];
    if !gathered.contains(conf.trim_end()) {
        return Err(spl_engine::SplError(format!(
            "the stanza of {stem} is not in default/savedsearches.conf"
        )));
    }
    let search = conf
        .lines()
        .find_map(|l| l.strip_prefix("search = "))
        .ok_or_else(|| spl_engine::SplError(format!("no `search = ` line for {stem}")))?;
    let macros =
        spl_engine::macros_from_conf(&files[&Path::new("spl").join("default/macros.conf")])?;
    spl_engine::expand_macros(search, &macros)
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
    let common::Reference { events, answers } = common::reference(case);
    let documented = common::documented(&compiled.rendered.fidelity);
    let table = table_of(compiler, case);
    let spl_events: Vec<SplEvent> = events
        .iter()
        .map(|e| {
            ingest(
                &common::map_event(&compiled, &e.event),
                &table,
                &compiled.field_map,
            )
        })
        .collect();
    let now = epoch(&case.fixtures.now);
    let result = deployed_search(&case.stem)
        .and_then(|s| spl_engine::parse(&s))
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
    let mut j = common::judge_matched(events, &got, answers, documented, &[]);
    let mut rows_note = String::from("no aggregation: rows are the matched events");
    if case.rule.aggregation.is_some() {
        match &j.same_as {
            Some(key) => {
                // Results name each field as the search reads it (`DeviceId`, copied
                // from the add-on's `properties.DeviceId`).
                let read_as: BTreeMap<String, String> = compiled
                    .field_map
                    .iter()
                    .map(|(k, v)| (k.clone(), spl_working_name(v).to_string()))
                    .collect();
                let want = norm_expected(case, &answers[key], &read_as);
                let have = norm_got(case, &output.rows, &read_as);
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
#[ignore = "heavy engine run: scripts/conformance runs it once, with --ignored"]
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
        "index=a | where match(x, \"a\")",
        "index=a | where match(x, \"(?i)a(*UTF)\")",
        "index=a `rmmc_source`",
        "index=a | eval 'a.b'=1",
        "index=a | search earliest=-1h",
        "index=a | search",
    ] {
        assert!(
            spl_engine::parse(q).is_err(),
            "accepted outside the subset: {q}"
        );
    }
}

/// Macros expand from a macros.conf, textually; anything else about macros is refused.
#[test]
fn spl_engine_expands_macros_from_macros_conf() {
    let conf = "# comment\n[source]\ndefinition = sourcetype=\"x\" category=\"y\"\ndescription = d\n\n[nested]\ndefinition = `source` a=\"1\"\n\n[r_filter]\ndefinition = search *\n";
    let macros = spl_engine::macros_from_conf(conf).expect("parses");
    assert_eq!(
        spl_engine::expand_macros("`nested` latest=+1s | `r_filter`", &macros).expect("expands"),
        "sourcetype=\"x\" category=\"y\" a=\"1\" latest=+1s | search *"
    );
    assert!(spl_engine::expand_macros("`unknown`", &macros).is_err());
    assert!(spl_engine::expand_macros("`source", &macros).is_err());
    for bad in [
        "[m(1)]\ndefinition = a\n",
        "[m]\ndefinition = \n",
        "[m]\niseval = 1\n",
        "[m]\ndefinition = a \\\n b\n",
        "definition = a\n",
        "[m]\ndefinition = a\n[m]\ndefinition = b\n",
    ] {
        assert!(
            spl_engine::macros_from_conf(bad).is_err(),
            "accepted {bad:?}"
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
        run("latest=+1s | where match(a, \"(*UTF)(?i)support\")"),
        vec![0, 3]
    );
    assert_eq!(
        run("latest=+1s | where _time<=now() AND match(a, \"(*UTF)^N\")"),
        vec![0, 3]
    );
    // AND binds tighter than OR in where.
    assert_eq!(
        run("latest=+1s | where b==\"x\" OR b==\"y\" AND a==\"zzz\""),
        vec![0]
    );
    // eval: if() takes the third argument on false or null; assignments run left to
    // right; a null value removes the field.
    assert_eq!(
        run("latest=+1s | eval c=if(a==\"other\", \"\", a), d=c | where d==\"\""),
        vec![1]
    );
    let boolean = spl_engine::parse("latest=+1s | eval a=isnull(b)").expect("parses");
    assert!(spl_engine::run(&boolean, &events, 200.0).is_err());
    assert_eq!(
        run("latest=+1s | eval b=if(b==\"x\", a, b) | where isnull(b)"),
        vec![3]
    );
    assert_eq!(
        run("latest=+1s | eval a=if(a==\"\", \"\", a) | where isnull(a)"),
        vec![2]
    );
    // search later in the pipeline: `*` keeps everything.
    assert_eq!(run("latest=+1s | search *"), vec![0, 1, 2, 3]);
    assert_eq!(run("latest=+1s | search b=\"Y\""), vec![1, 2]);
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
