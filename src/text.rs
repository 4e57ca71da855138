//! Text helpers every stage may use: string quoting for the file formats around a
//! query (YAML, savedsearches.conf), one-line comment text, and the case checks behind
//! ASCII folding. A leaf module: it imports nothing from the crate.
//!
//! ## Text that is not a query literal
//!
//! Names, descriptions, scenarios, references, author, tool, tactics, techniques,
//! constants and file paths reach comments, YAML, JSON and savedsearches.conf. One
//! rule keeps them from changing the structure of any output:
//!
//! 1. At parse time [`check_text`] rejects, with the position, every character that
//!    ends a line or a comment in some output format or that a format cannot carry:
//!    C0 and C1 controls (U+0085 NEXT LINE among them), DEL, U+2028 LINE SEPARATOR,
//!    U+2029 PARAGRAPH SEPARATOR, U+FEFF and the Unicode noncharacters. Only
//!    descriptions and scenarios may hold line feeds and tabs ([`TextKind::Multiline`]).
//! 2. Where the text lands it is still escaped for exactly that place, so that text
//!    that never went through the parser (file paths, importer output) is safe too:
//!    [`one_line`] for KQL and SPL `//`/`#` comments and conf descriptions,
//!    [`yaml_scalar`] and [`yaml_block`] for YAML, [`conf_value`] for a
//!    savedsearches.conf value with its continuation rules, and serde_json for JSON.

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

/// Where a text may go: one line (names, references, constants) or several lines
/// (descriptions and scenarios, which may hold line feeds and tabs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Text that must stay on one line (names, comments).
    OneLine,
    /// Text that may span lines (descriptions).
    Multiline,
}

/// The first character a text may not hold, found by [`check_text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChar {
    /// The character itself.
    pub ch: char,
    /// Its 1-based position among the text's characters.
    pub index: usize,
    /// Its byte offset in the text.
    pub byte: usize,
}

impl BadChar {
    /// `U+2028 (line separator)`: the character and what it is.
    pub fn describe(&self) -> String {
        format!("U+{:04X} ({})", self.ch as u32, char_class(self.ch))
    }
}

/// What a character no text outside a query literal may hold is, in words.
fn char_class(c: char) -> &'static str {
    match c {
        '\n' => "line feed",
        '\r' => "carriage return",
        '\t' => "tab",
        '\u{7f}' => "delete",
        '\u{85}' => "next line",
        '\u{2028}' => "line separator",
        '\u{2029}' => "paragraph separator",
        '\u{feff}' => "byte order mark",
        c if (c as u32) < 0x20 => "control character",
        c if c.is_control() => "C1 control character",
        _ => "noncharacter",
    }
}

/// Does a character end a line in some output format (YAML, KQL and SPL comments,
/// savedsearches.conf, JavaScript-era JSON readers) or is it one that YAML cannot
/// carry unescaped? Line feed and tab are handled by the caller.
fn is_breaking(c: char) -> bool {
    c.is_control() // C0, DEL, C1 (U+0085 NEXT LINE among them)
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
        || is_noncharacter(c)
}

/// U+FDD0..U+FDEF and the last two code points of every plane.
pub fn is_noncharacter(c: char) -> bool {
    let n = c as u32;
    (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
}

/// The first character `s` may not hold as text of `kind` (see the module docs).
///
/// ```
/// use rmmc::text::{check_text, TextKind};
/// assert!(check_text("Remote Management - NetSupport", TextKind::OneLine).is_ok());
/// assert!(check_text("two\nlines", TextKind::Multiline).is_ok());
/// let bad = check_text("a\u{2028}b", TextKind::Multiline).unwrap_err();
/// assert_eq!((bad.index, bad.describe()), (2, "U+2028 (line separator)".to_string()));
/// ```
pub fn check_text(s: &str, kind: TextKind) -> Result<(), BadChar> {
    let multiline = kind == TextKind::Multiline;
    match s.char_indices().enumerate().find(|(_, (_, c))| {
        if matches!(c, '\n' | '\t') {
            !multiline
        } else {
            is_breaking(*c)
        }
    }) {
        Some((i, (byte, ch))) => Err(BadChar {
            ch,
            index: i + 1,
            byte,
        }),
        None => Ok(()),
    }
}

/// Text safe inside a one-line comment or a one-line conf value: every character
/// that could end the line (controls, U+2028, U+2029, noncharacters) becomes a
/// space, and runs of blanks become one.
pub fn one_line(s: &str) -> String {
    // One pass, one allocation: templates call this for every text they print.
    let mut out = String::with_capacity(s.len());
    let mut blank = false;
    for c in s.chars() {
        if c.is_whitespace() || is_breaking(c) {
            blank = !out.is_empty();
        } else {
            if blank {
                out.push(' ');
                blank = false;
            }
            out.push(c);
        }
    }
    out
}

/// A YAML scalar: plain where that is unambiguous, else double-quoted with every
/// character YAML would read as a line break or cannot carry escaped.
///
/// ```
/// assert_eq!(rmmc::text::yaml_scalar("T1219"), "T1219");
/// assert_eq!(rmmc::text::yaml_scalar("true"), "\"true\"");
/// assert_eq!(rmmc::text::yaml_scalar("x \u{2028}y"), "\"x \\u2028y\"");
/// ```
pub fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_alphanumeric())
        && !s.ends_with(' ')
        && s.chars()
            .all(|c| (c.is_alphanumeric() && !is_breaking(c)) || " ._-/()".contains(c))
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
        yaml_double_quoted(s)
    }
}

/// A YAML double-quoted scalar. Line breaks of any kind (YAML 1.1 readers such as
/// libyaml also break lines at U+0085, U+2028 and U+2029, and fold the blanks
/// around a break) and the characters YAML may not hold raw (controls, DEL, C1,
/// U+FEFF, noncharacters) are written as escapes, so the scalar reads back as `s`.
pub fn yaml_double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_breaking(c) && (c as u32) <= 0xFFFF => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if is_breaking(c) => out.push_str(&format!("\\U{:08x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A YAML literal block (`|`, `|-`) indented by `indent` where the text allows one,
/// else a quoted scalar.
pub fn yaml_block(s: &str, indent: usize) -> String {
    let body = s.strip_suffix('\n').unwrap_or(s);
    let chomp = if s.ends_with('\n') { "" } else { "-" };
    let safe = !body.is_empty()
        && !body.ends_with('\n')
        && body
            .chars()
            .all(|c| c == '\n' || c == '\t' || !is_breaking(c))
        && body.lines().all(|l| l.is_empty() || !l.trim().is_empty());
    if !safe {
        return yaml_double_quoted(s);
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

/// A savedsearches.conf value: lines joined with ` \` continuations. A line of the
/// value that ends in a backslash would itself continue the value, and the conf
/// format has no escape for it: a space after the backslash ends the line there
/// (Splunk trims the blanks at the end of a value).
pub fn conf_value(s: &str) -> String {
    let joined = s
        .trim_end()
        .lines()
        .map(|l| l.replace('\r', " "))
        .collect::<Vec<_>>()
        .join(" \\\n");
    if joined.ends_with('\\') {
        joined + " "
    } else {
        joined
    }
}

/// A one-line savedsearches.conf value or comment: [`one_line`], and no trailing
/// backslash that would continue it onto the next key (see [`conf_value`]).
pub fn conf_line(s: &str) -> String {
    let line = one_line(s);
    if line.ends_with('\\') {
        line + " "
    } else {
        line
    }
}

/// A savedsearches.conf stanza name: one line, without the brackets that would end
/// it (so `Same name` and `[Same name]` are one stanza, which builds reject).
pub fn conf_stanza(s: &str) -> String {
    one_line(s).replace(['[', ']'], "")
}

/// A name as one path component: lower case, letters, digits, `.`, `_` and `-`
/// only (separators, control characters and everything else become `-`), no
/// leading or trailing `.` or `-` (so never `.`, `..` or a hidden file), and never
/// empty.
///
/// ```
/// assert_eq!(rmmc::text::path_component("Parsec.app"), "parsec.app");
/// assert_eq!(rmmc::text::path_component(".."), "unnamed");
/// assert_eq!(rmmc::text::path_component("../../etc/x\n"), "etc-x");
/// ```
pub fn path_component(name: &str) -> String {
    let mapped: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() && !is_breaking(c) || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(['-', '.']);
    if trimmed.is_empty() {
        "unnamed".to_string()
    } else {
        trimmed.to_string()
    }
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

/// [`yaml_scalar`] in ASCII: text with a non-ASCII character becomes a double-quoted
/// scalar with `\uXXXX` / `\UXXXXXXXX` escapes, which YAML reads back as the text.
pub fn yaml_scalar_ascii(s: &str) -> String {
    if s.is_ascii() {
        yaml_scalar(s)
    } else {
        yaml_quoted_ascii(s)
    }
}

/// [`yaml_block`] in ASCII: a literal block has no escapes, so text with a non-ASCII
/// character becomes a double-quoted scalar with escapes.
pub fn yaml_block_ascii(s: &str, indent: usize) -> String {
    if s.is_ascii() {
        yaml_block(s, indent)
    } else {
        yaml_quoted_ascii(s)
    }
}

/// A double-quoted YAML scalar in ASCII (a JSON string is one; YAML adds `\U` for
/// characters beyond U+FFFF, where JSON would need a surrogate pair).
fn yaml_quoted_ascii(s: &str) -> String {
    let json = serde_json::to_string(s).expect("strings serialize");
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c as u32 {
            // YAML allows no raw DEL (JSON does).
            0..=0x7e => out.push(c),
            n @ 0x7f..=0xffff => out.push_str(&format!("\\u{n:04x}")),
            n => out.push_str(&format!("\\U{n:08x}")),
        }
    }
    out
}

/// JSON text in ASCII: every non-ASCII character (which JSON text has only inside
/// strings) as `\uXXXX`, a surrogate pair beyond U+FFFF.
pub fn json_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// A JSON string for an ARM template, in ASCII. ARM evaluates a string that starts
/// with `[` and ends with `]` as a template expression; a leading `[[` makes it the
/// literal text (ARM drops one `[`), so no rule text can become an expression.
pub fn arm_string(s: &str) -> String {
    let literal = if s.starts_with('[') && s.ends_with(']') {
        format!("[{s}")
    } else {
        s.to_string()
    };
    json_ascii(&serde_json::to_string(&literal).expect("strings serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn one_line_joins_words_with_single_spaces() {
        for (text, expected) in [
            ("", ""),
            ("  a  ", "a"),
            ("a\nb\r\nc", "a b c"),
            ("a\u{2028}\u{2029}b", "a b"),
            ("a\u{0}\u{7f}\u{85}b", "a b"),
            ("a\u{fdd0}b\u{ffff}", "a b"),
            ("a \u{feff} b", "a b"),
            ("a\u{3000}b\u{a0}c", "a b c"),
            ("tab\there", "tab here"),
        ] {
            assert_eq!(one_line(text), expected, "{text:?}");
        }
    }

    proptest::proptest! {
        /// The one-pass `one_line` is the two-step definition: breaking characters
        /// become spaces, then blank runs become one space and the ends are trimmed.
        #[test]
        fn one_line_is_breaking_to_space_then_split_whitespace(text in "\\PC*|[ \t\n\r\u{85}\u{2028}a-c\u{0}\u{ffff}]*") {
            let two_step = text
                .chars()
                .map(|c| if is_breaking(c) { ' ' } else { c })
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            proptest::prop_assert_eq!(one_line(&text), two_step);
        }
    }

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
    fn conf_values_never_end_a_line_in_a_backslash() {
        // `description = Matches C:\Tools\` would continue into `search = ...`.
        assert_eq!(conf_line("Matches C:\\Tools\\"), "Matches C:\\Tools\\ ");
        assert_eq!(conf_value("a\\\nb\\"), "a\\ \\\nb\\ ");
        for line in conf_value("x\\\ny\\").lines() {
            assert!(!line.ends_with("\\\\"), "{line:?}");
        }
    }

    #[test]
    fn one_line_removes_line_breaks() {
        assert_eq!(one_line("a\nb\r\n  c\t"), "a b c");
        // KQL ends a `//` comment at CR, LF, U+2028 and U+2029; YAML also at U+0085.
        assert_eq!(
            one_line("a\u{2028}| take 0\u{2029}b\u{85}c\u{fffe}d\u{7f}e"),
            "a | take 0 b c d e"
        );
    }

    #[test]
    fn yaml_scalars_keep_every_character() {
        for text in [
            "x \u{2028}y",
            "x\u{2028}query: DeviceEvents | take 1\u{2028}",
            "a\u{2029}b",
            "n\u{85}l",
            "\u{fffe}\u{ffff}\u{fdd0}\u{10fffe}",
            "del\u{7f} c1\u{80}\u{9f}",
            "\u{feff}bom",
            "tab\tlf\ncr\r",
            "q\"'\\",
        ] {
            for doc in [
                format!("k: {}\n", yaml_scalar(text)),
                format!("k: {}\n", yaml_block(text, 2)),
            ] {
                let back: HashMap<String, String> = serde_yaml::from_str(&doc).expect(&doc);
                assert_eq!(back["k"], text, "{doc}");
                assert_eq!(back.len(), 1, "{doc}");
            }
        }
    }

    #[test]
    fn text_checks_name_the_first_bad_character() {
        for (text, kind, bad) in [
            ("plain", TextKind::OneLine, None),
            ("two\nlines\tok", TextKind::Multiline, None),
            ("two\nlines", TextKind::OneLine, Some(('\n', 4))),
            ("a\rb", TextKind::Multiline, Some(('\r', 2))),
            ("ab\u{2028}", TextKind::Multiline, Some(('\u{2028}', 3))),
            ("\u{2029}", TextKind::OneLine, Some(('\u{2029}', 1))),
            ("x\u{85}", TextKind::OneLine, Some(('\u{85}', 2))),
            ("x\u{7f}", TextKind::OneLine, Some(('\u{7f}', 2))),
            ("x\u{9f}", TextKind::OneLine, Some(('\u{9f}', 2))),
            ("é\u{fffe}", TextKind::OneLine, Some(('\u{fffe}', 2))),
            ("\u{fdd0}", TextKind::OneLine, Some(('\u{fdd0}', 1))),
            ("\u{1fffe}", TextKind::OneLine, Some(('\u{1fffe}', 1))),
        ] {
            let got = check_text(text, kind).err().map(|b| (b.ch, b.index));
            assert_eq!(got, bad, "{text:?}");
        }
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

    #[test]
    fn ascii_forms_read_back_as_the_text() {
        for text in [
            "Kr\u{e4}mer",
            "TEKNOPARS B\u{130}L\u{130}\u{15e}\u{130}M\nx",
            "\u{1f600} [a]",
            "\u{a1}\u{7f}",
            "plain",
        ] {
            for rendered in [yaml_scalar_ascii(text), yaml_block_ascii(text, 2)] {
                assert!(rendered.is_ascii(), "{rendered}");
                let doc = format!("k: {rendered}\n");
                let back: std::collections::BTreeMap<String, String> =
                    serde_yaml::from_str(&doc).expect(&doc);
                assert_eq!(back["k"], text, "{doc}");
            }
            let json = json_ascii(&serde_json::to_string(text).unwrap());
            assert!(json.is_ascii());
            assert_eq!(serde_json::from_str::<String>(&json).unwrap(), text);
        }
    }

    #[test]
    fn arm_strings_never_become_expressions() {
        assert_eq!(arm_string("[concat('a')]"), r#""[[concat('a')]""#);
        assert_eq!(arm_string("[x"), r#""[x""#);
        assert_eq!(arm_string("a]"), r#""a]""#);
        assert_eq!(arm_string("Kr\u{e4}mer"), r#""Kr\u00e4mer""#);
    }
}
