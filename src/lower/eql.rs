//! Elastic EQL. `:` (case-insensitive, whole-string, wildcards) for equality and
//! affixes, `==`/`in`/`startsWith`... for cased comparisons, and for whole terms a
//! `:` prefilter plus an anchored Lucene `regex`/`regex~`. EQL has no aggregation and
//! no time range: the rule file carries the window (`from`) and alert suppression.

use super::{ApproxKind, Dialect, Gathered, LowerInput, Notes, RuleFile, TargetSpec};
use crate::error::Result;
use crate::ir::{Case, MatchKind, Predicate, Quantifier};
use serde_json::json;

pub(crate) struct Eql;

/// The registry entry of eql.
pub(crate) const SPEC: TargetSpec = TargetSpec {
    name: "eql",
    description: "Elastic Event Query Language: Elastic Security detection rules (NDJSON)",
    dialect: &Eql,
    rule_files: &[
        RuleFile {
            template: "query.tera",
            extension: "eql",
        },
        RuleFile {
            template: "rule.tera",
            extension: "ndjson",
        },
    ],
    gathered: &[
        Gathered::Concat {
            path: "rules.ndjson",
            extension: "ndjson",
            separator: "",
        },
    ],
    default_profile: "ecs",
};


/// An EQL string literal: `"..."` with `\\`, `\"`, `\n`, `\r`, `\t` escaped.
pub fn quote(s: &str) -> String {
    super::backslash_quoted(s, true)
}

/// A field name, in backticks unless it is a plain dotted name.
pub fn field_name(name: &str) -> String {
    if super::is_plain_name(name, ".") {
        name.to_string()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}

/// A Lucene regexp that matches the literal: every reserved character escaped.
pub fn lucene_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if ".?+*|{}[]()\"\\#@&<>~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Lucene regexp (whole-string) for a whole-term match, with ASCII boundaries where
/// the needle ends in a letter or digit.
pub fn term_regex(needle: &str) -> String {
    term_regex_around(needle, &lucene_escape(needle))
}

fn term_regex_around(needle: &str, body: &str) -> String {
    let (before, after) = super::term_edges(needle);
    format!(
        "{}{body}{}",
        if before { "(.*[^a-zA-Z0-9])?" } else { ".*" },
        if after { "([^a-zA-Z0-9].*)?" } else { ".*" },
    )
}

/// Characters a `:` wildcard pattern gives a meaning: `*`, `?` and the backslash
/// that escapes them. Values with any of them go through `regex` instead.
fn has_wildcard(v: &str) -> bool {
    v.contains(['*', '?', '\\'])
}

impl Dialect for Eql {
    fn predicate(&self, field: &str, p: &Predicate, notes: &mut Notes) -> String {
        let f = field_name(field);
        let regex_op = match p.case {
            Case::Insensitive => "regex~",
            Case::Sensitive => "regex",
        };
        let many = p.values.len() > 1;
        let classes = super::needs_ascii_classes(p, false);
        let plain_values = !p.values.iter().any(|v| has_wildcard(v)) && !classes;
        let list = |values: &[String]| {
            values
                .iter()
                .map(|v| quote(v))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (p.kind, p.case, p.quantifier) {
            (MatchKind::Empty, _, _) => return format!("({f} == null or {f} == \"\")"),
            (MatchKind::NotEmpty, _, _) => return format!("({f} != null and {f} != \"\")"),
            (MatchKind::Equals, Case::Insensitive, Quantifier::Any) if many && plain_values => {
                return format!("{f} : ({})", list(&p.values));
            }
            (MatchKind::Equals, Case::Sensitive, Quantifier::Any) if many => {
                return format!("{f} in ({})", list(&p.values));
            }
            _ => {}
        }
        if p.kind == MatchKind::Term {
            notes.approximate(
                format!("whole-term match on `{}`", p.field),
                ApproxKind::LuceneTermEdges,
            );
        }
        if p.kind == MatchKind::Regex {
            notes.approximate(
                format!("regex on `{}`", p.field),
                ApproxKind::LuceneRegex,
            );
        }
        let one = |v: &String| -> String {
            let wild = has_wildcard(v);
            if classes {
                // `:` and `regex~` fold non-ASCII letters too: spell ASCII folding out.
                let body = super::ascii_classes(v, lucene_escape);
                let pattern = match p.kind {
                    MatchKind::Equals => body,
                    MatchKind::Contains => format!(".*{body}.*"),
                    MatchKind::Prefix => format!("{body}.*"),
                    MatchKind::Suffix => format!(".*{body}"),
                    _ => term_regex_around(v, &body),
                };
                let exact = format!("{f} regex {}", quote(&pattern));
                return if p.kind == MatchKind::Term && !wild {
                    format!("({f} : {} and {exact})", quote(&format!("*{v}*")))
                } else {
                    exact
                };
            }
            match (p.kind, p.case) {
                (MatchKind::Equals, Case::Insensitive) if !wild => format!("{f} : {}", quote(v)),
                (MatchKind::Equals, Case::Sensitive) => format!("{f} == {}", quote(v)),
                (MatchKind::Contains, Case::Insensitive) if !wild => {
                    format!("{f} : {}", quote(&format!("*{v}*")))
                }
                (MatchKind::Prefix, Case::Insensitive) if !wild => {
                    format!("{f} : {}", quote(&format!("{v}*")))
                }
                (MatchKind::Suffix, Case::Insensitive) if !wild => {
                    format!("{f} : {}", quote(&format!("*{v}")))
                }
                (MatchKind::Contains, Case::Sensitive) => {
                    format!("stringContains({f}, {})", quote(v))
                }
                (MatchKind::Prefix, Case::Sensitive) => format!("startsWith({f}, {})", quote(v)),
                (MatchKind::Suffix, Case::Sensitive) => format!("endsWith({f}, {})", quote(v)),
                (MatchKind::Equals, _) => format!("{f} {regex_op} {}", quote(&lucene_escape(v))),
                (MatchKind::Contains, _) => {
                    format!(
                        "{f} {regex_op} {}",
                        quote(&format!(".*{}.*", lucene_escape(v)))
                    )
                }
                (MatchKind::Prefix, _) => {
                    format!(
                        "{f} {regex_op} {}",
                        quote(&format!("{}.*", lucene_escape(v)))
                    )
                }
                (MatchKind::Suffix, _) => {
                    format!(
                        "{f} {regex_op} {}",
                        quote(&format!(".*{}", lucene_escape(v)))
                    )
                }
                (MatchKind::Term, _) => {
                    let exact = format!("{f} {regex_op} {}", quote(&term_regex(v)));
                    if wild {
                        exact
                    } else {
                        format!("({f} : {} and {exact})", quote(&format!("*{v}*")))
                    }
                }
                (MatchKind::Regex, _) => format!("{f} {regex_op} {}", quote(&format!(".*({v}).*"))),
                (MatchKind::Empty | MatchKind::NotEmpty, _) => unreachable!("handled above"),
            }
        };
        let parts: Vec<String> = p.values.iter().map(one).collect();
        let word = if p.quantifier == Quantifier::All {
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

    /// EQL compares a missing field as null, and `not null` is null: the event would
    /// be dropped where KQL (missing = "") keeps it. Inside a `not`, a predicate is
    /// true only for a present field.
    fn guard_missing(&self, field: &str, p: &Predicate, text: String) -> String {
        match p.kind {
            MatchKind::Empty | MatchKind::NotEmpty => text,
            _ => format!("({} != null and {text})", field_name(field)),
        }
    }

    fn context(&self, input: &LowerInput, notes: &mut Notes) -> Result<serde_json::Value> {
        let rule = input.rule;
        let mut condition = self.expr(input, &rule.detection, notes)?;
        for x in self.exclusions(input, notes)? {
            condition = format!(
                "{condition}\n  and {}",
                x["condition"].as_str().unwrap_or_default()
            );
        }
        let suppression = match &rule.aggregation {
            None => None,
            Some(agg) => {
                let outputs: Vec<&str> = agg.outputs.iter().map(|o| o.name.as_str()).collect();
                let plan = suppression_fields(input, &agg.group_by)?;
                notes.approximate(
                    "aggregation",
                    ApproxKind::AlertPerEvent {
                        outputs: outputs.iter().map(|o| o.to_string()).collect(),
                        not_suppressed: plan
                            .left_out
                            .iter()
                            .map(|(f, why)| (f.to_string(), why.to_string()))
                            .collect(),
                    },
                );
                Some(json!({ "group_by": plan.group_by }))
            }
        };
        if !rule.constants.is_empty() {
            notes.approximate(
                "constant columns",
                ApproxKind::EqlConstantColumns,
            );
        }
        let (amount, unit) = window_parts(rule.window.seconds);
        notes.approximate(
            "time window",
            ApproxKind::AlertingSchedule {
                window: rule.window.shorthand(),
                interval: SCHEDULE_INTERVAL.to_string(),
                look_back: SCHEDULE_LOOK_BACK.to_string(),
            },
        );
        let source = input.profile.source(rule.source)?;
        let tactics = rule
            .meta
            .tactics
            .iter()
            .map(|t| format!("Tactic: {}", crate::attack::tactic(t).1));
        let tags: Vec<String> = [
            "Domain: Endpoint",
            "OS: Windows",
            "Use Case: Threat Detection",
        ]
        .into_iter()
        .map(String::from)
        .chain(tactics)
        .chain([
            format!("Data Source: {}", source.data_title),
            format!("Tool: {}", rule.meta.tool),
        ])
        .collect();
        Ok(json!({
            "category": input.setting("category")?,
            "index": input.setting("index")?,
            "condition": condition,
            "interval": SCHEDULE_INTERVAL,
            "from": format!("now-{SCHEDULE_LOOK_BACK}"),
            "window_value": amount,
            "window_unit": unit,
            "suppression": suppression,
            "tags": tags,
        }))
    }
}

/// How often Kibana runs an rmmc rule, and over how much time. An alerting rule
/// reads each event once as it arrives: a 5-day look-back every 5 minutes would
/// re-read the same events 1,440 times. 9 minutes every 5 (Elastic's own prebuilt
/// rules' schedule) leaves 4 minutes for events that are indexed late; Kibana does
/// not alert twice on one event read by overlapping runs. The rule's own look-back
/// window becomes the alert-suppression duration.
pub const SCHEDULE_INTERVAL: &str = "5m";
pub const SCHEDULE_LOOK_BACK: &str = "9m";

/// Kibana's rule API accepts at most this many `alert_suppression.group_by` fields.
pub const MAX_SUPPRESSION_FIELDS: usize = 3;

/// The suppression fields for a rule's group fields, and the group fields left out
/// with why.
struct SuppressionPlan {
    group_by: Vec<String>,
    left_out: Vec<(String, String)>,
}

/// At most [`MAX_SUPPRESSION_FIELDS`] of the group fields, in the rule's order: a
/// field the data does not record is left out (it would put every alert in one
/// group); then `host.name` beside `host.id` (it names the same host, so the groups
/// do not change); then, if still too many, the last ones.
fn suppression_fields(input: &LowerInput, group_by: &[String]) -> Result<SuppressionPlan> {
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut left_out = Vec::new();
    for canonical in group_by {
        match input.optional_field(canonical)? {
            Some(name) if !kept.iter().any(|(_, n)| *n == name) => {
                kept.push((canonical.clone(), name))
            }
            Some(name) => left_out.push((
                canonical.clone(),
                format!("read as `{name}`, already a suppression field"),
            )),
            None => left_out.push((
                canonical.clone(),
                "the profile's data does not record it".to_string(),
            )),
        }
    }
    let same_host = kept.iter().any(|(c, _)| c == "host.id");
    if kept.len() > MAX_SUPPRESSION_FIELDS && same_host {
        kept.retain(|(c, _)| {
            let redundant = c == "host.name";
            if redundant {
                left_out.push((
                    c.clone(),
                    "it names the same host as `host.id`, so the groups are the same without it"
                        .to_string(),
                ));
            }
            !redundant
        });
    }
    while kept.len() > MAX_SUPPRESSION_FIELDS {
        let (c, _) = kept.pop().expect("more than the limit");
        left_out.push((
            c,
            format!("Kibana suppresses on at most {MAX_SUPPRESSION_FIELDS} fields"),
        ));
    }
    Ok(SuppressionPlan {
        group_by: kept.into_iter().map(|(_, n)| n).collect(),
        left_out,
    })
}

/// Alert-suppression durations take `s`, `m` or `h`.
fn window_parts(seconds: u64) -> (u64, &'static str) {
    if seconds.is_multiple_of(3600) {
        (seconds / 3600, "h")
    } else if seconds.is_multiple_of(60) {
        (seconds / 60, "m")
    } else {
        (seconds, "s")
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
            (r"C:\dir\", r#""C:\\dir\\""#),
            ("a\nb\r\t", r#""a\nb\r\t""#),
            ("*?", r#""*?""#),
            ("TEKNOPARS BİLİŞİM", r#""TEKNOPARS BİLİŞİM""#),
        ] {
            assert_eq!(quote(value), expected, "{value:?}");
        }
    }

    #[test]
    fn lucene_reserved_characters_are_escaped() {
        for (value, expected) in [
            ("PDQ.com", r"PDQ\.com"),
            ("a?b+c*", r"a\?b\+c\*"),
            ("(x)[y]{z}", r"\(x\)\[y\]\{z\}"),
            ("a|b", r"a\|b"),
            ("\"q\"", r#"\"q\""#),
            (r"a\b", r"a\\b"),
            ("#@&<>~", r"\#\@\&\<\>\~"),
            ("Krämer", "Krämer"),
        ] {
            assert_eq!(lucene_escape(value), expected, "{value}");
        }
    }

    #[test]
    fn field_names_with_special_characters_use_backticks() {
        assert_eq!(field_name("process.name"), "process.name");
        assert_eq!(field_name("@timestamp"), "`@timestamp`");
        assert_eq!(field_name("a`b c"), "`a``b c`");
    }
}
