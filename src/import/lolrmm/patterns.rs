//! Reading LOLRMM's file-name, path and domain patterns as exact match kinds.
//!
//! A pattern's `*` means "any characters, none included". `glob` turns a pattern
//! into the match kinds that say exactly that — `x*` is a prefix, `*x` a suffix,
//! `*x*` a substring, `x*y` a prefix and a suffix that do not overlap — or says why
//! no exact kind can (three fixed parts, a middle part that can overlap an anchored
//! one, `?`). Nothing is turned into a wildcard a target would have to guess back.
//!
//! Values compare as rules do by default: ASCII letters without case (Windows file
//! names and DNS names are case-insensitive), so overlaps are found case-folded too.

/// How one catalogue value reads as exact match kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Exactly this value.
    Equals(String),
    /// Starts with this.
    Prefix(String),
    /// Ends with this.
    Suffix(String),
    /// Contains this.
    Contains(String),
    /// Starts with `prefix` and ends with `suffix`, with anything (or nothing) between:
    /// the values that start and end right but are shorter than both (`prefix` and
    /// `suffix` overlapping) are the `overlaps`, excluded by `not equals`.
    Between {
        /// What the value starts with.
        prefix: String,
        /// What it ends with.
        suffix: String,
        /// The values that start and end right but are too short.
        overlaps: Vec<String>,
    },
    /// Starts with `prefix`; `middle` occurs after it.
    PrefixContains {
        /// What the value starts with.
        prefix: String,
        /// What occurs after it.
        middle: String,
    },
    /// `middle` occurs, then the value ends with `suffix`.
    ContainsSuffix {
        /// What occurs before the end.
        middle: String,
        /// What the value ends with.
        suffix: String,
    },
    /// A DNS name and every name under it: `*.example.com`.
    Subdomains(String),
}

impl Shape {
    /// Values that match the shape, for checking whether another rule covers it.
    pub fn probes(&self) -> Vec<String> {
        match self {
            Shape::Equals(v) => vec![v.clone()],
            Shape::Prefix(p) => vec![format!("{p}x")],
            Shape::Suffix(s) => vec![format!("x{s}")],
            Shape::Contains(m) => vec![format!("x{m}x")],
            Shape::Between { prefix, suffix, .. } => vec![format!("{prefix}x{suffix}")],
            Shape::PrefixContains { prefix, middle } => vec![format!("{prefix}x{middle}")],
            Shape::ContainsSuffix { middle, suffix } => vec![format!("{middle}x{suffix}")],
            Shape::Subdomains(d) => vec![d.clone(), format!("x.{d}")],
        }
    }
}

fn fold(s: &str) -> Vec<char> {
    s.chars().map(|c| c.to_ascii_lowercase()).collect()
}

/// Does `a` occur in `b`, ASCII case folded?
fn occurs_in(a: &[char], b: &[char]) -> bool {
    a.is_empty() || b.windows(a.len()).any(|w| w == a)
}

/// Can an occurrence of `m` start inside `anchor` and run past its end (or lie in it)?
/// `anchor_first`: the anchor is a prefix (else a suffix, and `m` may start before it
/// and end inside it).
fn can_overlap(m: &[char], anchor: &[char], anchor_first: bool) -> bool {
    if occurs_in(m, anchor) {
        return true;
    }
    (1..m.len().min(anchor.len() + 1)).any(|k| {
        if anchor_first {
            // the first k chars of m are the last k chars of the prefix anchor
            m[..k] == anchor[anchor.len() - k..]
        } else {
            // the last k chars of m are the first k chars of the suffix anchor
            m[m.len() - k..] == anchor[..k]
        }
    })
}

/// A glob with `*` as exact match kinds, or why none expresses it.
pub fn glob(pattern: &str) -> Result<Shape, String> {
    if pattern.contains('?') {
        return Err("`?` stands for one character: no exact match kind says that".to_string());
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    match parts.as_slice() {
        [v] => Ok(Shape::Equals(v.to_string())),
        ["", ""] => Err("`*` alone matches everything".to_string()),
        ["", s] => Ok(Shape::Suffix(s.to_string())),
        [p, ""] => Ok(Shape::Prefix(p.to_string())),
        [p, s] => {
            let (fp, fs) = (fold(p), fold(s));
            let pc: Vec<char> = p.chars().collect();
            let sc: Vec<char> = s.chars().collect();
            let mut overlaps = Vec::new();
            for k in (1..=fp.len().min(fs.len())).rev() {
                if fp[fp.len() - k..] == fs[..k] {
                    let v: String = pc.iter().chain(sc[k..].iter()).collect();
                    overlaps.push(v);
                }
            }
            Ok(Shape::Between {
                prefix: p.to_string(),
                suffix: s.to_string(),
                overlaps,
            })
        }
        ["", "", _] | [_, "", ""] | [_, "", _] => {
            Err("`**`: two wildcards in a row".to_string())
        }
        ["", m, ""] => Ok(Shape::Contains(m.to_string())),
        ["", m, s] => {
            if can_overlap(&fold(m), &fold(s), false) {
                Err(format!(
                    "`*{m}*{s}`: `{m}` can overlap the end `{s}`, so \"contains and ends with\" would match more than the pattern"
                ))
            } else {
                Ok(Shape::ContainsSuffix {
                    middle: m.to_string(),
                    suffix: s.to_string(),
                })
            }
        }
        [p, m, ""] => {
            if can_overlap(&fold(m), &fold(p), true) {
                Err(format!(
                    "`{p}*{m}*`: `{m}` can overlap the start `{p}`, so \"starts with and contains\" would match more than the pattern"
                ))
            } else {
                Ok(Shape::PrefixContains {
                    prefix: p.to_string(),
                    middle: m.to_string(),
                })
            }
        }
        [_, _, _] => Err(
            "a start, a middle and an end fixed around two `*`: the order of the three parts needs more than exact match kinds"
                .to_string(),
        ),
        _ => Err("more than two `*`: the order of the fixed parts needs more than exact match kinds".to_string()),
    }
}

/// What a catalogue value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// Match `field` with `shape`. `note`: how the value was read, when not plainly.
    Match {
        /// The canonical field to test.
        field: &'static str,
        /// The exact match kinds the value reads as.
        shape: Shape,
        /// How the value was read, when not plainly.
        note: Option<String>,
    },
    /// Not imported, and why (the value is well-formed but no exact rule says it).
    Skip(String),
    /// Not a pattern at all: the tool is not imported (nothing partial is written).
    Malformed(String),
}

fn skip(s: impl Into<String>) -> Reading {
    Reading::Skip(s.into())
}

fn malformed(s: impl Into<String>) -> Reading {
    Reading::Malformed(s.into())
}

/// Program image extensions: a process-creation event names files with these.
const IMAGE_EXTENSIONS: [&str; 3] = ["exe", "com", "scr"];

/// The extension of a file name: 1 to 4 letters or digits after the last `.`, or 5
/// to 8 letters (`.service`, `.plist`: files Unix paths name beside their programs).
fn extension(name: &str) -> Option<String> {
    let (_, ext) = name.rsplit_once('.')?;
    let short = !ext.is_empty() && ext.len() <= 4 && ext.chars().all(|c| c.is_ascii_alphanumeric());
    let long = (5..=8).contains(&ext.len()) && ext.chars().all(|c| c.is_ascii_alphabetic());
    (short || long).then(|| ext.to_ascii_lowercase())
}

fn not_an_image(ext: &str) -> String {
    let what = match ext {
        "dll" | "sys" | "mui" | "ocx" => "a library or driver, loaded rather than started",
        "msi" | "mst" | "msp" => "an installer package, run by msiexec.exe",
        "ps1" | "vbs" | "py" | "cmd" | "bat" | "js" => "a script, run by its interpreter",
        "lnk" => "a shortcut",
        "app" => "a macOS bundle name",
        "service" | "socket" | "timer" => "a systemd unit file, read by systemd",
        "plist" => "a launchd property list, read by launchd",
        _ => "not a program image",
    };
    format!(
        "`.{ext}` is {what}: a process-creation event names the program that runs, not this file"
    )
}

fn check_text(raw: &str) -> Option<Reading> {
    if raw.trim().is_empty() {
        return Some(malformed("an empty value"));
    }
    if raw.chars().any(char::is_control) {
        return Some(malformed("a control character inside the value"));
    }
    if raw != raw.trim() {
        return Some(malformed("leading or trailing blanks"));
    }
    if raw.contains("**") {
        return Some(malformed("`**`: two wildcards in a row"));
    }
    None
}

/// A file name (no folder): the process name, or its PE original file name.
pub fn read_name(raw: &str, field: &'static str) -> Reading {
    if let Some(bad) = check_text(raw) {
        return bad;
    }
    let literal_tail = raw.rsplit('*').next().unwrap_or("");
    if let Some(ext) = extension(literal_tail)
        && !IMAGE_EXTENSIONS.contains(&ext.as_str())
        && !raw.ends_with('*')
    {
        return skip(not_an_image(&ext));
    }
    if extension(literal_tail).is_none() && !raw.contains('*') && raw.contains(' ') {
        return skip("words without a file extension: not a file name");
    }
    if raw.len() == 40 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
        return skip("a SHA-1 hash, not a file name");
    }
    match glob(raw) {
        Ok(shape) => Reading::Match {
            field,
            shape,
            note: None,
        },
        Err(why) => skip(why),
    }
}

/// An installation path or file name from `Details.InstallationPaths`.
pub fn read_path(raw: &str) -> Reading {
    if let Some(bad) = check_text(raw) {
        return bad;
    }
    if !raw.contains(['\\', '/']) {
        return read_name(raw, "process.name");
    }
    let percents = raw.matches('%').count();
    if percents % 2 == 1 {
        return malformed("an unbalanced `%` (an environment variable is written `%NAME%`)");
    }
    if percents > 0 {
        return skip(
            "an environment variable (`%NAME%`): the folder it expands to differs per machine and user",
        );
    }
    if raw.starts_with('~') {
        return skip("`~`: a home folder, different per user");
    }
    if raw.get(1..).is_some_and(|rest| rest.contains("\\\\")) {
        return malformed("`\\\\` inside a path: a separator escaped twice");
    }
    let field = "process.executable";
    let windows = raw.contains('\\');
    let sep = if windows { '\\' } else { '/' };
    let last = raw.rsplit(['\\', '/']).next().unwrap_or("");
    if !raw.contains('*') {
        if raw.ends_with(['\\', '/']) {
            return Reading::Match {
                field,
                shape: Shape::Prefix(raw.to_string()),
                note: Some("a folder: programs under it".to_string()),
            };
        }
        return match extension(last) {
            Some(ext) if IMAGE_EXTENSIONS.contains(&ext.as_str()) => Reading::Match {
                field,
                shape: Shape::Equals(raw.to_string()),
                note: None,
            },
            Some(ext) if ext == "app" => Reading::Match {
                field,
                shape: Shape::Prefix(format!("{raw}/")),
                note: Some("a macOS application bundle: programs inside it".to_string()),
            },
            Some(ext) => skip(not_an_image(&ext)),
            None if windows => Reading::Match {
                field,
                shape: Shape::Prefix(format!("{raw}{sep}")),
                note: Some(
                    "a Windows path without an extension names a folder: programs under it"
                        .to_string(),
                ),
            },
            None => Reading::Match {
                field,
                shape: Shape::Equals(raw.to_string()),
                note: Some("a Unix path without an extension: the program file itself".to_string()),
            },
        };
    }
    if !raw.ends_with('*')
        && let Some(ext) = extension(last)
        && !IMAGE_EXTENSIONS.contains(&ext.as_str())
    {
        return skip(not_an_image(&ext));
    }
    match glob(raw) {
        Ok(shape) => Reading::Match {
            field,
            shape,
            note: None,
        },
        Err(why) => skip(why),
    }
}

fn is_ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
}

/// A value of `Artifacts.Network[].Domains`.
pub fn read_domain(raw: &str) -> Reading {
    if let Some(bad) = check_text(raw) {
        return bad;
    }
    if raw == "user_managed" {
        return skip(
            "`user_managed`: the tool connects to a server its user runs, no fixed domain",
        );
    }
    if raw.starts_with('<') && raw.ends_with('>') && raw.matches('<').count() == 1 {
        return skip("a placeholder for a server its user runs, not a host name");
    }
    let (host, port) = match raw.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (raw, None),
    };
    let port_note = port.map(|p| {
        format!("`:{p}` is a port, not part of the name (the port is a field of its own)")
    });
    if is_ipv4(host) {
        return Reading::Match {
            field: "destination.ip",
            shape: Shape::Equals(host.to_string()),
            note: port_note,
        };
    }
    if host.contains(['[', ']', '{', '}', '(', ')', '+', '^', '$', '|']) {
        return skip("a regular expression, not a host pattern");
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*')))
    {
        return malformed(format!(
            "`{bad}` cannot occur in a host name (expected letters, digits, `.`, `-`, `_` and `*`)"
        ));
    }
    let base = host.strip_prefix("*.").unwrap_or(host);
    if base.starts_with('.') || base.ends_with('.') || base.contains("..") || !base.contains('.') {
        return malformed("not a host name: expected labels separated by single dots");
    }
    if host.ends_with('*') {
        return skip(
            "`*` in place of the top-level domain: as a prefix it would also match names under any other domain",
        );
    }
    let field = "url.original";
    if let Some(base) = host.strip_prefix("*.")
        && !base.contains('*')
    {
        return Reading::Match {
            field,
            shape: Shape::Subdomains(base.to_string()),
            note: port_note,
        };
    }
    match glob(host) {
        Ok(shape) => Reading::Match {
            field,
            shape,
            note: port_note,
        },
        Err(why) => skip(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(r: Reading) -> Shape {
        match r {
            Reading::Match { shape, .. } => shape,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_star_becomes_the_kind_it_means() {
        assert_eq!(glob("x.exe"), Ok(Shape::Equals("x.exe".into())));
        assert_eq!(glob("UltraVNC*"), Ok(Shape::Prefix("UltraVNC".into())));
        assert_eq!(glob("*\\x.exe"), Ok(Shape::Suffix("\\x.exe".into())));
        assert_eq!(glob("*\\ME\\*"), Ok(Shape::Contains("\\ME\\".into())));
        assert_eq!(
            glob("UltraVNC*.exe"),
            Ok(Shape::Between {
                prefix: "UltraVNC".into(),
                suffix: ".exe".into(),
                overlaps: vec![]
            })
        );
    }

    #[test]
    fn prefix_and_suffix_exclude_their_overlaps() {
        // `C:\*\kitty.exe` needs `C:\` + something + `\kitty.exe`: `C:\kitty.exe` is
        // too short, though it starts and ends right.
        assert_eq!(
            glob("C:\\*\\kitty.exe"),
            Ok(Shape::Between {
                prefix: "C:\\".into(),
                suffix: "\\kitty.exe".into(),
                overlaps: vec!["C:\\kitty.exe".into()]
            })
        );
        let Ok(Shape::Between { overlaps, .. }) = glob("rescue-list.*.logmein-gateway.com") else {
            panic!()
        };
        assert_eq!(overlaps, ["rescue-list.logmein-gateway.com"]);
        let Ok(Shape::Between { overlaps, .. }) = glob("aXa*AXA") else {
            panic!()
        };
        assert_eq!(overlaps, ["aXa", "aXaXA"]);
    }

    #[test]
    fn middles_that_can_overlap_an_anchor_are_not_exact() {
        assert!(glob("C:\\Users\\*\\AppData\\x\\*").is_err());
        assert!(glob("*\\*\\Duplicati.Server.exe").is_err());
        // `xUsers\Insync.exe` contains `Users\` and ends with `\Insync.exe`, but the
        // pattern needs `Users\` + anything + `\Insync.exe`.
        assert!(glob("*Users\\*\\Insync.exe").is_err());
        assert_eq!(
            glob("*Example*\\x.exe"),
            Ok(Shape::ContainsSuffix {
                middle: "Example".into(),
                suffix: "\\x.exe".into()
            })
        );
        assert!(glob("a*b*c").is_err());
        assert!(glob("*a*b*c*").is_err());
        assert!(glob("*\\ZOC?\\*").is_err());
    }

    #[test]
    fn paths_read_by_what_they_name() {
        assert_eq!(
            shape(read_path("C:\\Program Files (x86)\\AnyDesk\\*")),
            Shape::Prefix("C:\\Program Files (x86)\\AnyDesk\\".into())
        );
        assert_eq!(
            shape(read_path("C:\\Program Files\\RustDesk")),
            Shape::Prefix("C:\\Program Files\\RustDesk\\".into())
        );
        assert_eq!(
            shape(read_path("/Applications/AnyDesk.app")),
            Shape::Prefix("/Applications/AnyDesk.app/".into())
        );
        assert_eq!(
            shape(read_path("/usr/bin/netbird")),
            Shape::Equals("/usr/bin/netbird".into())
        );
        assert_eq!(
            read_path("anydesk.exe"),
            Reading::Match {
                field: "process.name",
                shape: Shape::Equals("anydesk.exe".into()),
                note: None
            }
        );
        assert!(matches!(read_path("x\\agent.dll"), Reading::Skip(_)));
        // Files beside a Unix program, not the program: no process starts from them.
        for unit in [
            "/etc/systemd/system/nezha-agent.service",
            "/Library/LaunchDaemons/remotely-agent.plist",
        ] {
            assert!(
                matches!(read_path(unit), Reading::Skip(r) if r.contains("read by")),
                "{unit}"
            );
        }
        assert!(matches!(read_path("%APPDATA%\\x\\*"), Reading::Skip(_)));
        assert!(matches!(read_path("can't find this one"), Reading::Skip(_)));
        assert!(matches!(
            read_path("c:\\Program Files (x86)%\\mRemoteNG"),
            Reading::Malformed(_)
        ));
        assert!(matches!(
            read_path("C:\\\\ProgramData\\\\X\\\\"),
            Reading::Malformed(_)
        ));
        assert!(matches!(read_path(""), Reading::Malformed(_)));
    }

    #[test]
    fn domains_read_exactly() {
        assert_eq!(
            shape(read_domain("*.anydesk.com")),
            Shape::Subdomains("anydesk.com".into())
        );
        assert_eq!(
            shape(read_domain("boot.net.anydesk.com")),
            Shape::Equals("boot.net.anydesk.com".into())
        );
        let Reading::Match { field, note, .. } = read_domain("136.243.104.235:443") else {
            panic!()
        };
        assert_eq!(field, "destination.ip");
        assert!(note.is_some());
        assert!(matches!(
            read_domain("relay-[a-f0-9]{8}.net.anydesk.com:443"),
            Reading::Skip(_)
        ));
        assert!(matches!(read_domain("user_managed"), Reading::Skip(_)));
        assert!(matches!(read_domain("<on-prem-host>"), Reading::Skip(_)));
        assert!(matches!(read_domain("anydesk.*"), Reading::Skip(_)));
        assert!(matches!(read_domain("exa mple.com"), Reading::Malformed(_)));
        assert!(matches!(
            read_domain("http://x.com/"),
            Reading::Malformed(_)
        ));
        assert!(matches!(read_domain("x..com"), Reading::Malformed(_)));
    }
}
