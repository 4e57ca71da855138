//! Authoring lints: rule values that parse but are very likely not what the author
//! meant. Each lint is a warning with a code and the reason; a rule may acknowledge a
//! code (`acknowledged:`), so CI logs show only new warnings; `--strict` reads the
//! approximations a rule acknowledges from here too.

use crate::ir::{Acknowledgement, Expr, MatchKind, Predicate, Rule};
use crate::lower::{Approximation, Target};
use std::fmt;

/// A value written as another language's wildcard or regex in a literal match kind.
pub const PATTERN_IN_LITERAL: &str = "pattern-in-literal";
/// A value of a file-name field that is not a file name.
pub const NOT_A_FILE_NAME: &str = "not-a-file-name";
/// An acknowledgement that no warning of the rule uses.
pub const UNUSED_ACKNOWLEDGEMENT: &str = "unused-acknowledgement";

/// Every lint code, for documentation and for checking `acknowledged:` entries.
pub const CODES: &[&str] = &[PATTERN_IN_LITERAL, NOT_A_FILE_NAME];

/// Fields that hold the file name of a process image, never a display name.
const FILE_NAME_FIELDS: &[&str] = &[
    "process.name",
    "process.parent.name",
    "process.pe.original_file_name",
];

/// One warning about a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// The lint code (`pattern-in-literal`, ...), for `acknowledged:`.
    pub code: &'static str,
    /// The value the warning is about, as the rule writes it (to locate it).
    pub value: String,
    /// The rule key the value stands under (`equals`, `has`, ...), if any.
    pub key: Option<&'static str>,
    /// What looks wrong and why.
    pub message: String,
}

impl Lint {
    /// Texts to search the rule file for, most specific first, to locate the warning.
    pub fn needles(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(key) = self.key {
            out.push(format!("{key}: {}", self.value));
            out.push(format!("{key}: \"{}\"", self.value));
            out.push(format!("{key}: '{}'", self.value));
        }
        out.push(format!("- {}", self.value));
        out.push(self.value.clone());
        out
    }
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)
    }
}

/// The rule's warnings that its `acknowledged:` list does not cover, plus one for
/// each acknowledgement that covers nothing (so stale ones get removed).
pub fn lint(rule: &Rule) -> Vec<Lint> {
    let mut found = Vec::new();
    visit(&rule.detection, "detection", &mut found);
    for x in &rule.exclusions {
        visit(&x.drop_when, &format!("exclusion `{}`", x.name), &mut found);
    }
    let acknowledged = |code: &str| {
        rule.meta
            .acknowledged
            .iter()
            .any(|a: &Acknowledgement| a.warning == code)
    };
    let mut out: Vec<Lint> = found
        .iter()
        .filter(|l| !acknowledged(l.code))
        .cloned()
        .collect();
    for a in &rule.meta.acknowledged {
        if !CODES.contains(&a.warning.as_str()) {
            continue; // approximation acknowledgements are checked by --strict
        }
        if !found.iter().any(|l| l.code == a.warning) {
            out.push(Lint {
                code: UNUSED_ACKNOWLEDGEMENT,
                value: a.warning.clone(),
                key: Some("warning"),
                message: format!(
                    "`acknowledged: {}` matches no warning of this rule: remove it",
                    a.warning
                ),
            });
        }
    }
    out
}

/// Does the rule accept this approximation on this target (`warning: approximate`
/// with the target, and the construct when it names one)? `--strict` then passes it.
pub fn acknowledges_approximation(rule: &Rule, target: Target, a: &Approximation) -> bool {
    rule.meta.acknowledged.iter().any(|ack| {
        ack.warning == "approximate"
            && ack.target.as_deref() == Some(target.as_str())
            && ack.construct.as_ref().is_none_or(|c| *c == a.construct)
    })
}

fn visit(e: &Expr, place: &str, out: &mut Vec<Lint>) {
    match e {
        Expr::All(xs) | Expr::Any(xs) => xs.iter().for_each(|x| visit(x, place, out)),
        Expr::Not(x) => visit(x, place, out),
        Expr::Match(p) => predicate(p, place, out),
    }
}

fn predicate(p: &Predicate, place: &str, out: &mut Vec<Lint>) {
    let literal = matches!(
        p.kind,
        MatchKind::Equals
            | MatchKind::Term
            | MatchKind::Contains
            | MatchKind::Prefix
            | MatchKind::Suffix
    );
    for v in &p.values {
        if literal && let Some(sign) = pattern_sign(v) {
            out.push(Lint {
                code: PATTERN_IN_LITERAL,
                value: v.clone(),
                key: Some(p.kind.as_str()),
                message: format!(
                    "{place}: `{}` value `{v}` on `{}` contains {sign}, which rmmc matches literally: `{}` already says where the text occurs; write the plain text, or use `regex` for a pattern",
                    p.kind.as_str(),
                    p.field,
                    p.kind.as_str()
                ),
            });
        }
        if p.kind == MatchKind::Equals
            && FILE_NAME_FIELDS.contains(&p.field.as_str())
            && let Some(why) = not_a_file_name(&p.field, v)
        {
            out.push(Lint {
                code: NOT_A_FILE_NAME,
                value: v.clone(),
                key: Some(p.kind.as_str()),
                message: format!(
                    "{place}: `{}` holds a process image's file name (e.g. svchost.exe), but `{v}` {why}",
                    p.field
                ),
            });
        }
    }
}

/// What makes a literal look like a wildcard or regex of another language.
fn pattern_sign(v: &str) -> Option<&'static str> {
    if v.starts_with('*') || v.ends_with('*') {
        Some("a `*` wildcard")
    } else if [".*", ".+", "(?i)"].iter().any(|r| v.contains(r))
        || regex_escape(v)
        || (v.starts_with('^') && v.len() > 1)
        || (v.ends_with('$') && v.len() > 1 && !v.ends_with("\\$"))
    {
        Some("regex syntax")
    } else {
        None
    }
}

/// A regex escape such as `\d+` or `name\.exe`. A Windows path is full of the same
/// pairs (`C:\Windows\dwrcs\`, `\superputty.exe`, `\.unverified\`), so a class escape
/// counts only with a quantifier after it, and `\.` only in a value with no other
/// backslash (one escaped dot, not a folder separator).
fn regex_escape(v: &str) -> bool {
    let quantified_class = ["\\d", "\\w", "\\s"].iter().any(|class| {
        v.match_indices(class).any(|(at, _)| {
            v[at + 2..]
                .chars()
                .next()
                .is_some_and(|c| matches!(c, '+' | '*' | '?' | '{'))
        })
    });
    quantified_class || (v.contains("\\.") && v.matches('\\').count() == 1)
}

/// Why a value of a file-name field is not a process image's file name, if it is not.
/// A path never is. A name without an extension is one only on Linux and macOS, and
/// a PE version resource's OriginalFilename is free text that usually, not always,
/// carries the extension: the warning says what the value can still match.
fn not_a_file_name(field: &str, v: &str) -> Option<&'static str> {
    if looks_like_file_name(v) {
        None
    } else if v.contains(['\\', '/']) || v.rsplit_once('.').is_some_and(|(stem, _)| stem.is_empty())
    {
        Some("is a path or no name at all, so this predicate never matches real data")
    } else if field == "process.pe.original_file_name" {
        Some(
            "has no extension: a version resource's OriginalFilename usually has one, so this matches only binaries whose vendor left it out; check the binary's version info",
        )
    } else {
        Some(
            "has no extension: a Windows program's name has one, so this matches only processes on Linux or macOS devices, whose programs often have none",
        )
    }
}

/// `NetSupport.exe`, `client32.EXE`, `setup-1.2.msi`: a name without a folder, ending
/// in a dot and a short alphanumeric extension.
fn looks_like_file_name(v: &str) -> bool {
    if v.contains(['\\', '/']) {
        return false;
    }
    match v.rsplit_once('.') {
        Some((stem, ext)) => {
            !stem.is_empty()
                && (1..=4).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphanumeric())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_have_an_extension_and_no_folder() {
        for ok in ["NetSupport.exe", "client32.EXE", "setup-1.2.msi", "a.ps1"] {
            assert!(looks_like_file_name(ok), "{ok}");
        }
        for bad in [
            "Task Scheduler",
            "GroupPolicy",
            "SIEM Agent",
            "C:\\x\\a.exe",
            ".exe",
            "a.",
        ] {
            assert!(!looks_like_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn wildcards_and_regex_are_recognised_plain_text_is_not() {
        assert_eq!(pattern_sign("*fooremote*"), Some("a `*` wildcard"));
        assert_eq!(pattern_sign("foo.*bar"), Some("regex syntax"));
        assert_eq!(pattern_sign("^anydesk"), Some("regex syntax"));
        for plain in [
            "netsupport",
            "C:\\Program Files\\x",
            "%APPDATA%",
            "a$b",
            "$",
        ] {
            assert_eq!(pattern_sign(plain), None, "{plain}");
        }
    }

    #[test]
    fn a_regex_escape_is_not_a_windows_folder_separator() {
        for (value, regex) in [
            ("fooremote\\.exe", true),
            ("\\d+\\.exe", true),
            ("agent\\w{3}", true),
            ("x\\s*y", true),
            ("C:\\Windows\\dwrcs\\", false),
            ("\\superputty.exe", false),
            ("\\winvnc.exe", false),
            ("C:\\Program Files (x86)\\TiFLUX\\desktop\\", false),
            (
                "C:\\ProgramData\\Package Cache\\.unverified\\agent\\",
                false,
            ),
        ] {
            assert_eq!(regex_escape(value), regex, "{value}");
        }
    }

    #[test]
    fn a_name_without_extension_is_flagged_for_what_it_can_still_match() {
        let never = Some("is a path or no name at all, so this predicate never matches real data");
        for (field, value, why) in [
            ("process.name", "NetSupport.exe", None),
            ("process.name", "C:\\x\\a.exe", never),
            ("process.name", ".exe", never),
            ("process.pe.original_file_name", "bin/agent", never),
            ("process.name", "tmate", Some("linux")),
            ("process.parent.name", "Task Scheduler", Some("linux")),
            ("process.pe.original_file_name", "Alpemix", Some("version")),
        ] {
            let got = not_a_file_name(field, value);
            match why {
                None => assert_eq!(got, None, "{value}"),
                Some("linux") => {
                    assert!(got.is_some_and(|m| m.contains("Linux or macOS")), "{value}")
                }
                Some("version") => {
                    assert!(got.is_some_and(|m| m.contains("version info")), "{value}")
                }
                Some(message) => assert_eq!(got, Some(message), "{value}"),
            }
        }
    }
}
