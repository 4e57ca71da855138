//! Sigma (specification v2). Predicates become named selections with modifiers;
//! exclusions become `filter_*` selections (`condition: selection and not 1 of
//! filter_*`); an aggregation becomes an `event_count` correlation rule.

use super::{ApproxKind, Dialect, Gathered, LowerInput, Notes, RuleFile, TargetSpec, one_line};
use crate::error::{Error, ErrorKind, Result};
use crate::ir::{Case, Expr, MatchKind, Predicate, Quantifier};
use serde_json::{Value, json};

pub(crate) struct Sigma;

/// The registry entry of sigma.
pub(crate) const SPEC: TargetSpec = TargetSpec {
    name: "sigma",
    description: "Sigma rules (specification v2), each aggregation as a correlation rule in a file of its own",
    dialect: &Sigma,
    // Named after SigmaHQ's file-name convention by the context's `file_names`.
    rule_files: &[
        RuleFile {
            template: "rule.tera",
            extension: "yml",
        },
        RuleFile {
            template: "correlation.tera",
            extension: "correlation.yml",
        },
    ],
    // A pySigma processing pipeline for rmmc's own `file_signature` category, so
    // `sigma convert -p pipelines/... -p microsoft_xdr` knows its table and columns.
    gathered: &[Gathered::Fixed {
        path: "pipelines/rmmc_file_signature_microsoft_xdr.yaml",
        template: "pipeline_microsoft_xdr.tera",
    }],
    // The Sigma taxonomy, which sigma-cli's standard pipelines expect; `defender`
    // keeps the Defender column names.
    default_profile: "taxonomy",
};

/// The term boundary in Sigma regexes. Python's `re` (pySigma, sigma-cli) has no
/// `\p{..}` classes; there `[\W_]` is exactly "not a letter or digit". Other
/// engines read `\w` differently: the approximation is reported.
pub const SIGMA_BOUNDARY: &str = r"[\W_]";

/// A plain (non-regex) Sigma value: `*` and `?` escaped with a backslash, and a
/// backslash doubled only where Sigma would read it as an escape (before `*`, `?`,
/// `\` or at the end), so paths read as SigmaHQ writes them: `\NetSupport.exe`.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let escape = match c {
            '*' | '?' => true,
            '\\' => matches!(chars.peek(), None | Some('*' | '?' | '\\')),
            _ => false,
        };
        if escape {
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

/// The table from match kind to Sigma modifiers. Native modifiers wherever they say
/// exactly what the rule says: a plain value (Sigma compares case-insensitively),
/// `|contains`, `|startswith`, `|endswith`, `|cased`, `|all`. `|re` only for a
/// whole term (no Sigma modifier has term boundaries), for an ASCII-folded value
/// with non-ASCII letters (Sigma engines fold those, KQL does not) and for a regex
/// predicate. Several items are ANDed in one selection, except for an emptiness test,
/// whose items are alternatives (empty = missing or "").
///
/// A whole term is also a `|contains` of the value, which the `|re` implies: it
/// changes no match, gives backends an indexed prefilter, and keeps a selection from
/// being regex-only (pySigma's splunk backend defers every `|re` to a `| regex`
/// stage and drops a rule whose search is left empty).
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
    let regex_only = p.kind == MatchKind::Term
        || (p.kind.takes_values()
            && p.kind != MatchKind::Regex
            && p.case == Case::Insensitive
            && super::has_non_ascii_cased(&p.values));
    if regex_only {
        let values: Vec<Value> = p
            .values
            .iter()
            .map(|v| Value::String(literal_regex(p.kind, p.case, v)))
            .collect();
        if matches!(p.kind, MatchKind::Equals | MatchKind::Suffix) {
            notes.approximate(
                format!("end of value on `{}`", p.field),
                ApproxKind::SigmaEndAnchor,
            );
        }
        let regex = Item {
            key: format!("{field}|re{all}"),
            values,
        };
        if p.kind == MatchKind::Term {
            return vec![term_prefilter(field, p), regex];
        }
        return vec![regex];
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
        MatchKind::Term => unreachable!("whole terms are regexes, above"),
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

/// The `|contains` a whole-term match implies (see [`items`]).
fn term_prefilter(field: &str, p: &Predicate) -> Item {
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
    Item {
        key: format!("{field}|contains{all}{cased}"),
        values: p
            .values
            .iter()
            .map(|v| Value::String(escape_value(v)))
            .collect(),
    }
}

/// The `|re` pattern of a literal predicate. A case-insensitive pattern starts with
/// `(?i)` and pins `k` and `s` to their ASCII cases with `(?-i:[Kk])`: under `(?i)`
/// every Sigma regex engine (Python's re, PCRE, RE2, Rust regex) folds by Unicode,
/// where the Kelvin sign K and the long s ſ fold to them, and KQL does not. A value
/// with non-ASCII cased letters is spelled as ASCII classes (`[Kk]r(ä)...`) with no
/// flag at all: a `(?-i:ä)` guard would be exact too, but an engine that lower-cases
/// the input for `(?i)` patterns (rsigma does) then loses the case of `Ä`.
pub fn literal_regex(kind: MatchKind, case: Case, value: &str) -> String {
    let (flag, body) = literal_body(case, value);
    let pattern = match kind {
        MatchKind::Equals => format!("^{body}$"),
        MatchKind::Prefix => format!("^{body}"),
        MatchKind::Suffix => format!("{body}$"),
        MatchKind::Term => super::term_regex_around(value, &body, SIGMA_BOUNDARY),
        _ => body,
    };
    format!("{flag}{pattern}")
}

/// The inline flag and the pattern of a literal under the rule's case (see
/// [`literal_regex`]).
fn literal_body(case: Case, value: &str) -> (&'static str, String) {
    match case {
        Case::Sensitive => ("", regex::escape(value)),
        Case::Insensitive if super::has_non_ascii_cased(&[value.to_string()]) => {
            ("", super::ascii_classes(value, regex::escape))
        }
        Case::Insensitive => ("(?i)", guarded_folding(value)),
    }
}

/// The literal as a pattern for use under `(?i)`: characters escaped, `k` and `s`
/// pinned to their two ASCII cases.
fn guarded_folding(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if matches!(c, 'k' | 'K' | 's' | 'S') {
            out.push_str(&format!(
                "(?-i:[{}{}])",
                c.to_ascii_uppercase(),
                c.to_ascii_lowercase()
            ));
        } else {
            out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
        }
    }
    out
}

fn note_sigma_term(p: &Predicate, notes: &mut Notes) {
    notes.approximate(
        format!("whole-term match on `{}`", p.field),
        ApproxKind::SigmaTermEdges,
    );
}

/// Where a profile's data holds a canonical field.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    /// Under its own name.
    Field(String),
    /// As the file name at the end of the path recorded in this field: Sysmon's
    /// `Image` holds `C:\...\NetSupport.exe`, the rule asks for `NetSupport.exe`.
    FileNameIn(String),
}

/// The place of a canonical field in the profile's data. A source's setting
/// `file_name_fields` lists the canonical file-name fields whose mapped field holds
/// the whole path.
fn place(input: &LowerInput, canonical: &str) -> Result<Place> {
    let field = input.field(canonical)?;
    let map = input.profile.source(input.rule.source)?;
    let in_path = map
        .settings
        .get(FILE_NAME_FIELDS)
        .is_some_and(|list| list.split_whitespace().any(|f| f == canonical));
    Ok(if in_path {
        Place::FileNameIn(field)
    } else {
        Place::Field(field)
    })
}

/// The setting naming the canonical fields that a profile's data records as the
/// end of a path (see [`Place::FileNameIn`]).
pub const FILE_NAME_FIELDS: &str = "file_name_fields";

/// The items of a predicate on a file name that the data records as the end of a
/// path: equality and suffix are `|endswith` (`\NetSupport.exe`), anything else a
/// `|re` confined to the path's last component.
fn file_name_items(path_field: &str, p: &Predicate, notes: &mut Notes) -> Vec<Item> {
    notes.approximate(
        format!("file name `{}`", p.field),
        ApproxKind::FileNameFromPath {
            path_field: path_field.to_string(),
        },
    );
    let cased = if p.case == Case::Sensitive { "|cased" } else { "" };
    let all = if p.quantifier == Quantifier::All && p.values.len() > 1 {
        "|all"
    } else {
        ""
    };
    let ascii_fold = p.case == Case::Sensitive || !super::has_non_ascii_cased(&p.values);
    match p.kind {
        MatchKind::Empty | MatchKind::NotEmpty => items(path_field, p, notes),
        MatchKind::Equals if ascii_fold => vec![Item {
            key: format!("{path_field}|endswith{all}{cased}"),
            values: p
                .values
                .iter()
                .map(|v| Value::String(escape_value(&format!("\\{v}"))))
                .collect(),
        }],
        MatchKind::Suffix if ascii_fold => vec![Item {
            key: format!("{path_field}|endswith{all}{cased}"),
            values: p.values.iter().map(|v| Value::String(escape_value(v))).collect(),
        }],
        MatchKind::Regex => {
            notes.approximate(
                format!("regex on `{}`", p.field),
                ApproxKind::RegexOverPath {
                    path_field: path_field.to_string(),
                },
            );
            items(path_field, p, notes)
        }
        _ => {
            let regex = Item {
                key: format!("{path_field}|re{all}"),
                values: p
                    .values
                    .iter()
                    .map(|v| Value::String(file_name_regex(p.kind, p.case, v)))
                    .collect(),
            };
            if p.kind == MatchKind::Term {
                note_sigma_term(p, notes);
                vec![term_prefilter(path_field, p), regex]
            } else {
                vec![regex]
            }
        }
    }
}

/// A `|re` that matches `value` as the rule's match kind says, within the last
/// component of a Windows path (after the last `\`).
pub fn file_name_regex(kind: MatchKind, case: Case, value: &str) -> String {
    let (flag, body) = literal_body(case, value);
    // Outside the value, the file name holds no backslash.
    const REST: &str = r"[^\\]*";
    // A term boundary that stays inside the file name: not a letter, digit or `\`.
    const BOUNDARY: &str = r"(?:[^\w\\]|_)";
    let (before, after) = super::term_edges(value);
    let pattern = match kind {
        MatchKind::Equals => format!(r"\\{body}$"),
        MatchKind::Prefix => format!(r"\\{body}{REST}$"),
        MatchKind::Suffix => format!(r"\\{REST}{body}$"),
        MatchKind::Contains => format!(r"\\{REST}{body}{REST}$"),
        MatchKind::Term => format!(
            r"\\{}{body}{}$",
            if before { format!("(?:{REST}{BOUNDARY})?") } else { REST.to_string() },
            if after { format!("(?:{BOUNDARY}{REST})?") } else { REST.to_string() },
        ),
        _ => unreachable!("file_name_regex is for literal match kinds"),
    };
    format!("{flag}{pattern}")
}

/// The items of a predicate at its place in the data.
fn place_items(place: &Place, p: &Predicate, notes: &mut Notes) -> Vec<Item> {
    match place {
        Place::Field(field) => items(field, p, notes),
        Place::FileNameIn(path) => file_name_items(path, p, notes),
    }
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
                let items = place_items(&place(input, &p.field)?, p, self.notes);
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
            let its = place_items(&place(input, &p.field)?, p, &mut scratch);
            if its.iter().any(|i| out.iter().any(|o| o.key == i.key)) {
                return Ok(None);
            }
            out.extend(its);
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
        let name = rule_name(rule);
        let file_stem = file_stem(
            logsource.get("category").and_then(Value::as_str),
            &rule.meta.tool,
            input.rule_file,
            rule.source,
        );
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
                // Group by the fields the data records; a group field it lacks only
                // merges groups, which the correlation's approximation covers.
                let mut by = Vec::new();
                let mut lacking = Vec::new();
                for f in &agg.group_by {
                    match input.optional_field(f)? {
                        Some(name) => by.push(name),
                        None => lacking.push(f.clone()),
                    }
                }
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
                if !lacking.is_empty() {
                    notes.approximate(
                        "aggregation groups",
                        ApproxKind::CorrelationGroupsLacking {
                            lacking: lacking.clone(),
                            by: by.clone(),
                        },
                    );
                }
                if by.is_empty() {
                    notes.approximate(
                        "time window",
                        ApproxKind::SigmaNoLookBack {
                            window: rule.window.shorthand(),
                        },
                    );
                    None
                } else {
                    notes.approximate(
                        "time window",
                        ApproxKind::CorrelationTimespan {
                            window: rule.window.shorthand(),
                        },
                    );
                    Some(json!({
                        "id": derived_id(&rule.meta.id),
                        "title": sigma_title(&format!("{} - Event Count", rule.meta.name)),
                        "description": format!(
                            "Alerts once per group of {} when the rule {name} matches, with the number of its events within {}.",
                            by.join(", "),
                            rule.window.shorthand()
                        ),
                        "group_by": by,
                        "timespan": rule.window.shorthand(),
                    }))
                }
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
            "correlation": correlation,
            "tags": tags,
            "title": sigma_title(&rule.meta.name),
            "rule_name": name,
            "file_names": {
                "yml": format!("{file_stem}.yml"),
                "correlation.yml": format!("correlation_{file_stem}.yml"),
            },
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

/// A rule title in SigmaHQ's casing: every word that is all lower case becomes
/// capitalized, except the short words the convention keeps lower case (and words
/// with `.`, `/` or `_`, or starting with a digit, which it leaves alone); no final
/// dot.
pub fn sigma_title(name: &str) -> String {
    const LOWER: &[&str] = &[
        "a", "an", "and", "as", "at", "by", "for", "from", "in", "new", "of", "on", "or", "over",
        "the", "through", "to", "via", "with", "without",
    ];
    let words: Vec<String> = name
        .split(' ')
        .map(|w| {
            let keep = !w.chars().any(char::is_lowercase)
                || w.chars().any(char::is_uppercase)
                || LOWER.contains(&w)
                || w.contains(['.', '/', '_'])
                || w.starts_with(|c: char| c.is_ascii_digit());
            // The first letter after leading punctuation (`(formerly` → `(Formerly`).
            let lead = w.len() - w.trim_start_matches(|c: char| c.is_ascii_punctuation()).len();
            let (punct, rest) = w.split_at(lead);
            let mut c = rest.chars();
            let first = c.next();
            // Only a first letter whose capital is one letter that lower-cases back to
            // it (not `ß` → `SS`, nor the micro sign `µ` → Greek `Μ` → `μ`).
            let capital = first.and_then(|f| {
                let mut up = f.to_uppercase();
                let u = up.next().filter(|_| up.len() == 0)?;
                u.to_lowercase().eq(std::iter::once(f)).then_some(u)
            });
            match (keep, capital) {
                (false, Some(u)) => format!("{punct}{u}{}", c.as_str()),
                _ => w.to_string(),
            }
        })
        .collect();
    words.join(" ").trim_end_matches('.').to_string()
}

/// The file name (without `.yml`) of a rule's Sigma file, after SigmaHQ's file-name
/// convention: the log source's prefix (`proc_creation_win_`, `net_connection_win_`;
/// `win_` and the category for a category of rmmc's own), then `rmm_` and the tool
/// (and the rule file's name when it is not the kind's).
fn file_stem(
    category: Option<&str>,
    tool: &str,
    rule_file: &std::path::Path,
    source: crate::ir::DataSource,
) -> String {
    let prefix = match category {
        Some("process_creation") => "proc_creation_win".to_string(),
        Some("network_connection") => "net_connection_win".to_string(),
        // A category of rmmc's own: SigmaHQ's prefix for Windows rules outside the
        // known categories.
        Some(other) => format!("win_{}", sanitize_identifier(other)),
        None => "win".to_string(),
    };
    // A rule file not named after its kind (`createproc`, `netconn`, `filesig`) adds
    // its name, so two rules of one tool and source in one folder never share a file.
    let kind = match source {
        crate::ir::DataSource::ProcessCreation => "createproc",
        crate::ir::DataSource::NetworkConnection => "netconn",
        crate::ir::DataSource::FileSignature => "filesig",
    };
    let stem = rule_file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut name = format!("{prefix}_rmm_{}", sanitize_identifier(tool));
    if stem != kind {
        name.push('_');
        name.push_str(&sanitize_identifier(&stem));
    }
    name
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
            (r"C:\dir\", r"C:\dir\\"),
            (r"\NetSupport.exe", r"\NetSupport.exe"),
            (r"a\\b", r"a\\\b"),
            (r"\*", r"\\\*"),
            ("quote ' and \"", "quote ' and \""),
            ("Krämer", "Krämer"),
        ] {
            assert_eq!(escape_value(value), expected, "{value}");
        }
    }

    #[test]
    fn titles_follow_sigmahq_casing() {
        for (name, title) in [
            (
                "Remote Management and Monitoring tool - NetSupport - Create Process",
                "Remote Management and Monitoring Tool - NetSupport - Create Process",
            ),
            // A word with a dot is left as it is (SigmaHQ does not check it).
            ("connects to the internet via proxy.", "Connects to the Internet via proxy"),
            ("ßig v1.2 uses 3rd-party tools", "ßig v1.2 Uses 3rd-party Tools"),
            ("µ-agent tool", "µ-agent Tool"),
            // Leading punctuation: the first letter after it.
            (
                "Quest KACE Agent (formerly Dell KACE) - \"remote\" tool",
                "Quest KACE Agent (Formerly Dell KACE) - \"Remote\" Tool",
            ),
        ] {
            assert_eq!(sigma_title(name), title, "{name}");
        }
    }

    #[test]
    fn file_names_stay_in_the_last_path_component() {
        let re = |kind, value| {
            regex::Regex::new(&file_name_regex(kind, Case::Insensitive, value)).unwrap()
        };
        let prefix = re(MatchKind::Prefix, "level");
        assert!(prefix.is_match(r"C:\Program Files\Level\LEVEL-agent.exe"));
        assert!(!prefix.is_match(r"C:\Program Files\Level\agent.exe"));
        let term = re(MatchKind::Term, "netsupport");
        assert!(term.is_match(r"C:\x\NetSupport Client.exe"));
        assert!(!term.is_match(r"C:\NetSupport\client32.exe"));
        assert!(!term.is_match(r"C:\x\MyNetSupport.exe"));
        let contains = re(MatchKind::Contains, "support");
        assert!(contains.is_match(r"C:\x\netsupport.exe"));
        assert!(!contains.is_match(r"C:\support\x.exe"));
    }

    #[test]
    fn derived_ids_are_stable_uuids() {
        let a = derived_id("b05f18dd-69df-4dc3-9eed-04b29d379ee5");
        assert_eq!(a, derived_id("b05f18dd-69df-4dc3-9eed-04b29d379ee5"));
        assert_ne!(a, derived_id("54ce8c70-403e-4659-88f7-8bd63a10fdca"));
        assert!(crate::text::is_uuid(&a), "{a}");
    }
}
