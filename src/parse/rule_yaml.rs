//! rmmc's own YAML rule format, strictly parsed: unknown keys are errors that list the
//! allowed keys, and every error carries the line and column serde_yaml reports.

use crate::error::{Error, ErrorKind, Result, parse_yaml, rejected, yaml_error};
use crate::ir::{
    Acknowledgement, AggFunction, Aggregation, Case, Constant, DataSource, Exclusion, Expr,
    MatchKind, Metadata, Output, Predicate, Quantifier, Rule, Severity, Status, Window,
};
use crate::text::is_uuid;
use serde::Deserialize;
use std::path::Path;

/// The top-level keys a rule must have (README: Rule format).
pub const REQUIRED_KEYS: &str = "`id`, `name`, `description`, `tool`, `tactics`, `techniques`, `source`, `window` and `detection`";

// The required keys are `Required` so that a missing one is found here, where it is
// known to be missing, and reported with the list of required keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    id: Required<RuleId>,
    #[serde(default)]
    name: Required<String>,
    #[serde(default)]
    description: Required<String>,
    #[serde(default)]
    references: Vec<String>,
    author: Option<String>,
    license: Option<String>,
    date: Option<RuleDate>,
    modified: Option<RuleDate>,
    #[serde(default)]
    tool: Required<String>,
    #[serde(default)]
    tactics: Required<Vec<String>>,
    #[serde(default)]
    techniques: Required<Vec<String>>,
    #[serde(default = "default_severity")]
    severity: Severity,
    #[serde(default = "default_status")]
    status: Status,
    #[serde(default)]
    source: Required<DataSource>,
    #[serde(default)]
    window: Required<WindowText>,
    #[serde(default)]
    detection: Required<RawExpr>,
    #[serde(default)]
    exclusions: Vec<RawExclusion>,
    aggregation: Option<RawAggregation>,
    #[serde(default)]
    constants: Vec<Constant>,
    #[serde(default)]
    acknowledged: Vec<Acknowledgement>,
}

/// A top-level key a rule must have: `Missing` when absent; when present, parsed (and
/// rejected, `null` included) as `T`.
#[derive(Default)]
enum Required<T> {
    #[default]
    Missing,
    Given(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Required<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Required::Given)
    }
}

impl<T> Required<T> {
    /// The value, or a schema error naming the missing `key` and every required key,
    /// at the start of the rule's mapping (where serde would point).
    fn value(self, key: &str, path: &Path, text: &str) -> Result<T> {
        match self {
            Required::Given(v) => Ok(v),
            Required::Missing => {
                let (line, column) = mapping_start(text);
                Err(Error::new(
                    ErrorKind::Schema,
                    format!("missing field `{key}`: a rule needs {REQUIRED_KEYS}"),
                )
                .in_file(path)
                .at(line, column))
            }
        }
    }
}

/// The line and column of the document's first key: its first line that is not
/// blank, a comment or the `---` document marker.
fn mapping_start(text: &str) -> (usize, usize) {
    text.lines()
        .enumerate()
        .find_map(|(i, line)| {
            let content = line.trim_start();
            let blank = content.is_empty() || content.starts_with('#') || line.trim_end() == "---";
            (!blank).then(|| (i + 1, line.len() - content.len() + 1))
        })
        .unwrap_or((1, 1))
}

fn default_severity() -> Severity {
    Severity::Medium
}

fn default_status() -> Status {
    Status::Experimental
}

/// A calendar date written `YYYY-MM-DD` (ISO 8601), as Sigma's `date`/`modified`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct RuleDate(String);

impl TryFrom<String> for RuleDate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let well_formed =
            s.len() == 10 && chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").is_ok();
        if well_formed {
            Ok(RuleDate(s))
        } else {
            Err(rejected(
                ErrorKind::InvalidValue,
                format!("date `{s}` is not a calendar date: expected YYYY-MM-DD, e.g. 2025-08-15"),
            ))
        }
    }
}

/// A UUID in its canonical 8-4-4-4-12 hexadecimal form.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct RuleId(String);

impl TryFrom<String> for RuleId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if is_uuid(&s) {
            Ok(RuleId(s.to_ascii_lowercase()))
        } else {
            Err(rejected(
                ErrorKind::InvalidValue,
                format!(
                    "id `{s}` is not a UUID: expected 8-4-4-4-12 hexadecimal digits, e.g. b05f18dd-69df-4dc3-9eed-04b29d379ee5"
                ),
            ))
        }
    }
}

/// `5d`, `12h`, `30m` or `90s`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct WindowText(Window);

impl TryFrom<String> for WindowText {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_window(&s)
            .map(WindowText)
            .map_err(|m| rejected(ErrorKind::InvalidValue, m))
    }
}

/// The longest KQL `timespan` (.NET `TimeSpan.MaxValue`, 10675199d 02:48:05), in
/// whole seconds: a longer window cannot be written in a KQL query.
pub const MAX_WINDOW_SECONDS: u64 = 922_337_203_685;

pub(crate) fn parse_window(s: &str) -> Result<Window, String> {
    let bad = || {
        format!(
            "window `{s}` is not a duration: expected a positive number and a unit d, h, m or s, e.g. 5d"
        )
    };
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = s.split_at(unit_at);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let size = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    match n.checked_mul(size) {
        Some(seconds) if seconds > MAX_WINDOW_SECONDS => Err(format!(
            "window `{s}` is longer than KQL's timespan range allows: at most {}d",
            MAX_WINDOW_SECONDS / 86_400
        )),
        Some(seconds) if seconds > 0 => Ok(Window { seconds }),
        _ => Err(bad()),
    }
}

/// One string or a list of strings. Written by hand rather than as an untagged
/// enum so that a number, a boolean or a YAML tag gets a message that says what to
/// write instead of serde's "did not match any variant".
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OneOrManyVisitor)
    }
}

struct OneOrManyVisitor;

impl<'de> serde::de::Visitor<'de> for OneOrManyVisitor {
    type Value = OneOrMany;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string or a list of strings (quote numbers and booleans: \"123\")")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
        let mut values = Vec::new();
        while let Some(v) = seq.next_element::<Text>()? {
            values.push(v.0);
        }
        Ok(OneOrMany::Many(values))
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<OneOrMany, A::Error> {
        Err(tag_error(data))
    }
}

/// A YAML tag (`!x value`) reaches a visitor as an enum: say that tags are not
/// allowed, naming the tag, instead of serde's enum wording.
fn tag_error<'de, A: serde::de::EnumAccess<'de>>(data: A) -> A::Error {
    use serde::de::Error as _;
    match data.variant::<String>() {
        Ok((tag, _)) => A::Error::custom(rejected(
            ErrorKind::Schema,
            format!(
                "the YAML tag `!{tag}` is not allowed: write the value as plain text, without a tag"
            ),
        )),
        Err(e) => e,
    }
}

/// One string of a list, with the same messages as [`OneOrMany`].
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string (quote numbers and booleans: \"123\")")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<Text, A::Error> {
                Err(tag_error(data))
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// One map is either a group (`all`, `any`, `not`) or a predicate (`field` and one kind).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawExprKeys")]
struct RawExpr(Expr);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExprKeys {
    all: Option<Vec<RawExpr>>,
    any: Option<Vec<RawExpr>>,
    not: Option<Box<RawExpr>>,
    field: Option<String>,
    equals: Option<OneOrMany>,
    has: Option<OneOrMany>,
    contains: Option<OneOrMany>,
    prefix: Option<OneOrMany>,
    suffix: Option<OneOrMany>,
    regex: Option<OneOrMany>,
    empty: Option<bool>,
    not_empty: Option<bool>,
    case: Option<Case>,
    #[serde(rename = "match")]
    quantifier: Option<Quantifier>,
}

impl TryFrom<RawExprKeys> for RawExpr {
    type Error = String;

    fn try_from(k: RawExprKeys) -> Result<Self, String> {
        RawExpr::checked(k).map_err(|(kind, message)| rejected(kind, message))
    }
}

impl RawExpr {
    /// The node the keys describe, or why they describe none: a shape that is not a
    /// group or a predicate is a schema error, a value a predicate cannot take an
    /// invalid value.
    fn checked(k: RawExprKeys) -> Result<RawExpr, (ErrorKind, String)> {
        use ErrorKind::{InvalidValue, Schema};
        let groups = [k.all.is_some(), k.any.is_some(), k.not.is_some()];
        let group_count = groups.iter().filter(|g| **g).count();
        let mut kinds: Vec<(MatchKind, Vec<String>)> = Vec::new();
        for (kind, values) in [
            (MatchKind::Equals, k.equals),
            (MatchKind::Term, k.has),
            (MatchKind::Contains, k.contains),
            (MatchKind::Prefix, k.prefix),
            (MatchKind::Suffix, k.suffix),
            (MatchKind::Regex, k.regex),
        ] {
            if let Some(v) = values {
                kinds.push((kind, v.into_vec()));
            }
        }
        for (kind, flag) in [
            (MatchKind::Empty, k.empty),
            (MatchKind::NotEmpty, k.not_empty),
        ] {
            match flag {
                Some(true) => kinds.push((kind, Vec::new())),
                Some(false) => {
                    return Err((
                        InvalidValue,
                        format!(
                            "`{}: false` is not allowed: write `{}: true`, or wrap it in `not`",
                            kind.as_str(),
                            kind.as_str()
                        ),
                    ));
                }
                None => {}
            }
        }
        let predicate_keys = k.field.is_some() || !kinds.is_empty();
        if group_count > 1 || (group_count == 1 && (predicate_keys || k.case.is_some())) {
            return Err((Schema, "a detection node is either one of `all`, `any`, `not`, or a predicate (`field` with one match kind), not both".into()));
        }
        if let Some(xs) = k.all {
            return Ok(RawExpr(Expr::All(xs.into_iter().map(|x| x.0).collect())));
        }
        if let Some(xs) = k.any {
            return Ok(RawExpr(Expr::Any(xs.into_iter().map(|x| x.0).collect())));
        }
        if let Some(x) = k.not {
            return Ok(RawExpr(Expr::Not(Box::new(x.0))));
        }
        let field = k.field.ok_or((Schema,
            "a detection node needs `all`, `any`, `not`, or `field` with one of `equals`, `has`, `contains`, `prefix`, `suffix`, `regex`, `empty`, `not_empty`".to_string(),
        ))?;
        let (kind, values) = match kinds.len() {
            1 => kinds.pop().expect("one kind"),
            0 => {
                return Err((
                    Schema,
                    format!(
                        "predicate on `{field}` needs one match kind: `equals`, `has`, `contains`, `prefix`, `suffix`, `regex`, `empty` or `not_empty`"
                    ),
                ));
            }
            _ => {
                let names: Vec<_> = kinds
                    .iter()
                    .map(|(k, _)| format!("`{}`", k.as_str()))
                    .collect();
                return Err((
                    Schema,
                    format!(
                        "predicate on `{field}` has {} match kinds ({}): use one per predicate and combine them with `all` or `any`",
                        names.len(),
                        names.join(", ")
                    ),
                ));
            }
        };
        if kind.takes_values() && values.is_empty() {
            return Err((
                InvalidValue,
                format!("`{}` on `{field}` needs at least one value", kind.as_str()),
            ));
        }
        if let Some(empty) = values.iter().position(|v| v.is_empty()) {
            return Err((
                InvalidValue,
                format!(
                    "value {} of `{}` on `{field}` is empty: use `empty: true` to test for a missing value",
                    empty + 1,
                    kind.as_str()
                ),
            ));
        }
        if kind == MatchKind::Regex {
            for v in &values {
                regex::Regex::new(v).map_err(|e| {
                    let detail = e.to_string();
                    let reason = detail
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim_start_matches("error: ");
                    (
                        InvalidValue,
                        format!("invalid regex `{v}` on `{field}`: {reason}"),
                    )
                })?;
            }
        }
        if !kind.takes_values() && k.quantifier.is_some() {
            return Err((
                Schema,
                format!("`match` has no meaning for `{}`", kind.as_str()),
            ));
        }
        Ok(RawExpr(Expr::Match(Predicate {
            field,
            kind,
            case: k.case.unwrap_or(Case::Insensitive),
            values,
            quantifier: k.quantifier.unwrap_or(Quantifier::Any),
        })))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExclusion {
    name: String,
    scenario: String,
    description: String,
    drop_when: RawExpr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAggregation {
    by: Vec<String>,
    outputs: Vec<RawOutput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    name: String,
    function: AggName,
    field: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum AggName {
    Min,
    Max,
    DistinctSet,
    DistinctCount,
    Count,
}

impl RawOutput {
    fn into_output(self) -> Result<Output, String> {
        let function = match (self.function, self.field) {
            (AggName::Count, None) => AggFunction::Count,
            (AggName::Count, Some(_)) => {
                return Err(format!("output `{}`: `count` takes no `field`", self.name));
            }
            (_, None) => {
                return Err(format!("output `{}` needs a `field`", self.name));
            }
            (AggName::Min, Some(f)) => AggFunction::Min(f),
            (AggName::Max, Some(f)) => AggFunction::Max(f),
            (AggName::DistinctSet, Some(f)) => AggFunction::DistinctSet(f),
            (AggName::DistinctCount, Some(f)) => AggFunction::DistinctCount(f),
        };
        Ok(Output {
            name: self.name,
            function,
        })
    }
}

/// Parse one rule in rmmc's format. `path` names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<Rule> {
    let raw: RawRule = parse_yaml(text).map_err(|e| yaml_error_in(path, text, &e))?;
    // Checked in the order serde would, so the first missing key is reported.
    let id = raw.id.value("id", path, text)?;
    let name = raw.name.value("name", path, text)?;
    let description = raw.description.value("description", path, text)?;
    let tool = raw.tool.value("tool", path, text)?;
    let tactics = raw.tactics.value("tactics", path, text)?;
    let techniques = raw.techniques.value("techniques", path, text)?;
    let source = raw.source.value("source", path, text)?;
    let window = raw.window.value("window", path, text)?;
    let detection = raw.detection.value("detection", path, text)?;
    let aggregation = match raw.aggregation {
        None => None,
        Some(a) => Some(Aggregation {
            group_by: a.by,
            outputs: a
                .outputs
                .into_iter()
                .map(RawOutput::into_output)
                .collect::<Result<_, String>>()
                .map_err(|m| {
                    let at = locate(text, "aggregation:");
                    located(Error::new(ErrorKind::Schema, m).in_file(path), at)
                })?,
        }),
    };
    if let (Some(date), Some(modified)) = (&raw.date, &raw.modified)
        && modified.0 <= date.0
    {
        let at = locate(text, "modified:");
        return Err(located(
            Error::new(
                ErrorKind::Schema,
                format!(
                    "modified `{}` must be later than date `{}` (leave it out while the rule is unchanged)",
                    modified.0, date.0
                ),
            )
            .in_file(path),
            at,
        ));
    }
    Ok(Rule {
        meta: Metadata {
            id: id.0,
            name,
            description,
            references: raw.references,
            author: raw.author,
            date: raw.date.map(|d| d.0),
            modified: raw.modified.map(|d| d.0),
            license: raw.license,
            tool,
            tactics,
            techniques,
            severity: raw.severity,
            status: raw.status,
            acknowledged: raw.acknowledged,
        },
        source,
        window: window.0,
        detection: detection.0,
        exclusions: raw
            .exclusions
            .into_iter()
            .map(|x| Exclusion {
                name: x.name,
                scenario: x.scenario,
                description: x.description,
                drop_when: x.drop_when.0,
            })
            .collect(),
        aggregation,
        constants: raw.constants,
    })
}

/// Like [`yaml_error`](crate::error::yaml_error), but where serde_yaml could only point at the start of the
/// document (it does for errors raised while converting a value), point at the first
/// place the text holds the value the message quotes in backticks.
pub(crate) fn yaml_error_in(path: &Path, text: &str, e: &serde_yaml::Error) -> Error {
    let err = yaml_error(path, text, e);
    let at_start = e
        .location()
        .is_none_or(|l| l.line() == 1 && l.column() == 1);
    if !at_start {
        return err;
    }
    let message = err.message();
    let quoted = message.split('`').nth(1).filter(|q| !q.is_empty());
    // `window `5` is ...`: the word before the quote is the key that holds it.
    let key = message
        .split('`')
        .next()
        .and_then(|before| before.split_whitespace().last())
        .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let at = match (key, quoted) {
        (Some(k), Some(q)) => locate_value(text, k, q, 0).or_else(|| locate(text, q)),
        (None, Some(q)) => locate(text, q),
        _ => None,
    };
    match at {
        Some((line, column)) => {
            let e2 = Error::new(err.kind(), err.message()).in_file(path);
            e2.at(line, column)
        }
        None => err,
    }
}

/// The 1-based line and column of the `nth` (0-based) place where `key:` (a whole
/// key, not part of another word or value) holds `value`, plain or quoted; if the
/// value is not written out there (a block scalar, an escape), of the value's first
/// occurrence after the key, else of the key itself.
pub(crate) fn locate_value(
    text: &str,
    key: &str,
    value: &str,
    nth: usize,
) -> Option<(usize, usize)> {
    let keys = key_offsets(text, key);
    if let Some(&at) = values_at(text, key, value, false).get(nth) {
        return Some(line_col(text, at));
    }
    let after_key = keys.iter().find_map(|&k| {
        (!value.is_empty())
            .then(|| text[k..].find(value).map(|o| k + o))
            .flatten()
    });
    after_key
        .or_else(|| keys.first().copied())
        .map(|at| line_col(text, at))
}

/// Offsets of the values of every `key:` whose value starts with `value` (is
/// `value`, with `whole`), plain or quoted.
pub(crate) fn values_at(text: &str, key: &str, value: &str, whole: bool) -> Vec<usize> {
    key_offsets(text, key)
        .iter()
        .filter_map(|&k| {
            let rest = &text[k + key.len()..];
            let after_colon = rest.trim_start_matches([' ', '\t']).strip_prefix(':')?;
            let skipped = after_colon.trim_start_matches([' ', '\t']);
            let unquoted = skipped.trim_start_matches(['"', '\'']);
            let tail = unquoted.strip_prefix(value)?;
            let ends = tail
                .chars()
                .next()
                .is_none_or(|c| matches!(c, '\n' | '"' | '\'' | ',' | '}' | ' ' | '#'));
            (!whole || ends).then(|| text.len() - unquoted.len())
        })
        .collect()
}

/// Offsets of `key` where it begins a mapping key: at a line start or after blanks,
/// `{`, `,` or `- `, and followed by `:`.
fn key_offsets(text: &str, key: &str) -> Vec<usize> {
    text.match_indices(key)
        .map(|(i, _)| i)
        .filter(|&i| {
            let before_ok = text[..i]
                .chars()
                .next_back()
                .is_none_or(|c| matches!(c, ' ' | '\t' | '\n' | '{' | ',' | '-'));
            let after_ok = text[i + key.len()..]
                .trim_start_matches([' ', '\t'])
                .starts_with(':');
            before_ok && after_ok
        })
        .collect()
}

/// The 1-based line and column of the first occurrence of `needle`.
pub(crate) fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    let offset = text.find(needle)?;
    Some(line_col(text, offset))
}

/// The 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

pub(crate) fn located(err: Error, at: Option<(usize, usize)>) -> Error {
    match at {
        Some((l, c)) => err.at(l, c),
        None => err,
    }
}
