//! Splunk SPL. The query is a `search` prefilter that is a superset of the rule
//! (case-insensitive wildcards, so the index does the heavy lifting), then one
//! `where` with the exact condition: `match()` for whole terms, affixes and
//! case-insensitive equality, `==` for case-sensitive equality. Missing fields are
//! first filled with `""`, as KQL reads them, so `NOT` never meets a null.
//!
//! The window is KQL's `between (now(-5d) .. now())`, inclusive at both ends:
//! `earliest=-5d` is inclusive, but `latest` is exclusive, so the search runs to
//! `latest=+1s` and `where _time<=now()` (the search's start time) ends it exactly.

use super::{ApproxKind, Dialect, Gathered, LowerInput, Notes, RuleFile, TargetSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::ir::{AggFunction, Case, Expr, MatchKind, Predicate, Quantifier};
use serde_json::json;

pub(crate) struct Spl;

/// The registry entry of spl.
pub(crate) const SPEC: TargetSpec = TargetSpec {
    name: "spl",
    description: "Splunk Search Processing Language: savedsearches.conf stanzas",
    dialect: &Spl,
    rule_files: &[
        RuleFile {
            template: "query.tera",
            extension: "spl",
        },
        RuleFile {
            template: "rule.tera",
            extension: "conf",
        },
    ],
    gathered: &[
        Gathered::Concat {
            path: "savedsearches.conf",
            extension: "conf",
            separator: "\n",
        },
    ],
    default_profile: "defender",
};


/// A quoted SPL string (search terms and eval/where literals): `\\` and `"` escaped.
pub fn quote(s: &str) -> String {
    super::backslash_quoted(s, false)
}

/// A field name inside `where`/`eval`: single-quoted unless it is a plain name.
pub fn where_field(name: &str) -> String {
    if super::is_plain_name(name, "") {
        name.to_string()
    } else {
        format!("'{}'", name.replace('\\', r"\\").replace('\'', r"\'"))
    }
}

/// A field name in `search`, `fillnull` and `stats`. These commands have no quoting
/// for names, so anything but letters, digits and `_ . : @ -` is refused.
pub fn search_field(name: &str) -> Result<String> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:@-".contains(c))
    {
        Ok(name.to_string())
    } else {
        Err(Error::new(
            ErrorKind::UnmappedField,
            format!("SPL field name `{name}` has characters search and stats cannot name"),
        ))
    }
}

/// A PCRE pattern for `match()`: the literal escaped, case folded by `(?i)`.
pub fn pcre_literal(kind: MatchKind, case: Case, value: &str) -> String {
    let body = match kind {
        MatchKind::Equals => format!(r"^{}\z", regex::escape(value)),
        MatchKind::Term => super::term_regex_unicode(value),
        MatchKind::Contains => regex::escape(value),
        MatchKind::Prefix => format!("^{}", regex::escape(value)),
        MatchKind::Suffix => format!(r"{}\z", regex::escape(value)),
        MatchKind::Regex => value.to_string(),
        MatchKind::Empty | MatchKind::NotEmpty => unreachable!("no pattern"),
    };
    match case {
        Case::Insensitive => format!("(?i){body}"),
        Case::Sensitive => body,
    }
}

/// A PCRE pattern for a case-insensitive literal with non-ASCII cased letters:
/// ASCII letters as classes, no `(?i)` (which would fold the non-ASCII ones too).
pub fn pcre_ascii_folded(kind: MatchKind, value: &str) -> String {
    let body = super::ascii_classes(value, regex::escape);
    match kind {
        MatchKind::Equals => format!(r"^{body}\z"),
        MatchKind::Term => super::term_regex_around(value, &body, super::UNICODE_BOUNDARY),
        MatchKind::Contains => body,
        MatchKind::Prefix => format!("^{body}"),
        MatchKind::Suffix => format!(r"{body}\z"),
        MatchKind::Regex | MatchKind::Empty | MatchKind::NotEmpty => unreachable!("no literal"),
    }
}

/// The search-time prefilter of one value: a case-insensitive wildcard term that
/// matches every event the exact condition matches. `None` where SPL cannot say it
/// (a literal `*` cannot be escaped in a search, and backslashes in search strings
/// are escaped again by some commands: the `where` alone is exact for those).
fn prefilter_value(kind: MatchKind, value: &str) -> Option<String> {
    if value.contains(['*', '\\']) {
        return None;
    }
    match kind {
        MatchKind::Equals => Some(value.to_string()),
        MatchKind::Term | MatchKind::Contains => Some(format!("*{value}*")),
        MatchKind::Prefix => Some(format!("{value}*")),
        MatchKind::Suffix => Some(format!("*{value}")),
        MatchKind::Regex | MatchKind::Empty | MatchKind::NotEmpty => None,
    }
}

fn prefilter_predicate(field: &str, p: &Predicate) -> Option<String> {
    let terms: Vec<Option<String>> = p
        .values
        .iter()
        .map(|v| prefilter_value(p.kind, v).map(|t| format!("{field}={}", quote(&t))))
        .collect();
    match p.quantifier {
        Quantifier::Any => {
            let all: Option<Vec<String>> = terms.into_iter().collect();
            join_terms(all?, "OR")
        }
        Quantifier::All => join_terms(terms.into_iter().flatten().collect(), "AND"),
    }
}

fn join_terms(terms: Vec<String>, word: &str) -> Option<String> {
    match terms.len() {
        0 => None,
        1 => terms.into_iter().next(),
        _ => Some(format!("({})", terms.join(&format!(" {word} ")))),
    }
}

impl Spl {
    fn prefilter(&self, input: &LowerInput, e: &Expr) -> Result<Option<String>> {
        Ok(match e {
            Expr::Match(p) => prefilter_predicate(&search_field(&input.field(&p.field)?)?, p),
            Expr::Not(_) => None,
            Expr::All(xs) => {
                let parts = xs
                    .iter()
                    .map(|x| self.prefilter(input, x))
                    .collect::<Result<Vec<_>>>()?;
                join_terms(parts.into_iter().flatten().collect(), "AND")
            }
            Expr::Any(xs) => {
                let parts = xs
                    .iter()
                    .map(|x| self.prefilter(input, x))
                    .collect::<Result<Option<Vec<_>>>>()?;
                parts.and_then(|p| join_terms(p, "OR"))
            }
        })
    }
}

impl Dialect for Spl {
    fn predicate(&self, field: &str, p: &Predicate, notes: &mut Notes) -> String {
        let f = where_field(field);
        let classes = super::needs_ascii_classes(p, true);
        let one = |v: &String| match (p.kind, p.case) {
            (MatchKind::Equals, Case::Sensitive) => format!("{f}=={}", quote(v)),
            (kind, _) if classes => format!("match({f}, {})", quote(&pcre_ascii_folded(kind, v))),
            (kind, case) => format!("match({f}, {})", quote(&pcre_literal(kind, case, v))),
        };
        match p.kind {
            MatchKind::Empty => format!("{f}==\"\""),
            MatchKind::NotEmpty => format!("{f}!=\"\""),
            kind => {
                if kind == MatchKind::Regex {
                    notes.approximate(
                        format!("regex on `{}`", p.field),
                        ApproxKind::PcreRegex,
                    );
                }
                let parts: Vec<String> = p.values.iter().map(one).collect();
                let word = if p.quantifier == Quantifier::All {
                    " AND "
                } else {
                    " OR "
                };
                if parts.len() == 1 {
                    parts.into_iter().next().expect("one value")
                } else {
                    format!("({})", parts.join(word))
                }
            }
        }
    }

    fn and_word(&self) -> &'static str {
        "AND"
    }

    fn or_word(&self) -> &'static str {
        "OR"
    }

    fn not_expr(&self, inner: &str) -> String {
        format!("NOT ({})", super::unwrap_parens(inner))
    }

    fn context(&self, input: &LowerInput, notes: &mut Notes) -> Result<serde_json::Value> {
        let rule = input.rule;
        let detection = self.expr(input, &rule.detection, notes)?;
        let prefilter = self.prefilter(input, &rule.detection)?;
        let applied = input.applied_exclusions();
        let exclusions = self.exclusions(input, notes)?;
        // Every field the conditions and groups read is filled with "" first.
        let mut fill: Vec<String> = Vec::new();
        let mut canonical: Vec<&str> = rule.detection.fields();
        for x in &applied {
            canonical.extend(x.drop_when.fields());
        }
        if let Some(agg) = &rule.aggregation {
            canonical.extend(agg.group_by.iter().map(String::as_str));
        }
        for f in canonical {
            let name = search_field(&input.field(f)?)?;
            if !fill.contains(&name) {
                fill.push(name);
            }
        }
        let stats = super::aggregation_parts(
            input,
            search_field,
            |function, field| {
                let f = field.unwrap_or_default();
                match function {
                    AggFunction::Min(_) => format!("min({f})"),
                    AggFunction::Max(_) => format!("max({f})"),
                    AggFunction::DistinctSet(_) => format!("values({f})"),
                    AggFunction::DistinctCount(_) => format!("dc({f})"),
                    AggFunction::Count => "count".to_string(),
                }
            },
            |name, call| Ok(format!("{call} as {}", search_field(name)?)),
        )?;
        let constants: Vec<_> = rule
            .constants
            .iter()
            .map(|c| Ok(json!({ "name": search_field(&c.name)?, "value": quote(&c.value) })))
            .collect::<Result<_>>()?;
        Ok(json!({
            "selector": input.setting("search")?,
            "window": rule.window.shorthand(),
            "prefilter": prefilter,
            "fill": fill,
            "detection": detection,
            "exclusions": exclusions,
            "stats": stats,
            "constants": constants,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_backslashes_and_quotes_only() {
        for (value, expected) in [
            ("netsupport", r#""netsupport""#),
            (r#"a"b"#, r#""a\"b""#),
            (r"C:\dir\", r#""C:\\dir\\""#),
            ("a|b [c]", r#""a|b [c]""#),
            ("*?", r#""*?""#),
            ("Krämer", r#""Krämer""#),
            ("a\nb", "\"a\nb\""),
        ] {
            assert_eq!(quote(value), expected, "{value:?}");
        }
    }

    #[test]
    fn pcre_patterns_escape_metacharacters() {
        use Case::*;
        use MatchKind::*;
        for (kind, case, value, expected) in [
            (
                Term,
                Insensitive,
                "netsupport",
                r"(?i)(^|[^\p{L}\p{N}])netsupport($|[^\p{L}\p{N}])",
            ),
            (
                Term,
                Sensitive,
                "PDQ.com",
                r"(^|[^\p{L}\p{N}])PDQ\.com($|[^\p{L}\p{N}])",
            ),
            (Equals, Insensitive, "a.exe", r"(?i)^a\.exe\z"),
            (Contains, Sensitive, "a+b(c)", r"a\+b\(c\)"),
            (Prefix, Insensitive, "C:\\", r"(?i)^C:\\"),
            (Suffix, Insensitive, "$x|y", r"(?i)\$x\|y\z"),
            (Regex, Insensitive, "^a.b", r"(?i)^a.b"),
        ] {
            assert_eq!(
                pcre_literal(kind, case, value),
                expected,
                "{kind:?} {value}"
            );
        }
    }

    #[test]
    fn prefilter_is_a_superset_or_nothing() {
        use MatchKind::*;
        for (kind, value, expected) in [
            (Term, "netsupport", Some("*netsupport*")),
            (Contains, "a b", Some("*a b*")),
            (Prefix, "a", Some("a*")),
            (Suffix, "a", Some("*a")),
            (Equals, "a", Some("a")),
            (Equals, "a*b", None),
            (Prefix, r"C:\Program Files", None),
            (Regex, "a", None),
        ] {
            assert_eq!(
                prefilter_value(kind, value).as_deref(),
                expected,
                "{kind:?} {value}"
            );
        }
    }

    #[test]
    fn names_that_search_cannot_say_are_refused() {
        assert!(search_field("properties.Signer").is_ok());
        assert!(search_field("a b").is_err());
        assert!(search_field("a\"b").is_err());
        assert_eq!(where_field("a.b"), "'a.b'");
        assert_eq!(where_field("Signer"), "Signer");
    }
}
