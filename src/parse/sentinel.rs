//! Microsoft Sentinel hunting-query YAML (id, name, description,
//! requiredDataConnectors, tactics, relevantTechniques, query) → the IR.
//!
//! Columns are read back to canonical names through the KQL profile's field map,
//! the same data the KQL backend writes with, so KQL → IR → KQL round-trips.

use super::kql::{KqlError, KqlQuery, parse_kql};
use super::rule_yaml::{locate, located};
use super::{Parsed, Warning};
use crate::backends::Profile;
use crate::error::yaml_error;
use crate::error::{Error, ErrorKind, Result};
use crate::ir::{AggFunction, DataSource, Expr, Metadata, Rule, Severity, Status, Window};
use crate::text::is_uuid;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
struct RawHunting {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    tactics: Option<OneOrMany>,
    #[serde(rename = "relevantTechniques")]
    relevant_techniques: Option<OneOrMany>,
    query: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
            OneOrMany::Many(v) => v,
        }
    }
}

/// Upstream files indent `dataTypes:` at the column of `- connectorId:`, which is
/// invalid YAML. Move it under the list item.
pub fn repair_data_types(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut changed = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        out.push(line.to_string());
        let trimmed = line.trim_start();
        if trimmed.starts_with("- connectorId:") {
            let indent = line.len() - trimmed.len();
            let mut j = i + 1;
            while j < lines.len() {
                let l = lines[j];
                let t = l.trim_start();
                let ind = l.len() - t.len();
                if t.starts_with("dataTypes:") && ind == indent {
                    changed = true;
                    out.push(format!("{}  {t}", " ".repeat(indent)));
                    j += 1;
                    // Its list items keep their relative position below it.
                    while j < lines.len() {
                        let l2 = lines[j];
                        let t2 = l2.trim_start();
                        let ind2 = l2.len() - t2.len();
                        if t2.starts_with("- ") && ind2 > indent {
                            out.push(format!("{}{l2}", if ind2 < indent + 4 { "  " } else { "" }));
                            j += 1;
                        } else {
                            break;
                        }
                    }
                    break;
                } else if ind > indent {
                    out.push(l.to_string());
                    j += 1;
                } else {
                    break;
                }
            }
            i = j;
            continue;
        }
        i += 1;
    }
    changed.then(|| {
        let mut s = out.join("\n");
        s.push('\n');
        s
    })
}

/// Where the `query: |` block starts: (first content line, its indentation).
fn query_block_start(text: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let key = lines.iter().position(|l| l.starts_with("query:"))?;
    let first = lines
        .iter()
        .enumerate()
        .skip(key + 1)
        .find(|(_, l)| !l.trim().is_empty())?;
    let indent = first.1.len() - first.1.trim_start().len();
    Some((first.0 + 1, indent))
}

fn kql_error(path: &Path, text: &str, e: &KqlError) -> Error {
    match query_block_start(text) {
        Some((line, indent)) => {
            let in_file = |l: usize, c: usize| (line + l - 1, c + indent);
            let message = e.message_at(in_file);
            let (l, c) = in_file(e.line, e.column);
            Error::new(ErrorKind::UnsupportedKql, message)
                .in_file(path)
                .at(l, c)
        }
        None => Error::new(ErrorKind::UnsupportedKql, e.message.clone())
            .in_file(path)
            .at(e.line, e.column),
    }
}

/// The tool name in "Remote Management and Monitoring tool - NetSupport - File Signature".
fn tool_from_name(name: &str, path: &Path) -> String {
    let parts: Vec<&str> = name.split(" - ").collect();
    if parts.len() >= 3 {
        return parts[1].trim().to_string();
    }
    path.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Split a description into its text and the bare URLs on lines of their own.
fn description_and_references(description: &str) -> (String, Vec<String>) {
    let mut text = Vec::new();
    let mut refs = Vec::new();
    for line in description.lines() {
        let t = line.trim();
        if (t.starts_with("https://") || t.starts_with("http://")) && !t.contains(' ') {
            refs.push(t.to_string());
        } else {
            text.push(line.trim_end());
        }
    }
    let mut d = text.join("\n").trim().to_string();
    d.push('\n');
    (d, refs)
}

/// Parse a Sentinel hunting query with the KQL profile used for column names.
pub fn parse(path: &Path, text: &str, kql: &Profile) -> Result<Parsed> {
    let mut warnings = Vec::new();
    let raw: RawHunting = match crate::error::parse_yaml(text) {
        Ok(r) => r,
        Err(e) => match repair_data_types(text) {
            Some(fixed) => {
                let r = serde_yaml::from_str(&fixed).map_err(|_| yaml_error(path, text, &e))?;
                warnings.push(Warning::DataTypesIndent);
                r
            }
            None => return Err(yaml_error(path, text, &e)),
        },
    };
    if !is_uuid(&raw.id) {
        return Err(located(
            Error::new(
                ErrorKind::InvalidValue,
                format!("id `{}` is not a UUID", raw.id),
            )
            .in_file(path),
            locate(text, "id:"),
        ));
    }
    let query = raw.query.replace("\r\n", "\n");
    let q: KqlQuery = parse_kql(&query).map_err(|e| kql_error(path, text, &e))?;
    for p in &q.projections {
        // The columns stay on record in the imported rule's header; no target
        // output narrows its columns.
        warnings.push(Warning::Projection {
            away: p.away,
            columns: p.columns.clone(),
        });
    }
    // Which data source has this table in the KQL profile?
    let source = kql
        .sources
        .iter()
        .find(|(_, m)| m.settings.get("table") == Some(&q.table))
        .map(|(s, _)| *s)
        .ok_or_else(|| {
            let tables: Vec<&str> = kql
                .sources
                .values()
                .filter_map(|m| m.settings.get("table").map(String::as_str))
                .collect();
            located(
                Error::new(
                    ErrorKind::UnsupportedKql,
                    format!(
                        "table `{}` is not a data source rmmc knows: expected one of {}",
                        q.table,
                        tables.join(", ")
                    ),
                )
                .in_file(path),
                locate(text, &q.table),
            )
        })?;
    let names = kql.sources[&source].names();
    let reverse: BTreeMap<&str, &str> = names
        .iter()
        .map(|(canonical, column)| (column.as_str(), canonical.as_str()))
        .collect();
    let mut map_column = |column: &str| -> Result<String> {
        if let Some(c) = reverse.get(column) {
            return Ok(c.to_string());
        }
        // Upstream netconn queries group by AccountUpn, which DeviceNetworkEvents lacks.
        if source == DataSource::NetworkConnection && column == "AccountUpn" {
            warnings.push(Warning::AccountUpnOnNetworkEvents);
            return Ok("user.upn".to_string());
        }
        Err(located(
            Error::new(
                ErrorKind::UnknownField,
                format!(
                    "column `{column}` of `{}` has no canonical name in the KQL field map ({}): add it to sources.{source}.fields",
                    q.table,
                    kql.path.display()
                ),
            )
            .in_file(path),
            locate(text, column),
        ))
    };
    let detection = match &q.filter {
        Some(f) => rename_fields(f, &mut map_column)?,
        None => {
            return Err(Error::new(
                ErrorKind::UnsupportedKql,
                "the query has no `where` condition besides the time window: rmmc rules need a detection",
            )
            .in_file(path));
        }
    };
    let window = match q.window_seconds {
        Some(seconds) => Window { seconds },
        None => {
            return Err(located(
                Error::new(
                    ErrorKind::UnsupportedKql,
                    "the query has no time window: expected `where Timestamp between (Time_start .. Time_end)` or `Timestamp > ago(...)`",
                )
                .in_file(path),
                locate(text, "query:"),
            ));
        }
    };
    if let Some(tc) = &q.time_column {
        map_column(tc)?;
    }
    let aggregation = match q.aggregation {
        None => None,
        Some(mut agg) => {
            agg.group_by = agg
                .group_by
                .iter()
                .map(|c| map_column(c))
                .collect::<Result<_>>()?;
            for o in &mut agg.outputs {
                o.function = match &o.function {
                    AggFunction::Min(c) => AggFunction::Min(map_column(c)?),
                    AggFunction::Max(c) => AggFunction::Max(map_column(c)?),
                    AggFunction::DistinctSet(c) => AggFunction::DistinctSet(map_column(c)?),
                    AggFunction::DistinctCount(c) => AggFunction::DistinctCount(map_column(c)?),
                    AggFunction::Count => AggFunction::Count,
                };
            }
            Some(agg)
        }
    };
    let (description, references) = description_and_references(&raw.description);
    let tool = tool_from_name(&raw.name, path);
    Ok(Parsed {
        rule: Rule {
            meta: Metadata {
                id: raw.id.to_ascii_lowercase(),
                name: raw.name,
                description,
                references,
                author: None,
                date: None,
                modified: None,
                license: None,
                tool,
                tactics: raw.tactics.map(OneOrMany::into_vec).unwrap_or_default(),
                techniques: raw
                    .relevant_techniques
                    .map(OneOrMany::into_vec)
                    .unwrap_or_default(),
                severity: Severity::Medium,
                status: Status::Experimental,
                acknowledged: Vec::new(),
            },
            source,
            window,
            detection,
            exclusions: Vec::new(),
            aggregation,
            constants: q.constants,
        },
        warnings,
    })
}

fn rename_fields(e: &Expr, map: &mut dyn FnMut(&str) -> Result<String>) -> Result<Expr> {
    Ok(match e {
        Expr::All(xs) => Expr::All(
            xs.iter()
                .map(|x| rename_fields(x, map))
                .collect::<Result<_>>()?,
        ),
        Expr::Any(xs) => Expr::Any(
            xs.iter()
                .map(|x| rename_fields(x, map))
                .collect::<Result<_>>()?,
        ),
        Expr::Not(x) => Expr::Not(Box::new(rename_fields(x, map)?)),
        Expr::Match(p) => {
            let mut p = p.clone();
            p.field = map(&p.field)?;
            Expr::Match(p)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_the_upstream_data_types_indentation() {
        let broken = "id: x\nrequiredDataConnectors:\n    - connectorId: MicrosoftThreatProtection\n    dataTypes:\n        - DeviceProcessEvents\ntactics: CommandAndControl\n";
        let fixed = repair_data_types(broken).expect("repaired");
        let v: serde_yaml::Value = serde_yaml::from_str(&fixed).expect(&fixed);
        assert_eq!(
            v["requiredDataConnectors"][0]["dataTypes"][0].as_str(),
            Some("DeviceProcessEvents"),
            "{fixed}"
        );
        assert_eq!(v["tactics"].as_str(), Some("CommandAndControl"));
    }

    #[test]
    fn valid_yaml_needs_no_repair() {
        let ok = "requiredDataConnectors:\n  - connectorId: X\n    dataTypes:\n      - T\n";
        assert_eq!(repair_data_types(ok), None);
    }

    #[test]
    fn tool_names_come_from_the_rule_name() {
        assert_eq!(
            tool_from_name(
                "Remote Management and Monitoring tool - NetSupport - File Signature",
                Path::new("x.yaml")
            ),
            "NetSupport"
        );
        assert_eq!(
            tool_from_name("Other", Path::new("RMM/AnyDesk/x.yaml")),
            "AnyDesk"
        );
    }

    #[test]
    fn urls_on_their_own_line_become_references() {
        let (d, r) = description_and_references("Text one.\nhttps://example.com/x\n");
        assert_eq!(d, "Text one.\n");
        assert_eq!(r, vec!["https://example.com/x".to_string()]);
    }
}
