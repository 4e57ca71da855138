//! Field-map profiles: which data a target's queries assume, and how canonical
//! fields are named there. Plain data read from `backends/<target>/profiles/*.yaml`
//! by [`crate::backends`] and used by [`crate::lower`].

use crate::error::{Error, ErrorKind, Result};
use crate::ir::DataSource;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A field-map profile of one target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The name `--profile` selects it by; the file is `profiles/<name>.yaml`.
    pub name: String,
    /// What data the profile describes, for `rmmc list profiles`.
    pub description: String,
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
    /// Target-specific settings: `table` (KQL), `search` (SPL), `index` and `category`
    /// (EQL), `logsource.*` (Sigma).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Canonical field name → the target's field name.
    pub fields: BTreeMap<String, String>,
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
