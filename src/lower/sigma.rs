//! Sigma (specification v2). Predicates become named selections with modifiers;
//! exclusions become `filter_*` selections (`condition: selection and not 1 of
//! filter_*`); an aggregation becomes an `event_count` correlation rule.

use super::{ApproxKind, Dialect, LowerInput, Notes, RuleFile, TargetSpec, one_line};
use crate::error::{Error, ErrorKind, Result};
use crate::ir::{Case, Expr, MatchKind, Predicate, Quantifier};
use serde_json::{Value, json};

pub(crate) struct Sigma;

/// The registry entry of sigma.
pub(crate) const SPEC: TargetSpec = TargetSpec {
    name: "sigma",
    description: "Sigma rules (specification v2), with a correlation rule for aggregations",
    dialect: &Sigma,
    rule_files: &[
        RuleFile {
            template: "rule.tera",
            extension: "yml",
        },
    ],
    gathered: &[],
    default_profile: "defender",
};


/// The term boundary in Sigma regexes. Python's `re` (pySigma, sigma-cli) has no
/// `\p{..}` classes; there `[\W_]` is exactly "not a letter or digit". Other
/// engines read `\w` differently: the approximation is reported.
pub const SIGMA_BOUNDARY: &str = r"[\W_]";

/// A plain (non-regex) Sigma value: `\`, `*` and `?` escaped with a backslash.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '*' | '?') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One line of a selection map: `field|modifiers` and its values (a list is OR,
/// or AND with `|all`).
#[derive(Debug, Clone, PartialEq)]
struct Item {
    key: String,
    values: Vec<Value>,
}

/// The table from match kind to Sigma modifiers. Returns several items when the
/// predicate needs more than one selection (empty = missing or "").
fn items(field: &str, p: &Predicate, notes: &mut Notes) -> Vec<Item> {
    let cased = if p.case == Case::Sensitive {
        "|cased"
    } else {
        ""
    };
    let all = if p.quantifier == Quantifier::All && p.values.len() > 1 {
        "|all"
    } else {
        ""
    };
    let plain = |v: &String| Value::String(escape_value(v));
    if p.kind == MatchKind::Term {
        note_sigma_term(p, notes);
    }
    if super::needs_ascii_classes(p, true) && p.kind.takes_values() {
        // Sigma folds non-ASCII letters without |cased: spell ASCII folding out in |re.
        let values = p
            .values
            .iter()
            .map(|v| {
                let body = super::ascii_classes(v, regex::escape);
                Value::String(match p.kind {
                    MatchKind::Equals => format!("^{body}$"),
                    MatchKind::Contains => body,
                    MatchKind::Prefix => format!("^{body}"),
                    MatchKind::Suffix => format!("{body}$"),
                    _ => super::term_regex_around(v, &body, SIGMA_BOUNDARY),
                })
            })
            .collect();
        return vec![Item {
            key: format!("{field}|re{all}"),
            values,
        }];
    }
    let (modifier, values): (&str, Vec<Value>) = match p.kind {
        MatchKind::Empty | MatchKind::NotEmpty => {
            return vec![
                Item {
                    key: field.to_string(),
                    values: vec![Value::String(String::new())],
                },
                Item {
                    key: field.to_string(),
                    values: vec![Value::Null],
                },
            ];
        }
        MatchKind::Equals => ("", p.values.iter().map(plain).collect()),
        MatchKind::Contains => ("|contains", p.values.iter().map(plain).collect()),
        MatchKind::Prefix => ("|startswith", p.values.iter().map(plain).collect()),
        MatchKind::Suffix => ("|endswith", p.values.iter().map(plain).collect()),
        MatchKind::Term => {
            let i = if p.case == Case::Insensitive {
                "|i"
            } else {
                ""
            };
            let key = format!("{field}|re{i}{all}");
            return vec![Item {
                key,
                values: p
                    .values
                    .iter()
                    .map(|v| {
                        Value::String(super::term_regex_around(
                            v,
                            &regex::escape(v),
                            SIGMA_BOUNDARY,
                        ))
                    })
                    .collect(),
            }];
        }
        MatchKind::Regex => {
            notes.approximate(
                format!("regex on `{}`", p.field),
                ApproxKind::SigmaRegex,
            );
            let i = if p.case == Case::Insensitive {
                "|i"
            } else {
                ""
            };
            return vec![Item {
                key: format!("{field}|re{i}{all}"),
                values: p.values.iter().map(|v| Value::String(v.clone())).collect(),
            }];
        }
    };
    vec![Item {
        key: format!("{field}{modifier}{all}{cased}"),
        values,
    }]
}

fn note_sigma_term(p: &Predicate, notes: &mut Notes) {
    notes.approximate(
        format!("whole-term match on `{}`", p.field),
        ApproxKind::SigmaTermEdges,
    );
}

/// Builds named selections and the condition that combines them.
struct Selections<'a> {
    prefix: String,
    named: Vec<(String, Vec<Item>)>,
    notes: &'a mut Notes,
}

impl Selections<'_> {
    fn add(&mut self, items: Vec<Item>) -> String {
        let name = if self.named.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}_{}", self.prefix, self.named.len() + 1)
        };
        self.named.push((name.clone(), items));
        name
    }

    /// The condition text of an expression, adding its selections.
    fn condition(&mut self, input: &LowerInput, e: &Expr) -> Result<String> {
        Ok(match e {
            Expr::Match(p) => {
                let field = input.field(&p.field)?;
                let items = items(&field, p, self.notes);
                let is_empty_test = matches!(p.kind, MatchKind::Empty | MatchKind::NotEmpty);
                if is_empty_test {
                    let names: Vec<String> = items.into_iter().map(|i| self.add(vec![i])).collect();
                    let either = format!("({})", names.join(" or "));
                    if p.kind == MatchKind::NotEmpty {
                        format!("not {either}")
                    } else {
                        either
                    }
                } else {
                    self.add(items)
                }
            }
            Expr::All(xs) | Expr::Any(xs) => {
                // One map ANDs its keys: an `all` of plain predicates on distinct
                // fields is one selection.
                if matches!(e, Expr::All(_))
                    && let Some(items) = self.one_map(input, xs)?
                {
                    return Ok(self.add(items));
                }
                let word = if matches!(e, Expr::All(_)) {
                    " and "
                } else {
                    " or "
                };
                let parts = xs
                    .iter()
                    .map(|x| self.condition(input, x))
                    .collect::<Result<Vec<_>>>()?;
                if parts.len() == 1 {
                    parts.into_iter().next().expect("one part")
                } else {
                    format!("({})", parts.join(word))
                }
            }
            Expr::Not(x) => format!("not {}", self.condition(input, x)?),
        })
    }

    fn one_map(&mut self, input: &LowerInput, xs: &[Expr]) -> Result<Option<Vec<Item>>> {
        let mut out: Vec<Item> = Vec::new();
        let mut scratch = Notes::default();
        for x in xs {
            let Expr::Match(p) = x else { return Ok(None) };
            if matches!(p.kind, MatchKind::Empty | MatchKind::NotEmpty) {
                return Ok(None);
            }
            let field = input.field(&p.field)?;
            let mut its = items(&field, p, &mut scratch);
            if its.len() != 1 || out.iter().any(|i| i.key == its[0].key) {
                return Ok(None);
            }
            out.push(its.remove(0));
        }
        self.notes.absorb(scratch);
        Ok(Some(out))
    }
}

impl Dialect for Sigma {
    /// One selection line, as `key: value` (or `key: [a, b]`).
    fn predicate(&self, field: &str, p: &Predicate, notes: &mut Notes) -> String {
        items(field, p, notes)
            .iter()
            .map(|i| {
                let values: Vec<String> = i.values.iter().map(Value::to_string).collect();
                if values.len() == 1 {
                    format!("{}: {}", i.key, values[0])
                } else {
                    format!("{}: [{}]", i.key, values.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(" / ")
    }

    fn context(&self, input: &LowerInput, notes: &mut Notes) -> Result<Value> {
        let rule = input.rule;
        let mut selections = Selections {
            prefix: "selection".into(),
            named: Vec::new(),
            notes,
        };
        let mut condition = selections.condition(input, &rule.detection)?;
        let mut named = std::mem::take(&mut selections.named);
        let mut filters_all_single = true;
        let mut filter_conditions = Vec::new();
        let applied = input.applied_exclusions();
        let names: Vec<&str> = applied.iter().map(|x| x.name.as_str()).collect();
        let prefixes = filter_prefixes(&names);
        let mut owner: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        for (x, prefix) in applied.iter().zip(prefixes) {
            let mut sel = Selections {
                prefix,
                named: Vec::new(),
                notes: selections.notes,
            };
            let c = sel.condition(input, &x.drop_when)?;
            filters_all_single &= sel.named.len() == 1 && c == sel.named[0].0;
            filter_conditions.push(c);
            for (name, _) in &sel.named {
                if let Some(first) = owner.insert(name.clone(), &x.name) {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "exclusions `{first}` and `{}` both become the Sigma selection `{name}`: rename one of them",
                            x.name
                        ),
                    )
                    .in_file(input.rule_file));
                }
            }
            named.extend(sel.named);
        }
        let notes = selections.notes;
        if !filter_conditions.is_empty() {
            condition = if filters_all_single {
                format!("{condition} and not 1 of filter_*")
            } else {
                let parts: Vec<String> = filter_conditions
                    .iter()
                    .map(|c| format!("not {c}"))
                    .collect();
                format!("{condition} and {}", parts.join(" and "))
            };
        }
        let detection: Vec<Value> = named
            .into_iter()
            .map(|(name, items)| {
                json!({
                    "name": name,
                    "items": items.into_iter().map(|i| json!({"key": i.key, "values": i.values})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut logsource = serde_json::Map::new();
        for key in ["category", "product", "service", "definition"] {
            if let Some(v) = input
                .profile
                .source(rule.source)?
                .settings
                .get(&format!("logsource.{key}"))
            {
                logsource.insert(key.to_string(), Value::String(v.clone()));
            }
        }
        let mut fields: Vec<String> = Vec::new();
        let correlation = match &rule.aggregation {
            None => {
                notes.approximate(
                    "time window",
                    ApproxKind::SigmaNoLookBack {
                        window: rule.window.shorthand(),
                    },
                );
                None
            }
            Some(agg) => {
                let by = agg
                    .group_by
                    .iter()
                    .map(|f| input.field(f))
                    .collect::<Result<Vec<_>>>()?;
                let counted: Vec<&str> = agg
                    .outputs
                    .iter()
                    .filter(|o| !matches!(o.function, crate::ir::AggFunction::Count))
                    .map(|o| o.name.as_str())
                    .collect();
                if !counted.is_empty() {
                    notes.approximate(
                        "aggregation",
                        ApproxKind::CorrelationCountsOnly {
                            outputs: counted.iter().map(|o| o.to_string()).collect(),
                        },
                    );
                }
                notes.approximate(
                    "time window",
                    ApproxKind::CorrelationTimespan {
                        window: rule.window.shorthand(),
                    },
                );
                fields.extend(by.iter().cloned());
                for o in &agg.outputs {
                    if let Some(f) = o.function.field() {
                        let name = input.field(f)?;
                        if !fields.contains(&name) {
                            fields.push(name);
                        }
                    }
                }
                Some(json!({
                    "id": derived_id(&rule.meta.id),
                    "title": format!("{} (event count)", rule.meta.name),
                    "group_by": by,
                    "timespan": rule.window.shorthand(),
                }))
            }
        };
        if !rule.constants.is_empty() {
            notes.approximate(
                "constant columns",
                ApproxKind::SigmaConstantColumns,
            );
        }
        let tags: Vec<String> = rule
            .meta
            .tactics
            .iter()
            .map(|t| {
                format!(
                    "attack.{}",
                    crate::attack::tactic(t).1.to_lowercase().replace(' ', "-")
                )
            })
            .chain(
                rule.meta
                    .techniques
                    .iter()
                    .map(|t| format!("attack.{}", t.to_lowercase())),
            )
            .collect();
        Ok(json!({
            "logsource": logsource,
            "detection": detection,
            "condition": condition,
            "fields": fields,
            "correlation": correlation,
            "tags": tags,
            "rule_name": rule_name(rule),
            "known_fps": rule.exclusions.iter().map(|x| one_line(&format!("{}: {}", x.scenario, x.description))).collect::<Vec<_>>(),
        }))
    }
}

/// The selection name prefix of each exclusion, `filter_<name>`, unique by
/// construction: names that sanitize alike (`a b`, `a_b`), to nothing, or to
/// another filter's numbered selection (`a` has `filter_a_2`, so `a_2` may not)
/// get their position appended (`filter_a_b_x2`).
fn filter_prefixes(names: &[&str]) -> Vec<String> {
    let plain: Vec<String> = names
        .iter()
        .map(|n| format!("filter_{}", sanitize_identifier(n)))
        .collect();
    plain
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let clashes = p.trim_start_matches("filter_").trim_matches('_').is_empty()
                || plain.iter().enumerate().any(|(j, other)| {
                    j != i
                        && (other == p && j < i
                            || p.strip_prefix(other.as_str())
                                .and_then(|rest| rest.strip_prefix('_'))
                                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit())))
                });
            if clashes {
                format!("{p}_x{}", i + 1)
            } else {
                p.clone()
            }
        })
        .collect()
}

fn sanitize_identifier(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The Sigma `name` of the base rule, referenced by its correlation rule: tool and
/// data source, and the start of the rule's id, which makes two rules of one tool
/// and source distinct (`rmm_netsupport_process_creation_54ce8c70`). Builds check
/// that no two rules share one ([`crate::pack`]).
pub fn rule_name(rule: &crate::ir::Rule) -> String {
    let id: String = rule.meta.id.chars().take(8).collect();
    format!(
        "rmm_{}_{}_{id}",
        sanitize_identifier(&rule.meta.tool),
        rule.source.as_str()
    )
}

/// A stable UUID for the correlation rule, derived from the base rule's id so that
/// rebuilding never changes it (FNV-1a 128-bit, formatted as a version-4 UUID).
pub fn derived_id(id: &str) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in format!("rmmc-correlation:{id}").bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    let hex = format!("{h:032x}");
    let mut chars: Vec<char> = hex.chars().collect();
    chars[12] = '4';
    chars[16] = ['8', '9', 'a', 'b'][(h as usize) & 3];
    let s: String = chars.into_iter().collect();
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_backslashes_are_escaped() {
        for (value, expected) in [
            ("NetSupport.exe", "NetSupport.exe"),
            ("a*b?c", r"a\*b\?c"),
            (r"C:\dir\", r"C:\\dir\\"),
            (r"\*", r"\\\*"),
            ("quote ' and \"", "quote ' and \""),
            ("Krämer", "Krämer"),
        ] {
            assert_eq!(escape_value(value), expected, "{value}");
        }
    }

    #[test]
    fn derived_ids_are_stable_uuids() {
        let a = derived_id("b05f18dd-69df-4dc3-9eed-04b29d379ee5");
        assert_eq!(a, derived_id("b05f18dd-69df-4dc3-9eed-04b29d379ee5"));
        assert_ne!(a, derived_id("54ce8c70-403e-4659-88f7-8bd63a10fdca"));
        assert!(crate::text::is_uuid(&a), "{a}");
    }
}
