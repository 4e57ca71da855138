//! Rule parsing: rmmc YAML or Sentinel hunting-query YAML → the IR, validated
//! against the canonical vocabulary of the rule's data source.
//!
//! ```
//! use rmmc::{Backends, ir::{DataSource, Expr, MatchKind}};
//! use std::path::Path;
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
//! let parsed = rmmc::parse::parse_rule(Path::new("x.yaml"), rule_text, &Backends::embedded()?)?;
//! assert_eq!(parsed.rule.source, DataSource::FileSignature);
//! assert!(matches!(&parsed.rule.detection, Expr::Match(p) if p.kind == MatchKind::Term));
//! // A mistake is an error with file, line and column, never a panic.
//! let err = rmmc::parse::parse_rule(Path::new("x.yaml"), "id: 1\n", &Backends::embedded()?).unwrap_err();
//! assert!(err.to_string().starts_with("x.yaml:"), "{err}");
//! # Ok::<(), rmmc::Error>(())
//! ```

pub mod kql;
pub mod rule_yaml;
pub mod sentinel;

use crate::backends::Backends;
use crate::error::{Error, ErrorKind, Remark, Result};
use crate::ir::{Expr, Rule};
use crate::lint;
use crate::lower::Target;
use crate::text::{TextKind, check_text};
use crate::vocabulary;
use std::path::Path;

/// A parsed rule and what the parser had to say about it.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The rule.
    pub rule: Rule,
    /// Repairs and substitutions made while reading, e.g. of upstream defects.
    pub warnings: Vec<Warning>,
}

/// A repair or substitution the parser made while reading a rule: a kind programs
/// branch on (the importer counts repairs by it); `Display` gives the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// Sentinel YAML with `dataTypes:` indented at the column of `- connectorId:`
    /// (invalid YAML), read as a key of the list item.
    DataTypesIndent,
    /// Column `AccountUpn` on DeviceNetworkEvents, which has only
    /// `InitiatingProcessAccountUpn`, read as that column (`user.upn`).
    AccountUpnOnNetworkEvents,
    /// `| project` / `| project-away` in a Sentinel query: it chooses result columns,
    /// not events, so matching is unchanged.
    Projection {
        /// `project-away` rather than `project`.
        away: bool,
        /// The columns named.
        columns: Vec<String>,
    },
    /// An authoring lint ([`crate::lint`]), at the line and column of its value in the
    /// rule file where that was found.
    Lint {
        /// 1-based line and column.
        at: Option<(usize, usize)>,
        /// The lint.
        lint: crate::lint::Lint,
    },
}

impl Warning {
    /// The warning's parts: position, code and message.
    pub fn remark(&self) -> Remark {
        let plain = |message: String| Remark::new(message);
        match self {
            Warning::DataTypesIndent => plain(
                "repaired invalid YAML: `dataTypes:` was indented at the column of `- connectorId:`"
                    .into(),
            ),
            Warning::AccountUpnOnNetworkEvents => plain(
                "column `AccountUpn` does not exist in DeviceNetworkEvents: read as InitiatingProcessAccountUpn (user.upn)"
                    .into(),
            ),
            Warning::Projection { away, columns } => plain(format!(
                "`| {} {}` chooses result columns, not events: matching is unchanged and rmmc's outputs keep their columns",
                if *away { "project-away" } else { "project" },
                columns.join(", ")
            )),
            Warning::Lint { at, lint } => Remark {
                position: *at,
                code: Some(lint.code),
                message: lint.message.clone(),
            },
        }
    }
}

/// `line:column: message [code]`, the parts the warning has.
impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.remark().fmt(f)
    }
}

/// Which format a rule file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// rmmc's rule format.
    Rmmc,
    /// A Microsoft Sentinel hunting query.
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
    // Editors on Windows write a byte order mark; it is not part of the YAML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
            .find_map(|n| rule_yaml::locate(text, n));
        parsed.warnings.push(Warning::Lint { at, lint });
    }
    Ok(parsed)
}

/// Every text of a rule that reaches an output outside a query literal, with the
/// key that holds it in rmmc's format and where it may go.
fn output_texts(rule: &Rule) -> Vec<(&'static str, &str, TextKind)> {
    use TextKind::{Multiline, OneLine};
    let m = &rule.meta;
    let mut out = vec![
        ("name", m.name.as_str(), OneLine),
        ("description", m.description.as_str(), Multiline),
        ("tool", m.tool.as_str(), OneLine),
    ];
    out.extend(m.author.iter().map(|a| ("author", a.as_str(), OneLine)));
    out.extend(
        m.references
            .iter()
            .map(|r| ("references", r.as_str(), OneLine)),
    );
    out.extend(m.tactics.iter().map(|t| ("tactics", t.as_str(), OneLine)));
    out.extend(
        m.techniques
            .iter()
            .map(|t| ("techniques", t.as_str(), OneLine)),
    );
    for x in &rule.exclusions {
        out.push(("name", x.name.as_str(), OneLine));
        out.push(("scenario", x.scenario.as_str(), Multiline));
        out.push(("description", x.description.as_str(), Multiline));
    }
    out.extend(
        rule.constants
            .iter()
            .map(|c| ("value", c.value.as_str(), OneLine)),
    );
    out
}

/// Read a rule file as UTF-8: bytes that are not UTF-8 are an error at their line
/// and column, not a bare "stream did not contain valid UTF-8".
pub fn read_rule_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let text = std::str::from_utf8(&bytes[..valid]).expect("valid up to here");
        let (line, column) = rule_yaml::line_col(text, valid);
        Error::new(
            ErrorKind::Io,
            format!(
                "byte 0x{:02X} (offset {valid}) is not UTF-8: rule files must be UTF-8 text",
                bytes[valid]
            ),
        )
        .in_file(path)
        .at(line, column)
    })
}

/// Checks that need the whole rule: fields exist for the data source, groups are
/// not empty, names are unique, values hold no control characters, and no text
/// that reaches an output holds a character that could end a line or a comment
/// there ([`crate::text::check_text`]).
fn validate(rule: &Rule, path: &Path, text: &str) -> Result<()> {
    let at = |needle: &str| rule_yaml::locate(text, needle);
    let err = |kind, msg: String, needle: &str| {
        rule_yaml::located(Error::new(kind, msg).in_file(path), at(needle))
    };
    for (key, value, kind) in output_texts(rule) {
        if let Err(bad) = check_text(value, kind) {
            let allowed = match kind {
                TextKind::OneLine => {
                    "must be one line of text, without control characters, line or paragraph separators or noncharacters"
                }
                TextKind::Multiline => {
                    "may hold line feeds and tabs but no other control characters, line or paragraph separators or noncharacters"
                }
            };
            let at = rule_yaml::locate_value(text, key, &value[..bad.byte], 0);
            return Err(rule_yaml::located(
                Error::new(
                    ErrorKind::InvalidValue,
                    format!(
                        "`{key}` {value:?} holds {} at character {}: `{key}` {allowed}",
                        bad.describe(),
                        bad.index
                    ),
                )
                .in_file(path),
                at,
            ));
        }
    }
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
    crate::attack::check(&rule.meta.tactics, &rule.meta.techniques).map_err(|invalid| {
        // Point at the value inside its list (`tactics:`, `techniques:` or
        // `relevantTechniques:`), not at an earlier mention in a description.
        let keys: &[&str] =
            if rule.meta.tactics.contains(&invalid.value) || invalid.value == "tactics" {
                &["tactics:"]
            } else {
                &["techniques:", "relevantTechniques:"]
            };
        let start = keys.iter().find_map(|k| key_line(text, k));
        let at = start.and_then(|start| {
            let offset = if invalid.value == "tactics" {
                Some(0)
            } else {
                text[start..].find(&invalid.value)
            };
            offset.map(|o| rule_yaml::line_col(text, start + o))
        });
        rule_yaml::located(
            Error::new(ErrorKind::InvalidValue, invalid.message).in_file(path),
            at,
        )
    })?;
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
        // Point at the second exclusion of that name, not at the first text that
        // happens to contain it.
        let at = rule_yaml::values_at(text, "name", w[0], true)
            .last()
            .map(|&offset| rule_yaml::line_col(text, offset));
        return Err(rule_yaml::located(
            Error::new(
                ErrorKind::Schema,
                format!("two exclusions are named `{}`: names must be unique", w[0]),
            )
            .in_file(path),
            at,
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

/// The byte offset of the line that starts with the top-level key `key`.
fn key_line(text: &str, key: &str) -> Option<usize> {
    if text.starts_with(key) {
        return Some(0);
    }
    text.find(&format!("\n{key}")).map(|i| i + 1)
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
