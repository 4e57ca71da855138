//! Kibana acceptance: every Elastic rule rmmc writes (both EQL profiles) validates
//! against the JSON schema of Kibana's detection-rule API for EQL rules in 8.14,
//! 8.19 and 9.5 (`../shared/reference/elastic/api_schemas/`, generated from Kibana by
//! Elastic; not part of the repository), and follows Elastic's rule conventions.

use rmmc::pack::{self, BuildOptions};
use rmmc::{Backends, Fidelity, Target};
use serde_json::Value;
use std::path::Path;

const VERSIONS: [&str; 3] = ["8.14", "8.19", "9.5"];

fn schemas() -> Option<Vec<(&'static str, jsonschema::Validator)>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/elastic/api_schemas");
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED: {} is not present (reference data, not part of the repository)",
            dir.display()
        );
        return None;
    }
    Some(
        VERSIONS
            .iter()
            .map(|v| {
                let path = dir.join(v).join(format!("{v}.eql.json"));
                let schema: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let validator = jsonschema::draft4::new(&schema)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                (*v, validator)
            })
            .collect(),
    )
}

/// Every rule file of every EQL profile, as JSON, with its rule file name.
fn elastic_rules() -> Vec<(String, String, Value)> {
    elastic_rules_with_sources()
        .into_iter()
        .map(|(profile, file, rule, _)| (profile, file, rule))
        .collect()
}

/// [`elastic_rules`], each with the rule it was compiled from.
fn elastic_rules_with_sources() -> Vec<(String, String, Value, rmmc::Rule)> {
    let compiler = rmmc::Compiler::embedded().unwrap();
    let backends = Backends::embedded().unwrap();
    let sources = pack::discover(&["rules".to_string()]).unwrap();
    let mut out = Vec::new();
    for profile in backends.profiles(Target::Eql) {
        let options = BuildOptions {
            targets: vec![Target::Eql],
            profile: Some(profile.name.clone()),
            strict: false,
        };
        let build = pack::build(&sources, &backends, &options).unwrap();
        for r in &build.rendered {
            for (path, text) in &r.files {
                if path.extension().is_some_and(|e| e == "ndjson") {
                    let rule: Value = serde_json::from_str(text)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    let text = std::fs::read_to_string(&r.source_file).unwrap();
                    let source = compiler
                        .load_rule(&r.source_file.display().to_string(), &text)
                        .unwrap()
                        .rule;
                    out.push((
                        profile.name.clone(),
                        path.display().to_string(),
                        rule,
                        source,
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn every_elastic_rule_validates_against_kibana_8_14_8_19_and_9_5() {
    let Some(schemas) = schemas() else {
        return;
    };
    let rules = elastic_rules();
    assert!(rules.len() > 300, "both profiles, {} rules", rules.len());
    let mut errors = Vec::new();
    for (profile, file, rule) in &rules {
        for (version, validator) in &schemas {
            for e in validator.iter_errors(rule) {
                errors.push(format!(
                    "{profile} {file}: Kibana {version}: {e} at {}",
                    e.instance_path()
                ));
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{} schema errors:\n{}",
        errors.len(),
        errors[..errors.len().min(20)].join("\n")
    );
}

/// The validator is not vacuous: the rules rmmc wrote before issue 7 (4 suppression
/// fields, a `version` key 8.14 does not know) are rejected.
#[test]
fn the_schemas_reject_what_kibana_rejects() {
    let Some(schemas) = schemas() else {
        return;
    };
    let (_, _, mut rule) = elastic_rules().remove(0);
    rule["alert_suppression"] = serde_json::json!({
        "group_by": ["host.id", "host.name", "user.name", "dns.question.name"],
        "duration": {"value": 120, "unit": "h"},
    });
    for (version, validator) in &schemas {
        assert!(
            !validator.is_valid(&rule),
            "{version} accepts 4 group_by fields"
        );
    }
    let (_, _, mut rule) = elastic_rules().remove(0);
    rule["version"] = 1.into();
    assert!(!schemas[0].1.is_valid(&rule), "8.14 has no `version`");
}

#[test]
fn elastic_rules_follow_elastic_conventions() {
    for (profile, file, rule, source) in elastic_rules_with_sources() {
        let tags: Vec<&str> = rule["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let data_source = match profile.as_str() {
            "ecs" => "Data Source: Elastic Defend",
            _ => "Data Source: Microsoft Defender XDR",
        };
        for want in [
            "Domain: Endpoint",
            "OS: Windows",
            "Use Case: Threat Detection",
            "Tactic: Command and Control",
            data_source,
        ] {
            assert!(tags.contains(&want), "{file}: no tag `{want}` in {tags:?}");
        }
        assert!(
            tags.iter().any(|t| t.starts_with("Tool: ")),
            "{file}: {tags:?}"
        );
        for t in rule["threat"].as_array().unwrap() {
            for tech in t["technique"].as_array().unwrap() {
                if tech["id"] == "T1219" {
                    assert_eq!(tech["name"], "Remote Access Tools", "{file}");
                }
            }
        }
        // The upstream author under the upstream license, never the compiler:
        // J Schell's queries are MIT, the LOLRMM catalogue's entries Apache-2.0.
        let author = source
            .meta
            .author
            .as_deref()
            .expect("every rule names its author");
        assert_eq!(rule["author"], serde_json::json!([author]), "{file}");
        assert!(!author.contains("rmmc"), "{file}: {author}");
        let license = source
            .meta
            .license
            .as_deref()
            .expect("every rule names its license");
        assert!(
            ["MIT", "Apache-2.0"].contains(&license),
            "{file}: {license}"
        );
        assert_eq!(rule["license"], license, "{file}");
        // An alerting schedule: every 5 minutes over 9 (no gap between runs), and for
        // an aggregating rule the look-back window as the suppression duration; a rule
        // without aggregation means one alert per event, so nothing is suppressed.
        assert_eq!(rule["interval"], "5m", "{file}");
        assert_eq!(rule["from"], "now-9m", "{file}");
        let suppression = &rule["alert_suppression"];
        if source.aggregation.is_some() {
            assert_eq!(suppression["duration"]["unit"], "h", "{file}");
            assert!(
                suppression["group_by"].as_array().unwrap().len() <= 3,
                "{file}"
            );
        } else {
            assert!(suppression.is_null(), "{file}: {suppression}");
        }
    }
}

/// What a suppression leaves out is said in the verdict, with why.
#[test]
fn suppression_fields_left_out_are_named_in_the_verdict() {
    let compiler = rmmc::Compiler::embedded().unwrap();
    let text = std::fs::read_to_string("rules/anydesk/createproc.yaml").unwrap();
    let parsed = compiler
        .load_rule("rules/anydesk/createproc.yaml", &text)
        .unwrap();
    let ecs = compiler.compile(&parsed.rule, Target::Eql, None).unwrap();
    let Fidelity::Approximate(list) = &ecs.fidelity else {
        panic!("{:?}", ecs.fidelity)
    };
    let aggregation = list.iter().find(|a| a.construct == "aggregation").unwrap();
    let rmmc::ApproxKind::AlertPerEvent { not_suppressed, .. } = &aggregation.kind else {
        panic!("{aggregation:?}")
    };
    assert!(
        not_suppressed.iter().any(
            |(f, why)| f == "user.upn" && why.contains("the profile's data does not record it")
        ),
        "{}",
        aggregation.reason()
    );
    // On Defender columns the account's UPN exists: nothing is left out.
    let defender = compiler
        .compile(&parsed.rule, Target::Eql, Some("defender"))
        .unwrap();
    let rule: Value = serde_json::from_str(&defender.files[1].1).unwrap();
    assert_eq!(
        rule["alert_suppression"]["group_by"],
        serde_json::json!(["DeviceId", "DeviceName", "AccountUpn"])
    );
}
