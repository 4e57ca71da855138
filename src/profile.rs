//! Field-map profiles: which data a target's queries assume, and how canonical
//! fields are named there. Plain data read from `backends/<target>/profiles/*.yaml`
//! by [`crate::backends`] and used by [`crate::lower`]; each data source names the
//! data it searches, whose fields are listed in `backends/data/*.yaml`
//! ([`DataSchema`]).

use crate::error::{Error, ErrorKind, Result};
use crate::ir::DataSource;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// What some real data records: per data source (a table, an index, a data stream),
/// the fields it has. Kept as data in `backends/data/<name>.yaml`, with its source
/// named, so a profile can never map a rule onto a field the data lacks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSchema {
    /// What profiles call it: `data: <name>/<data source>`.
    pub name: String,
    /// The data's product name, as a platform's "data source" tag names it.
    pub title: String,
    /// Where the field lists come from (a vendor's schema reference, a package commit).
    pub source: String,
    /// The fields of each data source.
    pub data_sources: BTreeMap<String, DataSourceFields>,
}

/// The fields one data source records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSourceFields {
    /// Every field name a query may read there.
    pub fields: BTreeSet<String>,
}

/// How a profile's data holds one canonical field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum FieldMapping {
    /// The same information under the data's name for it: `process.name: FileName`.
    Field(String),
    /// A different field that the data does record, standing in for the canonical
    /// one; `meaning` says what changes (it becomes the rule's approximation).
    Substitute {
        /// The field the data records.
        field: String,
        /// What reading it instead changes in the rule's meaning.
        meaning: String,
    },
    /// The data does not record it; a rule that needs it is `unsupported` here.
    Unsupported {
        /// Why nothing the data records says the same.
        unsupported: String,
    },
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

/// A field-map profile of one target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The name `--profile` selects it by; the file is `profiles/<name>.yaml`.
    pub name: String,
    /// What data the profile describes, for `rmmc list profiles`.
    pub description: String,
    /// Fields the platform gives every event whatever the data (Splunk's `_time`).
    #[serde(default)]
    pub platform_fields: Vec<String>,
    /// The map of each data source the profile covers.
    pub sources: BTreeMap<DataSource, SourceMap>,
    /// Where the profile was read from, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
}

/// How one data source looks in a profile's data.
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
    /// Fill in each source's `recorded` fields and data title from the data schema it
    /// names, or fail naming the profile file and the data sources that exist.
    pub fn resolve_data(&mut self, data: &BTreeMap<String, DataSchema>) -> Result<()> {
        for (source, map) in &mut self.sources {
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
                        self.name,
                        map.data,
                        known.join(", ")
                    ),
                )
                .in_file(&self.path));
            };
            map.data_title = schema.title.clone();
            map.recorded = fields
                .fields
                .iter()
                .chain(&self.platform_fields)
                .cloned()
                .collect();
        }
        Ok(())
    }

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

    /// One setting of a data source's map, or an error naming the profile file.
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
