//! Text helpers every stage may use: string quoting for the file formats around a
//! query (YAML, savedsearches.conf), one-line comment text, and the case checks behind
//! ASCII folding. A leaf module: it imports nothing from the crate.

/// `"..."` with backslash escapes for `\\` and `"`, and with `controls` also for
/// `\n`, `\r`, `\t`: the string literal of KQL and EQL (with controls) and SPL.
pub fn backslash_quoted(s: &str, controls: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' if controls => out.push_str(r"\n"),
            '\r' if controls => out.push_str(r"\r"),
            '\t' if controls => out.push_str(r"\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text safe inside a one-line comment: control characters become spaces.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A YAML scalar: plain where that is unambiguous, else double-quoted (a JSON
/// string is a valid YAML double-quoted scalar).
///
/// ```
/// assert_eq!(rmmc::text::yaml_scalar("T1219"), "T1219");
/// assert_eq!(rmmc::text::yaml_scalar("true"), "\"true\"");
/// ```
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

/// A YAML literal block (`|`, `|-`) indented by `indent` where the text allows one,
/// else a quoted scalar.
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

/// A savedsearches.conf value: lines joined with ` \` continuations.
pub fn conf_value(s: &str) -> String {
    s.trim_end()
        .lines()
        .map(|l| l.replace('\r', " "))
        .collect::<Vec<_>>()
        .join(" \\\n")
}

/// Is any letter of the values one whose case a Unicode-folding engine would fold
/// although KQL (ASCII folding) does not?
pub fn has_non_ascii_cased(values: &[String]) -> bool {
    values.iter().flat_map(|v| v.chars()).any(|c| {
        !c.is_ascii()
            && (c.to_lowercase().ne(std::iter::once(c)) || c.to_uppercase().ne(std::iter::once(c)))
    })
}

/// Is this a UUID written 8-4-4-4-12 in hexadecimal digits?
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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

    #[test]
    fn one_line_removes_line_breaks() {
        assert_eq!(one_line("a\nb\r\n  c\t"), "a b c");
    }

    #[test]
    fn non_ascii_cased_letters_are_detected() {
        for (value, expected) in [
            ("NetSupport Ltd", false),
            ("Krämer IT Solutions GmbH", true),
            ("DWSNET OÜ", true),
            ("TEKNOPARS BİLİŞİM", true),
            ("東京", false),
            ("Servably, Inc.", false),
        ] {
            assert_eq!(
                has_non_ascii_cased(&[value.to_string()]),
                expected,
                "{value}"
            );
        }
    }
}
