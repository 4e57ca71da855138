//! Per-target lowering: operator choice, escaping, field mapping and fidelity.
//!
//! Each target is one file with one [`Dialect`] implementation. The trait's methods
//! have defaults, so a target overrides only what differs: the predicate table (one
//! arm per [`MatchKind`]), the boolean syntax, and the template context. Whatever a
//! target cannot say exactly goes into the [`Fidelity`] verdict, never silently.

mod registry;

pub use registry::{Gathered, RuleFile, Target, TargetSpec};

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

/// Names a target derives from a rule that must be unique across a rule set, with
/// what they name: the savedsearches.conf stanza (Splunk keeps only the last of
/// two equal stanzas) and the Sigma rule `name` (a correlation refers to it).
/// Builds fail on a collision, naming both rules.
pub fn rule_set_names(rule: &Rule) -> Vec<(&'static str, String)> {
    vec![
        (
            "the savedsearches.conf stanza",
            crate::text::conf_stanza(&rule.meta.name),
        ),
        ("the Sigma rule name", sigma::rule_name(rule)),
    ]
}

/// Each target's literal, pattern and name escaping, public so their properties can be
/// tested against each target's own parser (`tests/escaping.rs`, the conformance
/// suite). A value in a rule must never change the structure of a query.
pub mod escape {
    pub use super::eql::{
        field_name as eql_field, lucene_escape as eql_lucene, quote as eql_string,
        term_regex as eql_term_regex,
    };
    pub use super::kql::{column as kql_column, quote as kql_string};
    pub use super::sigma::escape_value as sigma_value;
    pub use super::spl::{
        pcre_ascii_folded as spl_pcre_ascii_folded, pcre_literal as spl_pcre, quote as spl_string,
        search_field as spl_search_field, where_field as spl_where_field,
    };
    pub use super::{ascii_classes, term_regex_around, term_regex_unicode};
    pub use crate::text::{conf_value, yaml_block, yaml_scalar};
}

use crate::error::{Error, ErrorKind, Result};
use crate::ir::{Case, DataSource, Exclusion, Expr, MatchKind, Predicate, Rule};
use crate::profile::Profile;
pub(crate) use crate::text::{backslash_quoted, has_non_ascii_cased, one_line};
use crate::vocabulary;
use serde::Serialize;
use std::path::Path;

/// One construct a target can only approximate, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Approximation {
    pub construct: String,
    pub reason: String,
}

/// The verdict of one rule on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "verdict", content = "approximations")]
pub enum Fidelity {
    Exact,
    Approximate(Vec<Approximation>),
}

impl Fidelity {
    pub fn is_exact(&self) -> bool {
        matches!(self, Fidelity::Exact)
    }
}

/// A rule lowered for one target: the template context and the verdict.
#[derive(Debug, Clone)]
pub struct Lowered {
    pub target: Target,
    pub profile: String,
    /// Everything the target's templates read.
    pub context: serde_json::Value,
    pub fidelity: Fidelity,
    /// Target-independent remarks, e.g. an exclusion that cannot be applied.
    pub warnings: Vec<String>,
}

/// What a lowering reads: the rule, where it came from, and the chosen profile.
pub struct LowerInput<'a> {
    pub rule: &'a Rule,
    pub rule_file: &'a Path,
    pub profile: &'a Profile,
    pub target: Target,
}

impl LowerInput<'_> {
    /// The target's name for a canonical field, or an error naming the rule file,
    /// field, target and map file.
    pub fn field(&self, canonical: &str) -> Result<String> {
        let map = self.profile.source(self.rule.source)?;
        map.fields.get(canonical).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::UnmappedField,
                format!(
                    "field `{canonical}` of data source `{}` has no mapping for target `{}` in profile `{}` ({}): add it under sources.{}.fields",
                    self.rule.source,
                    self.target,
                    self.profile.name,
                    self.profile.path.display(),
                    self.rule.source
                ),
            )
            .in_file(self.rule_file)
        })
    }

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
    pub fn approximate(&mut self, construct: impl Into<String>, reason: impl Into<String>) {
        let a = Approximation {
            construct: construct.into(),
            reason: reason.into(),
        };
        if !self.approximations.contains(&a) {
            self.approximations.push(a);
        }
    }

    pub fn absorb(&mut self, other: Notes) {
        for a in other.approximations {
            self.approximate(a.construct, a.reason);
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
pub fn lower(rule: &Rule, rule_file: &Path, target: Target, profile: &Profile) -> Result<Lowered> {
    let input = LowerInput {
        rule,
        rule_file,
        profile,
        target,
    };
    let mut notes = Notes::default();
    let dialect = target.dialect();
    let context = dialect.context(&input, &mut notes)?;
    Ok(Lowered {
        target,
        profile: profile.name.clone(),
        context,
        fidelity: notes.into_fidelity(),
        warnings: exclusion_warnings(rule),
    })
}

/// One predicate on one target, as the target writes it, with the approximations it
/// needs: the per-target operator table, visible on its own (`tests/constructs.rs`
/// shows every construct on every target side by side).
pub fn predicate_text(target: Target, field: &str, p: &Predicate) -> (String, Vec<Approximation>) {
    let mut notes = Notes::default();
    let text = target.dialect().predicate(field, p, &mut notes);
    let approximations = match notes.into_fidelity() {
        Fidelity::Exact => Vec::new(),
        Fidelity::Approximate(list) => list,
    };
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
