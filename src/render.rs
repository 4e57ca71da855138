//! Template rendering: lowered rules → the text of each pack file.
//!
//! The Rust side has already chosen operators, escaped literals and mapped fields;
//! templates only lay the pieces out. Filters here quote values for the file format
//! around the query (YAML, savedsearches.conf), never for the query language.

use crate::backends::Backends;
use crate::error::{Error, ErrorKind, Result};
use crate::ir::{Rule, Severity};
use crate::lower::{Fidelity, Lowered, Target, missing_exclusion_fields};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One rule's files for one target, paths relative to `out/<target>/`.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub target: Target,
    pub rule_id: String,
    pub rule_name: String,
    pub source_file: PathBuf,
    pub stem: PathBuf,
    pub query: String,
    pub files: Vec<(PathBuf, String)>,
    pub fidelity: Fidelity,
    pub warnings: Vec<String>,
}

/// Tera with the backends' templates loaded once.
pub struct Renderer {
    tera: tera::Tera,
}

const TEMPLATES: &[&str] = &[
    "kql/query.tera",
    "kql/rule.tera",
    "spl/query.tera",
    "spl/rule.tera",
    "eql/query.tera",
    "eql/rule.tera",
    "sigma/rule.tera",
    "sigma/correlation.tera",
];

impl Renderer {
    pub fn new(backends: &Backends) -> Result<Renderer> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![]);
        for name in TEMPLATES {
            tera.add_raw_template(name, backends.template(name)?)
                .map_err(|e| template_error(name, &e))?;
        }
        tera.register_filter("yaml", filter_yaml);
        tera.register_filter("yaml_block", filter_yaml_block);
        tera.register_filter("one_line", filter_one_line);
        tera.register_filter("conf_value", filter_conf_value);
        tera.register_filter("conf_stanza", filter_conf_stanza);
        Ok(Renderer { tera })
    }

    fn render(&self, name: &str, context: &Value) -> Result<String> {
        let ctx =
            tera::Context::from_value(context.clone()).map_err(|e| template_error(name, &e))?;
        self.tera
            .render(name, &ctx)
            .map_err(|e| template_error(name, &e))
    }

    /// Render one lowered rule: its query and its rule file(s).
    pub fn render_rule(
        &self,
        rule: &Rule,
        lowered: &Lowered,
        source_file: &Path,
        stem: &Path,
    ) -> Result<Rendered> {
        let mut context = lowered.context.clone();
        context["rule"] = rule_context(rule, source_file);
        let t = lowered.target.as_str();
        let (query, files) = match lowered.target {
            Target::Kql | Target::Spl | Target::Eql => {
                let query = self.render(&format!("{t}/query.tera"), &context)?;
                context["query"] = Value::String(query.trim_end().to_string());
                let rule_file = self.render(&format!("{t}/rule.tera"), &context)?;
                let (qext, rext) = match lowered.target {
                    Target::Kql => ("kql", "yaml"),
                    Target::Spl => ("spl", "conf"),
                    _ => ("eql", "ndjson"),
                };
                let files = vec![
                    (with_ext(stem, qext), query.clone()),
                    (with_ext(stem, rext), rule_file),
                ];
                (query, files)
            }
            Target::Sigma => {
                // SigmaHQ names files after the log source and the rule
                // (`proc_creation_win_rmm_netsupport.yml`), and keeps a correlation in
                // a file of its own, so a folder of base rules converts with backends
                // that have no correlations.
                let text = self.render("sigma/rule.tera", &context)?;
                let dir = stem.parent().unwrap_or(Path::new(""));
                let name = |key: &Value| dir.join(key.as_str().unwrap_or_default());
                let mut files = vec![(name(&context["file_name"]), text.clone())];
                if !context["correlation"].is_null() {
                    let correlation = self.render("sigma/correlation.tera", &context)?;
                    files.push((name(&context["correlation"]["file_name"]), correlation));
                }
                (text, files)
            }
        };
        Ok(Rendered {
            target: lowered.target,
            rule_id: rule.meta.id.clone(),
            rule_name: rule.meta.name.clone(),
            source_file: source_file.to_path_buf(),
            stem: stem.to_path_buf(),
            query,
            files,
            fidelity: lowered.fidelity.clone(),
            warnings: lowered.warnings.clone(),
        })
    }
}

fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn template_error(name: &str, e: &dyn std::error::Error) -> Error {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    Error::new(ErrorKind::Template, message).in_file(Path::new("backends").join(name))
}

/// The metadata every template may read as `rule`.
fn rule_context(rule: &Rule, source_file: &Path) -> Value {
    let m = &rule.meta;
    let false_positives: Vec<Value> = rule
        .exclusions
        .iter()
        .map(|x| {
            let missing = missing_exclusion_fields(rule.source, x);
            json!({
                "name": x.name,
                "scenario": x.scenario,
                "description": x.description,
                "applied": missing.is_empty(),
                "reason": if missing.is_empty() { String::new() } else {
                    format!("{} data has no {}", rule.source, missing.join(", "))
                },
            })
        })
        .collect();
    let mut description_with_references = m.description.trim_end().to_string();
    for r in &m.references {
        description_with_references.push('\n');
        description_with_references.push_str(r);
    }
    description_with_references.push('\n');
    let (level, risk_score) = match m.severity {
        Severity::Informational => ("informational", 1),
        Severity::Low => ("low", 21),
        Severity::Medium => ("medium", 47),
        Severity::High => ("high", 73),
        Severity::Critical => ("critical", 99),
    };
    let threat: Vec<Value> = m
        .tactics
        .iter()
        .map(|t| {
            let (id, name) = crate::lower::tactic(t);
            json!({
                "framework": "MITRE ATT&CK",
                "tactic": {
                    "id": id,
                    "name": name,
                    "reference": format!("https://attack.mitre.org/tactics/{id}/"),
                },
                "technique": m.techniques.iter().map(|tech| json!({
                    "id": tech,
                    "name": crate::lower::technique_name(tech),
                    "reference": format!("https://attack.mitre.org/techniques/{}/", tech.replace('.', "/")),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let annotations = json!({
        "mitre_attack": m.techniques,
    });
    json!({
        "id": m.id,
        "name": m.name,
        "description": m.description.trim_end(),
        "description_with_references": description_with_references,
        "references": m.references,
        "author_line": m.author.clone().unwrap_or_else(|| "rmmc".to_string()),
        "date": m.date,
        "modified": m.modified,
        "authors": vec![m.author.clone().unwrap_or_else(|| "rmmc".to_string())],
        "tool": m.tool,
        "tactics": m.tactics,
        "techniques": m.techniques,
        "severity": level,
        "level": level,
        "risk_score": risk_score,
        "status": match m.status {
            crate::ir::Status::Experimental => "experimental",
            crate::ir::Status::Test => "test",
            crate::ir::Status::Stable => "stable",
            crate::ir::Status::Deprecated => "deprecated",
        },
        "source": rule.source.as_str(),
        "window": rule.window.shorthand(),
        "source_file": source_file.to_string_lossy().replace('\\', "/"),
        "false_positives": false_positives,
        "false_positive_texts": rule.exclusions.iter().map(|x| crate::lower::one_line(&format!("{}: {}", x.scenario, x.description))).collect::<Vec<_>>(),
        "tags": std::iter::once(format!("RMM: {}", m.tool)).chain(m.techniques.iter().map(|t| format!("MITRE ATT&CK: {t}"))).collect::<Vec<_>>(),
        "threat": threat,
        "annotations": annotations,
    })
}

fn arg_string(value: &Value, filter: &str) -> tera::Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        other => Err(tera::Error::msg(format!(
            "filter `{filter}` expects a string, got {other}"
        ))),
    }
}

/// A YAML scalar: plain where that is unambiguous, else double-quoted (a JSON
/// string is a valid YAML double-quoted scalar). `null` stays `null`.
fn filter_yaml(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    if value.is_null() {
        return Ok(Value::String("null".into()));
    }
    let s = arg_string(value, "yaml")?;
    Ok(Value::String(yaml_scalar(&s)))
}

pub fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_alphanumeric())
        && !s.ends_with(' ')
        && s.chars()
            .all(|c| c.is_alphanumeric() || " ._-/()".contains(c))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
        && s.parse::<f64>().is_err()
        && !s
            .chars()
            .all(|c| c.is_ascii_digit() || c == '_' || c == '.' || c == '-');
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("strings serialize")
    }
}

/// A YAML literal block (`|`, `|-`) where the text allows one, else a quoted scalar.
fn filter_yaml_block(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = arg_string(value, "yaml_block")?;
    let indent = args.get("indent").and_then(Value::as_u64).unwrap_or(2) as usize;
    Ok(Value::String(yaml_block(&s, indent)))
}

pub fn yaml_block(s: &str, indent: usize) -> String {
    let body = s.strip_suffix('\n').unwrap_or(s);
    let chomp = if s.ends_with('\n') { "" } else { "-" };
    let safe = !body.is_empty()
        && !body.ends_with('\n')
        && !body.contains('\r')
        && body
            .chars()
            .all(|c| c == '\n' || c == '\t' || !c.is_control())
        && body.lines().all(|l| l.is_empty() || !l.trim().is_empty());
    if !safe {
        return serde_json::to_string(s).expect("strings serialize");
    }
    // A line that starts with blanks would be read as deeper indentation of the
    // whole block: then the indentation is stated (`|2`).
    let indicator = if body.lines().any(|l| l.starts_with([' ', '\t'])) {
        indent.to_string()
    } else {
        String::new()
    };
    let pad = " ".repeat(indent);
    let mut out = format!("|{indicator}{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    out
}

fn filter_one_line(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(crate::lower::one_line(&arg_string(
        value, "one_line",
    )?)))
}

/// A savedsearches.conf value: lines joined with ` \` continuations.
fn filter_conf_value(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = arg_string(value, "conf_value")?;
    Ok(Value::String(conf_value(&s)))
}

pub fn conf_value(s: &str) -> String {
    s.trim_end()
        .lines()
        .map(|l| l.replace('\r', " "))
        .collect::<Vec<_>>()
        .join(" \\\n")
}

/// A stanza name: one line, without the brackets that would end it.
fn filter_conf_stanza(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = crate::lower::one_line(&arg_string(value, "conf_stanza")?);
    Ok(Value::String(s.replace(['[', ']'], "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalars_are_plain_only_when_unambiguous() {
        for (value, expected) in [
            ("CommandAndControl", "CommandAndControl"),
            ("T1219", "T1219"),
            (
                "Remote Management - NetSupport",
                "Remote Management - NetSupport",
            ),
            ("true", "\"true\""),
            ("123", "\"123\""),
            ("a: b", "\"a: b\""),
            ("#x", "\"#x\""),
            ("it's", "\"it's\""),
            ("a\nb", "\"a\\nb\""),
            ("", "\"\""),
            ("Krämer", "Krämer"),
        ] {
            assert_eq!(yaml_scalar(value), expected, "{value:?}");
        }
    }

    #[test]
    fn yaml_blocks_fall_back_to_quotes() {
        assert_eq!(yaml_block("a\nb\n", 2), "|\n  a\n  b");
        assert_eq!(yaml_block("a\n\nb", 2), "|-\n  a\n\n  b");
        assert_eq!(yaml_block(" leading", 2), "|2-\n   leading");
        assert_eq!(yaml_block("\n \"", 2), "|2-\n\n   \"");
        assert_eq!(yaml_block("a\r\nb", 2), "\"a\\r\\nb\"");
        assert_eq!(yaml_block("a\n\n", 2), "\"a\\n\\n\"");
    }

    #[test]
    fn yaml_blocks_read_back_as_the_text() {
        for text in [
            "a\nb\n",
            "x: y\n- z",
            "a\n\nb\n",
            " lead",
            "q\"'\\",
            "tail  \n",
        ] {
            let doc = format!("k: {}\n", yaml_block(text, 2));
            let back: HashMap<String, String> = serde_yaml::from_str(&doc).expect(&doc);
            assert_eq!(back["k"], text, "{doc}");
        }
    }

    #[test]
    fn conf_values_continue_lines() {
        assert_eq!(conf_value("a\n| b\n"), "a \\\n| b");
    }
}
