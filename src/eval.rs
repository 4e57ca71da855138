//! The reference evaluator of the IR: the definition of what a rule means.
//!
//! The semantics are those of KQL (Microsoft Defender advanced hunting):
//!
//! * A missing field, or JSON `null`, reads as the empty string `""` (KQL strings are
//!   never null). Numbers and booleans read as their JSON text (`443` → `"443"`,
//!   `true` → `"true"`); arrays and objects as their compact JSON text.
//! * [`Case::Insensitive`] folds ASCII letters only (`"Ä"` ≠ `"ä"`);
//!   [`Case::Sensitive`] compares exactly.
//! * [`MatchKind::Term`] is KQL `has`, see [`has_term`].
//! * [`MatchKind::Regex`] is a partial match (found anywhere) with the `regex` crate;
//!   [`Case::Insensitive`] prepends `(?i)` to the pattern.
//! * The window is `now - seconds <= @timestamp <= now`, inclusive at both ends.
//! * Every exclusion in `rule.exclusions` is applied (see [`evaluate`]).
//! * An aggregation groups the matched events and produces one row per group.
//!
//! ```
//! use rmmc::{Compiler, eval};
//!
//! let rule_text = "id: 6f1c7a52-0b7e-4d33-9a4e-1f0c2d3e4b5a
//! name: Example - NetSupport signer
//! description: Files signed by NetSupport.
//! tool: NetSupport
//! tactics: [CommandAndControl]
//! techniques: [T1219]
//! source: file_signature
//! window: 5d
//! detection:
//!   field: file.code_signature.subject_name
//!   has: netsupport
//! ";
//! let rule = Compiler::embedded()?.load_rule("x.yaml", rule_text)?.rule;
//! let event = |signer: &str| match serde_json::json!({
//!     "@timestamp": "2026-01-01T00:00:00Z",
//!     "file.code_signature.subject_name": signer,
//! }) {
//!     serde_json::Value::Object(map) => map,
//!     _ => unreachable!(),
//! };
//! let events = [event("NetSupport Ltd"), event("NetSupportive Ltd")];
//! let now = "2026-01-02T00:00:00Z".parse().unwrap();
//! let result = eval::evaluate(&rule, &events, now).unwrap();
//! assert_eq!(result.matched, vec![0]); // `has` is a whole term
//! # Ok::<(), rmmc::Error>(())
//! ```

use crate::ir::{
    AggFunction, Aggregation, Case, Expr, MatchKind, Predicate, Quantifier, Rule, TIMESTAMP_FIELD,
};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use regex::Regex;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// An event in the canonical vocabulary: flat JSON object whose keys are canonical field
/// names such as "@timestamp", "host.name", "process.parent.name" (dotted names are flat
/// keys, not nested).
pub type Event = serde_json::Map<String, serde_json::Value>;

/// The result of evaluating a rule over a list of events.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Indexes (into the input slice) of the events that pass window, detection and
    /// exclusions, ascending.
    pub matched: Vec<usize>,
    /// Result rows: with an aggregation, one row per group (group-by fields then outputs),
    /// sorted by the group-by values; without one, the matched events themselves in
    /// order. The rule's constants are added to every row.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Why a rule could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The event has no `@timestamp`, or it is `null`.
    #[error("event {index}: missing @timestamp")]
    MissingTimestamp {
        /// Which event (0-based).
        index: usize,
    },
    /// The event's `@timestamp` is not an RFC 3339 string.
    #[error("event {index}: @timestamp {value} is not an RFC 3339 time: {reason}")]
    BadTimestamp {
        /// Which event (0-based).
        index: usize,
        /// The offending value, as JSON text.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A regex predicate's pattern does not compile.
    #[error("{context}: invalid regex {pattern:?} on field {field}: {source}")]
    InvalidRegex {
        /// `detection` or `exclusion '<name>'`.
        context: String,
        /// The predicate's field.
        field: String,
        /// The pattern as written in the rule (without the `(?i)` added for case).
        pattern: String,
        /// The regex crate's error.
        #[source]
        source: regex::Error,
    },
}

/// Evaluates `rule` over `events` at query time `now`.
///
/// An event is matched when it is inside the window, matches the detection, and matches
/// no exclusion's `drop_when`. Every exclusion in `rule.exclusions` is applied: deciding
/// that an exclusion cannot be applied (its fields do not exist for the rule's data
/// source on some target) is the caller's job, which removes such exclusions from the
/// rule before calling this.
///
/// Every event must carry a parsable `@timestamp`, even one that fails the detection;
/// otherwise the result is [`EvalError::MissingTimestamp`] / [`EvalError::BadTimestamp`]
/// naming the first bad event. Every regex of the detection and the exclusions is
/// compiled once, up front; an invalid one is [`EvalError::InvalidRegex`].
///
/// Aggregation (KQL `summarize OUTPUTS by GROUP`):
/// * groups are keyed by the text of the group-by fields (missing → `""`), output as
///   JSON strings, and rows are sorted by those texts (lexicographically, field by field,
///   by byte order);
/// * with no group-by field there is exactly one group, the whole input, so exactly one
///   row even when no event matched (as KQL: `count()` is 0, `make_set` is `[]`, and
///   `min`/`max` of nothing is `""`);
/// * `Min`/`Max` of `@timestamp` compare as times and output RFC 3339 UTC text with `Z`
///   (`2026-11-28T10:00:00Z`, fractional seconds only when non-zero); of other fields
///   they compare numerically when both values are JSON numbers, else by text, and
///   output the original JSON value (missing or `null` → `""`); on ties the first event
///   wins;
/// * `DistinctSet` outputs the distinct JSON values (missing or `null` → `""`) sorted by
///   their text (ties, e.g. `443` and `"443"`, by their JSON text); `DistinctCount` is
///   the exact number of those distinct values; `Count` is the number of events.
///
/// Constants are added to every row (aggregated or not) as string columns; a constant
/// with the name of an existing column replaces it (as KQL `extend`). Likewise, an
/// output named like a group-by field replaces it.
pub fn evaluate(
    rule: &Rule,
    events: &[Event],
    now: DateTime<Utc>,
) -> Result<Evaluation, EvalError> {
    let mut regexes = RegexCache::default();
    regexes.compile_all(&rule.detection, "detection")?;
    for exclusion in &rule.exclusions {
        regexes.compile_all(
            &exclusion.drop_when,
            &format!("exclusion '{}'", exclusion.name),
        )?;
    }

    let timestamps = events
        .iter()
        .enumerate()
        .map(|(index, event)| timestamp(index, event))
        .collect::<Result<Vec<_>, _>>()?;

    let start = TimeDelta::try_seconds(i64::try_from(rule.window.seconds).unwrap_or(i64::MAX))
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);

    let matched: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|&(i, event)| {
            let t = timestamps[i];
            start <= t
                && t <= now
                && regexes.matches(&rule.detection, event)
                && !rule
                    .exclusions
                    .iter()
                    .any(|x| regexes.matches(&x.drop_when, event))
        })
        .map(|(i, _)| i)
        .collect();

    let mut rows = match &rule.aggregation {
        None => matched.iter().map(|&i| events[i].clone()).collect(),
        Some(agg) => aggregate(agg, events, &timestamps, &matched),
    };
    for row in &mut rows {
        for constant in &rule.constants {
            row.insert(constant.name.clone(), Value::String(constant.value.clone()));
        }
    }

    Ok(Evaluation { matched, rows })
}

/// Whether `event` matches `expr`: detection semantics only (no window, no exclusions).
///
/// Regexes are compiled on every call; a pattern that does not compile never matches
/// (use [`evaluate`] to have it reported as an error).
pub fn matches_expr(expr: &Expr, event: &Event) -> bool {
    let mut regexes = RegexCache::default();
    // Errors are remembered as `None` in the cache and then never match.
    regexes.compile_all_lenient(expr);
    regexes.matches(expr, event)
}

/// KQL `has` on one value: `needle` occurs in `haystack`, and where the needle starts
/// (ends) with a letter or digit, the occurrence is preceded (followed) by the start
/// (end) of `haystack` or by a character that is neither a Unicode letter nor a digit
/// (`char::is_alphanumeric` is false; so `_`, `.`, `-`, space are separators). So
/// every term of the needle is a whole term of the value; a needle edge that is
/// punctuation needs no boundary (as duckdb-kql, measured against Kusto, behaves).
/// Every occurrence is tried, not only the first. [`Case::Insensitive`] folds ASCII
/// letters only.
///
/// Empty needle (a choice: the rule parser forbids empty values): it matches every
/// value, including `""`, like `contains ""`, so that `has` always implies `contains`.
pub fn has_term(haystack: &str, needle: &str, case: Case) -> bool {
    if needle.is_empty() {
        return true;
    }
    let (h, n) = fold_pair(haystack, needle, case);
    let (h, n) = (h.as_ref(), n.as_ref());
    // The needle's terms must be whole: a boundary is needed only where the needle
    // itself ends in a letter or digit (`has "Servably, Inc."` matches in
    // "Servably, Inc.x": its last term `Inc` is whole).
    let needs_before = n.chars().next().is_some_and(char::is_alphanumeric);
    let needs_after = n.chars().next_back().is_some_and(char::is_alphanumeric);
    let mut from = 0;
    while let Some(offset) = h[from..].find(n) {
        let pos = from + offset;
        let end = pos + n.len();
        let before_ok = !needs_before
            || h[..pos]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric());
        let after_ok = !needs_after || h[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before_ok && after_ok {
            return true;
        }
        // Overlapping occurrences: resume one character after this one's start.
        from = pos + h[pos..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

// ---------------------------------------------------------------------------------------
// Values

/// The text of a field: missing or `null` → `""`, strings as themselves, everything
/// else as its JSON text.
fn field_text<'a>(event: &'a Event, field: &str) -> std::borrow::Cow<'a, str> {
    match event.get(field) {
        None | Some(Value::Null) => "".into(),
        Some(v) => value_text(v),
    }
}

fn value_text(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::Null => "".into(),
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

/// The value of a field for aggregation outputs: missing or `null` → `""`.
fn field_value(event: &Event, field: &str) -> Value {
    match event.get(field) {
        None | Some(Value::Null) => Value::String(String::new()),
        Some(v) => v.clone(),
    }
}

/// Both strings under the case rule: ASCII lower-cased for [`Case::Insensitive`] (which
/// keeps byte lengths and char boundaries), untouched otherwise.
fn fold_pair<'a>(
    a: &'a str,
    b: &'a str,
    case: Case,
) -> (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>) {
    match case {
        Case::Sensitive => (a.into(), b.into()),
        Case::Insensitive => (a.to_ascii_lowercase().into(), b.to_ascii_lowercase().into()),
    }
}

fn timestamp(index: usize, event: &Event) -> Result<DateTime<Utc>, EvalError> {
    match event.get(TIMESTAMP_FIELD) {
        None | Some(Value::Null) => Err(EvalError::MissingTimestamp { index }),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| EvalError::BadTimestamp {
                index,
                value: Value::String(s.clone()).to_string(),
                reason: e.to_string(),
            }),
        Some(other) => Err(EvalError::BadTimestamp {
            index,
            value: other.to_string(),
            reason: "not a string".to_string(),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Detection

/// Compiled regexes keyed by the effective pattern (with `(?i)` when insensitive);
/// `None` records a pattern that does not compile.
#[derive(Default)]
struct RegexCache {
    compiled: HashMap<String, Option<Regex>>,
}

fn effective_pattern(pattern: &str, case: Case) -> String {
    match case {
        Case::Sensitive => pattern.to_string(),
        Case::Insensitive => format!("(?i){pattern}"),
    }
}

impl RegexCache {
    fn compile_all(&mut self, expr: &Expr, context: &str) -> Result<(), EvalError> {
        for p in expr.predicates() {
            if p.kind != MatchKind::Regex {
                continue;
            }
            for pattern in &p.values {
                let key = effective_pattern(pattern, p.case);
                if self.compiled.contains_key(&key) {
                    continue;
                }
                let re = Regex::new(&key).map_err(|source| EvalError::InvalidRegex {
                    context: context.to_string(),
                    field: p.field.clone(),
                    pattern: pattern.clone(),
                    source,
                })?;
                self.compiled.insert(key, Some(re));
            }
        }
        Ok(())
    }

    fn compile_all_lenient(&mut self, expr: &Expr) {
        for p in expr.predicates() {
            if p.kind != MatchKind::Regex {
                continue;
            }
            for pattern in &p.values {
                let key = effective_pattern(pattern, p.case);
                self.compiled
                    .entry(key)
                    .or_insert_with_key(|key| Regex::new(key).ok());
            }
        }
    }

    fn matches(&self, expr: &Expr, event: &Event) -> bool {
        match expr {
            Expr::All(xs) => xs.iter().all(|x| self.matches(x, event)),
            Expr::Any(xs) => xs.iter().any(|x| self.matches(x, event)),
            Expr::Not(x) => !self.matches(x, event),
            Expr::Match(p) => self.predicate(p, event),
        }
    }

    fn predicate(&self, p: &Predicate, event: &Event) -> bool {
        let value = field_text(event, &p.field);
        let value = value.as_ref();
        match p.kind {
            MatchKind::Empty => return value.is_empty(),
            MatchKind::NotEmpty => return !value.is_empty(),
            _ => {}
        }
        let one = |literal: &String| -> bool {
            match p.kind {
                MatchKind::Equals => match p.case {
                    Case::Sensitive => value == literal,
                    Case::Insensitive => value.eq_ignore_ascii_case(literal),
                },
                MatchKind::Contains => {
                    let (v, l) = fold_pair(value, literal, p.case);
                    v.contains(l.as_ref())
                }
                MatchKind::Prefix => {
                    let (v, l) = fold_pair(value, literal, p.case);
                    v.starts_with(l.as_ref())
                }
                MatchKind::Suffix => {
                    let (v, l) = fold_pair(value, literal, p.case);
                    v.ends_with(l.as_ref())
                }
                MatchKind::Term => has_term(value, literal, p.case),
                MatchKind::Regex => {
                    let key = effective_pattern(literal, p.case);
                    match self.compiled.get(&key) {
                        Some(Some(re)) => re.is_match(value),
                        // Invalid (lenient mode), or not compiled: cannot happen through
                        // `evaluate`, which compiles every pattern first.
                        Some(None) => false,
                        None => Regex::new(&key).is_ok_and(|re| re.is_match(value)),
                    }
                }
                MatchKind::Empty | MatchKind::NotEmpty => unreachable!("handled above"),
            }
        };
        match p.quantifier {
            Quantifier::Any => p.values.iter().any(one),
            Quantifier::All => p.values.iter().all(one),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Aggregation

fn aggregate(
    agg: &Aggregation,
    events: &[Event],
    timestamps: &[DateTime<Utc>],
    matched: &[usize],
) -> Vec<Map<String, Value>> {
    let mut groups: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    if agg.group_by.is_empty() {
        // One group, the whole input, even when it is empty (KQL `summarize` without `by`).
        groups.insert(Vec::new(), Vec::new());
    }
    for &i in matched {
        let key = agg
            .group_by
            .iter()
            .map(|f| field_text(&events[i], f).into_owned())
            .collect();
        groups.entry(key).or_default().push(i);
    }

    groups
        .into_iter()
        .map(|(key, members)| {
            let mut row = Map::new();
            for (field, text) in agg.group_by.iter().zip(key) {
                row.insert(field.clone(), Value::String(text));
            }
            for output in &agg.outputs {
                let value = output_value(&output.function, events, timestamps, &members);
                row.insert(output.name.clone(), value);
            }
            row
        })
        .collect()
}

fn output_value(
    function: &AggFunction,
    events: &[Event],
    timestamps: &[DateTime<Utc>],
    members: &[usize],
) -> Value {
    match function {
        AggFunction::Count => Value::from(members.len() as u64),
        AggFunction::Min(field) => extreme(field, events, timestamps, members, Ordering::Less),
        AggFunction::Max(field) => extreme(field, events, timestamps, members, Ordering::Greater),
        AggFunction::DistinctSet(field) => Value::Array(distinct(field, events, members)),
        AggFunction::DistinctCount(field) => {
            Value::from(distinct(field, events, members).len() as u64)
        }
    }
}

/// The minimum (`want = Less`) or maximum (`want = Greater`) value of `field`; the first
/// event wins ties. `""` when there are no members.
fn extreme(
    field: &str,
    events: &[Event],
    timestamps: &[DateTime<Utc>],
    members: &[usize],
    want: Ordering,
) -> Value {
    if field == TIMESTAMP_FIELD {
        let best = members
            .iter()
            .map(|&i| timestamps[i])
            .reduce(|best, t| if t.cmp(&best) == want { t } else { best });
        return match best {
            Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => Value::String(String::new()),
        };
    }
    members
        .iter()
        .map(|&i| field_value(&events[i], field))
        .reduce(|best, v| {
            if compare_values(&v, &best) == want {
                v
            } else {
                best
            }
        })
        .unwrap_or_else(|| Value::String(String::new()))
}

/// Numbers compare numerically when both are JSON numbers; anything else by text.
fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x.cmp(&y)
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x.cmp(&y)
            } else {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        }
        _ => value_text(a).cmp(&value_text(b)),
    }
}

/// The distinct values of `field` (missing or `null` → `""`), sorted by text, then by
/// JSON text.
fn distinct(field: &str, events: &[Event], members: &[usize]) -> Vec<Value> {
    let mut values: Vec<Value> = members
        .iter()
        .map(|&i| field_value(&events[i], field))
        .collect();
    values.sort_by(|a, b| {
        value_text(a)
            .cmp(&value_text(b))
            .then_with(|| a.to_string().cmp(&b.to_string()))
    });
    values.dedup();
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{
        AggFunction, Aggregation, Constant, DataSource, Exclusion, Metadata, Output, Severity,
        Status, Window,
    };
    use serde_json::json;

    use Case::{Insensitive as I, Sensitive as S};
    use MatchKind::{Contains, Empty, Equals, NotEmpty, Prefix, Regex, Suffix, Term};
    use Quantifier::{All as QAll, Any as QAny};

    fn ev(v: Value) -> Event {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn pred(field: &str, kind: MatchKind, case: Case, q: Quantifier, values: &[&str]) -> Expr {
        Expr::Match(Predicate {
            field: field.to_string(),
            kind,
            case,
            values: values.iter().map(|s| s.to_string()).collect(),
            quantifier: q,
        })
    }

    /// One predicate on field `f` of an event `{"f": value}` (`None` = field missing).
    fn check(
        value: Option<Value>,
        kind: MatchKind,
        case: Case,
        q: Quantifier,
        vals: &[&str],
    ) -> bool {
        let mut e = Event::new();
        if let Some(v) = value {
            e.insert("f".to_string(), v);
        }
        matches_expr(&pred("f", kind, case, q, vals), &e)
    }

    fn s(x: &str) -> Option<Value> {
        Some(Value::String(x.to_string()))
    }

    /// value, kind, case, quantifier, values, expected.
    type PredicateCase = (
        Option<Value>,
        MatchKind,
        Case,
        Quantifier,
        &'static [&'static str],
        bool,
    );

    #[test]
    fn predicates_by_kind_and_case() {
        #[rustfmt::skip]
        let cases: &[PredicateCase] = &[
            // Equals
            (s("NETSUPPORT"), Equals, I, QAny, &["netsupport"], true),
            (s("NETSUPPORT"), Equals, S, QAny, &["netsupport"], false),
            (s("netsupport"), Equals, S, QAny, &["netsupport"], true),
            (s("Ä"), Equals, I, QAny, &["ä"], false),
            (s("Ä"), Equals, S, QAny, &["Ä"], true),
            (s("client32.exe"), Equals, I, QAny, &["client32"], false),
            (s("Krämer"), Equals, I, QAny, &["KRäMER"], true),
            (s("Krämer"), Equals, I, QAny, &["KRÄMER"], false),
            (Some(json!(443)), Equals, S, QAny, &["443"], true),
            (Some(json!(443.5)), Equals, S, QAny, &["443.5"], true),
            (Some(json!(true)), Equals, I, QAny, &["TRUE"], true),
            (Some(json!(false)), Equals, S, QAny, &["false"], true),
            (None, Equals, S, QAny, &[""], true),
            (Some(Value::Null), Equals, S, QAny, &[""], true),
            (Some(Value::Null), Equals, S, QAny, &["null"], false),
            // Contains
            (s("C:\\Program Files\\NetSupport\\client32.exe"), Contains, I, QAny, &["\\netsupport\\"], true),
            (s("C:\\Program Files\\NetSupport\\client32.exe"), Contains, S, QAny, &["\\netsupport\\"], false),
            (s("C:\\Program Files\\NetSupport\\client32.exe"), Contains, S, QAny, &["\\NetSupport\\"], true),
            (s("SCHÖN"), Contains, I, QAny, &["schön"], false),
            (s("SCHÖN"), Contains, I, QAny, &["schÖn"], true),
            (s("KustoExplorerQueryRun"), Contains, I, QAny, &["explorer"], true),
            (None, Contains, I, QAny, &["x"], false),
            (Some(json!(8443)), Contains, S, QAny, &["443"], true),
            // Prefix
            (s("NetSupport Manager"), Prefix, I, QAny, &["netsupport"], true),
            (s("NetSupport Manager"), Prefix, S, QAny, &["netsupport"], false),
            (s("NetSupport Manager"), Prefix, S, QAny, &["NetSupport"], true),
            (s("My NetSupport"), Prefix, I, QAny, &["netsupport"], false),
            (s("Électricité"), Prefix, I, QAny, &["électricité"], false),
            // Suffix
            (s("C:\\x\\CLIENT32.EXE"), Suffix, I, QAny, &["\\client32.exe"], true),
            (s("C:\\x\\CLIENT32.EXE"), Suffix, S, QAny, &["\\client32.exe"], false),
            (s("C:\\x\\CLIENT32.EXE"), Suffix, S, QAny, &["\\CLIENT32.EXE"], true),
            (s("client32.exe.bak"), Suffix, I, QAny, &["client32.exe"], false),
            (s("CAFÉ"), Suffix, I, QAny, &["fé"], false),
            // Term (`has`)
            (s("NetSupport Ltd"), Term, I, QAny, &["netsupport"], true),
            (s("NetSupport Ltd"), Term, S, QAny, &["netsupport"], false),
            (s("NetSupport Ltd"), Term, S, QAny, &["NetSupport"], true),
            (s("NetSupportSchool Ltd"), Term, I, QAny, &["netsupport"], false),
            (s("KRÄMER IT"), Term, I, QAny, &["krämer"], false),
            (s("Krämer IT"), Term, I, QAny, &["krämer"], true),
            (s("Krämer IT"), Term, S, QAny, &["krämer"], false),
            // Regex
            (s("client32.exe"), Regex, S, QAny, &[r"client\d+\.exe"], true),
            (s("x CLIENT32.EXE y"), Regex, S, QAny, &[r"client\d+\.exe"], false),
            (s("x CLIENT32.EXE y"), Regex, I, QAny, &[r"client\d+\.exe"], true),
            (s("x CLIENT32.EXE y"), Regex, S, QAny, &[r"(?i)client\d+\.exe"], true),
            (s("x client32.exe y"), Regex, S, QAny, &[r"^client"], false),
            (s("abc"), Regex, S, QAny, &["b"], true),
            (None, Regex, S, QAny, &["^$"], true),
            (s("abc"), Regex, S, QAny, &["("], false), // invalid: never matches in matches_expr
            // Empty / NotEmpty
            (None, Empty, I, QAny, &[], true),
            (Some(Value::Null), Empty, S, QAny, &[], true),
            (s(""), Empty, S, QAny, &[], true),
            (s(" "), Empty, S, QAny, &[], false),
            (Some(json!(0)), Empty, S, QAny, &[], false),
            (None, NotEmpty, I, QAny, &[], false),
            (Some(Value::Null), NotEmpty, S, QAny, &[], false),
            (s(""), NotEmpty, S, QAll, &[], false),
            (s("x"), NotEmpty, S, QAll, &[], true),
            (Some(json!(false)), NotEmpty, S, QAny, &[], true),
        ];
        for (i, (value, kind, case, q, vals, want)) in cases.iter().enumerate() {
            let got = check(value.clone(), *kind, *case, *q, vals);
            assert_eq!(
                got, *want,
                "case {i}: {value:?} {kind:?} {case:?} {q:?} {vals:?}"
            );
        }
    }

    #[test]
    fn term_boundaries() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, Case, bool)] = &[
            ("NetSupport Ltd", "netsupport", I, true),
            ("NetSupportSchool Ltd", "netsupport", I, false),
            ("Net Support", "netsupport", I, false),
            ("MyNetSupport", "netsupport", I, false),
            ("MyNetSupport NetSupport", "netsupport", I, true),
            ("MyNetSupport NetSupportX", "netsupport", I, false),
            ("Net_Support", "support", I, true),
            ("Net_Support", "net", I, true),
            ("Net-Support", "support", I, true),
            ("x.netsupportsoftware.com/y", "netsupportsoftware.com", I, true),
            ("x.netsupportsoftware.company/y", "netsupportsoftware.com", I, false),
            // A needle edge that is punctuation needs no boundary on that side.
            ("Servably, Inc.x", "Servably, Inc.", I, true),
            ("XServably, Inc.", "Servably, Inc.", I, false),
            ("foo.bar", "foo.", I, true),
            ("a.community", ".com", I, false),
            ("a.com", ".com", I, true),
            (r"C:\Program Files\Level\x.exe", r"\Program Files\Level\", I, true),
            (r"C:\Program Files\LevelX\", r"\Program Files\Level\", I, false),
            ("--", "-", I, true),
            ("netsupport", "netsupport", I, true),
            ("NETSUPPORT", "netsupport", S, false),
            ("(netsupport)", "netsupport", S, true),
            ("North America", "america", I, true),
            ("KustoExplorerQueryRun", "explorer", I, false),
            ("ad67d136-c1db-4f9f", "c1db", I, true),
            ("v2", "v", I, false),
            ("2v", "v", I, false),
            ("v²", "v", I, false),        // '²' is a Unicode digit (\p{N})
            ("éclient", "client", I, false), // 'é' is a Unicode letter
            ("Éclient", "client", I, false),
            ("—client—", "client", I, true), // em dash is a separator
            ("KRÄMER IT", "krämer", I, false),
            ("Krämer IT", "krämer", I, true),
            ("Krämer IT", "krämer", S, false),
            ("krämerei", "krämer", I, false),
            ("Straße 1", "straße", I, true),
            ("日本語 test", "日本語", S, true),
            ("日本語test", "test", S, false),
            ("ab ab ab", "ab ab", I, true),
            ("xab ab ab", "ab ab", I, true), // overlapping occurrence
            ("aaa", "aa", I, false),
            ("a aa", "aa", I, true),
            ("", "x", I, false),
            // Empty needle: matches every value (documented choice).
            ("abc", "", I, true),
            ("", "", S, true),
        ];
        for (i, (hay, needle, case, want)) in cases.iter().enumerate() {
            assert_eq!(
                has_term(hay, needle, *case),
                *want,
                "case {i}: {hay:?} has {needle:?} {case:?}"
            );
        }
    }

    #[test]
    fn quantifiers() {
        #[rustfmt::skip]
        let cases: &[(&str, MatchKind, Quantifier, &[&str], bool)] = &[
            ("NetSupport Manager Ltd", Term, QAny, &["anydesk", "netsupport"], true),
            ("NetSupport Manager Ltd", Term, QAll, &["manager", "netsupport"], true),
            ("NetSupport Manager Ltd", Term, QAll, &["manager", "anydesk"], false),
            ("NetSupport Manager Ltd", Term, QAny, &["anydesk", "teamviewer"], false),
            ("client32.exe", Equals, QAny, &["a.exe", "CLIENT32.EXE"], true),
            ("client32.exe", Equals, QAll, &["client32.exe", "CLIENT32.EXE"], true),
            ("client32.exe", Equals, QAll, &["client32.exe", "other.exe"], false),
            ("client32.exe", Contains, QAll, &["client", ".exe"], true),
            ("client32.exe", Prefix, QAny, &["x", "cli"], true),
            ("client32.exe", Suffix, QAll, &[".exe", "32.exe"], true),
            ("client32.exe", Regex, QAll, &["^c", r"\d"], true),
            ("client32.exe", Regex, QAll, &["^c", "^x"], false),
            ("client32.exe", Regex, QAny, &["^x", "exe$"], true),
            ("client32.exe", Equals, QAny, &[], false),
            ("client32.exe", Equals, QAll, &[], true),
        ];
        for (i, (value, kind, q, vals, want)) in cases.iter().enumerate() {
            assert_eq!(check(s(value), *kind, I, *q, vals), *want, "case {i}");
        }
    }

    #[test]
    fn boolean_expressions() {
        let t = || pred("f", NotEmpty, S, QAny, &[]);
        let f = || pred("f", Empty, S, QAny, &[]);
        let e = ev(json!({"f": "x"}));
        #[rustfmt::skip]
        let cases: Vec<(Expr, bool)> = vec![
            (Expr::All(vec![]), true),
            (Expr::Any(vec![]), false),
            (Expr::All(vec![t(), t()]), true),
            (Expr::All(vec![t(), f()]), false),
            (Expr::Any(vec![f(), t()]), true),
            (Expr::Any(vec![f(), f()]), false),
            (Expr::Not(Box::new(t())), false),
            (Expr::Not(Box::new(f())), true),
            (Expr::Not(Box::new(Expr::Any(vec![]))), true),
        ];
        for (i, (expr, want)) in cases.iter().enumerate() {
            assert_eq!(matches_expr(expr, &e), *want, "case {i}");
        }
    }

    fn rule(detection: Expr) -> Rule {
        Rule {
            meta: Metadata {
                id: "t".into(),
                name: "t".into(),
                description: "t".into(),
                references: vec![],
                author: None,
                date: None,
                modified: None,
                license: None,
                tool: "NetSupport".into(),
                tactics: vec![],
                techniques: vec![],
                severity: Severity::Medium,
                status: Status::Test,
                acknowledged: Vec::new(),
            },
            source: DataSource::ProcessCreation,
            window: Window {
                seconds: 5 * 86_400,
            },
            detection,
            exclusions: vec![],
            aggregation: None,
            constants: vec![],
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn window_edges() {
        let r = rule(Expr::All(vec![]));
        #[rustfmt::skip]
        let cases: &[(&str, bool)] = &[
            ("2026-11-23T10:00:00Z", true),        // exactly now - 5d
            ("2026-11-28T10:00:00Z", true),        // exactly now
            ("2026-11-23T09:59:59Z", false),       // 1 s before the window
            ("2026-11-28T10:00:01Z", false),       // 1 s after now
            ("2026-11-23T09:59:59.999Z", false),
            ("2026-11-28T10:00:00.000Z", true),
            ("2026-11-28T10:00:00.001Z", false),
            ("2026-11-25T12:00:00.5Z", true),
            ("2026-11-28T11:00:00+01:00", true),   // = now, other offset
            ("2026-11-28T11:00:01+01:00", false),
        ];
        for (i, (ts, want)) in cases.iter().enumerate() {
            let got = evaluate(&r, &[ev(json!({"@timestamp": ts}))], now()).unwrap();
            assert_eq!(!got.matched.is_empty(), *want, "case {i}: {ts}");
        }
    }

    #[test]
    fn huge_window_does_not_overflow() {
        let mut r = rule(Expr::All(vec![]));
        r.window.seconds = u64::MAX;
        let got = evaluate(
            &r,
            &[ev(json!({"@timestamp": "1970-01-01T00:00:00Z"}))],
            now(),
        );
        assert_eq!(got.unwrap().matched, vec![0]);
    }

    #[test]
    fn timestamp_errors() {
        let r = rule(Expr::All(vec![]));
        let good = ev(json!({"@timestamp": "2026-11-28T09:00:00Z"}));
        #[rustfmt::skip]
        let cases: Vec<(Value, &str)> = vec![
            (json!({}), "missing"),
            (json!({"@timestamp": null}), "missing"),
            (json!({"@timestamp": "yesterday"}), "bad"),
            (json!({"@timestamp": "2026-11-28T10:00:00"}), "bad"),
            (json!({"@timestamp": 1764324000}), "bad"),
        ];
        for (i, (bad, want)) in cases.into_iter().enumerate() {
            let err = evaluate(&r, &[good.clone(), ev(bad)], now()).unwrap_err();
            match (want, &err) {
                ("missing", EvalError::MissingTimestamp { index: 1 }) => {}
                ("bad", EvalError::BadTimestamp { index: 1, .. }) => {}
                _ => panic!("case {i}: unexpected {err:?}"),
            }
            assert!(err.to_string().contains("event 1"), "case {i}: {err}");
        }
    }

    #[test]
    fn invalid_regex_is_an_error() {
        let r = rule(pred("f", Regex, S, QAny, &["a", "("]));
        let err = evaluate(&r, &[], now()).unwrap_err();
        assert!(matches!(err, EvalError::InvalidRegex { ref pattern, .. } if pattern == "("));
        let mut r = rule(Expr::All(vec![]));
        r.exclusions
            .push(exclusion("bad", pred("f", Regex, I, QAny, &["[z-a]"])));
        let err = evaluate(&r, &[], now()).unwrap_err();
        assert!(err.to_string().contains("exclusion 'bad'"), "{err}");
    }

    fn exclusion(name: &str, drop_when: Expr) -> Exclusion {
        Exclusion {
            name: name.into(),
            scenario: "admin".into(),
            description: "legit".into(),
            drop_when,
        }
    }

    #[test]
    fn detection_and_exclusions() {
        let events: Vec<Event> = [
            json!({"@timestamp": "2026-11-28T09:00:00Z", "process.name": "client32.exe", "host.name": "a", "user.name": "alice"}),
            json!({"@timestamp": "2026-11-28T09:00:00Z", "process.name": "client32.exe", "host.name": "b", "user.name": "svc_it"}),
            json!({"@timestamp": "2026-11-28T09:00:00Z", "process.name": "notepad.exe", "host.name": "c"}),
            json!({"@timestamp": "2026-11-01T09:00:00Z", "process.name": "CLIENT32.EXE", "host.name": "d"}),
            json!({"@timestamp": "2026-11-28T09:00:00Z", "process.name": "Client32.exe", "host.name": "jump-01"}),
            json!({"@timestamp": "2026-11-28T09:00:00Z", "process.name": "client32.exe"}),
        ]
        .into_iter()
        .map(ev)
        .collect();
        let det = pred("process.name", Equals, I, QAny, &["client32.exe"]);
        let by_user = exclusion("it", pred("user.name", Prefix, I, QAny, &["svc_"]));
        let by_host = exclusion("jump", pred("host.name", Term, I, QAny, &["jump"]));
        let never = exclusion("none", Expr::Any(vec![]));
        let missing_host = exclusion("nohost", pred("host.name", Empty, S, QAny, &[]));
        #[rustfmt::skip]
        let cases: Vec<(Vec<Exclusion>, Vec<usize>)> = vec![
            (vec![], vec![0, 1, 4, 5]),
            (vec![by_user.clone()], vec![0, 4, 5]),
            (vec![by_host.clone()], vec![0, 1, 5]),
            (vec![by_user.clone(), by_host.clone()], vec![0, 5]),
            (vec![never.clone()], vec![0, 1, 4, 5]),
            (vec![by_user, by_host, never, missing_host], vec![0]),
        ];
        for (i, (exclusions, want)) in cases.into_iter().enumerate() {
            let mut r = rule(det.clone());
            r.exclusions = exclusions;
            let got = evaluate(&r, &events, now()).unwrap();
            assert_eq!(got.matched, want, "case {i}");
            let rows: Vec<Event> = want.iter().map(|&j| events[j].clone()).collect();
            assert_eq!(got.rows, rows, "case {i}");
        }
    }

    #[test]
    fn constants_on_plain_rows() {
        let mut r = rule(Expr::All(vec![]));
        r.constants = vec![Constant {
            name: "Tool".into(),
            value: "NetSupport".into(),
        }];
        let e = ev(json!({"@timestamp": "2026-11-28T09:00:00Z", "Tool": 3}));
        let got = evaluate(&r, &[e], now()).unwrap();
        assert_eq!(
            Value::Object(got.rows[0].clone()),
            json!({"@timestamp": "2026-11-28T09:00:00Z", "Tool": "NetSupport"})
        );
    }

    fn out(name: &str, function: AggFunction) -> Output {
        Output {
            name: name.into(),
            function,
        }
    }

    #[test]
    fn aggregation() {
        let events: Vec<Event> = [
            json!({"@timestamp": "2026-11-27T10:00:00.500+01:00", "host.name": "b", "port": 443, "user.name": "x"}),
            json!({"@timestamp": "2026-11-26T10:00:00Z", "host.name": "a", "port": 80, "user.name": "y"}),
            json!({"@timestamp": "2026-11-28T08:00:00Z", "host.name": "a", "port": 8080, "user.name": "y"}),
            json!({"@timestamp": "2026-11-25T10:00:00Z", "port": 9, "user.name": null}),
            json!({"@timestamp": "2026-11-24T10:00:00Z", "host.name": "a", "port": "10"}),
            json!({"@timestamp": "2026-10-01T10:00:00Z", "host.name": "a", "port": 1}), // out of window
        ]
        .into_iter()
        .map(ev)
        .collect();
        let mut r = rule(Expr::All(vec![]));
        r.aggregation = Some(Aggregation {
            group_by: vec!["host.name".into()],
            outputs: vec![
                out("first", AggFunction::Min("@timestamp".into())),
                out("last", AggFunction::Max("@timestamp".into())),
                out("minport", AggFunction::Min("port".into())),
                out("maxport", AggFunction::Max("port".into())),
                out("users", AggFunction::DistinctSet("user.name".into())),
                out("nusers", AggFunction::DistinctCount("user.name".into())),
                out("ports", AggFunction::DistinctSet("port".into())),
                out("n", AggFunction::Count),
            ],
        });
        r.constants = vec![Constant {
            name: "Tool".into(),
            value: "NetSupport".into(),
        }];
        let got = evaluate(&r, &events, now()).unwrap();
        assert_eq!(got.matched, vec![0, 1, 2, 3, 4]);
        let rows: Vec<Value> = got.rows.into_iter().map(Value::Object).collect();
        #[rustfmt::skip]
        let want = vec![
            // Missing host → "" group, sorted first.
            json!({"host.name": "", "first": "2026-11-25T10:00:00Z", "last": "2026-11-25T10:00:00Z",
                   "minport": 9, "maxport": 9, "users": [""], "nusers": 1, "ports": [9], "n": 1, "Tool": "NetSupport"}),
            // 80 vs 8080 numeric; "10" is a string so compares by text with both: "10" < "80" < "8080".
            json!({"host.name": "a", "first": "2026-11-24T10:00:00Z", "last": "2026-11-28T08:00:00Z",
                   "minport": "10", "maxport": 8080, "users": ["", "y"], "nusers": 2, "ports": ["10", 80, 8080], "n": 3, "Tool": "NetSupport"}),
            // Time converted to UTC, fractional part kept.
            json!({"host.name": "b", "first": "2026-11-27T09:00:00.500Z", "last": "2026-11-27T09:00:00.500Z",
                   "minport": 443, "maxport": 443, "users": ["x"], "nusers": 1, "ports": [443], "n": 1, "Tool": "NetSupport"}),
        ];
        assert_eq!(rows, want);
    }

    #[test]
    fn aggregation_cases() {
        let e = |ts: &str, h: Value, p: Value| {
            let mut m = Event::new();
            m.insert("@timestamp".into(), json!(ts));
            m.insert("h".into(), h);
            m.insert("p".into(), p);
            m
        };
        let t = "2026-11-28T09:00:00Z";
        #[rustfmt::skip]
        let cases: Vec<(Vec<&str>, AggFunction, Vec<Event>, Value)> = vec![
            // no group-by on no events: one row (KQL summarize without by)
            (vec![], AggFunction::Count, vec![], json!([{"o": 0}])),
            (vec![], AggFunction::Min("p".into()), vec![], json!([{"o": ""}])),
            (vec![], AggFunction::Max("@timestamp".into()), vec![], json!([{"o": ""}])),
            (vec![], AggFunction::DistinctSet("p".into()), vec![], json!([{"o": []}])),
            (vec![], AggFunction::DistinctCount("p".into()), vec![], json!([{"o": 0}])),
            // group-by on no events: no row
            (vec!["h"], AggFunction::Count, vec![], json!([])),
            // numbers numerically, negative and float
            (vec![], AggFunction::Min("p".into()), vec![e(t, json!(1), json!(10)), e(t, json!(1), json!(-2.5))], json!([{"o": -2.5}])),
            (vec![], AggFunction::Max("p".into()), vec![e(t, json!(1), json!(9)), e(t, json!(1), json!(10))], json!([{"o": 10}])),
            // strings by text
            (vec![], AggFunction::Max("p".into()), vec![e(t, json!(1), json!("9")), e(t, json!(1), json!("10"))], json!([{"o": "9"}])),
            // null reads as ""
            (vec![], AggFunction::Min("p".into()), vec![e(t, json!(1), json!("a")), e(t, json!(1), Value::Null)], json!([{"o": ""}])),
            // distinct set dedups and sorts by text; 443 and "443" are distinct values
            (vec![], AggFunction::DistinctSet("p".into()), vec![e(t, json!(1), json!("b")), e(t, json!(1), json!("a")), e(t, json!(1), json!("b"))], json!([{"o": ["a", "b"]}])),
            (vec![], AggFunction::DistinctSet("p".into()), vec![e(t, json!(1), json!(443)), e(t, json!(1), json!("443"))], json!([{"o": ["443", 443]}])),
            (vec![], AggFunction::DistinctCount("p".into()), vec![e(t, json!(1), json!("b")), e(t, json!(1), json!("a")), e(t, json!(1), json!("b"))], json!([{"o": 2}])),
            // group-by values are strings, numbers as text; sorted by text
            (vec!["h"], AggFunction::Count, vec![e(t, json!(2), json!(0)), e(t, json!(10), json!(0)), e(t, json!(2), json!(0))], json!([{"h": "10", "o": 1}, {"h": "2", "o": 2}])),
            (vec!["h", "p"], AggFunction::Count, vec![e(t, json!("x"), json!("b")), e(t, json!("x"), json!("a")), e(t, Value::Null, json!("z"))], json!([{"h": "", "p": "z", "o": 1}, {"h": "x", "p": "a", "o": 1}, {"h": "x", "p": "b", "o": 1}])),
        ];
        for (i, (group_by, function, events, want)) in cases.into_iter().enumerate() {
            let mut r = rule(Expr::All(vec![]));
            r.aggregation = Some(Aggregation {
                group_by: group_by.into_iter().map(String::from).collect(),
                outputs: vec![out("o", function)],
            });
            let got = evaluate(&r, &events, now()).unwrap();
            let rows = Value::Array(got.rows.into_iter().map(Value::Object).collect());
            assert_eq!(rows, want, "case {i}");
        }
    }
}
