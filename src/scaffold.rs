//! `rmmc new TOOL KIND`: a commented skeleton rule and its fixtures file, which
//! compile and pass `rmmc test` as written, for an author to edit.

use crate::error::{Error, ErrorKind, Result};
use crate::import::uuid5::uuid5_url;
use crate::ir::DataSource;
use crate::text::yaml_scalar;
use std::path::{Path, PathBuf};

/// The rule kinds (file stems) and the data source each reads.
pub const KINDS: &[(&str, DataSource)] = &[
    ("filesig", DataSource::FileSignature),
    ("createproc", DataSource::ProcessCreation),
    ("netconn", DataSource::NetworkConnection),
];

/// `AnyDesk` → `anydesk`, `Zoho Assist` → `zohoassist`: the folder under the rules root.
pub fn tool_folder(tool: &str) -> String {
    tool.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Write `<rules>/<tool>/<kind>.yaml` and `<kind>.fixtures.yaml`; returns the files
/// written. Refuses to overwrite either file.
pub fn new_rule(rules: &Path, tool: &str, kind: &str) -> Result<Vec<PathBuf>> {
    let source = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, s)| *s)
        .ok_or_else(|| {
            let kinds: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            Error::new(
                ErrorKind::InvalidValue,
                format!(
                    "unknown rule kind `{kind}`: expected one of {}",
                    kinds.join(", ")
                ),
            )
        })?;
    let folder = tool_folder(tool);
    if folder.is_empty() || tool.trim() != tool || tool.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorKind::InvalidValue,
            format!(
                "tool name `{tool}` needs at least one ASCII letter or digit and no leading, trailing or control characters"
            ),
        ));
    }
    let dir = rules.join(&folder);
    let rule_file = dir.join(format!("{kind}.yaml"));
    let fixture_file = dir.join(format!("{kind}.fixtures.yaml"));
    for f in [&rule_file, &fixture_file] {
        if f.exists() {
            return Err(Error::new(
                ErrorKind::Io,
                "the file exists: rmmc new never overwrites a file",
            )
            .in_file(f));
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let value = tool.to_lowercase();
    std::fs::write(&rule_file, rule_text(tool, &folder, kind, source, &value))
        .map_err(|e| Error::io(&rule_file, e))?;
    std::fs::write(&fixture_file, fixtures_text(kind, source, &value))
        .map_err(|e| Error::io(&fixture_file, e))?;
    Ok(vec![rule_file, fixture_file])
}

/// The field a skeleton of each data source matches on.
fn detection_field(source: DataSource) -> &'static str {
    match source {
        DataSource::FileSignature => "file.code_signature.subject_name",
        DataSource::ProcessCreation => "process.pe.company",
        DataSource::NetworkConnection => "url.original",
    }
}

fn rule_text(tool: &str, folder: &str, kind: &str, source: DataSource, value: &str) -> String {
    let id = uuid5_url(&format!("rmmc-new:{folder}/{kind}"));
    let field = detection_field(source);
    let tool_yaml = yaml_scalar(tool);
    let value_yaml = yaml_scalar(value);
    format!(
        r#"# A new rule, written by `rmmc new`. Edit every value, then:
#   RMMC_BLESS=1 rmmc test rules/{folder}     writes {kind}.expected.json: review it
#   rmmc build                                 compiles every target into out/
#   rmmc list rules --format markdown > rules/README.md
# README.md "Rule format" explains each key; required keys have no "optional" note.
id: {id}   # a UUID; keep it once the rule is published
name: {name}
description: |
  What the rule finds and why it matters. Rewrite this.
references: []                                   # optional: URLs
tool: {tool_yaml}
tactics: [CommandAndControl]                     # ATT&CK tactics, Sentinel names
techniques: [T1219]                              # ATT&CK technique ids
severity: medium                                 # optional: informational|low|medium|high|critical
status: experimental                             # optional: experimental|test|stable|deprecated
{source_line:<49}# file_signature|process_creation|network_connection
window: 5d                                       # look-back ending at query time: Nd, Nh, Nm, Ns
# A predicate is `field:` plus one match kind (equals, has, contains, prefix, suffix,
# regex, empty, not_empty); combine predicates with all/any/not. Values are literal
# text: `*` is not a wildcard (use `regex` for patterns).
detection:
  field: {field}
  has: {value_yaml}
# optional: false-positive scenarios; events matching `drop_when` are dropped.
# exclusions:
#   - name: scheduled_update
#     scenario: The vendor's updater
#     description: Why this is benign.
#     drop_when:
#       field: process.parent.name
#       equals: updater.exe
# optional: warnings reviewed and accepted (codes: pattern-in-literal, not-a-file-name),
# or `warning: approximate` with a `target` that --strict then accepts.
# acknowledged:
#   - warning: not-a-file-name
#     reason: why the value is right
"#,
        name = yaml_scalar(&format!("{tool} - {kind}")),
        source_line = format!("source: {}", source.as_str()),
    )
}

fn fixtures_text(kind: &str, source: DataSource, value: &str) -> String {
    let field = detection_field(source);
    let miss = format!("{value}x");
    format!(
        r#"# Fixtures for {kind}.yaml, written by `rmmc new`: events in the canonical vocabulary
# of `{source}` (README "Field vocabulary"), each expected to match or not.
# `RMMC_BLESS=1 rmmc test` writes the result rows to {kind}.expected.json.
now: "2026-01-15T12:00:00Z"                      # the query time; the window ends here
events:
  - name: matches
    expect: match
    why: "`{field}` has the tool's name as a whole term"
    event:
      "@timestamp": "2026-01-14T12:00:00Z"
      "event.id": "1"
      "host.id": "host-1"
      "host.name": "ws-01"
      "{field}": {value_yaml}
  - name: near-miss
    expect: no_match
    why: "the name is only part of a longer term"
    event:
      "@timestamp": "2026-01-14T12:01:00Z"
      "event.id": "2"
      "host.id": "host-1"
      "host.name": "ws-01"
      "{field}": {miss_yaml}
"#,
        source = source.as_str(),
        value_yaml = yaml_scalar(value),
        miss_yaml = yaml_scalar(&miss),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_lowercase_letters_and_digits() {
        assert_eq!(tool_folder("Zoho Assist"), "zohoassist");
        assert_eq!(tool_folder("AnyDesk"), "anydesk");
        assert_eq!(tool_folder("../.."), "");
    }
}
