//! The conformance bundle: every rule with fixtures × every target, with the
//! compiled query, the fixture events and generated adversarial events mapped into
//! the target's schema by the backends' field maps, and the reference evaluator's
//! answers under each semantic variant. `scripts/conformance` runs this test with
//! `RMMC_CONFORMANCE_OUT=DIR` and hands `DIR/bundle.jsonl` to the Python and Node
//! oracles (Kusto.Language, duckdb-kql, eql, sigma-cli/pySigma).

#[path = "../conformance/harness/common.rs"]
mod common;

use rmmc::Target;
use std::collections::BTreeSet;

#[test]
#[ignore = "heavy engine run: scripts/conformance runs it once, with --ignored"]
fn bundle_for_every_rule_and_target() {
    let compiler = common::compiler();
    let cases = common::discover();
    assert!(!cases.is_empty(), "no rule with fixtures under rules/");
    let mut lines = Vec::new();
    let (mut fixture_events, mut generated_events) = (0, 0);
    for case in &cases {
        let common::Reference { events, answers } = common::reference(case);
        let names: BTreeSet<&str> = events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names.len(),
            events.len(),
            "{}: event names are unique",
            case.stem
        );
        fixture_events += case.fixture_count();
        generated_events += events.len() - case.fixture_count();
        // The fixtures' own `expect` agrees with the evaluator (as `rmmc test` checks).
        let exact = &answers[&common::Variant::EXACT.key()];
        for e in &case.fixtures.events {
            let matched = exact.matched.contains(&e.name);
            assert_eq!(
                matched,
                e.expect == rmmc::fixtures::Expect::Match,
                "{}: fixture `{}` expectation",
                case.stem,
                e.name
            );
        }
        // SPL and rsigma run in Rust (conformance_spl, conformance_sigma); the bundle
        // carries what the Python and Node oracles need.
        for target in [Target::Kql, Target::Eql, Target::Sigma] {
            let compiled = common::compile(&compiler, case, target);
            let mut line = common::bundle_line(case, &compiled, events, answers);
            if target == Target::Sigma {
                // The `defender` profile too (Defender column names): its files, for the
                // pySigma kusto oracle (microsoft_xdr reads those columns as they are).
                line["defender"] = match compiler.compile(&case.rule, target, Some("defender")) {
                    Ok(r) => serde_json::json!({
                        "files": r.files.iter().map(|(p, t)| (p.to_string_lossy().to_string(), t.clone())).collect::<std::collections::BTreeMap<_, _>>(),
                        "fidelity": r.fidelity,
                        "documented": {
                            "unicode_fold": common::documented(&r.fidelity).0,
                            "ascii_terms": common::documented(&r.fidelity).1,
                            "end_exclusive": common::documented(&r.fidelity).2,
                        },
                    }),
                    Err(e) => serde_json::json!({ "unsupported": e.to_string() }),
                };
            }
            lines.push(line.to_string());
        }
    }
    println!(
        "conformance bundle: {} rules x {} targets, {fixture_events} fixture events, {generated_events} generated adversarial events",
        cases.len(),
        Target::ALL.len()
    );
    if let Some(dir) = common::results_dir() {
        std::fs::create_dir_all(&dir).expect("out dir");
        std::fs::write(dir.join("bundle.jsonl"), lines.join("\n") + "\n").expect("write bundle");
    }
}
