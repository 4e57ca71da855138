//! KQL (Microsoft Defender XDR advanced hunting, Microsoft Sentinel). The IR's
//! semantics are KQL's, so every construct is native and exact, except `dcount`,
//! which KQL estimates.

use super::{Dialect, LowerInput, Notes, RuleFile, TargetSpec};
use crate::attack::tactic;
use crate::error::Result;
use crate::ir::{AggFunction, Case, MatchKind, Predicate, Quantifier};
use serde_json::json;

pub(crate) struct Kql;

/// The registry entry of kql.
pub(crate) const SPEC: TargetSpec = TargetSpec {
    name: "kql",
    description: "Kusto Query Language: Microsoft Defender XDR advanced hunting / Microsoft Sentinel hunting queries",
    dialect: &Kql,
    rule_files: &[
        RuleFile {
            template: "query.tera",
            extension: "kql",
        },
        RuleFile {
            template: "rule.tera",
            extension: "yaml",
        },
    ],
    gathered: &[],
    default_profile: "defender",
};


/// A KQL string literal: `"..."` with `\\`, `\"`, `\n`, `\r`, `\t` escaped.
pub fn quote(s: &str) -> String {
    super::backslash_quoted(s, true)
}

/// A column name, bracketed when it is not a plain identifier (`['my col']`).
pub fn column(name: &str) -> String {
    if super::is_plain_name(name, "") {
        name.to_string()
    } else {
        format!("[{}]", quote(name))
    }
}

fn list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| quote(v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The KQL operator of a single-value comparison.
fn operator(kind: MatchKind, case: Case) -> &'static str {
    match (kind, case) {
        (MatchKind::Equals, Case::Sensitive) => "==",
        (MatchKind::Equals, Case::Insensitive) => "=~",
        (MatchKind::Term, Case::Sensitive) => "has_cs",
        (MatchKind::Term, Case::Insensitive) => "has",
        (MatchKind::Contains, Case::Sensitive) => "contains_cs",
        (MatchKind::Contains, Case::Insensitive) => "contains",
        (MatchKind::Prefix, Case::Sensitive) => "startswith_cs",
        (MatchKind::Prefix, Case::Insensitive) => "startswith",
        (MatchKind::Suffix, Case::Sensitive) => "endswith_cs",
        (MatchKind::Suffix, Case::Insensitive) => "endswith",
        (MatchKind::Regex, _) => "matches regex",
        (MatchKind::Empty | MatchKind::NotEmpty, _) => unreachable!("no operator"),
    }
}

impl Dialect for Kql {
    fn predicate(&self, field: &str, p: &Predicate, _notes: &mut Notes) -> String {
        let col = column(field);
        let many = p.values.len() > 1;
        match (p.kind, p.case, p.quantifier) {
            (MatchKind::Empty, _, _) => format!("isempty({col})"),
            (MatchKind::NotEmpty, _, _) => format!("isnotempty({col})"),
            // The list operators KQL has natively.
            (MatchKind::Equals, Case::Sensitive, Quantifier::Any) if many => {
                format!("{col} in ({})", list(&p.values))
            }
            (MatchKind::Equals, Case::Insensitive, Quantifier::Any) if many => {
                format!("{col} in~ ({})", list(&p.values))
            }
            (MatchKind::Term, Case::Insensitive, Quantifier::Any) if many => {
                format!("{col} has_any ({})", list(&p.values))
            }
            (MatchKind::Term, Case::Insensitive, Quantifier::All) if many => {
                format!("{col} has_all ({})", list(&p.values))
            }
            (kind, case, quantifier) => {
                let one = |v: &String| {
                    let pattern = match (kind, case) {
                        (MatchKind::Regex, Case::Insensitive) => format!("(?i){v}"),
                        _ => v.clone(),
                    };
                    format!("{col} {} {}", operator(kind, case), quote(&pattern))
                };
                let parts: Vec<String> = p.values.iter().map(one).collect();
                let word = if quantifier == Quantifier::All {
                    " and "
                } else {
                    " or "
                };
                if parts.len() == 1 {
                    parts.into_iter().next().expect("one value")
                } else {
                    format!("({})", parts.join(word))
                }
            }
        }
    }

    fn not_expr(&self, inner: &str) -> String {
        format!("not({})", super::unwrap_parens(inner))
    }

    fn context(&self, input: &LowerInput, notes: &mut Notes) -> Result<serde_json::Value> {
        let rule = input.rule;
        let detection = self.expr(input, &rule.detection, notes)?;
        let exclusions = self.exclusions(input, notes)?;
        if let Some(o) = rule
            .aggregation
            .iter()
            .flat_map(|a| &a.outputs)
            .find(|o| matches!(o.function, AggFunction::DistinctCount(_)))
        {
            notes.approximate(
                format!("output `{}` (dcount)", o.name),
                "KQL's dcount() is an estimate (HyperLogLog); the IR counts exactly",
            );
        }
        let summarize = super::aggregation_parts(
            input,
            |c| Ok(column(c)),
            |function, field| {
                let f = field.unwrap_or_default();
                match function {
                    AggFunction::Min(_) => format!("min({f})"),
                    AggFunction::Max(_) => format!("max({f})"),
                    AggFunction::DistinctSet(_) => format!("make_set({f})"),
                    AggFunction::DistinctCount(_) => format!("dcount({f})"),
                    AggFunction::Count => "count()".to_string(),
                }
            },
            |name, call| Ok(format!("{}={call}", column(name))),
        )?;
        let constants: Vec<_> = rule
            .constants
            .iter()
            .map(|c| json!({ "name": column(&c.name), "value": quote(&c.value) }))
            .collect();
        let table = input.setting("table")?;
        Ok(json!({
            "table": column(table),
            "data_type": table,
            "time_column": column(&input.field(crate::ir::TIMESTAMP_FIELD)?),
            "window": rule.window.shorthand(),
            "detection": detection,
            "exclusions": exclusions,
            "summarize": summarize,
            "constants": constants,
            "tactics": rule.meta.tactics.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "tactic_names": rule.meta.tactics.iter().map(|t| tactic(t).1).collect::<Vec<_>>(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_every_character_that_ends_or_changes_a_literal() {
        for (value, expected) in [
            ("netsupport", r#""netsupport""#),
            (r#"a"b"#, r#""a\"b""#),
            (r"C:\Program Files\", r#""C:\\Program Files\\""#),
            ("a\nb", r#""a\nb""#),
            ("a\r\tb", r#""a\r\tb""#),
            ("it's", r#""it's""#),
            ("@'x'", r#""@'x'""#),
            ("*?|", r#""*?|""#),
            ("Krämer", r#""Krämer""#),
            (r#"\""#, r#""\\\"""#),
        ] {
            assert_eq!(quote(value), expected, "{value:?}");
        }
    }

    #[test]
    fn columns_with_special_characters_are_bracketed() {
        for (name, expected) in [
            ("Signer", "Signer"),
            ("_Col1", "_Col1"),
            ("my col", r#"["my col"]"#),
            ("a\"b", r#"["a\"b"]"#),
            ("1abc", r#"["1abc"]"#),
        ] {
            assert_eq!(column(name), expected, "{name}");
        }
    }

    fn p(kind: MatchKind, case: Case, quantifier: Quantifier, values: &[&str]) -> Predicate {
        Predicate {
            field: "x".into(),
            kind,
            case,
            values: values.iter().map(|v| v.to_string()).collect(),
            quantifier,
        }
    }

    #[test]
    fn predicate_table() {
        use Case::*;
        use MatchKind::*;
        use Quantifier::*;
        for (pred, expected) in [
            (
                p(Term, Insensitive, Any, &["netsupport"]),
                r#"Signer has "netsupport""#,
            ),
            (
                p(Term, Sensitive, Any, &["NetSupport"]),
                r#"Signer has_cs "NetSupport""#,
            ),
            (
                p(Term, Insensitive, Any, &["a", "b"]),
                r#"Signer has_any ("a", "b")"#,
            ),
            (
                p(Term, Insensitive, All, &["a", "b"]),
                r#"Signer has_all ("a", "b")"#,
            ),
            (
                p(Term, Sensitive, Any, &["a", "b"]),
                r#"(Signer has_cs "a" or Signer has_cs "b")"#,
            ),
            (p(Equals, Sensitive, Any, &["a"]), r#"Signer == "a""#),
            (p(Equals, Insensitive, Any, &["a"]), r#"Signer =~ "a""#),
            (
                p(Equals, Sensitive, Any, &["a", "b"]),
                r#"Signer in ("a", "b")"#,
            ),
            (
                p(Equals, Insensitive, Any, &["a", "b"]),
                r#"Signer in~ ("a", "b")"#,
            ),
            (
                p(Contains, Insensitive, Any, &["a"]),
                r#"Signer contains "a""#,
            ),
            (
                p(Contains, Sensitive, All, &["a", "b"]),
                r#"(Signer contains_cs "a" and Signer contains_cs "b")"#,
            ),
            (
                p(Prefix, Insensitive, Any, &["a"]),
                r#"Signer startswith "a""#,
            ),
            (
                p(Suffix, Sensitive, Any, &["a"]),
                r#"Signer endswith_cs "a""#,
            ),
            (
                p(Regex, Sensitive, Any, &[r"^a\.b"]),
                r#"Signer matches regex "^a\\.b""#,
            ),
            (
                p(Regex, Insensitive, Any, &["ab"]),
                r#"Signer matches regex "(?i)ab""#,
            ),
            (p(Empty, Insensitive, Any, &[]), "isempty(Signer)"),
            (p(NotEmpty, Insensitive, Any, &[]), "isnotempty(Signer)"),
        ] {
            let mut notes = Notes::default();
            assert_eq!(
                Kql.predicate("Signer", &pred, &mut notes),
                expected,
                "{pred:?}"
            );
        }
    }
}
