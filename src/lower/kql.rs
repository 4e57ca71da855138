//! KQL (Microsoft Defender XDR advanced hunting, Microsoft Sentinel). The IR's
//! semantics are KQL's, so every construct is native and exact, except `dcount`,
//! which KQL estimates.
//!
//! One rule becomes three deployable forms of the same query: the Sentinel hunting
//! query, a Sentinel scheduled analytics rule (ARM template), and a Defender XDR
//! custom detection, whose query must return `Timestamp`, `ReportId` and `DeviceId`
//! and so keeps the latest event of each group (`arg_max`) beside the rule's outputs.
//! Every file is ASCII: Azure-Sentinel's CI rejects any other byte.

use super::{ApproxKind, Dialect, Gathered, LowerInput, Notes, Piece, RuleFile, TargetSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::ir::{AggFunction, Case, MatchKind, Predicate, Quantifier, Severity};
use crate::kql_operators;
use serde_json::{Value, json};

pub(crate) struct Kql;

/// The registry entry of kql: per rule the hunting query (`.kql`, `.yaml`), the
/// scheduled analytics rule (`.analytics.json`) and the custom detection
/// (`.detection.kql`, `.detection.json`); one ARM template with every analytics rule.
pub(crate) const SPEC: TargetSpec = TargetSpec {
    name: "kql",
    description: "Kusto Query Language: Microsoft Sentinel hunting queries and scheduled analytics rules (ARM), Microsoft Defender XDR custom detections",
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
        RuleFile {
            template: "analytics.tera",
            extension: "analytics.json",
        },
        RuleFile {
            template: "detection_query.tera",
            extension: "detection.kql",
        },
        RuleFile {
            template: "detection.tera",
            extension: "detection.json",
        },
    ],
    gathered: &[Gathered::Wrapped {
        path: "analytics-rules.json",
        extension: "analytics.json",
        template: "analytics_all.tera",
        separator: ",\n    ",
        piece: Piece::ArmResources,
    }],
    default_profile: "defender",
};

/// A KQL string literal in ASCII: `"..."` with `\\`, `\"`, `\n`, `\r`, `\t`
/// escaped, and every other control or non-ASCII character as `\uXXXX` (UTF-16 code
/// units, so a character beyond U+FFFF is a surrogate pair), which KQL reads back as
/// the same string. Azure-Sentinel's CI rejects any non-ASCII byte in a query file.
pub fn quote(s: &str) -> String {
    utf16_escaped(&super::backslash_quoted(s, true))
}

/// Every non-ASCII or control character as `\uXXXX` (UTF-16 code units). Applied to
/// text that is already a quoted literal, it keeps the quoting intact: `\`, `"` and
/// the `\n \r \t` escapes are ASCII and pass through.
pub(crate) fn utf16_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Text for a `//` comment: one line, ASCII, a non-ASCII character kept as its
/// `\uXXXX` escape so nothing of the original is lost.
pub fn comment(s: &str) -> String {
    utf16_escaped(&super::one_line(s))
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

/// The KQL operator of a single-value comparison, from the table the Sentinel
/// reader reads with.
fn operator(kind: MatchKind, case: Case) -> &'static str {
    match kind {
        MatchKind::Regex => "matches regex",
        _ => kql_operators::single(kind, case).expect("every comparison has an operator"),
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
            (kind, case, q) if many && kql_operators::list_of(kind, case, q).is_some() => {
                let name = kql_operators::list_of(kind, case, q).expect("checked");
                format!("{col} {name} ({})", list(&p.values))
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
                ApproxKind::EstimatedCount,
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
        let detection_form = custom_detection(input, notes)?;
        let analytics = analytics_rule(input, notes)?;
        Ok(json!({
            "table": column(table),
            "data_type": table,
            "time_column": column(&input.field(crate::ir::TIMESTAMP_FIELD)?),
            "window": rule.window.shorthand(),
            "detection": detection,
            "exclusions": exclusions,
            "summarize": summarize,
            "constants": constants,
            "form": "hunting",
            "analytics": analytics,
            "custom_detection": detection_form,
        }))
    }
}

/// Bounds Sentinel puts on a scheduled rule: `queryPeriod` 5 minutes..14 days, and
/// incident grouping looks back at most 7 days.
const MIN_QUERY_PERIOD: u64 = 5 * 60;
const MAX_QUERY_PERIOD: u64 = 14 * 86_400;
const MAX_GROUPING_LOOKBACK: u64 = 7 * 86_400;
/// How often the analytics rule runs (never longer than its period).
const QUERY_FREQUENCY: u64 = 3_600;

/// An ISO 8601 duration as Azure writes them: `P5D`, `PT1H`, `P1DT12H`, `PT90S` → `PT1M30S`.
pub fn iso_duration(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (hours, minutes, secs) = (rest / 3_600, rest % 3_600 / 60, rest % 60);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if rest > 0 || days == 0 {
        out.push('T');
        for (n, unit) in [(hours, 'H'), (minutes, 'M'), (secs, 'S')] {
            if n > 0 {
                out.push_str(&format!("{n}{unit}"));
            }
        }
        if rest == 0 {
            out.push_str("0S");
        }
    }
    out
}

/// The Sentinel entity a canonical field identifies, as (entity type, identifier).
/// Identifiers as Microsoft's own Defender-based analytics rules map these columns.
fn entity_of(canonical: &str) -> Option<(&'static str, &'static str)> {
    match canonical {
        "host.name" => Some(("Host", "FullName")),
        "user.upn" => Some(("Account", "FullName")),
        "user.name" => Some(("Account", "Name")),
        "url.original" => Some(("URL", "Url")),
        "destination.ip" => Some(("IP", "Address")),
        _ => None,
    }
}

/// A custom-detail key: letters and digits only.
fn detail_key(column: &str) -> String {
    column.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// The scheduled analytics rule: schedule, severity, ATT&CK, entities and grouping.
/// The query is the hunting query itself (rendered later), so both forms return the
/// same rows. Entities come from the rule's group fields (Host from the device name,
/// Account from the UPN, URL from the remote URL); a group field no entity
/// identifies (the device id) becomes a custom detail, and alerts are grouped into
/// incidents by the group fields' entities and custom details.
fn analytics_rule(input: &LowerInput, notes: &mut Notes) -> Result<Value> {
    let rule = input.rule;
    let window = rule.window.seconds;
    let period = window.clamp(MIN_QUERY_PERIOD, MAX_QUERY_PERIOD);
    if period != window {
        notes.approximate(
            "analytics rule queryPeriod",
            ApproxKind::SentinelQueryPeriod {
                window: rule.window.shorthand(),
                period: iso_duration(period),
            },
        );
    }
    let severity = match rule.meta.severity {
        Severity::Informational => "Informational",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => {
            notes.approximate(
                "alert severity",
                ApproxKind::NoCriticalSeverity,
            );
            "High"
        }
    };
    // The columns each alert row has that entities can be read from.
    let grouped = rule.aggregation.is_some();
    let candidates: Vec<String> = match &rule.aggregation {
        Some(a) => a.group_by.clone(),
        None => ["host.name", "user.upn", "url.original"]
            .into_iter()
            .filter(|f| crate::vocabulary::has_field(rule.source, f))
            .map(str::to_string)
            .collect(),
    };
    let mut entities: Vec<(&str, Vec<Value>)> = Vec::new();
    let mut details = serde_json::Map::new();
    let mut group_details = Vec::new();
    for canonical in &candidates {
        let column = input.field(canonical)?;
        match entity_of(canonical) {
            Some((entity, identifier)) => {
                let mapping = json!({ "identifier": identifier, "columnName": column });
                match entities.iter_mut().find(|(e, _)| *e == entity) {
                    Some((_, fields)) => fields.push(mapping),
                    None => entities.push((entity, vec![mapping])),
                }
            }
            None if grouped => {
                details.insert(detail_key(&column), json!(column));
                group_details.push(detail_key(&column));
            }
            None => {}
        }
    }
    for o in rule.aggregation.iter().flat_map(|a| &a.outputs) {
        details.insert(detail_key(&o.name), json!(o.name));
    }
    let group_entities: Vec<&str> = entities.iter().map(|(e, _)| *e).collect();
    let entity_mappings: Vec<Value> = entities
        .iter()
        .map(|(e, fields)| json!({ "entityType": e, "fieldMappings": fields }))
        .collect();
    let (techniques, sub_techniques): (Vec<&String>, Vec<&String>) =
        rule.meta.techniques.iter().partition(|t| !t.contains('.'));
    let mut parents: Vec<String> = techniques.iter().map(|t| t.to_string()).collect();
    for sub in &sub_techniques {
        let parent = sub.split('.').next().unwrap_or_default().to_string();
        if !parents.contains(&parent) {
            parents.push(parent);
        }
    }
    Ok(json!({
        "query_frequency": iso_duration(QUERY_FREQUENCY.min(period)),
        "query_period": iso_duration(period),
        "severity": severity,
        "tactics": rule.meta.tactics,
        "techniques": parents,
        "sub_techniques": sub_techniques,
        "entity_mappings": entity_mappings,
        "custom_details": if details.is_empty() { Value::Null } else { Value::Object(details) },
        "grouping": {
            "lookback": iso_duration(period.min(MAX_GROUPING_LOOKBACK)),
            "entities": group_entities,
            "custom_details": group_details,
        },
    }))
}

/// Defender XDR runs a custom detection at one of a few frequencies, each reading a
/// fixed look-back (Microsoft Learn, "Create and manage custom detection rules"):
/// the most frequent schedule whose look-back covers the rule's window.
const DETECTION_SCHEDULES: &[(u64, &str)] = &[
    (4 * 3_600, "PT1H"),
    (12 * 3_600, "PT3H"),
    (48 * 3_600, "PT12H"),
    (30 * 86_400, "P1D"),
];

/// The custom-detection form: the hunting query with its `summarize` extended to
/// return `Timestamp`, `ReportId` and `DeviceId` of each group's latest event
/// (`arg_max`), beside the rule's outputs and group fields, so the groups are the
/// hunting query's. A rule without aggregation returns events, which have them.
fn custom_detection(input: &LowerInput, notes: &mut Notes) -> Result<Value> {
    let rule = input.rule;
    let window = rule.window.seconds;
    let frequency = match DETECTION_SCHEDULES
        .iter()
        .find(|(lookback, _)| window <= *lookback)
    {
        Some((_, f)) => *f,
        None => {
            notes.approximate(
                "custom detection look-back",
                ApproxKind::CustomDetectionLookBack {
                    window: rule.window.shorthand(),
                },
            );
            "P1D"
        }
    };
    let timestamp = input.field(crate::ir::TIMESTAMP_FIELD)?;
    let required = [input.field("event.id")?, input.field("host.id")?];
    let summarize = match &rule.aggregation {
        None => Value::Null,
        Some(agg) => {
            let group: Vec<String> = agg
                .group_by
                .iter()
                .map(|f| input.field(f))
                .collect::<Result<_>>()?;
            for o in &agg.outputs {
                if o.name == timestamp || required.contains(&o.name) {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "output `{}` has the name of a column a Defender XDR custom detection must return ({timestamp}, {}): rename the output",
                            o.name,
                            required.join(", ")
                        ),
                    )
                    .in_file(input.rule_file));
                }
            }
            let missing: Vec<&String> = required.iter().filter(|c| !group.contains(c)).collect();
            let latest = if group.contains(&timestamp) {
                // Every event of a group has the group's timestamp: any one is the latest.
                missing
                    .iter()
                    .map(|c| format!("{}=max({})", column(c), column(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else if missing.is_empty() {
                format!("{}=max({})", column(&timestamp), column(&timestamp))
            } else {
                format!(
                    "arg_max({}, {})",
                    column(&timestamp),
                    missing
                        .iter()
                        .map(|c| column(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            Value::String(latest)
        }
    };
    // Impacted assets: the device always; the user where the result has the UPN.
    let mut assets = vec![json!({
        "@odata.type": "#microsoft.graph.security.impactedDeviceAsset",
        "identifier": "deviceId",
    })];
    if crate::vocabulary::has_field(rule.source, "user.upn") {
        let upn = input.field("user.upn")?;
        let in_result = rule
            .aggregation
            .as_ref()
            .is_none_or(|a| a.group_by.iter().any(|f| f == "user.upn"));
        let identifier = match upn.as_str() {
            "AccountUpn" => Some("accountUpn"),
            "InitiatingProcessAccountUpn" => Some("initiatingProcessAccountUpn"),
            _ => None,
        };
        if let (true, Some(identifier)) = (in_result, identifier) {
            assets.push(json!({
                "@odata.type": "#microsoft.graph.security.impactedUserAsset",
                "identifier": identifier,
            }));
        }
    }
    Ok(json!({
        "latest": summarize,
        "frequency": frequency,
        "category": rule.meta.tactics.first(),
        "severity": match rule.meta.severity {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High | Severity::Critical => "high",
        },
        "impacted_assets": assets,
    }))
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
            ("Krämer", r#""Kr\u00e4mer""#),
            (
                "TEKNOPARS BİLİŞİM",
                r#""TEKNOPARS B\u0130L\u0130\u015e\u0130M""#,
            ),
            ("😀x", r#""\ud83d\ude00x""#),
            ("a\u{7}b\u{7f}", r#""a\u0007b\u007f""#),
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
