//! Splunk SPL. Every search starts with the data source's macro (`macros.conf` ships
//! in the pack, so users adapt index and sourcetype in one place) and a `search`
//! prefilter that is a superset of the rule (case-insensitive wildcards, so the index
//! does the heavy lifting), then one `where` with the exact condition: `match()` for
//! whole terms, affixes and case-insensitive equality, `==` for case-sensitive
//! equality. It ends with the rule's own `<name>_filter` macro (`search *`, keeping
//! everything, until a user tunes it), as Splunk's own content does.
//!
//! Every field the search reads is first filled with `""`, as KQL reads a missing
//! value, so `NOT` never meets a null. Where the data is JSON with nested names
//! (`properties.Signer` in Splunk's Defender add-on), each field is copied to its
//! plain name (`Signer`) and, where the profile says JSON nulls arrive as the string
//! `"null"` (`null_string`), that string reads as missing too.
//!
//! Patterns run as PCRE in Splunk. They start with `(*UTF)`, which makes PCRE read
//! the subject as UTF-8 in every build (in byte mode `\p{L}` and `.` see bytes).
//! Case-insensitive literals use one style, `(?i)`, with only the letters whose
//! Unicode case folding reaches beyond ASCII folding kept exact by `(?-i:...)`: `k`
//! and `s` (the Kelvin sign and the long s fold to them) and every non-ASCII cased
//! letter (KQL folds ASCII only): `(?i)net(?-i:[Ss])upport`.
//!
//! The window is KQL's `between (now(-5d) .. now())`, inclusive at both ends:
//! `earliest=-120h` is inclusive (hours, so no calendar arithmetic across a DST
//! change), but `latest` is exclusive, so the search runs to `latest=+1s` and
//! `where _time<=now()` (the search's start time) ends it exactly.

use super::{ApproxKind, Dialect, Gathered, LowerInput, Notes, Piece, RuleFile, TargetSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::ir::{
    AggFunction, Case, DataSource, Expr, MatchKind, Predicate, Quantifier, Severity,
    TIMESTAMP_FIELD,
};
use crate::profile::Profile;
use serde_json::json;
use std::collections::BTreeMap;

pub(crate) struct Spl;

/// The registry entry of spl.
pub(crate) const SPEC: TargetSpec = TargetSpec {
    name: "spl",
    description: "Splunk Search Processing Language: a Splunk app of scheduled alerts (savedsearches.conf, macros.conf)",
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
    // `out/spl/` is a Splunk app as it is: these files and the per-rule `.spl`
    // (search) and `.conf` (stanza) files kept for review. All streamed: a rule adds
    // its stanza, its filter macro and its README row as it is compiled; the rest
    // comes from the profile (`pack_context`).
    gathered: &[
        Gathered::Concat {
            path: "default/savedsearches.conf",
            extension: "conf",
            separator: "\n",
        },
        Gathered::Wrapped {
            path: "default/macros.conf",
            extension: "conf",
            template: "macros.conf.tera",
            separator: "",
            piece: Piece::Template("macro.tera"),
        },
        Gathered::Fixed {
            path: "default/app.conf",
            template: "app.conf.tera",
        },
        Gathered::Fixed {
            path: "metadata/default.meta",
            template: "default.meta.tera",
        },
        Gathered::Wrapped {
            path: "README.md",
            extension: "conf",
            template: "README.md.tera",
            separator: "",
            piece: Piece::Template("README.row.tera"),
        },
    ],
    default_profile: "defender",
};

/// The id (and installed folder name) of the Splunk app `out/spl/` is.
pub const SPLUNK_APP_ID: &str = "rmmc_rmm_detections";

/// The PCRE verb that makes a pattern read its subject as UTF-8 code points.
pub const UTF: &str = "(*UTF)";

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

/// The name a field is read under after the copy step: the last segment of a dotted
/// name from the data (`properties.Signer` → `Signer`), a plain name as it is.
pub fn working_name(mapped: &str) -> &str {
    mapped.rsplit('.').next().unwrap_or(mapped)
}

/// Does the letter fold, under Unicode simple case folding (PCRE `(?i)` in UTF mode,
/// Rust regex), to something ASCII folding would not reach? `k` and `s` (Kelvin sign,
/// long s) and every non-ASCII cased letter.
fn folds_beyond_ascii(c: char) -> bool {
    matches!(c, 'k' | 'K' | 's' | 'S')
        || (!c.is_ascii()
            && (c.to_lowercase().ne(std::iter::once(c)) || c.to_uppercase().ne(std::iter::once(c))))
}

/// A literal for a pattern under `(?i)` that folds exactly as KQL does (ASCII only):
/// the letters of `folds_beyond_ascii` are kept exact in `(?-i:...)` groups (`k`
/// and `s` as two-letter classes), everything else is escaped.
pub fn ascii_folded_literal(value: &str) -> String {
    let mut out = String::new();
    let mut guarded = String::new();
    for c in value.chars() {
        if folds_beyond_ascii(c) {
            if c.is_ascii() {
                guarded.push('[');
                guarded.push(c.to_ascii_uppercase());
                guarded.push(c.to_ascii_lowercase());
                guarded.push(']');
            } else {
                guarded.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
            }
        } else {
            if !guarded.is_empty() {
                out.push_str(&format!("(?-i:{guarded})"));
                guarded.clear();
            }
            out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
        }
    }
    if !guarded.is_empty() {
        out.push_str(&format!("(?-i:{guarded})"));
    }
    out
}

/// The PCRE pattern of a `match()`: `(*UTF)`, then `(?i)` when the match folds case,
/// then the literal (escaped, with [`ascii_folded_literal`] when folded) in the shape
/// of its match kind. A `regex` predicate is the rule's pattern as written.
pub fn pcre_literal(kind: MatchKind, case: Case, value: &str) -> String {
    let insensitive = case == Case::Insensitive;
    let body = if kind == MatchKind::Regex {
        value.to_string()
    } else {
        let literal = if insensitive {
            ascii_folded_literal(value)
        } else {
            regex::escape(value)
        };
        match kind {
            MatchKind::Equals => format!(r"^{literal}\z"),
            MatchKind::Term => super::term_regex_around(value, &literal, super::UNICODE_BOUNDARY),
            MatchKind::Contains => literal,
            MatchKind::Prefix => format!("^{literal}"),
            MatchKind::Suffix => format!(r"{literal}\z"),
            MatchKind::Regex | MatchKind::Empty | MatchKind::NotEmpty => {
                unreachable!("no literal pattern")
            }
        }
    };
    format!("{UTF}{}{body}", if insensitive { "(?i)" } else { "" })
}

/// The search-time prefilter of one value: a case-insensitive wildcard term that
/// matches every event the exact condition matches. `None` where SPL cannot say it
/// exactly or the raw event may spell the value differently: a literal `*` cannot be
/// escaped in a search, a backtick would start a macro call, backslashes in search
/// strings are escaped again by some commands, and non-ASCII letters, `&`, `<`, `>` and quotes may be escaped in the
/// raw JSON (`\u00e4`, `\u0026`, `\"`), which the indexed terms are made of. The
/// `where` alone is exact for those.
fn prefilter_value(kind: MatchKind, value: &str) -> Option<String> {
    if value
        .chars()
        .any(|c| !c.is_ascii() || "*\\&<>\"'`".contains(c))
    {
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

/// A relative time in the largest of hours, minutes and seconds that divides it:
/// `120h` for five days. Splunk's `d` and `w` units are calendar days, which are 23
/// or 25 hours across a DST change; hours are always 3,600 seconds.
pub fn time_span(seconds: u64) -> String {
    for (unit, size) in [("h", 3_600), ("m", 60)] {
        if seconds.is_multiple_of(size) && seconds >= size {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// A macro name as Splunk's content names them: lower-case ASCII letters, digits and
/// `_`.
pub fn macro_slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

/// The per-rule filter macro a search ends with: `rmmc_`, the first block of the
/// rule's id, `_filter` (Splunk's content ends each search with a `<name>_filter`
/// macro). The id, not the name, so that renaming a rule (or any other metadata)
/// never changes the search nor orphans a user's tuning of it; the macro's
/// description names the alert. Collisions fail the build (`rule_set_names`).
pub fn filter_macro(rule_id: &str) -> String {
    let block = rule_id.split('-').next().unwrap_or(rule_id);
    let slug = macro_slug(block);
    if slug.is_empty() {
        format!("rmmc_{}_filter", macro_slug(rule_id))
    } else {
        format!("rmmc_{slug}_filter")
    }
}

/// The Splunk app `out/spl/` is: its id, label and description.
fn app() -> serde_json::Value {
    json!({
        "id": SPLUNK_APP_ID,
        "label": "RMM abuse detections (rmmc)",
        "description": "Scheduled alerts for abused remote monitoring and management tools (MITRE ATT&CK T1219), compiled by rmmc from one rule set shared with KQL, EQL and Sigma.",
    })
}

/// A data source's macro in the profile: its name and its definition (search terms),
/// or an error naming the profile file. The name cannot end in `_filter`, which the
/// rules' own filter macros do ([`filter_macro`]).
fn source_macro(profile: &Profile, source: DataSource) -> Result<(&str, &str)> {
    let profile_error = |message: String| {
        Error::new(
            ErrorKind::Schema,
            format!(
                "profile `{}`, data source `{source}`: {message}",
                profile.name
            ),
        )
        .in_file(&profile.path)
    };
    let name = profile.setting(source, "macro")?;
    if !is_macro_name(name) {
        return Err(profile_error(format!(
            "macro name `{name}` must be ASCII letters, digits and `_`"
        )));
    }
    if name.ends_with("_filter") {
        return Err(profile_error(format!(
            "macro name `{name}` ends in `_filter`, as the rules' own filter macros do: choose another"
        )));
    }
    let definition = profile.setting(source, "search")?;
    if definition.contains(['`', '|', '\n']) {
        return Err(profile_error(format!(
            "the search of macro `{name}` must be search terms on one line, without `|` or macro calls"
        )));
    }
    Ok((name, definition))
}

/// Is this a name `macros.conf` and a backtick call can carry unchanged?
fn is_macro_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The host's name, the risk object of Enterprise Security's risk events.
const HOST_NAME: &str = "host.name";

/// Enterprise Security's notable severity and a risk score (the 1-99 scale Splunk's
/// content uses, as Elastic's for the same levels).
fn severity_level(s: Severity) -> (&'static str, u8) {
    match s {
        Severity::Informational => ("informational", 1),
        Severity::Low => ("low", 21),
        Severity::Medium => ("medium", 47),
        Severity::High => ("high", 73),
        Severity::Critical => ("critical", 99),
    }
}

/// Splunk's `alert.severity`: 1 debug, 2 info, 3 warn, 4 error, 5 severe, 6 fatal.
fn alert_severity(s: Severity) -> u8 {
    match s {
        Severity::Informational => 2,
        Severity::Low => 3,
        Severity::Medium => 4,
        Severity::High => 5,
        Severity::Critical => 6,
    }
}

/// A `match()` pattern as SPL text can carry it: a backtick would start a macro
/// call wherever it stands in a search, so it is written `\x60` (the same character
/// to PCRE); an escaped backtick (`` \` ``) likewise.
pub fn without_backticks(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('`') => out.push_str(r"\x60"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '`' => out.push_str(r"\x60"),
            c => out.push(c),
        }
    }
    out
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
        let f = where_field(working_name(field));
        let one = |v: &String| match (p.kind, p.case) {
            (MatchKind::Equals, Case::Sensitive) if !v.contains('`') => {
                format!("{f}=={}", quote(v))
            }
            (kind, case) => format!(
                "match({f}, {})",
                quote(&without_backticks(&pcre_literal(kind, case, v)))
            ),
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

    /// The app's identity and the profile's data-source macros (each once, in data
    /// source order), for `macros.conf`, `app.conf` and the README.
    fn pack_context(&self, profile: &Profile) -> Result<serde_json::Value> {
        let mut defined: BTreeMap<&str, (&str, DataSource)> = BTreeMap::new();
        let mut sources = Vec::new();
        for &source in profile.sources.keys() {
            let (name, definition) = source_macro(profile, source)?;
            match defined.get(name) {
                // Splunk merges two stanzas of one name silently: one macro defined
                // two ways would make one data source search the other's events.
                Some((other, first)) if *other != definition => {
                    return Err(Error::new(
                        ErrorKind::Schema,
                        format!(
                            "profile `{}`: data sources `{first}` and `{source}` both define macro `{name}`, differently (`{other}`, `{definition}`): name them apart",
                            profile.name
                        ),
                    )
                    .in_file(&profile.path));
                }
                Some(_) => {}
                None => {
                    defined.insert(name, (definition, source));
                    sources.push(json!({
                        "source": source.as_str(),
                        "macro": name,
                        "definition": definition,
                        "data": profile.sources[&source].data,
                    }));
                }
            }
        }
        Ok(json!({ "app": app(), "sources": sources }))
    }

    fn context(&self, input: &LowerInput, notes: &mut Notes) -> Result<serde_json::Value> {
        let rule = input.rule;
        let profile_error = |message: String| {
            Error::new(
                ErrorKind::Schema,
                format!(
                    "profile `{}`, data source `{}`: {message}",
                    input.profile.name, rule.source
                ),
            )
            .in_file(&input.profile.path)
        };
        let (source_macro, source_definition) = source_macro(input.profile, rule.source)?;
        let null_string = input
            .profile
            .source(rule.source)?
            .settings
            .get("null_string")
            .cloned();
        let detection = self.expr(input, &rule.detection, notes)?;
        let prefilter = self.prefilter(input, &rule.detection)?;
        let applied = input.applied_exclusions();
        let exclusions = self.exclusions(input, notes)?;

        // Every field the search reads, in first-use order: the conditions, the
        // groups (or, without an aggregation, the host the alert is suppressed by)
        // and the aggregated fields. `_time` is always there.
        let mut canonical: Vec<&str> = rule.detection.fields();
        for x in &applied {
            canonical.extend(x.drop_when.fields());
        }
        let host_id = "host.id";
        let enterprise_security = match input
            .profile
            .source(rule.source)?
            .settings
            .get("enterprise_security")
            .map(String::as_str)
        {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(profile_error(format!(
                    "setting `enterprise_security` must be \"true\" or \"false\", not `{other}`"
                )));
            }
        };
        match &rule.aggregation {
            Some(agg) => {
                canonical.extend(agg.group_by.iter().map(String::as_str));
                canonical.extend(agg.outputs.iter().filter_map(|o| o.function.field()));
            }
            None => canonical.extend([host_id, HOST_NAME]),
        }
        let mut fill: Vec<String> = Vec::new();
        let mut read_as: BTreeMap<String, String> = BTreeMap::new();
        for f in canonical {
            if f == TIMESTAMP_FIELD {
                continue;
            }
            let raw = search_field(&input.field(f)?)?;
            let working = working_name(&raw).to_string();
            if raw != working && !super::is_plain_name(&working, "") {
                return Err(profile_error(format!(
                    "field `{raw}` would be read as `{working}`, which is not a plain SPL name"
                )));
            }
            if let Some(other) = read_as.get(&working)
                && *other != raw
            {
                return Err(profile_error(format!(
                    "fields `{other}` and `{raw}` would both be read as `{working}`"
                )));
            }
            read_as.insert(working, raw.clone());
            if !fill.contains(&raw) {
                fill.push(raw);
            }
        }
        let copies: Vec<String> = fill
            .iter()
            .filter_map(|raw| {
                let working = working_name(raw);
                let source = where_field(raw);
                match &null_string {
                    Some(null) => Some(format!(
                        "{working}=if({source}=={}, \"\", {source})",
                        quote(null)
                    )),
                    None => (working != raw).then(|| format!("{working}={source}")),
                }
            })
            .collect();
        if let Some(null) = &null_string {
            note_null_string(input, null, notes);
        }

        let stats = super::aggregation_parts(
            input,
            |raw| search_field(working_name(raw)),
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
        let suppress_fields: Vec<String> = match &rule.aggregation {
            Some(agg) => agg
                .group_by
                .iter()
                .map(|f| Ok(working_name(&input.field(f)?).to_string()))
                .collect::<Result<_>>()?,
            None => vec![working_name(&input.field(host_id)?).to_string()],
        };
        // Enterprise Security scores risk on the host: the first of the host's name and
        // id that each result carries.
        let result_fields: Vec<&str> = match &rule.aggregation {
            Some(agg) => agg.group_by.iter().map(String::as_str).collect(),
            None => vec![host_id, HOST_NAME],
        };
        let risk_object = [HOST_NAME, host_id]
            .into_iter()
            .find(|f| result_fields.contains(f))
            .map(|f| input.field(f).map(|m| working_name(&m).to_string()))
            .transpose()?;
        let (level, risk_score) = severity_level(rule.meta.severity);
        let enterprise_security = enterprise_security.then(|| {
            json!({
                "security_domain": "endpoint",
                "severity": level,
                "risk": risk_object.as_ref().map(|field| json!({
                    "field": field,
                    "json": json!([{
                        "risk_object_field": field,
                        "risk_object_type": "system",
                        "risk_score": risk_score,
                    }]).to_string(),
                })),
                "nes_fields": suppress_fields.join(","),
            })
        });
        let constants: Vec<_> = rule
            .constants
            .iter()
            .map(|c| {
                if c.value.contains('`') {
                    return Err(Error::new(
                        ErrorKind::InvalidValue,
                        format!(
                            "constant `{}`: SPL cannot carry a backtick in a value (it would start a macro call)",
                            c.name
                        ),
                    )
                    .in_file(input.rule_file));
                }
                Ok(json!({ "name": search_field(&c.name)?, "value": quote(&c.value) }))
            })
            .collect::<Result<_>>()?;
        let window = time_span(rule.window.seconds);
        Ok(json!({
            "profile": input.profile.name,
            "source_macro": source_macro,
            "source_definition": source_definition,
            "filter_macro": filter_macro(&rule.meta.id),
            "window": window,
            "prefilter": prefilter,
            "fill": fill,
            "copies": copies,
            "detection": detection,
            "exclusions": exclusions,
            "stats": stats,
            "constants": constants,
            "enterprise_security": enterprise_security,
            "alert": {
                "severity": alert_severity(rule.meta.severity),
                "suppress_fields": suppress_fields.join(","),
                "suppress_period": window,
            },
        }))
    }
}

/// Where the data writes JSON nulls as a string, a real value equal to that string
/// reads as missing too: an approximation only for predicates that tell the two
/// apart (a value `"null"` matches where `""` does not, or the reverse).
fn note_null_string(input: &LowerInput, null: &str, notes: &mut Notes) {
    let mut predicates: Vec<&Predicate> = input.rule.detection.predicates();
    for x in input.applied_exclusions() {
        predicates.extend(x.drop_when.predicates());
    }
    for p in predicates {
        let reads = |value: &str| {
            let mut event = crate::eval::Event::new();
            event.insert(
                p.field.clone(),
                serde_json::Value::String(value.to_string()),
            );
            crate::eval::matches_expr(&Expr::Match(p.clone()), &event)
        };
        if reads(null) != reads("") {
            notes.approximate(
                format!("the value {null:?} on `{}`", p.field),
                ApproxKind::NullString {
                    null: null.to_string(),
                },
            );
        }
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
                r"(*UTF)(?i)(^|[^\p{L}\p{N}])net(?-i:[Ss])upport($|[^\p{L}\p{N}])",
            ),
            (
                Term,
                Sensitive,
                "PDQ.com",
                r"(*UTF)(^|[^\p{L}\p{N}])PDQ\.com($|[^\p{L}\p{N}])",
            ),
            (Equals, Insensitive, "a.exe", r"(*UTF)(?i)^a\.exe\z"),
            (Contains, Sensitive, "a+b(c)", r"(*UTF)a\+b\(c\)"),
            (Prefix, Insensitive, "C:\\", r"(*UTF)(?i)^C:\\"),
            (Suffix, Insensitive, "$x|y", r"(*UTF)(?i)\$x\|y\z"),
            (Regex, Insensitive, "^a.b", r"(*UTF)(?i)^a.b"),
            (Regex, Sensitive, "^a.b", r"(*UTF)^a.b"),
        ] {
            assert_eq!(
                pcre_literal(kind, case, value),
                expected,
                "{kind:?} {value}"
            );
        }
    }

    /// One case style: `(?i)`, with only the letters Unicode folding would take
    /// beyond ASCII kept exact, runs of them in one group.
    #[test]
    fn folded_literals_guard_only_k_s_and_non_ascii_letters() {
        for (value, expected) in [
            ("NetSupport", "Net(?-i:[Ss])upport"),
            ("Krämer IT", "(?-i:[Kk])r(?-i:ä)mer IT"),
            ("desktop", "de(?-i:[Ss][Kk])top"),
            ("DWSNET OÜ", r"DW(?-i:[Ss])NET O(?-i:Ü)"),
            ("東京 1.0", r"東京 1\.0"),
            ("Kelvin \u{212A}", "(?-i:[Kk])elvin (?-i:\u{212A})"),
        ] {
            assert_eq!(ascii_folded_literal(value), expected, "{value}");
        }
    }

    /// The guarded style folds exactly ASCII letters: checked with the Rust regex
    /// crate, which folds by Unicode simple case folding as PCRE's `(*UTF)(?i)` does.
    #[test]
    fn folded_literals_fold_ascii_and_nothing_else() {
        let matches = |value: &str, subject: &str| {
            let pattern = pcre_literal(MatchKind::Equals, Case::Insensitive, value);
            let re =
                regex::Regex::new(pattern.strip_prefix(UTF).expect("(*UTF)")).expect("compiles");
            re.is_match(subject)
        };
        assert!(matches("NetSupport", "NETSUPPORT"));
        assert!(matches("NetSupport", "netsupport"));
        assert!(!matches("NetSupport", "Net\u{17F}upport"), "long s");
        assert!(!matches("Kaseya", "\u{212A}aseya"), "Kelvin sign");
        assert!(matches("Krämer", "KRäMER"));
        assert!(!matches("Krämer", "KRÄMER"), "KQL folds ASCII only");
    }

    #[test]
    fn backticks_never_reach_the_search_text() {
        assert_eq!(without_backticks("a`b"), r"a\x60b");
        assert_eq!(without_backticks(r"a\`b"), r"a\x60b");
        assert_eq!(without_backticks(r"a\\`b"), r"a\\\x60b");
        assert_eq!(without_backticks(r"[`]\d"), r"[\x60]\d");
    }

    #[test]
    fn windows_are_hours_minutes_or_seconds() {
        assert_eq!(time_span(5 * 86_400), "120h");
        assert_eq!(time_span(90 * 60), "90m");
        assert_eq!(time_span(61), "61s");
        assert_eq!(time_span(3_600), "1h");
    }

    #[test]
    fn filter_macros_are_named_by_the_rule_id() {
        assert_eq!(
            filter_macro("b05f18dd-69df-4dc3-9eed-04b29d379ee5"),
            "rmmc_b05f18dd_filter"
        );
        assert_eq!(macro_slug("Remote Management - NetSupport"), "remote_management_netsupport");
        assert_eq!(macro_slug("  Ä/b  c "), "b_c");
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
            (Contains, "Krämer", None),
            (Contains, "O&O Software", None),
            (Contains, "a<b>", None),
            (Contains, "it's", None),
            (Contains, "a`b`", None),
            (Contains, "say \"hi\"", None),
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
