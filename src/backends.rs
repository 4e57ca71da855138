//! Backend data: the tera templates and field-map profiles of each target.
//!
//! They live in `backends/<target>/` and are embedded in the binary at build time, so
//! an installed rmmc works anywhere; `--backends DIR` reads a copy from disk instead.

use crate::error::{Error, ErrorKind, Result, from_yaml};
use crate::lower::Target;
pub use crate::profile::{DataSchema, DataSourceFields, FieldMapping, Profile, SourceMap};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/embedded_backends.rs"));

/// The folder of `backends/` that lists the fields each kind of data records
/// ([`DataSchema`]), shared by every target's profiles.
pub const DATA_FOLDER: &str = "data";

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
        let folders = Target::all().map(|t| t.as_str()).chain([DATA_FOLDER]);
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
            if rel
                .strip_prefix(DATA_FOLDER)
                .is_some_and(|r| r.starts_with('/'))
                && rel.ends_with(".yaml")
            {
                let path = root.join(rel);
                let schema: DataSchema = from_yaml(&path, text)?;
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
            let mut profile: Profile = from_yaml(&path, text)?;
            profile.path = path;
            profile.resolve_data(&data)?;
            profiles.entry(target).or_default().push(profile);
        }
        for target in Target::all() {
            let default = target.spec().default_profile;
            let found = profiles
                .get(&target)
                .into_iter()
                .flatten()
                .any(|p| p.name == default);
            if !found {
                return Err(Error::new(
                    ErrorKind::Schema,
                    format!(
                        "target `{target}` needs its default profile `{default}` (the registry's default_profile): no {}/{target}/profiles/{default}.yaml",
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

    /// The field lists of the data profiles search (`backends/data/*.yaml`), by name.
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
        let default = target.spec().default_profile;
        list.sort_by_key(|p| (p.name != default, p.name.clone()));
        list
    }

    /// The profile a `--profile` choice names for `target`: the choice is a comma list
    /// of `TARGET=NAME` (for that target) and at most one bare `NAME` (for the other
    /// targets); a target the choice does not name gets its default.
    pub fn profile_choice(&self, target: Target, choice: Option<&str>) -> Result<&Profile> {
        let parts = choice.into_iter().flat_map(|c| c.split(','));
        let mut targeted = None;
        let mut bare = None;
        for part in parts {
            match part.split_once('=') {
                Some((t, name)) if t == target.as_str() => targeted = Some(name),
                Some(_) => {}
                None => bare = Some(part),
            }
        }
        self.profile(target, targeted.or(bare))
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
