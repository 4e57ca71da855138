//! The target registry's types: what a target is ([`TargetSpec`], declared as `SPEC`
//! in its `lower/<target>.rs`) and the handle the rest of the crate passes around
//! ([`Target`]). The list of targets itself is the `targets!` line in `lower/mod.rs`.

use super::{Dialect, REGISTRY};
use crate::error::{Error, ErrorKind, Result};
use crate::profile::Profile;
use serde::{Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Everything rmmc knows about one target, in one place: the CLI's `--target`
/// values, the embedded backends, rendering, pack writing and the tests all read it.
pub struct TargetSpec {
    /// The name on the command line, of `backends/<name>/` and of `out/<name>/`.
    pub name: &'static str,
    /// What the target is, for `rmmc list targets`.
    pub description: &'static str,
    /// The lowering: operator table, boolean syntax and template context.
    pub(crate) dialect: &'static dyn Dialect,
    /// The files written per rule, in order; the first one's text is the query.
    pub rule_files: &'static [RuleFile],
    /// The files that gather all rules of the pack (besides `FIDELITY.md`, which
    /// every target gets).
    pub gathered: &'static [Gathered],
    /// The profile (`backends/<name>/profiles/<profile>.yaml`) used without `--profile`.
    pub default_profile: &'static str,
}

/// One file written per rule: `out/<target>/<rule stem>.<extension>`, rendered from
/// `backends/<target>/<template>`. A template that renders to blank text writes no
/// file for that rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleFile {
    /// The template's file name under `backends/<target>/`.
    pub template: &'static str,
    /// The extension after the rule's stem (may contain dots: `arm.json`).
    pub extension: &'static str,
}

/// One file that gathers all rules of a pack, at `out/<target>/<path>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gathered {
    /// Every rule's per-rule file with `extension`, trimmed and ended by a newline,
    /// in rule-stem order, joined by `separator`.
    Concat {
        /// Where the file goes, relative to `out/<target>/`.
        path: &'static str,
        /// Which per-rule file ([`RuleFile::extension`]) is gathered.
        extension: &'static str,
        /// What goes between two rules' texts.
        separator: &'static str,
    },
    /// A document around every rule's part, streamed like `Concat`: the template
    /// `backends/<target>/<template>` is rendered once with `body` standing for the
    /// parts; each rule's per-rule file with `extension` becomes its part by `piece`,
    /// and the parts are joined by `separator` (e.g. one ARM template holding every
    /// rule's resources). Memory does not grow with the rule count.
    Wrapped {
        /// Where the file goes, relative to `out/<target>/`.
        path: &'static str,
        /// Which per-rule file ([`RuleFile::extension`]) each part comes from.
        extension: &'static str,
        /// The template's file name under `backends/<target>/`.
        template: &'static str,
        /// What goes between two rules' parts.
        separator: &'static str,
        /// How a rule's file becomes its part.
        piece: Piece,
    },
    /// `backends/<target>/<template>` rendered once per pack from the pack's context
    /// (the profile's, see `Dialect::pack_context`, and `rmmc_version`); no rule
    /// contributes (e.g. a Splunk app's `app.conf`).
    Fixed {
        /// Where the file goes, relative to `out/<target>/`.
        path: &'static str,
        /// The template's file name under `backends/<target>/`.
        template: &'static str,
    },
}

/// How a rule's file becomes its part of a [`Gathered::Wrapped`] document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// The `resources` array elements of an ARM template, indented by four spaces,
    /// ASCII-escaped.
    ArmResources,
    /// `backends/<target>/<template>` rendered with everything the rule's own
    /// templates read (e.g. its macro stanza in a Splunk app's `macros.conf`), when
    /// the rule is rendered; only a rule that has the per-rule file gets a part.
    Template(&'static str),
}

impl Gathered {
    /// Where the file goes, relative to `out/<target>/`.
    pub fn path(&self) -> &'static str {
        match self {
            Gathered::Concat { path, .. }
            | Gathered::Wrapped { path, .. }
            | Gathered::Fixed { path, .. } => path,
        }
    }
}

/// A target in the registry. Compare, order (registry order), print and parse it;
/// everything else about it is in its [`TargetSpec`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target(pub(super) &'static str);

impl Target {
    /// The target's entry in the registry.
    pub fn spec(self) -> &'static TargetSpec {
        REGISTRY
            .iter()
            .copied()
            .find(|s| s.name == self.0)
            .expect("a Target is only made from a registry entry")
    }

    /// Every registered target, in registry order (the order of builds and listings).
    pub fn all() -> impl Iterator<Item = Target> {
        REGISTRY.iter().map(|s| Target(s.name))
    }

    /// The target's name: `kql`, `spl`, ...
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// What the target is, for `rmmc list targets`.
    pub fn describe(self) -> &'static str {
        self.spec().description
    }

    pub(crate) fn dialect(self) -> &'static dyn Dialect {
        self.spec().dialect
    }

    /// What a pack's files that no single rule owns read ([`Gathered::Fixed`], the
    /// text around a [`Gathered::Wrapped`] document's parts): `target`, `profile`
    /// (its name), `rmmc_version`, and what the target takes from the profile (a
    /// Splunk app's data-source macros). Never anything of a rule, so it is the same
    /// for one rule as for a million.
    pub fn pack_context(self, profile: &Profile) -> Result<serde_json::Value> {
        let mut context = self.dialect().pack_context(profile)?;
        if !context.is_object() {
            context = serde_json::json!({});
        }
        context["target"] = serde_json::json!(self.0);
        context["profile"] = serde_json::json!(profile.name);
        context["rmmc_version"] = serde_json::json!(env!("CARGO_PKG_VERSION"));
        Ok(context)
    }

    /// Every template the target renders, relative to `backends/`, e.g. `kql/query.tera`.
    pub fn templates(self) -> Vec<String> {
        let spec = self.spec();
        let mut names: Vec<String> = spec
            .rule_files
            .iter()
            .map(|f| f.template)
            .chain(spec.gathered.iter().flat_map(|g| match g {
                Gathered::Fixed { template, .. } => vec![*template],
                Gathered::Wrapped {
                    template,
                    piece: Piece::Template(part),
                    ..
                } => vec![*template, *part],
                Gathered::Wrapped { template, .. } => vec![*template],
                Gathered::Concat { .. } => Vec::new(),
            }))
            .map(|t| format!("{}/{t}", self.0))
            .collect();
        names.dedup();
        names
    }

    fn position(self) -> usize {
        REGISTRY
            .iter()
            .position(|s| s.name == self.0)
            .expect("registered")
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> Ordering {
        self.position().cmp(&other.position())
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.0)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Target> {
        Target::all().find(|t| t.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Target::all().map(Target::as_str).collect();
            Error::new(
                ErrorKind::UnknownTarget,
                format!(
                    "unknown target `{s}`: expected one of {}, all",
                    names.join(", ")
                ),
            )
        })
    }
}
