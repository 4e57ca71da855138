//! The intermediate representation: one target-independent description of a rule.
//!
//! The IR is plain data. It is produced by [`crate::parse`], consumed by
//! [`crate::lower`] and [`crate::eval`], and printed by `rmmc explain`. Nothing here
//! touches the file system.
//!
//! Every predicate keeps its exact [`MatchKind`] and [`Case`] rule: the IR never
//! encodes a kind as wildcards that a backend would have to guess back.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// A compiled rule: metadata, data source, window, detection, exclusions, aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Name, description, ATT&CK mapping and other metadata.
    pub meta: Metadata,
    /// The kind of events the rule reads.
    pub source: DataSource,
    /// How far back the rule looks.
    pub window: Window,
    /// The condition an event must meet.
    pub detection: Expr,
    /// Known false-positive scenarios. An event matching `drop_when` is dropped.
    pub exclusions: Vec<Exclusion>,
    /// Optional grouping of the matched events into result rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<Aggregation>,
    /// Constant columns added to every result row (KQL `extend X = 'const'`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub constants: Vec<Constant>,
}

/// What a rule is about, besides its logic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// A UUID, stable across renames.
    pub id: String,
    /// The rule's title.
    pub name: String,
    /// What it detects and why.
    pub description: String,
    /// URLs with background.
    pub references: Vec<String>,
    /// Who wrote the rule, if stated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The license the rule's author gives it (an SPDX identifier, e.g. `MIT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// When the rule was written (`YYYY-MM-DD`); Sigma's `date`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// When the rule was last changed (`YYYY-MM-DD`, after `date`); Sigma's `modified`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// The RMM tool the rule is about.
    pub tool: String,
    /// ATT&CK tactics, as Sentinel names them (`CommandAndControl`).
    pub tactics: Vec<String>,
    /// ATT&CK technique ids (`T1219`).
    pub techniques: Vec<String>,
    /// How severe a match is.
    pub severity: Severity,
    /// How mature the rule is.
    pub status: Status,
    /// Warnings the author has reviewed and accepts; they are not printed again.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub acknowledged: Vec<Acknowledgement>,
}

/// One reviewed warning: a lint code (see [`crate::lint::CODES`]), or `approximate`
/// with a `target` (and optionally the approximated `construct`), which `--strict`
/// then accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    /// The lint code or approximation construct acknowledged.
    pub warning: String,
    /// For an approximation: the target it applies to, if only one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
    /// For an approximation: the construct it applies to, if only one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub construct: Option<String>,
    /// Why the warning is acceptable for this rule.
    pub reason: String,
}

/// How severe a match of the rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, not an alert.
    Informational,
    /// Low severity.
    Low,
    /// Medium severity.
    Medium,
    /// High severity.
    High,
    /// Critical severity.
    Critical,
}

/// How mature a rule is (Sigma's statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// New, not yet tested widely.
    Experimental,
    /// Being tested.
    Test,
    /// Tested and in use.
    Stable,
    /// Replaced or no longer useful.
    Deprecated,
}

/// The logical kind of events a rule reads. Each target maps it to a table,
/// index or category through its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// Code-signing information of files (Defender `DeviceFileCertificateInfo`).
    FileSignature,
    /// Process starts (`DeviceProcessEvents`).
    ProcessCreation,
    /// Network connections (`DeviceNetworkEvents`).
    NetworkConnection,
}

impl DataSource {
    /// Every data source.
    pub const ALL: [DataSource; 3] = [
        DataSource::FileSignature,
        DataSource::ProcessCreation,
        DataSource::NetworkConnection,
    ];

    /// The name rules use: `file_signature`, `process_creation`, `network_connection`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataSource::FileSignature => "file_signature",
            DataSource::ProcessCreation => "process_creation",
            DataSource::NetworkConnection => "network_connection",
        }
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A look-back window ending at query time, inclusive at both ends
/// (KQL `between (now(-d) .. now())`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Length of the look-back in seconds.
    pub seconds: u64,
}

impl Window {
    /// The window in the shortest exact unit: `5d`, `12h`, `30m`, `45s`.
    pub fn shorthand(&self) -> String {
        let s = self.seconds;
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
            if s.is_multiple_of(size) && s >= size {
                return format!("{}{unit}", s / size);
            }
        }
        format!("{s}s")
    }
}

/// A canonical field name (ECS where ECS has the concept, e.g. `process.parent.name`).
pub type Field = String;

/// A boolean detection expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// Every member holds.
    All(Vec<Expr>),
    /// At least one member holds.
    Any(Vec<Expr>),
    /// The member does not hold.
    Not(Box<Expr>),
    /// One predicate on one field.
    Match(Predicate),
}

impl Expr {
    /// Every field the expression reads, in order of first use.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::All(xs) | Expr::Any(xs) => xs.iter().for_each(|x| x.collect_fields(out)),
            Expr::Not(x) => x.collect_fields(out),
            Expr::Match(p) => {
                if !out.contains(&p.field.as_str()) {
                    out.push(&p.field);
                }
            }
        }
    }

    /// Every predicate, depth first.
    pub fn predicates(&self) -> Vec<&Predicate> {
        match self {
            Expr::All(xs) | Expr::Any(xs) => xs.iter().flat_map(|x| x.predicates()).collect(),
            Expr::Not(x) => x.predicates(),
            Expr::Match(p) => vec![p],
        }
    }
}

/// How a predicate compares a field with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The whole value equals the literal (KQL `==` / `=~`, `in` / `in~`).
    Equals,
    /// The literal occurs as whole terms (KQL `has`, `has_any`, `has_all`): bounded on
    /// both sides by a character that is not a Unicode letter or digit, or by the ends.
    Term,
    /// The literal occurs anywhere (KQL `contains`).
    Contains,
    /// The value starts with the literal (KQL `startswith`).
    Prefix,
    /// The value ends with the literal (KQL `endswith`).
    Suffix,
    /// The RE2-compatible pattern matches somewhere in the value (KQL `matches regex`).
    Regex,
    /// The value is missing or `""` (KQL `isempty`). Takes no values.
    Empty,
    /// The value is present and not `""` (KQL `isnotempty`). Takes no values.
    NotEmpty,
}

impl MatchKind {
    /// Does the kind compare with values (all but `empty` / `not_empty`)?
    pub fn takes_values(self) -> bool {
        !matches!(self, MatchKind::Empty | MatchKind::NotEmpty)
    }

    /// The kind's name in rule files: `equals`, `has`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Equals => "equals",
            MatchKind::Term => "has",
            MatchKind::Contains => "contains",
            MatchKind::Prefix => "prefix",
            MatchKind::Suffix => "suffix",
            MatchKind::Regex => "regex",
            MatchKind::Empty => "empty",
            MatchKind::NotEmpty => "not_empty",
        }
    }
}

/// The case rule of a predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    /// ASCII letters compare without case; every other character compares exactly
    /// (KQL: "case-insensitive operators are supported only for ASCII text").
    Insensitive,
    /// Every character compares exactly.
    Sensitive,
}

/// With several values: must one of them match, or all?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantifier {
    /// At least one value matches.
    Any,
    /// Every value matches.
    All,
}

/// One comparison of one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predicate {
    /// The canonical field name.
    pub field: Field,
    /// How the field is compared.
    pub kind: MatchKind,
    /// Whether case matters (insensitive folds ASCII letters only, as KQL).
    pub case: Case,
    /// One or more literals (patterns for [`MatchKind::Regex`]); empty for
    /// [`MatchKind::Empty`] / [`MatchKind::NotEmpty`].
    pub values: Vec<String>,
    /// Whether any or all values must match.
    pub quantifier: Quantifier,
}

/// A documented false-positive scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exclusion {
    /// A unique name, used in filters and reports.
    pub name: String,
    /// The situation in one line.
    pub scenario: String,
    /// Why it is benign.
    pub description: String,
    /// Events matching this are dropped from the results.
    pub drop_when: Expr,
}

/// `summarize OUTPUTS by GROUP`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregation {
    /// The canonical fields rows are grouped by.
    pub group_by: Vec<Field>,
    /// The columns of each row.
    pub outputs: Vec<Output>,
}

/// One column of an aggregated row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// The column name.
    pub name: String,
    /// How it is computed.
    pub function: AggFunction,
}

/// How an output column is computed over a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFunction {
    /// The smallest value of a field.
    Min(Field),
    /// The largest value of a field.
    Max(Field),
    /// Distinct values, unordered in KQL (`make_set`); rmmc's rows sort them.
    DistinctSet(Field),
    /// Number of distinct values (`dcount`). KQL's is an estimate; rmmc's is exact.
    DistinctCount(Field),
    /// The number of events.
    Count,
}

impl AggFunction {
    /// The field the function reads, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            AggFunction::Min(f)
            | AggFunction::Max(f)
            | AggFunction::DistinctSet(f)
            | AggFunction::DistinctCount(f) => Some(f),
            AggFunction::Count => None,
        }
    }
}

/// A column with the same value in every result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constant {
    /// The column name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// The canonical name of the event time field.
pub const TIMESTAMP_FIELD: &str = "@timestamp";

impl Rule {
    /// Every field the rule reads: time, detection and aggregation (not exclusions,
    /// whose fields may be absent from the data source).
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = vec![TIMESTAMP_FIELD];
        let agg_fields = self.aggregation.iter().flat_map(|agg| {
            agg.group_by
                .iter()
                .map(String::as_str)
                .chain(agg.outputs.iter().filter_map(|o| o.function.field()))
        });
        for f in self.detection.fields().into_iter().chain(agg_fields) {
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }

    /// The fields the detection and the exclusions test: what of an event decides
    /// whether the rule matches it (a data source may hold two of them in one field,
    /// e.g. Sigma's `Image` is both `process.executable` and, at its end, `process.name`).
    pub fn tested_fields(&self) -> BTreeSet<&str> {
        let mut out: BTreeSet<&str> = self.detection.fields().into_iter().collect();
        for x in &self.exclusions {
            out.extend(x.drop_when.fields());
        }
        out
    }
}
