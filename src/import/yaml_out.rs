//! Writing a rule in rmmc's YAML format, with a serializer whose quoting we control:
//! every value taken from upstream (names, literals, URLs) is a double-quoted YAML
//! scalar, so `Servably, Inc.`, `PDQ.com`, `XLAB D.O.O.`, `DWSNET OÜ` or a value that
//! looks like a number or a boolean always reads back as the same string.

use crate::ir::{AggFunction, Case, Expr, Predicate, Quantifier, Rule, Severity, Status};

/// A double-quoted YAML scalar. Escapes `\`, `"`, control characters and the
/// characters YAML treats as line breaks or byte-order marks; keeps every other
/// character (UTF-8) as it is.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A plain scalar when `s` is an identifier-like word that YAML reads back as the same
/// string (`host.name`, `CommandAndControl`, `T1219`); quoted otherwise.
pub fn scalar(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !s.ends_with('.')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "nan" | "inf"
        );
    if plain { s.to_string() } else { quoted(s) }
}

/// A `key: value` block for a multi-line string: a literal block scalar when it reads
/// back exactly, else a quoted scalar.
fn text_block(key: &str, s: &str, indent: usize) -> String {
    let pad = " ".repeat(indent + 2);
    if s.ends_with('\n')
        && !s.ends_with("\n\n")
        && !s.starts_with([' ', '\t', '\n'])
        && !s.chars().any(|c| {
            c != '\n'
                && (c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}' | '\u{feff}'))
        })
    {
        let mut block = format!("{key}: |\n");
        for line in s.trim_end_matches('\n').split('\n') {
            if line.is_empty() {
                block.push('\n');
            } else {
                block.push_str(&pad);
                block.push_str(line);
                block.push('\n');
            }
        }
        let probe: Result<std::collections::BTreeMap<String, String>, _> =
            serde_yaml::from_str(&block);
        if probe.ok().and_then(|m| m.get(key).cloned()).as_deref() == Some(s) {
            return block;
        }
    }
    format!("{key}: {}\n", quoted(s))
}

fn flow_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| scalar(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The lines of one detection node, unindented; nested nodes are indented under it.
fn expr_lines(e: &Expr) -> Vec<String> {
    match e {
        Expr::All(xs) | Expr::Any(xs) => {
            let key = if matches!(e, Expr::All(_)) {
                "all:"
            } else {
                "any:"
            };
            let mut out = vec![key.to_string()];
            for x in xs {
                for (i, line) in expr_lines(x).into_iter().enumerate() {
                    out.push(if i == 0 {
                        format!("  - {line}")
                    } else {
                        format!("    {line}")
                    });
                }
            }
            out
        }
        Expr::Not(x) => {
            let mut out = vec!["not:".to_string()];
            out.extend(expr_lines(x).into_iter().map(|l| format!("  {l}")));
            out
        }
        Expr::Match(p) => predicate_lines(p),
    }
}

fn predicate_lines(p: &Predicate) -> Vec<String> {
    let mut out = vec![format!("field: {}", scalar(&p.field))];
    let key = p.kind.as_str();
    if !p.kind.takes_values() {
        out.push(format!("{key}: true"));
    } else if p.values.len() == 1 {
        out.push(format!("{key}: {}", quoted(&p.values[0])));
    } else {
        out.push(format!("{key}:"));
        out.extend(p.values.iter().map(|v| format!("  - {}", quoted(v))));
    }
    if p.case == Case::Sensitive {
        out.push("case: sensitive".to_string());
    }
    if p.kind.takes_values() && p.quantifier == Quantifier::All {
        out.push("match: all".to_string());
    }
    out
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Informational => "informational",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Experimental => "experimental",
        Status::Test => "test",
        Status::Stable => "stable",
        Status::Deprecated => "deprecated",
    }
}

/// The rule in rmmc's format, after `header` (comment lines, each starting with `#`).
pub fn rule_yaml(rule: &Rule, header: &[String]) -> String {
    let mut s = String::new();
    for h in header {
        for line in h.split('\n') {
            if line.is_empty() {
                s.push_str("#\n");
            } else {
                s.push_str("# ");
                s.push_str(line);
                s.push('\n');
            }
        }
    }
    let m = &rule.meta;
    s.push_str(&format!("id: {}\n", m.id));
    s.push_str(&format!("name: {}\n", quoted(&m.name)));
    s.push_str(&text_block("description", &m.description, 0));
    if !m.references.is_empty() {
        s.push_str("references:\n");
        for r in &m.references {
            s.push_str(&format!("  - {}\n", quoted(r)));
        }
    }
    if let Some(a) = &m.author {
        s.push_str(&format!("author: {}\n", quoted(a)));
    }
    if let Some(l) = &m.license {
        s.push_str(&format!("license: {}\n", quoted(l)));
    }
    if let Some(d) = &m.date {
        s.push_str(&format!("date: {d}\n"));
    }
    if let Some(d) = &m.modified {
        s.push_str(&format!("modified: {d}\n"));
    }
    s.push_str(&format!("tool: {}\n", scalar(&m.tool)));
    s.push_str(&format!("tactics: {}\n", flow_list(&m.tactics)));
    s.push_str(&format!("techniques: {}\n", flow_list(&m.techniques)));
    s.push_str(&format!("severity: {}\n", severity(m.severity)));
    s.push_str(&format!("status: {}\n", status(m.status)));
    s.push_str(&format!("source: {}\n", rule.source.as_str()));
    s.push_str(&format!("window: {}\n", rule.window.shorthand()));
    s.push_str("detection:\n");
    for line in expr_lines(&rule.detection) {
        s.push_str(&format!("  {line}\n"));
    }
    if !rule.exclusions.is_empty() {
        s.push_str("exclusions:\n");
        for x in &rule.exclusions {
            s.push_str(&format!("  - name: {}\n", quoted(&x.name)));
            s.push_str(&format!("    scenario: {}\n", quoted(&x.scenario)));
            s.push_str(&format!("    description: {}\n", quoted(&x.description)));
            s.push_str("    drop_when:\n");
            for line in expr_lines(&x.drop_when) {
                s.push_str(&format!("      {line}\n"));
            }
        }
    }
    if let Some(agg) = &rule.aggregation {
        s.push_str("aggregation:\n");
        s.push_str(&format!("  by: {}\n", flow_list(&agg.group_by)));
        s.push_str("  outputs:\n");
        for o in &agg.outputs {
            let (function, field) = match &o.function {
                AggFunction::Min(f) => ("min", Some(f)),
                AggFunction::Max(f) => ("max", Some(f)),
                AggFunction::DistinctSet(f) => ("distinct_set", Some(f)),
                AggFunction::DistinctCount(f) => ("distinct_count", Some(f)),
                AggFunction::Count => ("count", None),
            };
            match field {
                Some(f) => s.push_str(&format!(
                    "    - {{ name: {}, function: {function}, field: {} }}\n",
                    scalar(&o.name),
                    scalar(f)
                )),
                None => s.push_str(&format!(
                    "    - {{ name: {}, function: {function} }}\n",
                    scalar(&o.name)
                )),
            }
        }
    }
    if !rule.constants.is_empty() {
        s.push_str("constants:\n");
        for c in &rule.constants {
            s.push_str(&format!(
                "  - {{ name: {}, value: {} }}\n",
                scalar(&c.name),
                quoted(&c.value)
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_read_back_exactly() {
        for v in [
            "Servably, Inc.",
            "PDQ.com",
            "XLAB D.O.O.",
            "DWSNET OÜ",
            "Krämer IT Solutions GmbH",
            "TEKNOPARS BİLİŞİM",
            r"\Program Files (x86)\Level\",
            "say \"hi\"",
            "true",
            "0123",
            "- x",
            "#x",
            "a: b",
            "tab\there",
            "nel\u{85}x",
            "ls\u{2028}x",
        ] {
            let doc = format!("v: {}\n", quoted(v));
            let m: std::collections::BTreeMap<String, String> = serde_yaml::from_str(&doc).unwrap();
            assert_eq!(m["v"], v, "{doc}");
        }
    }

    #[test]
    fn plain_only_when_safe() {
        assert_eq!(scalar("host.name"), "host.name");
        assert_eq!(scalar("@timestamp"), "\"@timestamp\"");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar("T1219"), "T1219");
        assert_eq!(scalar("1x"), "\"1x\"");
    }

    #[test]
    fn descriptions_use_a_block_when_it_reads_back() {
        assert_eq!(text_block("d", "one\ntwo\n", 0), "d: |\n  one\n  two\n");
        assert_eq!(text_block("d", " lead\n", 0), "d: \" lead\\n\"\n");
        assert_eq!(text_block("d", "no newline", 0), "d: \"no newline\"\n");
    }
}
