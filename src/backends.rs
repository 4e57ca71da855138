//! Backend data: the tera templates and field-map profiles of each target.
//!
//! They live in `backends/<target>/` and are embedded in the binary at build time, so
//! an installed rmmc works anywhere; `--backends DIR` reads a copy from disk instead.

use crate::error::{Error, ErrorKind, Result};
use crate::ir::DataSource;
use crate::lower::Target;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every backend file, by path relative to `backends/`.
const EMBEDDED: &[(&str, &str)] = &[
    ("kql/query.tera", include_str!("../backends/kql/query.tera")),
    ("kql/rule.tera", include_str!("../backends/kql/rule.tera")),
    (
        "kql/profiles/defender.yaml",
        include_str!("../backends/kql/profiles/defender.yaml"),
    ),
    ("spl/query.tera", include_str!("../backends/spl/query.tera")),
    ("spl/rule.tera", include_str!("../backends/spl/rule.tera")),
    (
        "spl/profiles/defender.yaml",
        include_str!("../backends/spl/profiles/defender.yaml"),
    ),
    ("eql/query.tera", include_str!("../backends/eql/query.tera")),
    ("eql/rule.tera", include_str!("../backends/eql/rule.tera")),
    (
        "eql/profiles/ecs.yaml",
        include_str!("../backends/eql/profiles/ecs.yaml"),
    ),
    (
        "eql/profiles/defender.yaml",
        include_str!("../backends/eql/profiles/defender.yaml"),
    ),
    (
        "data/defender-xdr.yaml",
        include_str!("../backends/data/defender-xdr.yaml"),
    ),
    (
        "data/elastic-defend.yaml",
        include_str!("../backends/data/elastic-defend.yaml"),
    ),
    (
        "sigma/rule.tera",
        include_str!("../backends/sigma/rule.tera"),
    ),
    (
        "sigma/profiles/defender.yaml",
        include_str!("../backends/sigma/profiles/defender.yaml"),
    ),
];

/// What some real data records: per data source (a table, an index, a data stream),
/// the fields it has. Kept as data in `backends/data/<name>.yaml`, with its source
/// named, so a profile can never map a rule onto a field the data lacks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSchema {
    pub name: String,
    /// The data's product name, as a platform's "data source" tag names it.
    pub title: String,
    /// Where the field lists come from (a vendor's schema reference, a package commit).
    pub source: String,
    pub data_sources: BTreeMap<String, DataSourceFields>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSourceFields {
    pub fields: BTreeSet<String>,
}

/// A field-map profile: which data a target's queries assume, and how canonical
/// fields are named there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub default: bool,
    pub description: String,
    /// Fields the platform gives every event whatever the data (Splunk's `_time`).
    #[serde(default)]
    pub platform_fields: Vec<String>,
    pub sources: BTreeMap<DataSource, SourceMap>,
    /// Where the profile was read from, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceMap {
    /// The data this source is searched in: `<data schema>/<data source>`, e.g.
    /// `elastic-defend/network` (a file in `backends/data/`).
    pub data: String,
    /// The title of that data's schema (`Elastic Defend`), filled in at load.
    #[serde(skip)]
    pub data_title: String,
    /// Target-specific settings: `table` (KQL), `search` (SPL), `index` and `category`
    /// (EQL), `logsource.*` (Sigma).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Canonical field name → how the data holds it.
    pub fields: BTreeMap<String, FieldMapping>,
    /// The fields the data source records (its schema's list plus the platform's),
    /// filled in when the backends are loaded.
    #[serde(skip)]
    pub recorded: BTreeSet<String>,
}

/// How a profile's data holds one canonical field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum FieldMapping {
    /// The same information under the data's name for it: `process.name: FileName`.
    Field(String),
    /// A different field that the data does record, standing in for the canonical
    /// one; `meaning` says what changes (it becomes the rule's approximation).
    Substitute { field: String, meaning: String },
    /// The data does not record it; a rule that needs it is `unsupported` here.
    Unsupported { unsupported: String },
}

impl FieldMapping {
    /// The data's field, unless the data does not record it.
    pub fn name(&self) -> Option<&str> {
        match self {
            FieldMapping::Field(f) | FieldMapping::Substitute { field: f, .. } => Some(f),
            FieldMapping::Unsupported { .. } => None,
        }
    }
}

impl SourceMap {
    /// Canonical name → the data's field name, for the fields the data records.
    pub fn names(&self) -> BTreeMap<String, String> {
        self.fields
            .iter()
            .filter_map(|(k, m)| m.name().map(|n| (k.clone(), n.to_string())))
            .collect()
    }
}

impl Profile {
    /// The map of one data source, or an error naming the profile file.
    pub fn source(&self, source: DataSource) -> Result<&SourceMap> {
        self.sources.get(&source).ok_or_else(|| {
            Error::new(
                ErrorKind::UnmappedField,
                format!(
                    "profile `{}` has no map for data source `{source}`",
                    self.name
                ),
            )
            .in_file(&self.path)
        })
    }

    pub fn setting(&self, source: DataSource, key: &str) -> Result<&str> {
        let map = self.source(source)?;
        map.settings.get(key).map(String::as_str).ok_or_else(|| {
            Error::new(
                ErrorKind::Schema,
                format!(
                    "profile `{}`, data source `{source}`: missing setting `{key}`",
                    self.name
                ),
            )
            .in_file(&self.path)
        })
    }
}

/// Fill in each source's `recorded` fields from the data schema it names, or fail
/// naming the profile file.
fn resolve_data(profile: &mut Profile, data: &BTreeMap<String, DataSchema>) -> Result<()> {
    for (source, map) in &mut profile.sources {
        let found = map.data.split_once('/').and_then(|(schema, ds)| {
            let schema = data.get(schema)?;
            Some((schema, schema.data_sources.get(ds)?))
        });
        let Some((schema, fields)) = found else {
            let known: Vec<String> = data
                .values()
                .flat_map(|s| s.data_sources.keys().map(|d| format!("{}/{d}", s.name)))
                .collect();
            return Err(Error::new(
                ErrorKind::Schema,
                format!(
                    "profile `{}`, data source `{source}`: `data: {}` names no data source in backends/data/; expected one of {}",
                    profile.name,
                    map.data,
                    known.join(", ")
                ),
            )
            .in_file(&profile.path));
        };
        map.data_title = schema.title.clone();
        map.recorded = fields
            .fields
            .iter()
            .chain(&profile.platform_fields)
            .cloned()
            .collect();
    }
    Ok(())
}

/// Templates and profiles of all targets.
#[derive(Debug, Clone)]
pub struct Backends {
    files: BTreeMap<String, String>,
    root: PathBuf,
    profiles: BTreeMap<Target, Vec<Profile>>,
    data: BTreeMap<String, DataSchema>,
}

impl Backends {
    /// The backends compiled into the binary.
    pub fn embedded() -> Result<Backends> {
        let files = EMBEDDED
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect();
        Backends::from_files(files, PathBuf::from("backends"))
    }

    /// Backends read from a directory laid out like `backends/`. Files it lacks fall
    /// back to the embedded ones, so an override can change one template only.
    pub fn from_dir(dir: &Path) -> Result<Backends> {
        if !dir.is_dir() {
            return Err(Error::new(
                ErrorKind::Io,
                format!("backends directory `{}` does not exist", dir.display()),
            )
            .in_file(dir));
        }
        let mut files: BTreeMap<String, String> = EMBEDDED
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect();
        let folders = Target::ALL.iter().map(|t| t.as_str()).chain(["data"]);
        for folder in folders {
            let pattern = dir.join(folder).join("**").join("*");
            let pattern = pattern.to_string_lossy().to_string();
            for entry in
                glob::glob(&pattern).map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?
            {
                let path = entry.map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
                if !path.is_file() {
                    continue;
                }
                let rel = path
                    .strip_prefix(dir)
                    .expect("glob results are under dir")
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                files.insert(rel, text);
            }
        }
        Backends::from_files(files, dir.to_path_buf())
    }

    fn from_files(files: BTreeMap<String, String>, root: PathBuf) -> Result<Backends> {
        let mut data: BTreeMap<String, DataSchema> = BTreeMap::new();
        for (rel, text) in &files {
            if rel.starts_with("data/") && rel.ends_with(".yaml") {
                let path = root.join(rel);
                let schema: DataSchema = serde_yaml::from_str(text)
                    .map_err(|e| crate::parse::rule_yaml::yaml_error(&path, &e))?;
                data.insert(schema.name.clone(), schema);
            }
        }
        let mut profiles: BTreeMap<Target, Vec<Profile>> = BTreeMap::new();
        for (rel, text) in &files {
            let Some((target, rest)) = rel.split_once('/') else {
                continue;
            };
            if !rest.starts_with("profiles/") || !rest.ends_with(".yaml") {
                continue;
            }
            let Ok(target) = target.parse::<Target>() else {
                continue;
            };
            let path = root.join(rel);
            let mut profile: Profile = serde_yaml::from_str(text)
                .map_err(|e| crate::parse::rule_yaml::yaml_error(&path, &e))?;
            profile.path = path;
            resolve_data(&mut profile, &data)?;
            profiles.entry(target).or_default().push(profile);
        }
        for target in Target::ALL {
            let list = profiles.get(&target).map(Vec::as_slice).unwrap_or(&[]);
            let defaults = list.iter().filter(|p| p.default).count();
            if defaults != 1 {
                return Err(Error::new(
                    ErrorKind::Schema,
                    format!(
                        "target `{target}` needs exactly one profile with `default: true` in {}/{target}/profiles, found {defaults}",
                        root.display()
                    ),
                ));
            }
        }
        Ok(Backends {
            files,
            root,
            profiles,
            data,
        })
    }

    /// The data schemas (`backends/data/*.yaml`), by name.
    pub fn data_schemas(&self) -> &BTreeMap<String, DataSchema> {
        &self.data
    }

    /// The text of one template, e.g. `kql/query.tera`.
    pub fn template(&self, rel: &str) -> Result<&str> {
        self.files.get(rel).map(String::as_str).ok_or_else(|| {
            Error::new(ErrorKind::Template, format!("missing template `{rel}`"))
                .in_file(self.root.join(rel))
        })
    }

    /// The profiles of a target, default first, then by name.
    pub fn profiles(&self, target: Target) -> Vec<&Profile> {
        let mut list: Vec<&Profile> = self.profiles.get(&target).into_iter().flatten().collect();
        list.sort_by_key(|p| (!p.default, p.name.clone()));
        list
    }

    /// The named profile, or the default one; an unknown name lists the valid ones.
    pub fn profile(&self, target: Target, name: Option<&str>) -> Result<&Profile> {
        let list = self.profiles(target);
        match name {
            None => Ok(list[0]),
            Some(n) => list.iter().copied().find(|p| p.name == n).ok_or_else(|| {
                let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
                Error::new(
                    ErrorKind::UnknownProfile,
                    format!(
                        "unknown profile `{n}` for target `{target}`: expected one of {}",
                        names.join(", ")
                    ),
                )
            }),
        }
    }
}
