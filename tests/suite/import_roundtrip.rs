//! The importer over the upstream RemoteManagementMonitoringTools corpus, when it is
//! present next to the crate (`../shared/corpus/rmm-upstream/RMM`); each test prints
//! that it was skipped otherwise.
//!
//! For every imported query:
//! * the rule file reads back (with rmmc's own parser) to the rule, and the rule's
//!   source, window, detection, aggregation and constants are those the Sentinel
//!   reader gives for the upstream query;
//! * the KQL compiled from the rule, read back with the KQL parser, gives the same
//!   rule (detection, window, aggregation, constants);
//! * the reference evaluator treats the original query and the compiled one exactly
//!   alike on fixture events built from the rule's values;
//! * rules/<tool>/<kind>.yaml holds exactly what the importer writes (unless the file
//!   is hand-written or hand-corrected).

use rmmc::fixtures::generate as fixtures_gen;
use rmmc::import::{self, Item, Outcome};
use rmmc::parse::parse_rule;
use rmmc::{Backends, Compiler, Rule, Target};
use std::path::{Path, PathBuf};

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/rmm-upstream/RMM");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: the upstream corpus is not at {} (it is not part of the repository); nothing to import",
            dir.display()
        );
        None
    }
}

fn plan() -> Option<(Vec<Item>, Backends)> {
    let dir = corpus()?;
    let backends = Backends::embedded().unwrap();
    let items = import::plan(&[dir], &backends).unwrap();
    Some((items, backends))
}

/// The IR the Sentinel reader gives for an item's upstream query.
fn upstream_ir(item: &Item, like: &Rule, backends: &Backends) -> Rule {
    match &item.section {
        None => {
            let text = std::fs::read_to_string(&item.upstream).unwrap();
            parse_rule(&item.upstream, &text, backends).unwrap().rule
        }
        Some((heading, _)) => {
            let text = std::fs::read_to_string(&item.upstream).unwrap();
            let q = import::md::queries(&text)
                .into_iter()
                .find(|q| &q.heading == heading)
                .unwrap();
            import::rule_from_kql(&q.body, like, backends).unwrap()
        }
    }
}

fn same_query(a: &Rule, b: &Rule) -> bool {
    a.source == b.source
        && a.window == b.window
        && a.detection == b.detection
        && a.exclusions == b.exclusions
        && a.aggregation == b.aggregation
        && a.constants == b.constants
}

#[test]
fn the_corpus_imports_with_the_known_failures() {
    let Some((items, _)) = plan() else { return };
    let imported = items.iter().filter(|i| i.imported()).count();
    let failed: Vec<String> = items
        .iter()
        .filter_map(|i| match &i.outcome {
            Outcome::Failed { error, .. } => {
                let loc = error.location().expect("failures are located");
                let rel = loc
                    .file
                    .strip_prefix(corpus().unwrap())
                    .unwrap()
                    .display()
                    .to_string();
                Some(format!("{rel}:{}:{}", loc.line, loc.column))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        [
            "DWService/rmm_DWService_createproc.yaml:25:5",
            "DWService/rmm_DWService_netconn.yaml:26:37",
            "Level/rmm_Level_createproc.yaml:19:30",
            "BeamYourScreen/RMM_AHQ_BeamYourScreen.md:55:9",
            "JumpCloud/RMM_AHQ_JumpCloud.md:15:1",
        ]
    );
    assert_eq!(imported, 191);
    // Every YAML file needed the dataTypes repair; every netconn query the AccountUpn one.
    let yaml_imported = items
        .iter()
        .filter(|i| i.imported() && i.section.is_none())
        .count();
    let data_types = items
        .iter()
        .filter(|i| i.imported() && i.repairs.contains(&import::Repair::DataTypesIndent))
        .count();
    assert_eq!(data_types, yaml_imported);
    for i in items.iter().filter(|i| i.imported() && i.kind == "netconn") {
        assert!(
            i.repairs.contains(&import::Repair::AccountUpn),
            "{}",
            i.label()
        );
    }
    // Xeox's network query mixes `and` and `or`: imported, flagged with its md line.
    let flagged: Vec<String> = items
        .iter()
        .filter(|i| !i.flags.is_empty())
        .map(|i| format!("{}/{}", i.tool_dir, i.kind))
        .collect();
    assert_eq!(flagged, ["xeox/netconn"]);
    let xeox = items.iter().find(|i| !i.flags.is_empty()).unwrap();
    assert!(
        xeox.flags[0].contains("at line 45, column 5"),
        "{}",
        xeox.flags[0]
    );
    // Messages name positions in the file, not in the query.
    let jc = items
        .iter()
        .find(|i| i.tool_dir == "jumpcloud" && i.failed())
        .unwrap();
    if let Outcome::Failed { error, .. } = &jc.outcome {
        assert!(
            error.message().contains("the `(` at line 11, column 9"),
            "{error}"
        );
    }
}

#[test]
fn every_imported_query_round_trips_through_yaml_and_kql() {
    let Some((items, backends)) = plan() else {
        return;
    };
    let compiler = Compiler::embedded().unwrap();
    let mut checked = 0;
    let mut events = 0;
    for item in items.iter().filter(|i| i.imported()) {
        let label = item.label();
        let rule = item.rule.as_ref().unwrap();
        let text = item.text.as_ref().unwrap();
        // 1. The rule file reads back to the rule.
        let back = parse_rule(&item.rel_dest().unwrap(), text, &backends)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(
            &back.rule, rule,
            "{label}: rule file reads back differently"
        );
        // ... and the rule is the upstream query.
        let upstream = upstream_ir(item, rule, &backends);
        assert!(
            same_query(&upstream, rule),
            "{label}: differs from the upstream IR\n{upstream:#?}\n{rule:#?}"
        );
        assert_eq!(upstream.meta.id, rule.meta.id, "{label}");
        assert!(
            rule.meta
                .references
                .iter()
                .any(|r| r.starts_with(&format!("{}/blob/", import::UPSTREAM_REPO))),
            "{label}"
        );
        // 2. The compiled KQL reads back to the same rule.
        let kql = compiler.compile(rule, Target::Kql, None).unwrap();
        let again = import::rule_from_kql(&kql.query, rule, &backends)
            .unwrap_or_else(|e| panic!("{label}: emitted KQL does not parse: {e}\n{}", kql.query));
        assert_eq!(
            &again, rule,
            "{label}: emitted KQL reads back differently\n{}",
            kql.query
        );
        // 3. The evaluator treats the original and the compiled query alike.
        let g = fixtures_gen::generate(rule);
        let now = rmmc::fixtures::parse_now(&g.file.now, Path::new("generated")).unwrap();
        let evs: Vec<_> = g.file.events.iter().map(|e| e.event.clone()).collect();
        assert!(
            g.file
                .events
                .iter()
                .any(|e| e.expect == rmmc::fixtures::Expect::Match),
            "{label}: no match event"
        );
        assert!(
            g.file
                .events
                .iter()
                .any(|e| e.expect == rmmc::fixtures::Expect::NoMatch),
            "{label}: no near miss"
        );
        let a = rmmc::eval::evaluate(&upstream, &evs, now).unwrap();
        let b = rmmc::eval::evaluate(&again, &evs, now).unwrap();
        assert_eq!(a, b, "{label}: the compiled query evaluates differently");
        for (i, e) in g.file.events.iter().enumerate() {
            assert_eq!(
                a.matched.contains(&i),
                e.expect == rmmc::fixtures::Expect::Match,
                "{label}: event {}",
                e.name
            );
        }
        checked += 1;
        events += evs.len();
    }
    assert_eq!(checked, 191);
    eprintln!("round-tripped {checked} imported queries over {events} generated events");
}

#[test]
fn the_rules_folder_holds_what_the_importer_writes() {
    let Some((items, backends)) = plan() else {
        return;
    };
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut compared = 0;
    for item in &items {
        let Some(rel) = item.rel_dest() else { continue };
        let path = rules.join(&rel);
        let existing = std::fs::read_to_string(&path).ok();
        match (&item.text, existing) {
            (Some(text), Some(existing)) if existing.starts_with(import::GENERATED_MARK) => {
                assert!(
                    existing == *text,
                    "{} is stale: rerun `rmmc import sentinel ../shared/corpus/rmm-upstream/RMM --force`",
                    path.display()
                );
                compared += 1;
            }
            // Hand-written or hand-corrected: it must still parse and keep the upstream id.
            (Some(_), Some(existing)) | (None, Some(existing)) => {
                let parsed = parse_rule(&path, &existing, &backends).unwrap();
                if let Some(rule) = &item.rule {
                    assert_eq!(parsed.rule.meta.id, rule.meta.id, "{}", path.display());
                }
            }
            (Some(_), None) => panic!(
                "{} is missing: run `rmmc import sentinel ../shared/corpus/rmm-upstream/RMM`",
                path.display()
            ),
            (None, None) => {
                // Failed and not hand-corrected: only DWService's joins.
                assert!(
                    item.tool_dir == "dwservice" || item.skipped(),
                    "{}: no rule for a failed query",
                    item.label()
                );
            }
        }
    }
    assert_eq!(compared, 188);
    // Every upstream tool folder with queries has rules.
    for item in items.iter().filter(|i| i.imported() || i.failed()) {
        assert!(
            rules.join(&item.tool_dir).is_dir(),
            "no rules/{}",
            item.tool_dir
        );
    }
}

#[test]
fn careful_values_decode_in_every_kql_quoting() {
    for v in [
        "Servably, Inc.",
        "PDQ.com",
        "XLAB D.O.O.",
        "DWSNET OÜ",
        "Krämer IT Solutions GmbH",
        "TEKNOPARS BİLİŞİM",
    ] {
        for q in [
            format!("'{v}'"),
            format!("\"{v}\""),
            format!("@'{v}'"),
            format!("@\"{v}\""),
        ] {
            let k =
                rmmc::parse::kql::parse_kql(&format!("T | where A has_any ({q}, 'x')")).unwrap();
            let Some(rmmc::ir::Expr::Match(p)) = k.filter else {
                panic!("{q}")
            };
            assert_eq!(p.values, [v.to_string(), "x".to_string()], "{q}");
        }
    }
}

#[test]
fn careful_values_of_the_corpus_survive_yaml_and_kql() {
    let Some((items, backends)) = plan() else {
        return;
    };
    let compiler = Compiler::embedded().unwrap();
    let wanted = [
        "Servably, Inc.",
        "PDQ.com",
        "XLAB D.O.O.",
        "DWSNET OÜ",
        "Krämer IT Solutions GmbH",
        "TEKNOPARS BİLİŞİM",
    ];
    for v in wanted {
        let holders: Vec<&Item> = items
            .iter()
            .filter(|i| {
                i.rule.as_ref().is_some_and(|r| {
                    r.detection
                        .predicates()
                        .iter()
                        .any(|p| p.values.iter().any(|x| x == v))
                })
            })
            .collect();
        assert!(!holders.is_empty(), "no imported rule has the value {v:?}");
        for item in holders {
            let rule = item.rule.as_ref().unwrap();
            let back = parse_rule(Path::new("x.yaml"), item.text.as_ref().unwrap(), &backends)
                .unwrap()
                .rule;
            assert!(
                back.detection
                    .predicates()
                    .iter()
                    .any(|p| p.values.iter().any(|x| x == v)),
                "{v:?} in {}",
                item.label()
            );
            // SPL and EQL prefilter with the value verbatim before their whole-term
            // regex (Sigma has only the regex, checked by the escaping tests); KQL
            // quotes it, non-ASCII characters as \u escapes (below). SPL writes no
            // prefilter for a non-ASCII value (the raw JSON may escape it): its regex
            // holds the value, non-ASCII letters kept exact.
            // A rule the default profile's data cannot run (no file written) is checked
            // on the target's Defender-column profile instead.
            for target in [Target::Spl, Target::Eql] {
                let mut r = compiler.compile(rule, target, None).unwrap();
                if r.fidelity.is_unsupported() {
                    r = compiler.compile(rule, target, Some("defender")).unwrap();
                }
                let written = if target == Target::Spl && !v.is_ascii() {
                    let quoted =
                        rmmc::lower::escape::spl_string(&rmmc::lower::escape::spl_ascii_folded(v));
                    quoted[1..quoted.len() - 1].to_string()
                } else {
                    v.to_string()
                };
                assert!(
                    r.query.contains(&written),
                    "{target} lost {v:?} in {}:\n{}",
                    item.label(),
                    r.query
                );
            }
            let kql = compiler.compile(rule, Target::Kql, None).unwrap();
            let literal = rmmc::lower::escape::kql_string(v);
            assert!(literal.is_ascii(), "{literal}");
            assert!(kql.query.contains(&literal), "{}", kql.query);
            let mut sigma = compiler.compile(rule, Target::Sigma, None).unwrap();
            if sigma.fidelity.is_unsupported() {
                sigma = compiler
                    .compile(rule, Target::Sigma, Some("defender"))
                    .unwrap();
            }
            assert!(!sigma.query.is_empty(), "{}", item.label());
        }
    }
}
