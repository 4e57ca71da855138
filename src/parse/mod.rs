//! Rule parsing: rmmc YAML or Sentinel hunting-query YAML → the IR, validated
//! against the canonical vocabulary of the rule's data source.

pub mod kql;
pub mod rule_yaml;
pub mod sentinel;

use crate::backends::Backends;
use crate::error::{Error, ErrorKind, Result};
use crate::ir::{Expr, Rule};
use crate::lint;
use crate::lower::Target;
use crate::vocabulary;
use std::path::Path;

/// A parsed rule and what the parser had to say about it.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub rule: Rule,
    /// Repairs and substitutions made while reading, e.g. of upstream defects.
    pub warnings: Vec<String>,
}

/// Which format a rule file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rmmc,
    Sentinel,
}

/// Sentinel hunting queries have a top-level `query:` key; rmmc rules never do.
pub fn detect_format(text: &str) -> Format {
    let sentinel = text
        .lines()
        .any(|l| l.starts_with("query:") || l.starts_with("relevantTechniques:"));
    if sentinel {
        Format::Sentinel
    } else {
        Format::Rmmc
    }
}

/// Parse and validate one rule file's text. Sentinel columns are read back through
/// the KQL backend's default field map, the same data the KQL backend writes with.
pub fn parse_rule(path: &Path, text: &str, backends: &Backends) -> Result<Parsed> {
    let text_lf;
    let text = if text.contains('\r') {
        text_lf = text.replace("\r\n", "\n");
        text_lf.as_str()
    } else {
        text
    };
    let parsed = match detect_format(text) {
        Format::Rmmc => Parsed {
            rule: rule_yaml::parse(path, text)?,
            warnings: Vec::new(),
        },
        Format::Sentinel => {
            let profile = backends.profile(Target::Kql, None)?;
            sentinel::parse(path, text, profile)?
        }
    };
    validate(&parsed.rule, path, text)?;
    let mut parsed = parsed;
    for lint in lint::lint(&parsed.rule) {
        let at = lint
            .needles()
            .iter()
            .find_map(|n| rule_yaml::locate(text, n))
            .map(|(line, column)| format!("{line}:{column}: "))
            .unwrap_or_default();
        parsed.warnings.push(format!("{at}{lint}"));
    }
    Ok(parsed)
}

/// Checks that need the whole rule: fields exist for the data source, groups are
/// not empty, names are unique, values hold no control characters.
fn validate(rule: &Rule, path: &Path, text: &str) -> Result<()> {
    let at = |needle: &str| rule_yaml::locate(text, needle);
    let err = |kind, msg: String, needle: &str| {
        rule_yaml::located(Error::new(kind, msg).in_file(path), at(needle))
    };
    for field in rule.fields() {
        if !vocabulary::has_field(rule.source, field) {
            let known: Vec<&str> = vocabulary::fields(rule.source)
                .iter()
                .map(|(n, _)| *n)
                .collect();
            return Err(err(
                ErrorKind::UnknownField,
                format!(
                    "data source `{}` has no field `{field}`: expected one of {}",
                    rule.source,
                    known.join(", ")
                ),
                field,
            ));
        }
    }
    let mut exprs: Vec<(&Expr, String)> = vec![(&rule.detection, "detection".to_string())];
    for x in &rule.exclusions {
        exprs.push((&x.drop_when, format!("exclusion `{}`", x.name)));
    }
    for (e, what) in exprs {
        check_expr(e)
            .map_err(|m| err(ErrorKind::InvalidValue, format!("{what}: {m}"), "detection"))?;
    }
    let mut names: Vec<&str> = rule.exclusions.iter().map(|x| x.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(err(
            ErrorKind::Schema,
            format!("two exclusions are named `{}`: names must be unique", w[0]),
            w[0],
        ));
    }
    if let Some(agg) = &rule.aggregation {
        if agg.outputs.is_empty() {
            return Err(err(
                ErrorKind::Schema,
                "aggregation needs at least one output".into(),
                "aggregation",
            ));
        }
        let mut out_names: Vec<&str> = agg.outputs.iter().map(|o| o.name.as_str()).collect();
        out_names.sort();
        if let Some(w) = out_names.windows(2).find(|w| w[0] == w[1]) {
            return Err(err(
                ErrorKind::Schema,
                format!("two aggregation outputs are named `{}`", w[0]),
                w[0],
            ));
        }
        for o in &agg.outputs {
            if !is_identifier(&o.name) {
                return Err(err(
                    ErrorKind::InvalidValue,
                    format!(
                        "output name `{}` must be letters, digits and `_`, starting with a letter",
                        o.name
                    ),
                    &o.name,
                ));
            }
        }
    }
    for a in &rule.meta.acknowledged {
        check_acknowledgement(a).map_err(|m| err(ErrorKind::InvalidValue, m, &a.warning))?;
    }
    for c in &rule.constants {
        if !is_identifier(&c.name) {
            return Err(err(
                ErrorKind::InvalidValue,
                format!(
                    "constant name `{}` must be letters, digits and `_`, starting with a letter",
                    c.name
                ),
                &c.name,
            ));
        }
    }
    Ok(())
}

/// An acknowledgement names a lint code, or `approximate` and a registered target.
fn check_acknowledgement(a: &crate::ir::Acknowledgement) -> Result<(), String> {
    if a.warning == "approximate" {
        return match a.target.as_deref() {
            Some(t) if t.parse::<Target>().is_ok() => Ok(()),
            Some(t) => Err(format!(
                "acknowledged approximation names target `{t}`: expected one of {}",
                Target::all()
                    .map(Target::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => Err(
                "`warning: approximate` needs the `target` whose approximation is accepted".into(),
            ),
        };
    }
    if !lint::CODES.contains(&a.warning.as_str()) {
        return Err(format!(
            "acknowledged warning `{}` is unknown: expected `approximate` or one of {}",
            a.warning,
            lint::CODES.join(", ")
        ));
    }
    if a.target.is_some() || a.construct.is_some() {
        return Err(format!(
            "`target` and `construct` belong to `warning: approximate`, not to `{}`",
            a.warning
        ));
    }
    Ok(())
}

fn is_identifier(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_expr(e: &Expr) -> Result<(), String> {
    match e {
        Expr::All(xs) | Expr::Any(xs) if xs.is_empty() => {
            Err("an `all` or `any` group needs at least one member".into())
        }
        Expr::All(xs) | Expr::Any(xs) => xs.iter().try_for_each(check_expr),
        Expr::Not(x) => check_expr(x),
        Expr::Match(p) => {
            for v in &p.values {
                if let Some(c) = v.chars().find(|c| c.is_control()) {
                    return Err(format!(
                        "value {v:?} on `{}` contains the control character U+{:04X}: rule values may not contain control characters",
                        p.field, c as u32
                    ));
                }
            }
            Ok(())
        }
    }
}
