//! Reading one LOLRMM catalogue file (`yaml/<tool>.yaml`): the tool's name and
//! metadata and its indicators, each with the line and column it is written at.
//!
//! serde_yaml gives positions only for syntax errors, so values are located by
//! finding their text in the file, in order, from their section's key on.

use crate::error::{Error, ErrorKind};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// Where an indicator comes from in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// `CodeSigning.certificates[].signer_name` or `CodeSigning.signer_names[]`.
    Signer,
    /// `Details.PEMetadata[].Filename`.
    Filename,
    /// `Details.PEMetadata[].OriginalFileName`.
    OriginalFileName,
    /// `Details.PEMetadata[].Product`.
    Product,
    /// `Details.PEMetadata[].Company`.
    Company,
    /// `Details.PEMetadata[].Description`, `InternalName`, `Comments`: free text.
    PeText(&'static str),
    /// `Details.InstallationPaths[]`.
    InstallationPath,
    /// `Artifacts.Network[].Domains[]`.
    Domain,
}

impl Origin {
    /// How reports name the origin: `signer`, `PE company`, ...
    pub fn label(self) -> &'static str {
        match self {
            Origin::Signer => "signer",
            Origin::Filename => "PE file name",
            Origin::OriginalFileName => "PE original file name",
            Origin::Product => "PE product",
            Origin::Company => "PE company",
            Origin::PeText(k) => k,
            Origin::InstallationPath => "installation path",
            Origin::Domain => "domain",
        }
    }
}

/// One catalogue value and where it is written.
#[derive(Debug, Clone)]
pub struct RawIndicator {
    /// Where in the catalogue entry the value is.
    pub origin: Origin,
    /// The value as written.
    pub value: String,
    /// 1-based line in the catalogue file.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// A URL an entry gives (`References[]`, `Details.Website`) and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The URL, trimmed.
    pub url: String,
    /// 1-based line in the catalogue file.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One catalogue file, read.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The file read.
    pub file: PathBuf,
    /// The path inside the catalogue, `yaml/anydesk.yaml`.
    pub rel: String,
    /// The tool's name in the catalogue.
    pub name: String,
    /// The catalogue's description of the tool.
    pub description: String,
    /// Who wrote the entry, if stated.
    pub author: Option<String>,
    /// When the entry was created, if stated.
    pub created: Option<String>,
    /// When it was last changed, if stated.
    pub last_modified: Option<String>,
    /// The tool's website, if stated.
    pub website: Option<Link>,
    /// Reference URLs.
    pub references: Vec<Link>,
    /// Every indicator value of the entry, located.
    pub indicators: Vec<RawIndicator>,
    /// Catalogue values of the wrong type, located: the tool is not imported.
    pub problems: Vec<Error>,
}

/// Finds where values are written.
struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Locator {
            lines: text.lines().collect(),
        }
    }

    /// The first line at or after `from` (0-based) holding `key:` at the start of a
    /// line's content.
    fn key(&self, key: &str, from: usize) -> Option<usize> {
        let want = format!("{key}:");
        (from..self.lines.len()).find(|&i| {
            let t = self.lines[i].trim_start().trim_start_matches("- ");
            t.starts_with(&want)
        })
    }

    /// Line (0-based) and column (1-based, in characters) of `value` at or after `from`.
    fn value(&self, value: &str, from: usize) -> Option<(usize, usize)> {
        let forms = [
            value.to_string(),
            value.replace('\'', "''"),
            serde_json::to_string(value)
                .unwrap_or_default()
                .trim_matches('"')
                .to_string(),
        ];
        for i in from..self.lines.len() {
            for f in &forms {
                if f.is_empty() {
                    continue;
                }
                if let Some(b) = self.lines[i].find(f.as_str()) {
                    return Some((i, self.lines[i][..b].chars().count() + 1));
                }
            }
        }
        None
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn nonempty(v: Option<&Value>) -> Option<String> {
    v.and_then(as_text)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Reading state for one file.
struct Reader<'a> {
    path: &'a Path,
    loc: Locator<'a>,
    indicators: Vec<RawIndicator>,
    problems: Vec<Error>,
}

impl Reader<'_> {
    fn problem(&mut self, line: usize, column: usize, msg: String) {
        self.problems.push(
            Error::new(ErrorKind::InvalidValue, msg)
                .in_file(self.path)
                .at(line + 1, column),
        );
    }

    /// Add the string items of `list` (a list of strings) under `section`'s key.
    fn strings(&mut self, list: Option<&Value>, key: &str, origin: Origin, cursor: &mut usize) {
        let Some(list) = list else { return };
        let at = self.loc.key(key, *cursor).unwrap_or(*cursor);
        match list {
            Value::Null => {}
            Value::Sequence(items) => {
                *cursor = at;
                for item in items {
                    self.one(item, key, origin, cursor);
                }
            }
            other => {
                let t = type_name(other);
                self.problem(at, 1, format!("`{key}` is {t}: expected a list of strings"));
            }
        }
    }

    /// One value; `keyed`: written as `key: value` (else a list item under `key`).
    fn one(&mut self, item: &Value, key: &str, origin: Origin, cursor: &mut usize) {
        self.value(item, key, origin, cursor, false)
    }

    fn value(&mut self, item: &Value, key: &str, origin: Origin, cursor: &mut usize, keyed: bool) {
        if keyed && let Some(at) = self.loc.key(key, *cursor) {
            *cursor = at;
        }
        match item {
            Value::String(s) => {
                let (line, column) = self.loc.value(s, *cursor).unwrap_or((*cursor, 1));
                *cursor = line;
                self.indicators.push(RawIndicator {
                    origin,
                    value: s.clone(),
                    line: line + 1,
                    column,
                });
            }
            Value::Null => {}
            other => {
                let t = type_name(other);
                let c = *cursor;
                self.problem(
                    c,
                    1,
                    format!("an item of `{key}` is {t}: expected a string"),
                );
            }
        }
    }
}

/// Read a catalogue file. `Err`: the file cannot be read as a catalogue entry at all
/// (not YAML, not a mapping, no `Name`), with the line and column.
pub fn read(path: &Path, rel: &str) -> Result<Entry, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let doc: Value = serde_yaml::from_str(&text).map_err(|e| {
        let mut err = Error::new(ErrorKind::Syntax, format!("not valid YAML: {e}")).in_file(path);
        if let Some(l) = e.location() {
            err = err.at(l.line(), l.column());
        }
        err
    })?;
    let Value::Mapping(_) = &doc else {
        return Err(Error::new(
            ErrorKind::Schema,
            format!(
                "a catalogue entry is a mapping with `Name`, `Details`, `Artifacts`, ...; found {}",
                type_name(&doc)
            ),
        )
        .in_file(path)
        .at(1, 1));
    };
    let loc = Locator::new(&text);
    let name = match doc.get("Name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(other) => {
            let line = loc.key("Name", 0).unwrap_or(0);
            return Err(Error::new(
                ErrorKind::Schema,
                format!("`Name` is {}: expected the tool's name", type_name(other)),
            )
            .in_file(path)
            .at(line + 1, 1));
        }
        None => {
            return Err(Error::new(
                ErrorKind::Schema,
                "no `Name`: expected the tool's name as a top-level `Name:` key",
            )
            .in_file(path)
            .at(1, 1));
        }
    };
    let mut r = Reader {
        path,
        loc,
        indicators: Vec::new(),
        problems: Vec::new(),
    };
    let details = doc.get("Details");
    // PEMetadata: one mapping or a list of them.
    if let Some(pe) = details.and_then(|d| d.get("PEMetadata")) {
        let at = r.loc.key("PEMetadata", 0).unwrap_or(0);
        let items: Vec<&Value> = match pe {
            Value::Sequence(xs) => xs.iter().collect(),
            Value::Mapping(_) => vec![pe],
            Value::Null => Vec::new(),
            other => {
                let t = type_name(other);
                r.problem(
                    at,
                    1,
                    format!("`PEMetadata` is {t}: expected a mapping or a list of mappings"),
                );
                Vec::new()
            }
        };
        let mut cursor = at;
        for item in items {
            let Value::Mapping(m) = item else {
                let t = type_name(item);
                r.problem(
                    cursor,
                    1,
                    format!("an item of `PEMetadata` is {t}: expected a mapping"),
                );
                continue;
            };
            for (k, v) in m {
                let Some(key) = k.as_str() else { continue };
                let origin = match key {
                    "Filename" => Origin::Filename,
                    "OriginalFileName" => Origin::OriginalFileName,
                    "Product" => Origin::Product,
                    "Company" => Origin::Company,
                    "Description" => Origin::PeText("PE description"),
                    "InternalName" => Origin::PeText("PE internal name"),
                    "Comments" => Origin::PeText("PE comments"),
                    _ => continue,
                };
                match v {
                    Value::String(s) if s.trim().is_empty() => {}
                    Value::Null => {}
                    _ => r.value(v, key, origin, &mut cursor, true),
                }
            }
        }
    }
    let mut cursor = 0;
    r.strings(
        details.and_then(|d| d.get("InstallationPaths")),
        "InstallationPaths",
        Origin::InstallationPath,
        &mut cursor,
    );
    if let Some(net) = doc.get("Artifacts").and_then(|a| a.get("Network")) {
        let mut cursor = r.loc.key("Network", 0).unwrap_or(0);
        match net {
            Value::Sequence(items) => {
                for item in items {
                    r.strings(item.get("Domains"), "Domains", Origin::Domain, &mut cursor);
                }
            }
            Value::Null => {}
            other => {
                let t = type_name(other);
                let c = cursor;
                r.problem(c, 1, format!("`Network` is {t}: expected a list"));
            }
        }
    }
    if let Some(cs) = doc.get("CodeSigning") {
        let mut cursor = r.loc.key("CodeSigning", 0).unwrap_or(0);
        if let Some(Value::Sequence(certs)) = cs.get("certificates") {
            for c in certs {
                if let Some(v) = c.get("signer_name") {
                    r.value(v, "signer_name", Origin::Signer, &mut cursor, true);
                }
            }
        }
        let mut cursor = r.loc.key("CodeSigning", 0).unwrap_or(0);
        r.strings(
            cs.get("signer_names"),
            "signer_names",
            Origin::Signer,
            &mut cursor,
        );
    }
    // URLs, located like the indicators: from their key on.
    let link = |url: String, cursor: &mut usize| {
        let (line, column) = r.loc.value(&url, *cursor).unwrap_or((*cursor, 1));
        *cursor = line;
        Link {
            url,
            line: line + 1,
            column,
        }
    };
    let mut cursor = r.loc.key("Website", 0).unwrap_or(0);
    let website = nonempty(details.and_then(|d| d.get("Website"))).map(|u| link(u, &mut cursor));
    let mut cursor = r.loc.key("References", 0).unwrap_or(0);
    let references = match doc.get("References") {
        Some(Value::Sequence(xs)) => xs
            .iter()
            .filter_map(as_text)
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .map(|u| link(u, &mut cursor))
            .collect(),
        _ => Vec::new(),
    };
    let description = nonempty(doc.get("Description"))
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    Ok(Entry {
        file: path.to_path_buf(),
        rel: rel.to_string(),
        name,
        description,
        author: nonempty(doc.get("Author")),
        created: nonempty(doc.get("Created")),
        last_modified: nonempty(doc.get("LastModified")),
        website,
        references,
        indicators: r.indicators,
        problems: r.problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rmmc-lolrmm-cat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn values_are_located_where_they_are_written() {
        let p = write(
            "x.yaml",
            "Name: X\nDetails:\n  PEMetadata:\n    - Filename: x.exe\n      Product: X\n  InstallationPaths:\n    - 'C:\\X\\*'\n    - x.exe\nArtifacts:\n  Network:\n    - Domains:\n        - '*.x.com'\n",
        );
        let e = read(&p, "yaml/x.yaml").unwrap();
        let got: Vec<(Origin, &str, usize, usize)> = e
            .indicators
            .iter()
            .map(|i| (i.origin, i.value.as_str(), i.line, i.column))
            .collect();
        assert_eq!(
            got,
            [
                (Origin::Filename, "x.exe", 4, 17),
                (Origin::Product, "X", 5, 16),
                (Origin::InstallationPath, "C:\\X\\*", 7, 8),
                (Origin::InstallationPath, "x.exe", 8, 7),
                (Origin::Domain, "*.x.com", 12, 12),
            ]
        );
    }

    #[test]
    fn no_name_and_bad_yaml_are_located_errors() {
        let p = write("noname.yaml", "Description: x\n");
        let e = read(&p, "yaml/noname.yaml").unwrap_err();
        assert_eq!(e.location().map(|l| (l.line, l.column)), Some((1, 1)));
        assert!(e.message().contains("no `Name`"), "{e}");
        let p = write("bad.yaml", "Name: X\nDetails: [\n");
        let e = read(&p, "yaml/bad.yaml").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Syntax);
        assert!(e.location().is_some(), "{e}");
    }

    #[test]
    fn wrong_types_are_problems_of_the_entry() {
        let p = write(
            "types.yaml",
            "Name: X\nArtifacts:\n  Network:\n    - Domains:\n        - 443\n",
        );
        let e = read(&p, "yaml/types.yaml").unwrap();
        assert_eq!(e.problems.len(), 1, "{:?}", e.problems);
        assert!(e.problems[0].message().contains("a number"));
    }
}
