//! Escaping as security, end to end: random hostile strings (quotes, backslashes,
//! newlines, `*`, `?`, `|`, `%`, `_`, regex and Lucene metacharacters, KQL `@'`,
//! non-ASCII) become a rule's value (built as IR, so no rule-parser filter is in the
//! way), each target's compiled query is read back by a parser that rmmc did not
//! write, and the query must have the same structure as the one for a benign value
//! of the same shape, with the literal reading back as the input:
//!
//! * SPL: the SPL-subset engine's tokenizer (token kinds) and evaluator (the value
//!   itself matches; a near miss does not, as the reference evaluator says);
//! * Sigma: YAML parse (the selection value unescapes to the input) and rsigma
//!   (matches as the reference evaluator says);
//! * KQL: Kusto.Language in one node process (token kinds, string literal values),
//!   when `.oracles/node` is installed (else skipped, with the reason printed);
//! * EQL: the `eql` package in one Python process (AST shape, engine match), when
//!   `.oracles/venv` is installed.
//!
//! Rule values with control characters are rejected by the rule parser, so only
//! `\n`, `\r`, `\t` (which the KQL and EQL quoting claims to handle) are generated.

#[path = "../conformance/harness/common.rs"]
mod common;
mod spl_engine;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rmmc::eval::{Event, matches_expr};
use rmmc::ir::{
    Case, DataSource, Expr, MatchKind, Metadata, Predicate, Quantifier, Rule, Severity, Status,
    Window,
};
use rmmc::{Compiler, Target};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const CASES: u32 = 1000;

fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "\"", "'", "\\", "\\\\", "\n", "\r", "\t", "*", "?", "|", "%", "_", "(", ")", "[", "]",
        "{", "}", "^", "$", ".", "+", "#", "@", "&", "<", ">", "~", "@'", "@\"", "//", "/*", "`",
        ",", ";", ":", "=", "==", "-", " ", "a", "Z", "0", "ä", "Ä", "é", "東", "😀", "\\*", "\\?",
        "\\\"", "'''", "${x}", "%s", "|where", " or ", " AND ", "NOT ", "\\p{L}", "(?i)", "\\z",
        "\\\n",
    ]);
    prop::collection::vec(pieces, 1..10).prop_map(|v| v.concat())
}

fn kinds() -> impl Strategy<Value = (MatchKind, Case)> {
    prop::sample::select(vec![
        (MatchKind::Equals, Case::Insensitive),
        (MatchKind::Equals, Case::Sensitive),
        (MatchKind::Term, Case::Insensitive),
        (MatchKind::Term, Case::Sensitive),
        (MatchKind::Contains, Case::Insensitive),
        (MatchKind::Contains, Case::Sensitive),
        (MatchKind::Prefix, Case::Insensitive),
        (MatchKind::Suffix, Case::Sensitive),
    ])
}

const FIELD: &str = "file.code_signature.subject_name";

fn rule(value: &str, kind: MatchKind, case: Case) -> Rule {
    Rule {
        meta: Metadata {
            id: "6f1c7a52-0b7e-4d33-9a4e-1f0c2d3e4b5a".into(),
            name: "Escaping probe".into(),
            description: "Escaping probe".into(),
            references: vec![],
            author: None,
            date: None,
            modified: None,
            license: None,
            tool: "Probe".into(),
            tactics: vec!["CommandAndControl".into()],
            techniques: vec!["T1219".into()],
            severity: Severity::Medium,
            status: Status::Test,
            acknowledged: Vec::new(),
        },
        source: DataSource::FileSignature,
        window: Window { seconds: 86_400 },
        detection: Expr::Match(Predicate {
            field: FIELD.into(),
            kind,
            case,
            values: vec![value.to_string()],
            quantifier: Quantifier::Any,
        }),
        exclusions: vec![],
        aggregation: None,
        constants: vec![],
    }
}

/// A value of the same shape without anything hostile: characters that steer the
/// emitters' choices are kept (`*`, `?`, `\`, a backtick, non-ASCII letters) or
/// stand for each other (`& < > " '` and other non-ASCII characters all keep SPL from
/// writing a search prefilter: `&` stands for them).
fn benign(s: &str) -> String {
    s.chars()
        .map(|c| {
            if "*?\\`".contains(c) || (!c.is_ascii() && c.is_alphabetic()) {
                c
            } else if "&<>\"'".contains(c) || !c.is_ascii() {
                '&'
            } else {
                'a'
            }
        })
        .collect()
}

/// Probe values and whether the reference evaluator matches them.
fn probes(r: &Rule, s: &str) -> Vec<(String, bool)> {
    [
        s.to_string(),
        format!("{s}\u{2603}"),
        format!("\u{2603}{s}"),
        String::new(),
    ]
    .into_iter()
    .map(|v| {
        let mut e = Event::new();
        e.insert(FIELD.into(), Value::String(v.clone()));
        (v.clone(), matches_expr(&r.detection, &e))
    })
    .collect()
}

fn spl_check(compiler: &Compiler, s: &str, kind: MatchKind, case: Case) -> Result<(), String> {
    let r = rule(s, kind, case);
    let q = compiler
        .compile(&r, Target::Spl, None)
        .map_err(|e| e.to_string())?
        .query;
    let b = compiler
        .compile(&rule(&benign(s), kind, case), Target::Spl, None)
        .map_err(|e| e.to_string())?
        .query;
    // The search as Splunk runs it: the data-source macro and the rule's filter
    // macro expanded as the app's macros.conf defines them.
    let profile = compiler
        .backends()
        .profile(Target::Spl, None)
        .map_err(|e| e.to_string())?;
    let source = profile.source(r.source).map_err(|e| e.to_string())?;
    let macros = BTreeMap::from([
        (
            source.settings["macro"].clone(),
            source.settings["search"].clone(),
        ),
        (
            rmmc::lower::escape::spl_filter_macro(&r.meta.id),
            "search *".to_string(),
        ),
    ]);
    let shape = |q: &str| -> Result<Vec<String>, String> {
        let expanded = spl_engine::expand_macros(q, &macros).map_err(|e| format!("{e}: {q}"))?;
        Ok(spl_engine::tokenize(&expanded)
            .map_err(|e| format!("{e}: {q}"))?
            .iter()
            .map(spl_engine::Tok::kind)
            .collect())
    };
    if shape(&q)? != shape(&b)? {
        return Err(format!(
            "SPL structure differs from the benign query:\n{q}\n{b}"
        ));
    }
    let expanded = spl_engine::expand_macros(&q, &macros).map_err(|e| format!("{e}: {q}"))?;
    let parsed = spl_engine::parse(&expanded).map_err(|e| format!("{e}: {q}"))?;
    let now = 1_000_000.0;
    for (v, want) in probes(&r, s) {
        // The event as Splunk's Defender add-on indexes it.
        let mut e = spl_engine::SplEvent::new();
        e.insert(source.names()[FIELD].clone(), spl_engine::V::Str(v.clone()));
        e.insert("_time".into(), spl_engine::V::Num(now - 1.0));
        e.insert(
            "sourcetype".into(),
            spl_engine::V::Str("mscs:azure:eventhub:defender:advancedhunting".into()),
        );
        e.insert(
            "category".into(),
            spl_engine::V::Str("AdvancedHunting-DeviceFileCertificateInfo".into()),
        );
        let got = spl_engine::run(&parsed, &[e], now).map_err(|e| e.to_string())?;
        if got.matched.is_empty() == want {
            return Err(format!(
                "SPL reads the value back wrong: probe {v:?} matched={} evaluator={want}\n{q}",
                !want
            ));
        }
    }
    Ok(())
}

fn sigma_unescape(v: &str) -> String {
    let mut out = String::new();
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some(n @ ('*' | '?' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn sigma_check(compiler: &Compiler, s: &str, kind: MatchKind, case: Case) -> Result<(), String> {
    let r = rule(s, kind, case);
    let rendered = compiler
        .compile(&r, Target::Sigma, None)
        .map_err(|e| e.to_string())?;
    let text = rendered
        .files
        .iter()
        .find(|(p, _)| p.extension().is_some_and(|e| e == "yml"))
        .map(|(_, t)| t.clone())
        .ok_or("no .yml file")?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("YAML: {e}\n{text}"))?;
    let sel = &doc["detection"]["selection"];
    let map = sel
        .as_mapping()
        .ok_or_else(|| format!("no selection map:\n{text}"))?;
    // One predicate: one item, or for a whole term its `|contains` and its `|re`.
    let most = if kind == MatchKind::Term { 2 } else { 1 };
    if map.is_empty() || map.len() > most {
        return Err(format!("selection has {} items:\n{text}", map.len()));
    }
    for (key, value) in map {
        let key = key.as_str().unwrap_or_default();
        let value = value
            .as_str()
            .ok_or_else(|| format!("value is not a string:\n{text}"))?;
        if !key.starts_with("Signer") {
            return Err(format!("selection key {key:?}:\n{text}"));
        }
        if !key.contains("|re") && sigma_unescape(value) != s {
            return Err(format!(
                "Sigma value reads back {:?}, not {s:?}",
                sigma_unescape(value)
            ));
        }
    }
    let coll = rsigma_parser::parse_sigma_yaml(&text).map_err(|e| format!("rsigma: {e}"))?;
    if !coll.errors.is_empty() {
        return Err(format!("rsigma: {:?}", coll.errors));
    }
    let mut engine = rsigma_eval::Engine::new();
    engine
        .add_collection(&coll)
        .map_err(|e| format!("rsigma: {e}"))?;
    for (v, want) in probes(&r, s) {
        let ev = json!({ "Signer": v });
        let got = !engine
            .evaluate(&rsigma_eval::event::JsonEvent::borrow(&ev))
            .is_empty();
        if got != want {
            return Err(format!(
                "rsigma reads the value back wrong: probe {v:?} matched={got} evaluator={want}\n{text}"
            ));
        }
    }
    Ok(())
}

fn oracles_dir() -> PathBuf {
    std::env::var_os("RMMC_ORACLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::root().join(".oracles"))
}

fn run_json(cmd: &mut Command, input: &Value) -> Result<Value, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(input.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

#[test]
#[ignore = "heavy engine run: scripts/conformance runs it once, with --ignored"]
fn escaping_reads_back_on_every_target() {
    let compiler = common::compiler();
    let collected: RefCell<Vec<(String, MatchKind, Case)>> = RefCell::new(Vec::new());
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&(hostile(), kinds()), |(s, (kind, case))| {
        collected.borrow_mut().push((s.clone(), kind, case));
        spl_check(&compiler, &s, kind, case).map_err(TestCaseError::fail)?;
        sigma_check(&compiler, &s, kind, case).map_err(TestCaseError::fail)?;
        Ok(())
    });
    let cases = collected.into_inner();
    let mut report: BTreeMap<&str, Value> = BTreeMap::new();
    let rust_failure = result.err().map(|e| e.to_string());
    report.insert(
        "spl+sigma",
        json!({"oracle": "SPL-subset parser + YAML + rsigma", "cases": cases.len(), "failures": rust_failure.iter().collect::<Vec<_>>()}),
    );

    // KQL and EQL: batch the cases for the installed oracles.
    let dir = oracles_dir();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("conformance/defender_schema.json"))
            .expect("schema"),
    )
    .expect("schema json");
    let mut kql = Vec::new();
    let mut eql = Vec::new();
    // The field the probe value lands in on the default EQL profile's data.
    // The probe event is one the profile's data source selects (`event.type`).
    let eql_source = compiler
        .backends()
        .profile(Target::Eql, None)
        .and_then(|p| p.source(DataSource::FileSignature))
        .expect("eql profile");
    let eql_field = eql_source.names()[FIELD].clone();
    let eql_selected = eql_source.selected_event_fields();
    for (i, (s, kind, case)) in cases.iter().enumerate() {
        let q = compiler
            .compile(&rule(s, *kind, *case), Target::Kql, None)
            .expect("kql");
        let b = compiler
            .compile(&rule(&benign(s), *kind, *case), Target::Kql, None)
            .expect("kql");
        kql.push(
            json!({"id": i.to_string(), "query": q.query, "benign": b.query, "expected": [s]}),
        );
        let r = rule(s, *kind, *case);
        let q = compiler.compile(&r, Target::Eql, None).expect("eql");
        let b = compiler
            .compile(&rule(&benign(s), *kind, *case), Target::Eql, None)
            .expect("eql");
        let probes: Vec<Value> = probes(&r, s)
            .into_iter()
            .map(|(v, m)| json!({"value": v, "match": m}))
            .collect();
        eql.push(
            json!({"id": i.to_string(), "query": q.query, "benign": b.query, "probes": probes, "field": eql_field, "selected": eql_selected}),
        );
    }
    let node_pkg = dir.join("node/node_modules/@kusto/language-service-next");
    if node_pkg.exists() {
        let out = run_json(
            Command::new("node")
                .arg(common::root().join("conformance/kusto_check.js"))
                .arg(dir.join("node")),
            &json!({"schema": schema, "literals": kql}),
        )
        .expect("kusto_check.js runs");
        let failures: Vec<String> = out["literals"]
            .as_array()
            .expect("literals")
            .iter()
            .filter(|c| c["ok"] != json!(true))
            .map(|c| {
                let i: usize = c["id"].as_str().unwrap_or("0").parse().unwrap_or(0);
                format!("{:?}: {}", cases[i].0, c["reason"].as_str().unwrap_or(""))
            })
            .collect();
        report.insert(
            "kql",
            json!({"oracle": "Kusto.Language", "cases": kql.len(), "failures": failures}),
        );
    } else {
        println!(
            "escaping: KQL skipped: Kusto.Language not installed ({} missing; run scripts/conformance)",
            node_pkg.display()
        );
    }
    let python = dir.join("venv/bin/python");
    if python.exists() {
        let out = run_json(
            Command::new(&python).arg(common::root().join("conformance/escaping_check.py")),
            &json!({"cases": eql}),
        )
        .expect("escaping_check.py runs");
        let failures: Vec<String> = out["failures"]
            .as_array()
            .expect("failures")
            .iter()
            .map(|f| f.as_str().unwrap_or("").to_string())
            .collect();
        report.insert("eql", json!({"oracle": format!("eql {}", out["version"].as_str().unwrap_or("")), "cases": eql.len(), "failures": failures}));
    } else {
        println!(
            "escaping: EQL skipped: eql not installed ({} missing; run scripts/conformance)",
            python.display()
        );
    }
    for (k, v) in &report {
        println!(
            "escaping: {k}: {} cases, {} failures ({})",
            v["cases"],
            v["failures"].as_array().map_or(0, Vec::len),
            v["oracle"].as_str().unwrap_or("")
        );
    }
    common::write_results("escaping.json", &json!(report));
    let failed: Vec<String> = report
        .iter()
        .flat_map(|(k, v)| {
            v["failures"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |f| format!("{k}: {}", f.as_str().unwrap_or("")))
        })
        .collect();
    if std::env::var_os("RMMC_CONFORMANCE_REPORT_ONLY").is_none() {
        assert!(
            failed.is_empty(),
            "escaping failures:\n{}",
            failed.join("\n")
        );
    }
}
