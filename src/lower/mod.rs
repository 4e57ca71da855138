//! Per-target lowering: operator choice, escaping, field mapping and fidelity.
//!
//! Each target is one file with one `Dialect` implementation. The trait's methods
//! have defaults, so a target overrides only what differs: the predicate table (one
//! arm per [`MatchKind`]), the boolean syntax, and the template context. Whatever a
//! target cannot say exactly goes into the [`Fidelity`] verdict, never silently.
//!
//! One predicate on every target, with what each can only approximate:
//!
//! ```
//! use rmmc::ir::{Case, MatchKind, Predicate, Quantifier};
//! use rmmc::lower::{predicate_text, Target};
//! use rmmc::ApproxCategory;
//!
//! let p = Predicate {
//!     field: "file.code_signature.subject_name".into(),
//!     kind: MatchKind::Term,
//!     case: Case::Insensitive,
//!     values: vec!["netsupport".into()],
//!     quantifier: Quantifier::Any,
//! };
//! let (kql, exact) = predicate_text(Target::Kql, "Signer", &p);
//! assert_eq!(kql, r#"Signer has "netsupport""#);
//! assert!(exact.is_empty());
//! let (_, eql) = predicate_text(Target::Eql, "Signer", &p);
//! assert_eq!(eql[0].kind.category(), ApproxCategory::TermEdges);
//! ```

mod registry;

pub use registry::{Gathered, Piece, RuleFile, Target, TargetSpec};

/// Declares the target modules and the registry from one list: each entry is the
/// target's constant (`Target::Kql`) and its module `lower/<name>.rs`, which declares
/// the target's [`TargetSpec`] as `SPEC`.
macro_rules! targets {
    ($($constant:ident => $module:ident),* $(,)?) => {
        $(mod $module;)*

        /// Every target's entry, in registry order.
        const REGISTRY: &[&TargetSpec] = &[$(&$module::SPEC),*];

        #[allow(non_upper_case_globals)]
        impl Target {
            $(
                #[doc = concat!("The `", stringify!($module), "` target.")]
                pub const $constant: Target = Target($module::SPEC.name);
            )*
            /// Every registered target, in registry order.
            pub const ALL: [Target; REGISTRY.len()] = [$(Target::$constant),*];
        }
    };
}

// The target registry: one line per target, in the order targets are built and
// listed. A new target is this line, its `lower/<name>.rs` and its `backends/<name>/`.
targets! {
    Kql => kql,
    Spl => spl,
    Eql => eql,
    Sigma => sigma,
}

/// How many names [`rule_set_names`] gives a rule.
pub const RULE_SET_NAMES: usize = 3;

/// A name a target derives from a rule that must be unique across a rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSetName {
    /// What it names, as an error message says it.
    pub what: &'static str,
    /// What a user changes to part two rules that share it.
    pub remedy: &'static str,
    /// The name itself.
    pub name: String,
}

/// Names a target derives from a rule that must be unique across a rule set: the
/// savedsearches.conf stanza (Splunk keeps only the last of two equal stanzas), the
/// alert's `_filter` macro in macros.conf (likewise) and the Sigma rule `name` (a
/// correlation refers to it). Builds fail on a collision, naming both rules and what
/// to change: the macro and the Sigma name come from the id's first block (8 hex
/// digits: two random ids share one once in about 4 billion pairs, so a set of 10,000
/// rules has a 1 % chance of a clash, which a new id for one of them resolves).
pub fn rule_set_names(rule: &Rule) -> [RuleSetName; RULE_SET_NAMES] {
    const NEW_ID: &str = "give one of them a new id (the name is made from the first block of the id, \
        which renaming a rule does not change)";
    [
        RuleSetName {
            what: "the savedsearches.conf stanza",
            remedy: "rename one of them",
            name: crate::text::conf_stanza(&rule.meta.name),
        },
        RuleSetName {
            what: "the Splunk filter macro",
            remedy: NEW_ID,
            name: spl::filter_macro(&rule.meta.id),
        },
        RuleSetName {
            what: "the Sigma rule name",
            remedy: NEW_ID,
            name: sigma::rule_name(rule),
        },
    ]
}

/// Each target's literal, pattern and name escaping, public so their properties can be
/// tested against each target's own parser (`tests/suite/escaping.rs`, the conformance
/// suite). A value in a rule must never change the structure of a query.
pub mod escape {
    pub use super::eql::{
        field_name as eql_field, lucene_escape as eql_lucene, quote as eql_string,
        term_regex as eql_term_regex,
    };
    pub use super::kql::{column as kql_column, comment as kql_comment, quote as kql_string};
    pub use super::sigma::escape_value as sigma_value;
    pub use super::spl::{
        ascii_folded_literal as spl_ascii_folded, filter_macro as spl_filter_macro,
        pcre_literal as spl_pcre, quote as spl_string, search_field as spl_search_field,
        where_field as spl_where_field, without_backticks as spl_without_backticks,
        working_name as spl_working_name,
    };
    pub use super::{ascii_classes, term_regex_around, term_regex_unicode};
    pub use crate::text::{
        arm_string, conf_value, json_ascii, yaml_block, yaml_block_ascii, yaml_scalar,
        yaml_scalar_ascii,
    };
}

use crate::error::{Error, ErrorKind, Result};
use crate::ir::{Case, DataSource, Exclusion, Expr, MatchKind, Predicate, Rule};
use crate::profile::{FieldMapping, Profile};
pub(crate) use crate::text::{backslash_quoted, has_non_ascii_cased, one_line};
use crate::vocabulary;
use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// One construct a target can only approximate, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approximation {
    /// The construct, as a reader finds it in the rule: `regex on `process.name``.
    pub construct: String,
    /// Why the target cannot say it exactly; the prose is [`Approximation::reason`].
    pub kind: ApproxKind,
}

impl Approximation {
    /// The reason in words, generated from [`Approximation::kind`].
    pub fn reason(&self) -> String {
        self.kind.to_string()
    }
}

impl PartialOrd for Approximation {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// By construct, then by the reason's words: the order of `FIDELITY.md` rows.
impl Ord for Approximation {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.construct, self.reason()).cmp(&(&other.construct, other.reason()))
    }
}

/// Serialized as `{construct, kind, category, reason}`: the kind and category as
/// stable snake_case codes for programs, the reason for people.
impl Serialize for Approximation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("Approximation", 4)?;
        st.serialize_field("construct", &self.construct)?;
        st.serialize_field("kind", self.kind.code())?;
        st.serialize_field("category", self.kind.category().code())?;
        st.serialize_field("reason", &self.reason())?;
        st.end()
    }
}

/// Why a target can only approximate a construct, as data: programs (the conformance
/// suite, `--strict`, reports) branch on it, and the prose is generated from it.
/// Each kind belongs to one [`ApproxCategory`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApproxKind {
    /// EQL: Lucene regexp has no Unicode letter/digit classes for term boundaries.
    LuceneTermEdges,
    /// Sigma: the term boundary is `[\W_]`, whose meaning differs between engines.
    SigmaTermEdges,
    /// EQL: an RE2 pattern run as a Lucene whole-string regexp.
    LuceneRegex,
    /// SPL: an RE2 pattern run as PCRE.
    PcreRegex,
    /// Sigma: an RE2 pattern in `|re`, a PCRE subset with unspecified anchoring.
    SigmaRegex,
    /// KQL: `dcount()` estimates.
    EstimatedCount,
    /// EQL: aggregation outputs a rule cannot return; one alert per event instead.
    AlertPerEvent {
        /// The outputs that are lost.
        outputs: Vec<String>,
        /// Group fields alerts are not suppressed on, and why.
        not_suppressed: Vec<(String, String)>,
    },
    /// The profile's data lacks a field and records another in its place; the
    /// profile says what that changes.
    FieldSubstitute {
        /// What changes, as the profile states it.
        meaning: String,
    },
    /// KQL analytics rule: the window is outside Sentinel's queryPeriod range.
    SentinelQueryPeriod {
        /// The rule's window, `5d`.
        window: String,
        /// The ISO 8601 period queried instead.
        period: String,
    },
    /// KQL: Sentinel and Defender XDR have no Critical severity.
    NoCriticalSeverity,
    /// KQL custom detection: reads at most 30 days.
    CustomDetectionLookBack {
        /// The rule's window.
        window: String,
    },
    /// EQL: an alerting rule run on a schedule, not a hunt over the window.
    AlertingSchedule {
        /// The rule's window, `5d`.
        window: String,
        /// How often Kibana runs the rule.
        interval: String,
        /// How far back each run looks.
        look_back: String,
    },
    /// Sigma: a correlation counts events only.
    CorrelationCountsOnly {
        /// The outputs that are not counts.
        outputs: Vec<String>,
    },
    /// EQL: a query cannot add constant fields.
    EqlConstantColumns,
    /// Sigma: a rule cannot add constant fields.
    SigmaConstantColumns,
    /// Sigma: a rule has no look-back window.
    SigmaNoLookBack {
        /// The rule's window, `5d`.
        window: String,
    },
    /// Sigma: a correlation timespan is not a look-back window.
    CorrelationTimespan {
        /// The rule's window, `5d`.
        window: String,
    },
    /// Sigma: the data has no field for some group fields, so groups merge.
    CorrelationGroupsLacking {
        /// The canonical group fields the data lacks.
        lacking: Vec<String>,
        /// The data's names of the group fields it has.
        by: Vec<String>,
    },
    /// Sigma: a non-ASCII value is a `|re` whose `$` also accepts a final newline.
    SigmaEndAnchor,
    /// Sigma: a file name is read as the end of the path the data records.
    FileNameFromPath {
        /// The data's path field (`Image`).
        path_field: String,
    },
    /// Sigma: a regex on a file name runs over the whole path the data records.
    RegexOverPath {
        /// The data's path field (`Image`).
        path_field: String,
    },
    /// SPL: the data writes JSON nulls as a string (Splunk's Defender add-on: `"null"`),
    /// read as missing, so a real value spelled so reads as missing too.
    NullString {
        /// The string nulls arrive as.
        null: String,
    },
}

/// What kind of difference an approximation is, across targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApproxCategory {
    /// Where a whole-term match may start and end.
    TermEdges,
    /// The regex dialect a pattern runs in.
    RegexFlavour,
    /// A count that is estimated.
    EstimatedCount,
    /// Aggregation outputs the target cannot produce.
    Aggregation,
    /// Constant result columns.
    ConstantColumns,
    /// The time window.
    Window,
    /// A field the data lacks, read through another one.
    FieldSubstitute,
    /// The alert's severity.
    Severity,
    /// How a missing value is told from a present one.
    MissingValue,
}

impl ApproxCategory {
    /// A stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            ApproxCategory::TermEdges => "term_edges",
            ApproxCategory::RegexFlavour => "regex_flavour",
            ApproxCategory::EstimatedCount => "estimated_count",
            ApproxCategory::Aggregation => "aggregation",
            ApproxCategory::ConstantColumns => "constant_columns",
            ApproxCategory::Window => "window",
            ApproxCategory::FieldSubstitute => "field_substitute",
            ApproxCategory::Severity => "severity",
            ApproxCategory::MissingValue => "missing_value",
        }
    }
}

impl ApproxKind {
    /// The category the kind belongs to.
    pub fn category(&self) -> ApproxCategory {
        match self {
            ApproxKind::LuceneTermEdges | ApproxKind::SigmaTermEdges => ApproxCategory::TermEdges,
            ApproxKind::LuceneRegex | ApproxKind::PcreRegex | ApproxKind::SigmaRegex => {
                ApproxCategory::RegexFlavour
            }
            ApproxKind::EstimatedCount => ApproxCategory::EstimatedCount,
            ApproxKind::FieldSubstitute { .. } => ApproxCategory::FieldSubstitute,
            ApproxKind::SentinelQueryPeriod { .. } | ApproxKind::CustomDetectionLookBack { .. } => {
                ApproxCategory::Window
            }
            ApproxKind::NoCriticalSeverity => ApproxCategory::Severity,
            ApproxKind::AlertPerEvent { .. }
            | ApproxKind::CorrelationCountsOnly { .. }
            | ApproxKind::CorrelationGroupsLacking { .. } => ApproxCategory::Aggregation,
            ApproxKind::SigmaEndAnchor => ApproxCategory::RegexFlavour,
            ApproxKind::FileNameFromPath { .. } | ApproxKind::RegexOverPath { .. } => {
                ApproxCategory::FieldSubstitute
            }
            ApproxKind::EqlConstantColumns | ApproxKind::SigmaConstantColumns => {
                ApproxCategory::ConstantColumns
            }
            ApproxKind::SigmaNoLookBack { .. }
            | ApproxKind::CorrelationTimespan { .. }
            | ApproxKind::AlertingSchedule { .. } => ApproxCategory::Window,
            ApproxKind::NullString { .. } => ApproxCategory::MissingValue,
        }
    }

    /// A stable snake_case code of the kind.
    pub fn code(&self) -> &'static str {
        match self {
            ApproxKind::LuceneTermEdges => "lucene_term_edges",
            ApproxKind::SigmaTermEdges => "sigma_term_edges",
            ApproxKind::LuceneRegex => "lucene_regex",
            ApproxKind::PcreRegex => "pcre_regex",
            ApproxKind::SigmaRegex => "sigma_regex",
            ApproxKind::EstimatedCount => "estimated_count",
            ApproxKind::AlertPerEvent { .. } => "alert_per_event",
            ApproxKind::FieldSubstitute { .. } => "field_substitute",
            ApproxKind::SentinelQueryPeriod { .. } => "sentinel_query_period",
            ApproxKind::NoCriticalSeverity => "no_critical_severity",
            ApproxKind::CustomDetectionLookBack { .. } => "custom_detection_look_back",
            ApproxKind::AlertingSchedule { .. } => "alerting_schedule",
            ApproxKind::CorrelationCountsOnly { .. } => "correlation_counts_only",
            ApproxKind::EqlConstantColumns => "eql_constant_columns",
            ApproxKind::SigmaConstantColumns => "sigma_constant_columns",
            ApproxKind::SigmaNoLookBack { .. } => "sigma_no_look_back",
            ApproxKind::CorrelationTimespan { .. } => "correlation_timespan",
            ApproxKind::CorrelationGroupsLacking { .. } => "correlation_groups_lacking",
            ApproxKind::SigmaEndAnchor => "sigma_end_anchor",
            ApproxKind::FileNameFromPath { .. } => "file_name_from_path",
            ApproxKind::RegexOverPath { .. } => "regex_over_path",
            ApproxKind::NullString { .. } => "null_string",
        }
    }
}

impl fmt::Display for ApproxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApproxKind::LuceneTermEdges => f.write_str(
                "Lucene regexp has no Unicode letter/digit classes: a non-ASCII letter or digit next to the term counts as a separator in EQL, not in KQL",
            ),
            ApproxKind::SigmaTermEdges => f.write_str(
                "Sigma regexes have no portable Unicode letter class: the boundary is written [\\W_], exact in Python's re (pySigma), but Rust regex counts combining marks and connector punctuation as word characters and RE2 treats every non-ASCII letter as a separator",
            ),
            ApproxKind::LuceneRegex => f.write_str(
                "the RE2 pattern is wrapped in .*( ).* for Lucene's whole-string regexp; anchors, \\d, \\w, \\b and other RE2 syntax differ in Lucene",
            ),
            ApproxKind::PcreRegex => f.write_str(
                "the RE2 pattern runs as PCRE in Splunk: the same for common syntax, but PCRE's `$` also matches before a final newline",
            ),
            ApproxKind::SigmaRegex => f.write_str(
                "Sigma's |re is a PCRE subset and leaves anchoring unspecified; the rule's pattern is RE2 with partial matching",
            ),
            ApproxKind::EstimatedCount => {
                f.write_str("KQL's dcount() is an estimate (HyperLogLog); the IR counts exactly")
            }
            ApproxKind::AlertPerEvent {
                outputs,
                not_suppressed,
            } => {
                write!(
                    f,
                    "EQL cannot return {}: the rule raises one alert per event, suppressed per group for the window",
                    outputs.join("/")
                )?;
                for (field, why) in not_suppressed {
                    write!(f, "; not suppressed on `{field}`: {why}")?;
                }
                Ok(())
            }
            ApproxKind::FieldSubstitute { meaning } => f.write_str(meaning),
            ApproxKind::SentinelQueryPeriod { window, period } => write!(
                f,
                "Sentinel's queryPeriod must be 5 minutes to 14 days: the {window} window is queried as {period}"
            ),
            ApproxKind::NoCriticalSeverity => f.write_str(
                "Sentinel and Defender XDR have no Critical severity: the analytics rule and the custom detection raise High alerts",
            ),
            ApproxKind::CustomDetectionLookBack { window } => write!(
                f,
                "a Defender XDR custom detection reads at most 30 days: the {window} window is cut to 30 days"
            ),
            ApproxKind::AlertingSchedule {
                window,
                interval,
                look_back,
            } => write!(
                f,
                "an alerting rule, not a {window} hunt: Kibana runs it every {interval} over the last {look_back} and so alerts on each event once as it arrives; the {window} look-back is the alert-suppression duration; events from before the rule is enabled are not searched"
            ),
            ApproxKind::CorrelationCountsOnly { outputs } => write!(
                f,
                "a Sigma correlation counts events only: {} have no Sigma form",
                outputs.join("/")
            ),
            ApproxKind::EqlConstantColumns => {
                f.write_str("an EQL query cannot add constant fields to its results")
            }
            ApproxKind::SigmaConstantColumns => f.write_str("a Sigma rule cannot add constant fields"),
            ApproxKind::SigmaNoLookBack { window } => write!(
                f,
                "a Sigma rule has no look-back window: run the converted query over the last {window}"
            ),
            ApproxKind::CorrelationTimespan { window } => write!(
                f,
                "the correlation timespan {window} groups events that lie within {window} of each other; it is not a look-back ending now"
            ),
            ApproxKind::CorrelationGroupsLacking { lacking, by } => {
                let names: Vec<String> = lacking.iter().map(|f| format!("`{f}`")).collect();
                if by.is_empty() {
                    write!(
                        f,
                        "the data has no field for the group fields {}: no correlation, every matching event is an alert",
                        names.join(", ")
                    )
                } else {
                    write!(
                        f,
                        "the data has no field for the group fields {}: the correlation groups by {} only",
                        names.join(", "),
                        by.join(", ")
                    )
                }
            }
            ApproxKind::SigmaEndAnchor => f.write_str(
                "the value has letters outside ASCII, so it is a |re whose end anchor is `$`: PCRE and Python also accept it before a final newline",
            ),
            ApproxKind::FileNameFromPath { path_field } => write!(
                f,
                "the data records the full path ({path_field}): the file name is matched as the text after the path's last backslash, so a path with no backslash, or a value holding one, never matches"
            ),
            ApproxKind::RegexOverPath { path_field } => write!(
                f,
                "the pattern is matched against the whole path ({path_field}), not the file name alone"
            ),
            ApproxKind::NullString { null } => write!(
                f,
                "the data source writes JSON nulls as the string {null:?}, so a real value {null:?} reads as missing"
            ),
        }
    }
}

/// Why a rule cannot run on a target's data at all: the profile's data does not
/// record a field the rule needs, and nothing the data records says the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unsupported {
    /// The canonical field the rule needs.
    pub field: String,
    /// Where the profile searches: `<data schema>/<data source>`.
    pub data: String,
    /// The profile's reason (from its `unsupported:` entry).
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not recorded in {}: {}",
            self.field, self.data, self.reason
        )
    }
}

/// The verdict of one rule on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "verdict", content = "detail")]
pub enum Fidelity {
    /// The target says the rule exactly.
    Exact,
    /// The target can only approximate these constructs.
    Approximate(Vec<Approximation>),
    /// No file is written for the rule on this target and profile.
    Unsupported(Unsupported),
}

impl Fidelity {
    /// Is the verdict exact?
    pub fn is_exact(&self) -> bool {
        matches!(self, Fidelity::Exact)
    }

    /// Is the verdict `unsupported` (the data cannot express the rule)?
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Fidelity::Unsupported(_))
    }

    /// `exact`, `approximate` or `unsupported`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Fidelity::Exact => "exact",
            Fidelity::Approximate(_) => "approximate",
            Fidelity::Unsupported(_) => "unsupported",
        }
    }

    /// The approximations (none when exact or unsupported).
    pub fn approximations(&self) -> &[Approximation] {
        match self {
            Fidelity::Approximate(list) => list,
            Fidelity::Exact | Fidelity::Unsupported(_) => &[],
        }
    }
}

/// A rule lowered for one target: the template context and the verdict.
#[derive(Debug, Clone)]
pub struct Lowered {
    /// The target lowered for.
    pub target: Target,
    /// The profile's name.
    pub profile: String,
    /// Everything the target's templates read.
    pub context: serde_json::Value,
    /// Exact, or what is approximated and why.
    pub fidelity: Fidelity,
    /// Target-independent remarks, e.g. an exclusion that cannot be applied.
    pub warnings: Vec<String>,
}

/// What a lowering reads: the rule, where it came from, and the chosen profile.
/// Every field an emitted query reads, aggregates or suppresses by goes through
/// [`LowerInput::field`], which checks it against the fields the profile's data
/// records and remembers it for the verdict.
pub struct LowerInput<'a> {
    /// The rule.
    pub rule: &'a Rule,
    /// Its file, for error messages.
    pub rule_file: &'a Path,
    /// The field map to write with.
    pub profile: &'a Profile,
    /// The target lowered for.
    pub target: Target,
    /// Canonical fields read so far, with what the data holds them as.
    read: RefCell<BTreeMap<String, FieldMapping>>,
    /// The first field the data does not record, when the rule needed one.
    unsupported: RefCell<Option<Unsupported>>,
}

impl<'a> LowerInput<'a> {
    /// The input of lowering `rule` (from `rule_file`) for `target` with `profile`.
    pub fn new(rule: &'a Rule, rule_file: &'a Path, target: Target, profile: &'a Profile) -> Self {
        LowerInput {
            rule,
            rule_file,
            profile,
            target,
            read: RefCell::default(),
            unsupported: RefCell::default(),
        }
    }

    /// The target's name for a canonical field the query needs. A field the
    /// profile's data does not record makes the rule `unsupported` (an error of kind
    /// [`ErrorKind::Unsupported`] that [`lower`] turns into the verdict); a mapping
    /// onto a field the data lacks, or no mapping, is an error naming the rule file,
    /// field, target, profile and data source.
    pub fn field(&self, canonical: &str) -> Result<String> {
        match self.optional_field(canonical)? {
            Some(name) => Ok(name),
            None => {
                let map = self.profile.source(self.rule.source)?;
                let reason = match map.fields.get(canonical) {
                    Some(FieldMapping::Unsupported { unsupported }) => unsupported.clone(),
                    _ => unreachable!("optional_field returns None only for unsupported fields"),
                };
                let u = Unsupported {
                    field: canonical.to_string(),
                    data: map.data.clone(),
                    reason,
                };
                let message = format!("{} cannot run rule: {u}", self.target);
                self.unsupported.borrow_mut().get_or_insert(u);
                Err(Error::new(ErrorKind::Unsupported, message).in_file(self.rule_file))
            }
        }
    }

    /// The target's name for a canonical field the query can do without (e.g. an
    /// alert-suppression field): `None` when the profile's data does not record it.
    pub fn optional_field(&self, canonical: &str) -> Result<Option<String>> {
        let map = self.profile.source(self.rule.source)?;
        let at = || {
            format!(
                "target `{}`, profile `{}` ({}), data source `{}`",
                self.target,
                self.profile.name,
                self.profile.path.display(),
                map.data
            )
        };
        let mapping = map.fields.get(canonical).ok_or_else(|| {
            Error::new(
                ErrorKind::UnmappedField,
                format!(
                    "field `{canonical}` of `{}` has no mapping ({}): add it under sources.{}.fields",
                    self.rule.source,
                    at(),
                    self.rule.source
                ),
            )
            .in_file(self.rule_file)
        })?;
        let Some(name) = mapping.name() else {
            return Ok(None);
        };
        if !map.recorded.contains(name) {
            return Err(Error::new(
                ErrorKind::UnrecordedField,
                format!(
                    "field `{canonical}` maps to `{name}`, which the data does not record ({}): map it to a field listed for {} in backends/data/, or mark it `unsupported: <reason>`",
                    at(),
                    map.data
                ),
            )
            .in_file(self.rule_file));
        }
        self.read
            .borrow_mut()
            .insert(canonical.to_string(), mapping.clone());
        Ok(Some(name.to_string()))
    }

    /// The substitutions among the fields read so far, as approximations.
    fn substitutions(&self) -> Vec<Approximation> {
        self.read
            .borrow()
            .iter()
            .filter_map(|(canonical, m)| match m {
                FieldMapping::Substitute { field, meaning } => Some(Approximation {
                    construct: format!("field `{canonical}` read as `{field}`"),
                    kind: ApproxKind::FieldSubstitute {
                        meaning: meaning.clone(),
                    },
                }),
                _ => None,
            })
            .collect()
    }

    /// A setting of the rule's data source in the profile (`table`, `index`, ...).
    pub fn setting(&self, key: &str) -> Result<&str> {
        self.profile.setting(self.rule.source, key)
    }

    /// The exclusions whose fields the data source has; the rest are documented only.
    pub fn applied_exclusions(&self) -> Vec<&Exclusion> {
        self.rule
            .exclusions
            .iter()
            .filter(|x| missing_exclusion_fields(self.rule.source, x).is_empty())
            .collect()
    }
}

/// The fields an exclusion reads that the data source lacks.
pub fn missing_exclusion_fields(source: DataSource, x: &Exclusion) -> Vec<String> {
    x.drop_when
        .fields()
        .into_iter()
        .filter(|f| !vocabulary::has_field(source, f))
        .map(str::to_string)
        .collect()
}

/// The warnings for exclusions that cannot be applied to the rule's data source.
pub fn exclusion_warnings(rule: &Rule) -> Vec<String> {
    rule.exclusions
        .iter()
        .filter_map(|x| {
            let missing = missing_exclusion_fields(rule.source, x);
            (!missing.is_empty()).then(|| {
                format!(
                    "exclusion `{}` ({}) is not applied: data source `{}` has no field {}; it is kept as a documented false positive",
                    x.name,
                    x.scenario,
                    rule.source,
                    missing
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

/// Collects approximations while a rule is lowered.
#[derive(Default)]
pub struct Notes {
    approximations: Vec<Approximation>,
}

impl Notes {
    /// Record that `construct` can only be approximated, and why.
    pub fn approximate(&mut self, construct: impl Into<String>, kind: ApproxKind) {
        let a = Approximation {
            construct: construct.into(),
            kind,
        };
        if !self.approximations.contains(&a) {
            self.approximations.push(a);
        }
    }

    /// Take over another collection's approximations.
    pub fn absorb(&mut self, other: Notes) {
        for a in other.approximations {
            self.approximate(a.construct, a.kind);
        }
    }

    fn into_fidelity(mut self) -> Fidelity {
        if self.approximations.is_empty() {
            Fidelity::Exact
        } else {
            self.approximations.sort();
            Fidelity::Approximate(self.approximations)
        }
    }
}

/// The capability trait of a target. Defaults describe a language with infix
/// `and`/`or`, prefix `not` and parentheses; a target overrides what differs.
pub(crate) trait Dialect: Sync {
    /// Lower one predicate on an already-mapped field name. This is the target's
    /// table from match kind to emitter.
    fn predicate(&self, field: &str, p: &Predicate, notes: &mut Notes) -> String;

    /// The template context of the whole rule.
    fn context(&self, input: &LowerInput, notes: &mut Notes) -> Result<serde_json::Value>;

    /// What the target's pack-wide files read from the profile (see
    /// [`Target::pack_context`]); an error where the profile cannot make a valid pack.
    fn pack_context(&self, _profile: &Profile) -> Result<serde_json::Value> {
        Ok(serde_json::json!({}))
    }

    /// Whether the lowering adds a data source's `events` selection to its queries.
    /// A profile of a target that does not may not have one: it would be ignored.
    fn selects_events(&self) -> bool {
        false
    }

    fn and_word(&self) -> &'static str {
        "and"
    }

    fn or_word(&self) -> &'static str {
        "or"
    }

    fn not_expr(&self, inner: &str) -> String {
        format!("not ({})", unwrap_parens(inner))
    }

    /// Each applied exclusion as its name, scenario and the `not (...)` condition that
    /// keeps the events it does not describe.
    fn exclusions(&self, input: &LowerInput, notes: &mut Notes) -> Result<Vec<serde_json::Value>> {
        input
            .applied_exclusions()
            .into_iter()
            .map(|x| {
                let condition = self.negated(input, &x.drop_when, notes)?;
                Ok(serde_json::json!({
                    "name": x.name,
                    "scenario": one_line(&x.scenario),
                    "condition": condition,
                }))
            })
            .collect()
    }

    /// A boolean expression, parenthesized wherever precedence could matter, so no
    /// target's precedence rules are relied upon.
    fn expr(&self, input: &LowerInput, e: &Expr, notes: &mut Notes) -> Result<String> {
        self.expr_in(input, e, notes, false)
    }

    /// The condition that keeps the events where `e` is false.
    fn negated(&self, input: &LowerInput, e: &Expr, notes: &mut Notes) -> Result<String> {
        Ok(self.not_expr(&self.expr_in(input, e, notes, true)?))
    }

    /// A predicate's text inside a negation, for targets where a comparison on a
    /// missing field is null rather than false (and `not null` drops the event).
    fn guard_missing(&self, _field: &str, _p: &Predicate, text: String) -> String {
        text
    }

    /// The walk behind [`Dialect::expr`]; `under_not` says whether a `not` encloses it.
    fn expr_in(
        &self,
        input: &LowerInput,
        e: &Expr,
        notes: &mut Notes,
        under_not: bool,
    ) -> Result<String> {
        Ok(match e {
            Expr::Match(p) => {
                let field = input.field(&p.field)?;
                let text = self.predicate(&field, p, notes);
                if under_not {
                    self.guard_missing(&field, p, text)
                } else {
                    text
                }
            }
            Expr::Not(x) => self.not_expr(&self.expr_in(input, x, notes, true)?),
            Expr::All(xs) | Expr::Any(xs) => {
                let word = if matches!(e, Expr::All(_)) {
                    self.and_word()
                } else {
                    self.or_word()
                };
                let parts = xs
                    .iter()
                    .map(|x| self.expr_in(input, x, notes, under_not))
                    .collect::<Result<Vec<_>>>()?;
                match parts.len() {
                    0 => unreachable!("empty groups are rejected by the parser"),
                    1 => parts.into_iter().next().expect("one part"),
                    _ => format!("({})", parts.join(&format!(" {word} "))),
                }
            }
        })
    }
}

/// The pieces of a `summarize`/`stats`: each output written by `output(name, call)`
/// where `call(function, mapped field)` is the target's aggregate, and the group
/// fields written by `name`.
pub(crate) fn aggregation_parts(
    input: &LowerInput,
    name: impl Fn(&str) -> Result<String>,
    call: impl Fn(&crate::ir::AggFunction, Option<&str>) -> String,
    output: impl Fn(&str, &str) -> Result<String>,
) -> Result<Option<serde_json::Value>> {
    let Some(agg) = &input.rule.aggregation else {
        return Ok(None);
    };
    let mut outputs = Vec::new();
    for o in &agg.outputs {
        let field = match o.function.field() {
            Some(f) => Some(name(&input.field(f)?)?),
            None => None,
        };
        outputs.push(output(&o.name, &call(&o.function, field.as_deref()))?);
    }
    let by = agg
        .group_by
        .iter()
        .map(|f| input.field(f).and_then(|c| name(&c)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(serde_json::json!({ "outputs": outputs, "by": by })))
}

/// `(a and b)` → `a and b` when the outer parentheses enclose the whole text, so a
/// caller that adds its own does not double them. Parentheses inside `"..."` string
/// literals (backslash escapes, as in KQL, SPL and EQL) are skipped.
pub(crate) fn unwrap_parens(s: &str) -> &str {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'(') || bytes.last() != Some(&b')') {
        return s;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 && i != bytes.len() - 1 {
                    return s;
                }
            }
            _ => {}
        }
    }
    &s[1..s.len() - 1]
}

/// Lower one rule for one target with one profile.
///
/// A rule that needs a field the profile's data does not record lowers to the
/// `unsupported` verdict with no template context (nothing is written for it).
pub fn lower(rule: &Rule, rule_file: &Path, target: Target, profile: &Profile) -> Result<Lowered> {
    let input = LowerInput::new(rule, rule_file, target, profile);
    let mut notes = Notes::default();
    let dialect = target.dialect();
    let lowered = |context, fidelity| Lowered {
        target,
        profile: profile.name.clone(),
        context,
        fidelity,
        warnings: exclusion_warnings(rule),
    };
    match dialect.context(&input, &mut notes) {
        Ok(context) => {
            for a in input.substitutions() {
                notes.approximate(a.construct, a.kind);
            }
            Ok(lowered(context, notes.into_fidelity()))
        }
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            let u = input
                .unsupported
                .into_inner()
                .expect("an Unsupported error records its field");
            Ok(lowered(serde_json::Value::Null, Fidelity::Unsupported(u)))
        }
        Err(e) => Err(e),
    }
}

/// One predicate on one target, as the target writes it, with the approximations it
/// needs: the per-target operator table, visible on its own (`tests/suite/constructs.rs`
/// shows every construct on every target side by side).
pub fn predicate_text(target: Target, field: &str, p: &Predicate) -> (String, Vec<Approximation>) {
    let mut notes = Notes::default();
    let text = target.dialect().predicate(field, p, &mut notes);
    let approximations = notes.into_fidelity().approximations().to_vec();
    (text, approximations)
}

/// Must a target spell ASCII case folding out (`[Kk][Rr]ä[Mm][Ee][Rr]`) instead of
/// using its case-insensitive operator? Yes where that operator folds letters KQL
/// does not: any non-ASCII letter of the value (`ä` ~ `Ä`), and, in engines that fold
/// by Unicode simple case folding (`full_unicode_folding`: PCRE `(?i)`, Rust regex,
/// Sigma engines), `k` and `s` too, which also match the Kelvin sign (U+212A) and
/// the long s (U+017F).
pub(crate) fn needs_ascii_classes(p: &Predicate, full_unicode_folding: bool) -> bool {
    p.case == Case::Insensitive
        && p.kind != MatchKind::Regex
        && (has_non_ascii_cased(&p.values)
            || (full_unicode_folding && p.values.iter().any(|v| v.contains(['k', 'K', 's', 'S']))))
}

/// The literal with each ASCII letter as a two-letter class and every other
/// character escaped by `escape`: exact KQL-style ASCII case folding in any regex
/// flavour, with no case-insensitive flag.
pub fn ascii_classes(value: &str, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if c.is_ascii_alphabetic() {
            out.push('[');
            out.push(c.to_ascii_uppercase());
            out.push(c.to_ascii_lowercase());
            out.push(']');
        } else {
            out.push_str(&escape(c.encode_utf8(&mut [0; 4])));
        }
    }
    out
}

/// The boundary class of a whole term in flavours with Unicode classes (PCRE, RE2,
/// Rust regex): anything but a letter or a digit.
pub const UNICODE_BOUNDARY: &str = r"[^\p{L}\p{N}]";

/// The regex of a whole-term match with Unicode letter/digit boundaries:
/// `(^|[^\p{L}\p{N}])NEEDLE($|[^\p{L}\p{N}])`.
pub fn term_regex_unicode(needle: &str) -> String {
    term_regex_around(needle, &regex::escape(needle), UNICODE_BOUNDARY)
}

/// A whole-term (partial-match) regex around the needle's pattern `body`. KQL
/// requires a boundary only where the needle ends in a letter or digit, so that
/// every term of the needle is whole: `(^|B)` goes before the needle only if it starts
/// with one, `($|B)` after it only if it ends with one.
pub fn term_regex_around(needle: &str, body: &str, boundary: &str) -> String {
    let (before, after) = term_edges(needle);
    format!(
        "{}{body}{}",
        if before {
            format!("(^|{boundary})")
        } else {
            String::new()
        },
        if after {
            format!("($|{boundary})")
        } else {
            String::new()
        },
    )
}

/// Does the needle start / end with a letter or digit (and so need a boundary there)?
pub(crate) fn term_edges(needle: &str) -> (bool, bool) {
    (
        needle.chars().next().is_some_and(char::is_alphanumeric),
        needle
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric),
    )
}

/// An identifier that needs no quoting: an ASCII letter or `_`, then ASCII letters,
/// digits, `_` and any of `extra` (EQL allows `.` in dotted names).
pub(crate) fn is_plain_name(name: &str, extra: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_target_lists_the_valid_ones() {
        let err = "splunk".parse::<Target>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownTarget);
        assert!(err.message().contains("kql, spl, eql, sigma"), "{err}");
    }

    #[test]
    fn ascii_classes_fold_ascii_letters_only() {
        for (value, expected) in [
            ("Krämer", "[Kk][Rr]ä[Mm][Ee][Rr]"),
            ("OÜ.", r"[Oo]Ü\."),
            ("a1-", r"[Aa]1\-"),
        ] {
            assert_eq!(ascii_classes(value, regex::escape), expected, "{value}");
        }
    }

    #[test]
    fn only_enclosing_parentheses_are_unwrapped() {
        for (text, expected) in [
            ("(a and b)", "a and b"),
            ("(a) and (b)", "(a) and (b)"),
            ("((a))", "(a)"),
            (r#"(x == ")" and y)"#, r#"x == ")" and y"#),
            (r#"(x == "\")(") "#, r#"(x == "\")(") "#),
            (r#"(x == "\"(")"#, r#"x == "\"(""#),
            ("a", "a"),
        ] {
            assert_eq!(unwrap_parens(text), expected, "{text}");
        }
    }
}
