//! Bad input, discovered from `tests/errors/`: each `NAME.yaml` must be rejected
//! with exactly the message in `NAME.expected` (file, line, column, kind and what
//! was expected). A `warning_NAME.yaml` is accepted, with exactly the warnings in
//! `warning_NAME.expected`. `RMMC_BLESS=1 cargo test` writes missing or changed
//! expectations.

use rmmc::{
    Backends,
    parse::{parse_rule, read_rule_text},
};
use std::path::Path;

#[test]
fn every_bad_rule_is_rejected_with_its_expected_message() {
    let backends = Backends::embedded().unwrap();
    let bless = rmmc::golden::bless_requested();
    let mut cases: Vec<_> = std::fs::read_dir("tests/errors")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "the bad-input cases are missing");
    let mut failures = Vec::new();
    for case in &cases {
        let warns = case
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("warning_"));
        let got = match read_rule_text(case).and_then(|text| parse_rule(case, &text, &backends)) {
            Ok(parsed) if warns && !parsed.warnings.is_empty() => parsed
                .warnings
                .iter()
                .map(|w| format!("{}:{w}\n", case.display()))
                .collect(),
            Ok(_) if warns => format!("no warning: {} should warn", case.display()),
            Ok(_) => format!("accepted: {} should have been rejected", case.display()),
            Err(_) if warns => format!("rejected: {} should only warn", case.display()),
            Err(e) => {
                assert!(e.location().is_some() || e.file().is_some(), "{e}: no file");
                format!("{e}\n")
            }
        };
        let expected_path = case.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            if bless {
                std::fs::write(&expected_path, &got).unwrap();
            } else {
                failures.push(format!(
                    "{}:\n  expected: {expected}  got:      {got}",
                    case.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_name_the_line_and_column() {
    let backends = Backends::embedded().unwrap();
    for (case, line, column) in [
        ("malformed_yaml.yaml", 12, 1),
        ("unknown_key.yaml", 12, 1),
        ("sentinel_outside_subset.yaml", 16, 5),
    ] {
        let path = Path::new("tests/errors").join(case);
        let text = std::fs::read_to_string(&path).unwrap();
        let err = parse_rule(&path, &text, &backends).unwrap_err();
        let loc = err
            .location()
            .unwrap_or_else(|| panic!("{err}: no location"));
        assert_eq!((loc.line, loc.column), (line, column), "{err}");
    }
}
