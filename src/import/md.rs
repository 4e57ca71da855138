//! The fenced KQL blocks of an upstream `RMM_AHQ_<Tool>.md` file: one per
//! `### Create Process`, `### File Signature` and `### Network Connection` section.

use crate::ir::DataSource;

/// The first fenced block of one section, with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdQuery {
    /// The data source of the section's heading.
    pub source: DataSource,
    /// The heading text, e.g. `Create Process`.
    pub heading: String,
    /// 1-based line of the `###` heading.
    pub heading_line: usize,
    /// 1-based line of the opening fence.
    pub fence_line: usize,
    /// The lines between the fences, `\n`-joined, without `\r`, leading and trailing
    /// blank lines removed.
    pub body: String,
    /// 1-based line of the first line of `body` (the fence line + 1 when empty).
    pub body_line: usize,
}

impl MdQuery {
    /// The anchor of the section (`create-process`), as GitHub renders it.
    pub fn anchor(&self) -> String {
        anchor(&self.heading)
    }
}

/// `Create Process` → `create-process`.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The data source a section heading stands for.
pub fn section_source(heading: &str) -> Option<DataSource> {
    match heading.trim().to_ascii_lowercase().as_str() {
        "create process" => Some(DataSource::ProcessCreation),
        "file signature" => Some(DataSource::FileSignature),
        "network connection" => Some(DataSource::NetworkConnection),
        _ => None,
    }
}

/// Every known section's first fenced block, in file order. Sections without a block
/// are left out; blocks outside the three sections are ignored.
pub fn queries(text: &str) -> Vec<MdQuery> {
    let mut out = Vec::new();
    let mut section: Option<(DataSource, String, usize)> = None;
    let mut taken = false;
    let mut open: Option<(usize, Vec<&str>)> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let n = i + 1;
        if let Some((fence_line, body)) = open.as_mut() {
            if line.trim_start().starts_with("```") {
                let fence_line = *fence_line;
                let body = std::mem::take(body);
                open = None;
                if let Some((source, heading, heading_line)) = &section
                    && !taken
                {
                    taken = true;
                    let first = body.iter().position(|l| !l.trim().is_empty());
                    let last = body.iter().rposition(|l| !l.trim().is_empty());
                    let (text, body_line) = match (first, last) {
                        (Some(f), Some(l)) => (body[f..=l].join("\n"), fence_line + 1 + f),
                        _ => (String::new(), fence_line + 1),
                    };
                    out.push(MdQuery {
                        source: *source,
                        heading: heading.clone(),
                        heading_line: *heading_line,
                        fence_line,
                        body: text,
                        body_line,
                    });
                }
            } else {
                body.push(line);
            }
            continue;
        }
        if line.trim_start().starts_with("```") {
            open = Some((n, Vec::new()));
        } else if let Some(h) = line.strip_prefix("###") {
            let heading = h.trim_start_matches('#').trim().to_string();
            section = section_source(&heading).map(|s| (s, heading, n));
            taken = false;
        } else if line.starts_with('#') {
            section = None;
        }
    }
    out
}

/// Does the block hold prose (e.g. "Too broad for use") rather than a query? A query
/// has a `let`, a `|` or a `Device...` table; prose has none of them.
pub fn is_prose(body: &str) -> bool {
    let code = body.lines().any(|l| {
        let t = l.trim_start();
        t.starts_with("let ")
            || t.starts_with('|')
            || t.starts_with("Device")
            || t.starts_with("//")
    });
    !code && !body.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "# Advanced Hunting Query for X\r\n\r\n### Create Process \r\n```\r\nlet a = now();\r\nT | where A has 'x'\r\n```\r\n\r\n### File Signature\r\n```\r\nToo broad for use\r\n```\r\n\r\n### Network Connection\r\nSome prose.\r\n```\r\n\r\nT\r\n| where B has 'y'\r\n\r\n```\r\n```\r\nignored second block\r\n```\r\n";

    #[test]
    fn reads_the_three_sections() {
        let q = queries(MD);
        assert_eq!(q.len(), 3);
        assert_eq!(q[0].source, DataSource::ProcessCreation);
        assert_eq!(q[0].heading, "Create Process");
        assert_eq!(
            (q[0].heading_line, q[0].fence_line, q[0].body_line),
            (3, 4, 5)
        );
        assert_eq!(q[0].body, "let a = now();\nT | where A has 'x'");
        assert_eq!(q[0].anchor(), "create-process");
        assert!(is_prose(&q[1].body));
        assert!(!is_prose(&q[0].body));
        assert_eq!(q[2].source, DataSource::NetworkConnection);
        assert_eq!((q[2].fence_line, q[2].body_line), (16, 18));
        assert_eq!(q[2].body, "T\n| where B has 'y'");
    }

    #[test]
    fn empty_blocks_have_an_empty_body() {
        let q = queries("### File Signature\n```\n```\n");
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].body, "");
        assert!(!is_prose(&q[0].body));
    }
}
