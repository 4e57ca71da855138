//! Escaping as security, checked in-crate: random hostile strings through each
//! escaping function, read back by a parser that did not write them. (The
//! conformance suite repeats this with each target's own parser.)

use proptest::prelude::*;
use rmmc::ir::{Expr, MatchKind};
use rmmc::lower::escape;
use rmmc::parse::kql::parse_kql;

fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "\"",
        "'",
        "\\",
        "\\\\",
        "\n",
        "\r",
        "\t",
        "*",
        "?",
        "|",
        "%",
        "_",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "^",
        "$",
        ".",
        "+",
        "#",
        "@",
        "&",
        "<",
        ">",
        "~",
        "@'",
        "@\"",
        "//",
        "/*",
        "*/",
        "`",
        ",",
        ";",
        ":",
        "-",
        " ",
        "a",
        "Z",
        "0",
        "Ä",
        "ü",
        "İ",
        "東",
        "😀",
        "\u{0}",
        "'''",
        "let ",
        " or ",
        " and ",
        "| where ",
        "\" or 1==1 or \"",
    ]);
    prop::collection::vec(pieces, 1..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// A KQL string literal is read back by rmmc's KQL parser as exactly one
    /// predicate whose value is the input: the structure cannot change.
    #[test]
    fn kql_literals_read_back_as_one_value(value in hostile()) {
        let query = format!(
            "let Time_start = now(-5d);\nlet Time_end = now();\nT\n| where Timestamp between (Time_start .. Time_end)\n| where Signer has {}\n",
            escape::kql_string(&value)
        );
        prop_assert!(query.is_ascii(), "non-ASCII in {}", query);
        let parsed = parse_kql(&query).map_err(|e| TestCaseError::fail(format!("{e}\n{query}")))?;
        match parsed.filter {
            Some(Expr::Match(p)) => {
                prop_assert_eq!(p.kind, MatchKind::Term);
                prop_assert_eq!(p.values, vec![value]);
            }
            other => prop_assert!(false, "structure changed: {:?}\n{}", other, query),
        }
    }

    /// YAML scalars and blocks around queries read back as the text.
    #[test]
    fn yaml_values_read_back(value in hostile()) {
        let value = value.replace('\u{0}', "");
        for rendered in [escape::yaml_scalar(&value), escape::yaml_block(&value, 2)] {
            let doc = format!("k: {rendered}\nnext: 1\n");
            let back: std::collections::BTreeMap<String, serde_yaml::Value> =
                serde_yaml::from_str(&doc).map_err(|e| TestCaseError::fail(format!("{e}\n{doc}")))?;
            prop_assert_eq!(back["k"].as_str(), Some(value.as_str()), "{}", doc);
            prop_assert_eq!(back.len(), 2);
        }
    }

    /// PCRE literals (SPL) and term patterns match the literal itself and nothing
    /// that differs in one character.
    #[test]
    fn regex_literals_match_only_the_literal(value in hostile()) {
        let value = value.replace('\u{0}', "");
        let pattern = escape::spl_pcre(MatchKind::Equals, rmmc::ir::Case::Sensitive, &value);
        let pattern = pattern.strip_prefix("(*UTF)").expect("every SPL pattern starts with (*UTF)");
        let re = regex::Regex::new(pattern).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(re.is_match(&value), "{}", pattern);
        let changed = format!("{value}x");
        prop_assert!(!re.is_match(&changed), "{}", pattern);
        let folded = escape::ascii_classes(&value, regex::escape);
        let re = regex::Regex::new(&format!("^{folded}\\z")).unwrap();
        prop_assert!(re.is_match(&value.to_ascii_uppercase()));
        prop_assert!(re.is_match(&value.to_ascii_lowercase()));
    }

    /// Sigma values read back as Sigma reads them (a `\` before `*`, `?` or `\`
    /// escapes it, any other backslash is itself) give the input, and no unescaped
    /// wildcard is left.
    #[test]
    fn sigma_values_escape_every_wildcard(value in hostile()) {
        let escaped = escape::sigma_value(&value);
        let mut back = String::new();
        let mut chars = escaped.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' && matches!(chars.peek(), Some('\\' | '*' | '?')) {
                back.push(chars.next().unwrap());
            } else {
                prop_assert!(c != '*' && c != '?', "{}", escaped);
                back.push(c);
            }
        }
        prop_assert_eq!(back, value);
    }
}
