//! Template rendering: lowered rules → the text of each pack file.
//!
//! The Rust side has already chosen operators, escaped literals and mapped fields;
//! templates only lay the pieces out. Filters here quote values for the file format
//! around the query (YAML, savedsearches.conf), never for the query language.

use crate::attack;
use crate::backends::Backends;
use crate::error::{Error, ErrorKind, Result};
use crate::ir::{Rule, Severity};
use crate::lower::{Fidelity, Gathered, Lowered, Piece, Target, missing_exclusion_fields};
use crate::text::{conf_line, conf_stanza, conf_value, one_line, yaml_block, yaml_scalar};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One rule's files for one target, paths relative to `out/<target>/`.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The target rendered for.
    pub target: Target,
    /// The profile the rule was compiled with.
    pub profile: String,
    /// The rule's id.
    pub rule_id: String,
    /// The rule's name.
    pub rule_name: String,
    /// The rule file.
    pub source_file: PathBuf,
    /// Where the pack files go, below `out/<target>/`, without extension.
    pub stem: PathBuf,
    /// The query (the first per-rule file's text).
    pub query: String,
    /// Every per-rule file, path relative to `out/<target>/`, and its text.
    pub files: Vec<(PathBuf, String)>,
    /// Exact, or what is approximated and why.
    pub fidelity: Fidelity,
    /// Remarks about the rule on any target, e.g. an exclusion that cannot apply.
    pub warnings: Vec<String>,
    /// The rule's parts of gathered documents rendered from a template of their own
    /// ([`Piece::Template`]): the gathered file's path (as the registry names it) and
    /// the text.
    pub parts: Vec<(&'static str, String)>,
}

/// Tera with the backends' templates loaded once.
pub struct Renderer {
    tera: tera::Tera,
}

impl Renderer {
    /// Load and check every registered target's templates.
    pub fn new(backends: &Backends) -> Result<Renderer> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![]);
        for target in Target::all() {
            for name in target.templates() {
                tera.add_raw_template(&name, backends.template(&name)?)
                    .map_err(|e| template_error(&name, &e))?;
            }
        }
        tera.register_filter("yaml", filter_yaml);
        tera.register_filter("yaml_block", filter_yaml_block);
        tera.register_filter("one_line", filter_one_line);
        tera.register_filter("conf_value", filter_conf_value);
        tera.register_filter("conf_line", filter_conf_line);
        tera.register_filter("conf_stanza", filter_conf_stanza);
        tera.register_filter("yaml_ascii", filter_yaml_ascii);
        tera.register_filter("yaml_block_ascii", filter_yaml_block_ascii);
        tera.register_filter("kql_comment", filter_kql_comment);
        tera.register_filter("json_ascii", filter_json_ascii);
        tera.register_filter("arm_string", filter_arm_string);
        tera.register_filter("arm_resources", filter_arm_resources);
        Ok(Renderer { tera })
    }

    fn render(&self, name: &str, context: &Value) -> Result<String> {
        let ctx =
            tera::Context::from_value(context.clone()).map_err(|e| template_error(name, &e))?;
        self.render_in(name, &ctx)
    }

    fn render_in(&self, name: &str, ctx: &tera::Context) -> Result<String> {
        self.tera
            .render(name, ctx)
            .map_err(|e| template_error(name, &e))
    }

    /// Render one lowered rule: its query and its rule file(s); none for a rule
    /// that is unsupported on the target.
    pub fn render_rule(
        &self,
        rule: &Rule,
        lowered: &Lowered,
        source_file: &Path,
        stem: &Path,
    ) -> Result<Rendered> {
        let rendered = |query: String, files, parts| Rendered {
            target: lowered.target,
            profile: lowered.profile.clone(),
            rule_id: rule.meta.id.clone(),
            rule_name: rule.meta.name.clone(),
            source_file: source_file.to_path_buf(),
            stem: stem.to_path_buf(),
            query,
            files,
            fidelity: lowered.fidelity.clone(),
            warnings: lowered.warnings.clone(),
            parts,
        };
        if lowered.fidelity.is_unsupported() {
            return Ok(rendered(String::new(), Vec::new(), Vec::new()));
        }
        // One template context for all of the rule's files, added to as they are
        // rendered (not a copy of the whole context per file: that copying was a
        // fifth of the work of a build).
        let mut context = lowered.context.clone();
        context["rule"] = rule_context(rule, source_file);
        let t = lowered.target.as_str();
        let mut ctx = tera::Context::from_value(context).map_err(|e| template_error(t, &e))?;
        let mut query = None;
        let mut files = Vec::new();
        let mut earlier = serde_json::Map::new();
        for file in lowered.target.spec().rule_files {
            let text = self.render_in(&format!("{t}/{}", file.template), &ctx)?;
            if query.is_none() {
                // Later files (the rule file around the query) embed the query.
                ctx.insert("query", text.trim_end());
                query = Some(text.clone());
            }
            // Later files may embed earlier ones: `rendered["<extension>"]`.
            earlier.insert(
                file.extension.to_string(),
                Value::String(text.trim_end().to_string()),
            );
            ctx.insert("rendered", &earlier);
            if !text.trim().is_empty() {
                files.push((rule_file_path(stem, file.extension, &lowered.context), text));
            }
        }
        // Parts of gathered documents may name the rule's pack files.
        ctx.insert("stem", &stem.to_string_lossy().replace('\\', "/"));
        let mut parts = Vec::new();
        for gathered in lowered.target.spec().gathered {
            if let Gathered::Wrapped {
                path,
                extension,
                piece: Piece::Template(template),
                ..
            } = gathered
            {
                let wanted = with_ext(stem, extension);
                if files.iter().any(|(p, _)| *p == wanted) {
                    parts.push((*path, self.render_in(&format!("{t}/{template}"), &ctx)?));
                }
            }
        }
        Ok(rendered(query.unwrap_or_default(), files, parts))
    }

    /// A [`Gathered::Fixed`] file, from the pack's context ([`Target::pack_context`]).
    pub(crate) fn fixed(&self, target: Target, template: &str, pack: &Value) -> Result<String> {
        self.render(&format!("{target}/{template}"), pack)
    }

    /// The text before and after the parts of a [`Gathered::Wrapped`] document, from
    /// the pack's context ([`Target::pack_context`]) and `body` standing for the parts.
    pub(crate) fn wrapper(
        &self,
        target: Target,
        template: &str,
        pack: &Value,
    ) -> Result<(String, String)> {
        let name = format!("{target}/{template}");
        let mut context = pack.clone();
        context["body"] = json!(BODY_MARK);
        let text = self.render(&name, &context)?;
        let (head, foot) = text.split_once(BODY_MARK).ok_or_else(|| {
            Error::new(
                ErrorKind::Template,
                "the template never writes `{{ body }}`",
            )
            .in_file(Path::new("backends").join(&name))
        })?;
        Ok((head.to_string(), foot.to_string()))
    }
}

/// Where a rule's file goes: `<stem>.<extension>`, unless the target's context names
/// the file (`file_names`: extension → file name in the stem's folder), as Sigma does
/// after SigmaHQ's convention (`proc_creation_win_rmm_netsupport.yml`).
fn rule_file_path(stem: &Path, extension: &str, context: &Value) -> PathBuf {
    match context["file_names"][extension].as_str() {
        Some(name) => stem.parent().unwrap_or(Path::new("")).join(name),
        None => with_ext(stem, extension),
    }
}

fn filter_yaml_ascii(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = arg_string(value, "yaml_ascii")?;
    Ok(Value::String(crate::text::yaml_scalar_ascii(&s)))
}

fn filter_yaml_block_ascii(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = arg_string(value, "yaml_block_ascii")?;
    let indent = args.get("indent").and_then(Value::as_u64).unwrap_or(2) as usize;
    Ok(Value::String(crate::text::yaml_block_ascii(&s, indent)))
}

fn filter_kql_comment(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(crate::lower::escape::kql_comment(
        &arg_string(value, "kql_comment")?,
    )))
}

/// A JSON value in ASCII, compact.
fn filter_json_ascii(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let json = serde_json::to_string(value).map_err(|e| tera::Error::msg(e.to_string()))?;
    Ok(Value::String(crate::text::json_ascii(&json)))
}

fn filter_arm_string(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(crate::text::arm_string(&arg_string(
        value,
        "arm_string",
    )?)))
}

/// The `resources` of an ARM template's text (one rmmc rendered), as ASCII JSON
/// array elements without the brackets, indented for a gathering template.
fn filter_arm_resources(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let text = arg_string(value, "arm_resources")?;
    arm_resources(&text)
        .map(Value::String)
        .map_err(tera::Error::msg)
}

fn arm_resources(text: &str) -> std::result::Result<String, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let resources = doc["resources"].as_array().cloned().unwrap_or_default();
    let parts: Vec<String> = resources
        .iter()
        .map(|r| {
            let pretty = serde_json::to_string_pretty(r).expect("JSON serializes");
            crate::text::json_ascii(&pretty.replace('\n', "\n    "))
        })
        .collect();
    Ok(parts.join(",\n    "))
}

/// A rule's part of a [`Gathered::Wrapped`] document.
pub(crate) fn piece(piece: crate::lower::Piece, text: &str) -> Result<String> {
    match piece {
        crate::lower::Piece::ArmResources => arm_resources(text)
            .map_err(|e| Error::new(ErrorKind::Template, format!("an ARM template: {e}"))),
        crate::lower::Piece::Template(template) => Err(Error::new(
            ErrorKind::Template,
            format!("`{template}` is rendered with the rule (Rendered::parts), not from its file"),
        )),
    }
}

/// Where a [`Gathered::Wrapped`] document's parts go: the marker `body` stands for.
const BODY_MARK: &str = "\u{0}rmmc-body\u{0}";

/// `stem` with `.ext` added (the extension may itself contain dots).
pub(crate) fn with_ext(stem: &Path, ext: &str) -> PathBuf {
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
    // Elastic's threat entries: one per tactic, with the techniques ATT&CK lists under
    // it (an unknown technique under every tactic), and a sub-technique as a
    // `subtechnique` of its parent (Kibana's schema allows only `T<digits>/` technique
    // references).
    fn elastic_techniques(techniques: &[String], tactic: &str) -> Vec<Value> {
        let reference = |id: &str| {
            format!(
                "https://attack.mitre.org/techniques/{}/",
                id.replace('.', "/")
            )
        };
        let under = |id: &str| {
            attack::technique_entry(id).is_none_or(|e| e.tactics.iter().any(|x| x == tactic))
        };
        let mut out: Vec<(String, Vec<Value>)> = Vec::new();
        for tech in techniques.iter().filter(|t| under(t)) {
            let (parent, sub) = match tech.split_once('.') {
                Some((p, _)) => (p.to_string(), Some(tech)),
                None => (tech.clone(), None),
            };
            let i = match out.iter().position(|(p, _)| *p == parent) {
                Some(i) => i,
                None => {
                    out.push((parent.clone(), Vec::new()));
                    out.len() - 1
                }
            };
            if let Some(sub) = sub {
                out[i].1.push(json!({
                    "id": sub,
                    "name": attack::technique_name(sub),
                    "reference": reference(sub),
                }));
            }
        }
        out.into_iter()
            .map(|(id, subs)| {
                let mut t = json!({
                    "id": id,
                    "name": attack::technique_name(&id),
                    "reference": reference(&id),
                });
                if !subs.is_empty() {
                    t["subtechnique"] = Value::Array(subs);
                }
                t
            })
            .collect()
    }
    let threat: Vec<Value> = m
        .tactics
        .iter()
        .map(|t| {
            let (id, name) = attack::tactic(t);
            json!({
                "framework": "MITRE ATT&CK",
                "tactic": {
                    "id": id,
                    "name": name,
                    "reference": format!("https://attack.mitre.org/tactics/{id}/"),
                },
                "technique": elastic_techniques(&m.techniques, t),
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
        "date": m.date,
        "modified": m.modified,
        // The rule's author, never rmmc (a compiler is not an author).
        "authors": m.author.iter().collect::<Vec<_>>(),
        "license": m.license,
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
        "false_positive_texts": rule.exclusions.iter().map(|x| one_line(&format!("{}: {}", x.scenario, x.description))).collect::<Vec<_>>(),
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

/// A YAML literal block (`|`, `|-`) where the text allows one, else a quoted scalar.
fn filter_yaml_block(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = arg_string(value, "yaml_block")?;
    let indent = args.get("indent").and_then(Value::as_u64).unwrap_or(2) as usize;
    Ok(Value::String(yaml_block(&s, indent)))
}

fn filter_one_line(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(one_line(&arg_string(value, "one_line")?)))
}

/// A savedsearches.conf value: lines joined with ` \` continuations.
fn filter_conf_value(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = arg_string(value, "conf_value")?;
    Ok(Value::String(conf_value(&s)))
}

/// A one-line savedsearches.conf value or comment, never continued by a trailing
/// backslash.
fn filter_conf_line(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(conf_line(&arg_string(value, "conf_line")?)))
}

/// A stanza name: one line, without the brackets that would end it.
fn filter_conf_stanza(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(conf_stanza(&arg_string(
        value,
        "conf_stanza",
    )?)))
}
