//! Every rule's fixtures through the reference evaluator: each event's `expect`
//! holds, and the result rows equal the checked-in `.expected.json`. Discovered from
//! `rules/`, so a new rule with fixtures is tested without new code.

use rmmc::{Backends, fixtures, pack};

#[test]
fn every_rule_with_fixtures_gives_its_expected_rows() {
    let backends = Backends::embedded().unwrap();
    let sources = pack::discover(&["rules".to_string()]).unwrap();
    let rules = pack::load_rules(&sources, &backends).unwrap_or_else(|e| panic!("{e}"));
    let mut checked = 0;
    let mut failures = Vec::new();
    for (source, parsed) in &rules {
        let path = fixtures::fixture_path(&source.path);
        if !path.exists() {
            continue;
        }
        let file = fixtures::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let outcome = fixtures::run(&parsed.rule, &file, &path).unwrap_or_else(|e| panic!("{e}"));
        for m in &outcome.mismatches {
            failures.push(format!("{}: {m}", path.display()));
        }
        let expected_path = fixtures::expected_path(&source.path);
        let expected: fixtures::Expected = serde_json::from_str(
            &std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
                panic!(
                    "{} missing: RMMC_BLESS=1 rmmc test",
                    expected_path.display()
                )
            }),
        )
        .unwrap();
        if expected != outcome.expected {
            failures.push(format!(
                "{}: rows differ from {}",
                path.display(),
                expected_path.display()
            ));
        }
        // Every fixture event maps into every target's default schema.
        for target in rmmc::Target::ALL {
            let profile = backends.profile(target, None).unwrap();
            for e in &file.events {
                if let Err(err) = fixtures::map_event(&e.event, &parsed.rule, profile) {
                    failures.push(format!("{}: event `{}`: {err}", path.display(), e.name));
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 3, "the NetSupport fixtures were not found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn netsupport_file_signature_fixtures_cover_the_term_boundaries() {
    let text = std::fs::read_to_string("rules/netsupport/filesig.fixtures.yaml").unwrap();
    let file: fixtures::FixtureFile = serde_yaml::from_str(&text).unwrap();
    let signer = |name: &str| {
        let e = file
            .events
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name}"));
        (
            e.event["file.code_signature.subject_name"]
                .as_str()
                .unwrap()
                .to_string(),
            e.expect,
        )
    };
    use fixtures::Expect::*;
    for (name, value, expect) in [
        ("netsupport-ltd", "NetSupport Ltd", Match),
        ("netsupportschool", "NetSupportSchool Ltd", NoMatch),
        ("net-space-support", "Net Support", NoMatch),
        ("mynetsupport", "MyNetSupport", NoMatch),
        ("netsupport-ltd-upper", "NETSUPPORT LTD.", Match),
    ] {
        assert_eq!(signer(name), (value.to_string(), expect), "{name}");
    }
}
