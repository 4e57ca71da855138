//! The quality gate and name decisions, read from `gate.yaml` (kept as data, with a
//! reason per entry, so that a reviewer reads and changes a list, not code).

use crate::error::{Error, ErrorKind, Result};
use serde::Deserialize;

/// The embedded gate file.
pub const GATE_YAML: &str = include_str!("gate.yaml");

/// A domain zone several tools or services share: not evidence of one tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedDomain {
    /// The zone, `example.com`.
    pub zone: String,
    /// Whether every host under the zone is gated, not only the zone itself.
    #[serde(default)]
    pub all_hosts: bool,
    /// Why it is gated.
    pub reason: String,
}

/// A file or product name too generic to point at one tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericName {
    /// The name.
    pub name: String,
    /// Why it is gated.
    pub reason: String,
}

/// A code-signing subject shared by several products.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedSigner {
    /// The signer.
    pub signer: String,
    /// Catalogue tool names the entry applies to; empty: every tool.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Why it is gated.
    pub reason: String,
}

/// A decision about two names: the same tool (`aliases`) or different ones (`distinct`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameDecision {
    /// The name in the LOLRMM catalogue.
    pub lolrmm: String,
    /// The tool name in the rule library.
    pub tool: String,
    /// Why they are (or are not) the same tool.
    pub reason: String,
}

/// The whole quality gate, as `gate.yaml` holds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Domains no tool's rule may use.
    pub shared_domains: Vec<SharedDomain>,
    /// Names no tool's rule may use.
    pub generic_names: Vec<GenericName>,
    /// Signers no tool's rule may use.
    pub shared_signers: Vec<SharedSigner>,
    /// Catalogue names that are a library tool under another name.
    pub aliases: Vec<NameDecision>,
    /// Names that look alike but are different tools.
    pub distinct: Vec<NameDecision>,
}

/// Lowercase letters and digits only, parenthesised parts dropped: `Kaseya (VSA)`
/// and `kaseya` are the same name, `Remote Utilities` and `RemoteUtilities` too.
pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in name.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 && c.is_alphanumeric() => out.extend(c.to_lowercase()),
            _ => {}
        }
    }
    if out.is_empty() {
        // A name that is all parentheses still needs a key.
        name.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    } else {
        out
    }
}

impl Gate {
    /// The gate compiled into rmmc.
    pub fn embedded() -> Result<Gate> {
        Gate::parse(GATE_YAML)
    }

    /// Read a gate from YAML text.
    pub fn parse(text: &str) -> Result<Gate> {
        serde_yaml::from_str(text).map_err(|e| {
            let mut err = Error::new(ErrorKind::Schema, format!("quality gate: {e}"))
                .in_file("src/import/lolrmm/gate.yaml");
            if let Some(l) = e.location() {
                err = err.at(l.line(), l.column());
            }
            err
        })
    }

    /// Why a host pattern (without port) is shared infrastructure, if it is.
    pub fn domain(&self, host: &str) -> Option<&str> {
        let host = host.to_ascii_lowercase();
        for d in &self.shared_domains {
            let zone = d.zone.to_ascii_lowercase();
            let under = |h: &str| h == zone || h.ends_with(&format!(".{zone}"));
            let fixed_end = host.rsplit('*').next().unwrap_or(&host);
            let fixed_end = fixed_end.trim_start_matches('.');
            let wild_into_zone = host.contains('*') && under(fixed_end);
            if host == zone || wild_into_zone || (d.all_hosts && under(&host)) {
                return Some(&d.reason);
            }
        }
        None
    }

    /// Why a file name (or the last part of a path) is generic, if it is.
    pub fn name(&self, name: &str) -> Option<&str> {
        self.generic_names
            .iter()
            .find(|g| g.name.eq_ignore_ascii_case(name))
            .map(|g| g.reason.as_str())
    }

    /// Why a signer is not the tool's own, if it is not.
    pub fn signer(&self, signer: &str, tool: &str) -> Option<&str> {
        self.shared_signers
            .iter()
            .find(|s| {
                s.signer.eq_ignore_ascii_case(signer)
                    && (s.tools.is_empty() || s.tools.iter().any(|t| t == tool))
            })
            .map(|s| s.reason.as_str())
    }

    /// The tool a catalogue name is an alias of.
    pub fn alias(&self, name: &str) -> Option<&NameDecision> {
        self.aliases.iter().find(|a| a.lolrmm == name)
    }

    /// Is the catalogue name declared distinct from `tool`?
    pub fn distinct(&self, name: &str, tool: &str) -> Option<&NameDecision> {
        self.distinct
            .iter()
            .find(|d| d.lolrmm == name && normalise(&d.tool) == normalise(tool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_gate_reads_and_every_entry_has_a_reason() {
        let g = Gate::embedded().unwrap();
        assert!(g.shared_domains.iter().all(|d| !d.reason.is_empty()));
        assert!(g.generic_names.iter().all(|d| !d.reason.is_empty()));
        assert!(g.shared_signers.iter().all(|d| !d.reason.is_empty()));
    }

    #[test]
    fn wildcards_into_a_shared_zone_are_held_back_named_hosts_are_not() {
        let g = Gate::embedded().unwrap();
        assert!(g.domain("*.amazonaws.com").is_some());
        assert!(g.domain("amazonaws.com").is_some());
        assert!(g.domain("*.s3.amazonaws.com").is_some());
        assert!(
            g.domain("pdqinstallers.*.r2.cloudflarestorage.com")
                .is_some()
        );
        assert!(g.domain("a1-backend-packages.s3.amazonaws.com").is_none());
        assert!(g.domain("raw.githubusercontent.com").is_some());
        assert!(g.domain("*.anydesk.com").is_none());
        assert!(g.domain("notamazonaws.com").is_none());
    }

    #[test]
    fn names_and_signers() {
        let g = Gate::embedded().unwrap();
        assert!(g.name("CLIENT32.EXE").is_some());
        assert!(g.name("AnyDesk.exe").is_none());
        assert!(g.signer("Microsoft Corporation", "RDCMan").is_some());
        assert!(g.signer("Simon Tatham", "NetSupport Manager").is_some());
        assert!(g.signer("Simon Tatham", "PuTTY").is_none());
    }

    #[test]
    fn normalised_names() {
        assert_eq!(normalise("Kaseya (VSA)"), "kaseya");
        assert_eq!(normalise("Remote Utilities"), normalise("RemoteUtilities"));
        assert_eq!(normalise("DW Service"), "dwservice");
    }
}
