//! Errors and warnings as data, for machines: one [`Diagnostic`] per message, printed
//! as text (`file:line:col: error[kind]: message`), as JSON, as SARIF 2.1.0 (which
//! code-scanning UIs read), and test results as JUnit XML. Warnings arrive as
//! [`Remark`]s, their parts already apart. A leaf over `error`.

use crate::error::{Error, Errors, Remark};
use serde::Serialize;
use std::path::Path;

/// Whether a diagnostic rejects the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input is rejected.
    Error,
    /// The input is accepted; something deserves a look.
    Warning,
}

/// One error or warning, located where known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The error kind (`schema`, `unknown-field`, ...) or the warning's code
    /// (`not-a-file-name`; `warning` when it has none).
    pub code: String,
    /// The file, with `/` separators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// What is wrong, without the location.
    pub message: String,
}

impl Diagnostic {
    /// An error as a diagnostic, with its kind as code.
    pub fn from_error(e: &Error) -> Diagnostic {
        let location = e.location();
        Diagnostic {
            severity: Severity::Error,
            code: e.kind().as_str().to_string(),
            file: e.file().map(slashed),
            line: location.as_ref().map(|l| l.line),
            column: location.map(|l| l.column),
            message: e.message().to_string(),
        }
    }

    /// A warning about `file` as a diagnostic; one without a code has the code
    /// `warning`.
    pub fn from_warning(file: &Path, warning: &Remark) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            code: warning.code.unwrap_or("warning").to_string(),
            file: Some(slashed(file)),
            line: warning.position.map(|p| p.0),
            column: warning.position.map(|p| p.1),
            message: warning.message.clone(),
        }
    }

    /// An error reported as a warning (the input around it was still used): an
    /// importer's malformed catalogue file.
    pub fn warning_from_error(e: &Error) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::from_error(e)
        }
    }

    /// `file:line:col: warning[code]: message`, the same shape as errors.
    pub fn text(&self) -> String {
        let mut at = self.file.clone().unwrap_or_default();
        if let (Some(l), Some(c)) = (self.line, self.column) {
            at = format!("{at}:{l}:{c}");
        }
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let prefix = if at.is_empty() {
            String::new()
        } else {
            format!("{at}: ")
        };
        if self.code == "warning" {
            format!("{prefix}{severity}: {}", self.message)
        } else {
            format!("{prefix}{severity}[{}]: {}", self.code, self.message)
        }
    }
}

/// Every error of a failed run as a diagnostic.
pub fn from_errors(errors: &Errors) -> Vec<Diagnostic> {
    errors.0.iter().map(Diagnostic::from_error).collect()
}

fn slashed(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

/// A SARIF 2.1.0 log of one run of `rmmc check`.
pub fn sarif(diagnostics: &[Diagnostic]) -> serde_json::Value {
    let mut codes: Vec<&str> = diagnostics.iter().map(|d| d.code.as_str()).collect();
    codes.sort();
    codes.dedup();
    let results: Vec<serde_json::Value> = diagnostics
        .iter()
        .map(|d| {
            let mut region = serde_json::Map::new();
            if let Some(l) = d.line {
                region.insert("startLine".into(), l.into());
            }
            if let Some(c) = d.column {
                region.insert("startColumn".into(), c.into());
            }
            let mut physical = serde_json::json!({
                "artifactLocation": { "uri": d.file.clone().unwrap_or_default() },
            });
            if !region.is_empty() {
                physical["region"] = region.into();
            }
            serde_json::json!({
                "ruleId": d.code,
                "level": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "message": { "text": d.message },
                "locations": [ { "physicalLocation": physical } ],
            })
        })
        .collect();
    serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "rmmc",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://attack.mitre.org/techniques/T1219/",
                "rules": codes.iter().map(|c| serde_json::json!({ "id": c })).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}

/// The outcome of one rule's fixtures, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "outcome")]
pub enum TestOutcome {
    /// Every fixture agrees.
    Passed {
        /// Events, matches and rows, in words.
        summary: String,
    },
    /// Something disagrees.
    Failed {
        /// One sentence per problem.
        problems: Vec<String>,
    },
    /// Not run.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// `rmmc test` results (rule file, outcome) as a JUnit XML report.
pub fn junit(results: &[(String, TestOutcome)]) -> String {
    let count = |f: fn(&TestOutcome) -> bool| results.iter().filter(|(_, o)| f(o)).count();
    let failures = count(|o| matches!(o, TestOutcome::Failed { .. }));
    let skipped = count(|o| matches!(o, TestOutcome::Skipped { .. }));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out += &format!(
        "<testsuites tests=\"{n}\" failures=\"{failures}\" skipped=\"{skipped}\">\n  <testsuite name=\"rmmc test\" tests=\"{n}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
        n = results.len()
    );
    for (file, outcome) in results {
        out += &format!(
            "    <testcase classname=\"rmmc.fixtures\" name=\"{}\"",
            xml(file)
        );
        match outcome {
            TestOutcome::Passed { summary } => {
                out += &format!(
                    ">\n      <system-out>{}</system-out>\n    </testcase>\n",
                    xml(summary)
                )
            }
            TestOutcome::Failed { problems } => {
                out += &format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    xml(problems
                        .first()
                        .map_or("", |p| p.lines().next().unwrap_or(""))),
                    xml(&problems.join("\n"))
                )
            }
            TestOutcome::Skipped { reason } => {
                out += &format!(
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    xml(reason)
                )
            }
        }
    }
    out + "  </testsuite>\n</testsuites>\n"
}

/// Text escaped for XML content and attribute values; characters XML 1.0 cannot
/// carry at all become U+FFFD.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_located_coded_warning_prints_like_an_error() {
        let w = Remark {
            position: Some((19, 7)),
            code: Some("not-a-file-name"),
            message: "exclusion `a`: bad".into(),
        };
        let d = Diagnostic::from_warning(Path::new("rules/x.yaml"), &w);
        assert_eq!((d.line, d.column), (Some(19), Some(7)));
        assert_eq!(d.code, "not-a-file-name");
        assert_eq!(
            d.text(),
            "rules/x.yaml:19:7: warning[not-a-file-name]: exclusion `a`: bad"
        );
        // A message that merely looks located and coded is taken as it is.
        let plain = Diagnostic::from_warning(
            Path::new("r.yaml"),
            &Remark::new("12:3: exclusion x is not applied [see-docs]"),
        );
        assert_eq!((plain.line, plain.code.as_str()), (None, "warning"));
        assert_eq!(
            plain.text(),
            "r.yaml: warning: 12:3: exclusion x is not applied [see-docs]"
        );
    }

    #[test]
    fn junit_escapes_markup_in_names_and_messages() {
        let report = junit(&[(
            "rules/<x>.yaml".into(),
            TestOutcome::Failed {
                problems: vec!["event `a&b`: expected \"match\"\u{1}".into()],
            },
        )]);
        assert!(report.contains("name=\"rules/&lt;x&gt;.yaml\""), "{report}");
        assert!(
            report.contains("message=\"event `a&amp;b`: expected &quot;match&quot;\u{FFFD}\""),
            "{report}"
        );
    }
}
