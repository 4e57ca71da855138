//! Finding two rules that would clash in one rule set: the same id, the same output
//! stem, or names that become the same savedsearches.conf stanza or Sigma rule name.
//!
//! A streaming build keeps this and nothing else per rule, so it is kept small: each
//! key is a 64-bit fingerprint of its text with the index of the rule that claimed it
//! (12 bytes a key, five keys a rule, in a table sized for the rule set up front, so
//! that it never holds an old and a new table at once while it grows), not the text.
//! A fingerprint seen before is confirmed against the full text, re-derived from the
//! earlier rule (its stem, or its file read and parsed again): only a real clash is an
//! error, and a key whose fingerprint collides with another's is then kept in full, so
//! a later clash with it is still found. Fingerprint collisions are rare (about one in 2^64 per pair), so
//! re-reading costs nothing in practice.

use super::{RuleSource, read_rule};
use crate::backends::Backends;
use crate::error::{Error, ErrorKind, Result};
use crate::parse::Parsed;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{DefaultHasher, Hash, Hasher};

/// What a key is: the stem, the id, or one of [`crate::lower::rule_set_names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Stem,
    Id,
    /// What the name names, and what to change to part two rules.
    Name(&'static str, &'static str),
}

/// The keys of one rule, in the order clashes are reported (stem, id, names).
fn keys(source: &RuleSource, parsed: &Parsed) -> Vec<(Kind, String)> {
    let mut keys = vec![
        (Kind::Stem, source.stem.to_string_lossy().into_owned()),
        (Kind::Id, parsed.rule.meta.id.clone()),
    ];
    keys.extend(
        crate::lower::rule_set_names(&parsed.rule)
            .into_iter()
            .map(|n| (Kind::Name(n.what, n.remedy), n.name)),
    );
    keys
}

fn halves(fp: u64) -> [u32; 2] {
    [(fp >> 32) as u32, fp as u32]
}

/// A 64-bit fingerprint of a key (SipHash with fixed keys: the same in every run).
fn fingerprint(kind: Kind, text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (kind, text).hash(&mut h);
    h.finish()
}

/// The keys claimed so far by the rules of one rule set.
pub(super) struct ConflictKeys {
    /// Fingerprint (as two halves: a 12-byte entry where a `u64` key pads it to 16)
    /// -> index of the rule that claimed it.
    seen: HashMap<[u32; 2], u32>,
    /// Keys whose fingerprint collided with another key's, in full.
    collided: HashMap<(Kind, String), u32>,
    /// The fingerprint function (a constant one in tests, to force collisions).
    fingerprint: fn(Kind, &str) -> u64,
}

impl Default for ConflictKeys {
    fn default() -> ConflictKeys {
        ConflictKeys {
            seen: HashMap::new(),
            collided: HashMap::new(),
            fingerprint,
        }
    }
}

impl ConflictKeys {
    /// Room for the keys of `rules` rules.
    pub(super) fn for_rules(rules: usize) -> ConflictKeys {
        let per_rule = 2 + crate::lower::RULE_SET_NAMES;
        ConflictKeys {
            seen: HashMap::with_capacity(rules.saturating_mul(per_rule)),
            ..ConflictKeys::default()
        }
    }

    /// Claim the keys of `rules[index]` (parsed as `parsed`), or the error naming the
    /// rule that claimed one of them first. `rules` are the rules claimed so far (and
    /// more): an earlier rule is re-read through `backends` to confirm a clash.
    pub(super) fn claim(
        &mut self,
        rules: &[&RuleSource],
        index: usize,
        parsed: &Parsed,
        backends: &Backends,
    ) -> Result<()> {
        let source = rules[index];
        let keys = keys(source, parsed);
        let mut fingerprints = Vec::with_capacity(keys.len());
        for (kind, text) in &keys {
            let fp = halves((self.fingerprint)(*kind, text));
            let first = match self.seen.get(&fp) {
                Some(&first) if self.same_key(rules, first, *kind, text, backends) => Some(first),
                Some(_) => self.collided.get(&(*kind, text.clone())).copied(),
                None => None,
            };
            if let Some(first) = first {
                return Err(clash(rules[first as usize], source, *kind, text));
            }
            fingerprints.push(fp);
        }
        let index = u32::try_from(index).expect("fewer than 2^32 rules");
        for (fp, key) in fingerprints.into_iter().zip(keys) {
            match self.seen.entry(fp) {
                Entry::Vacant(v) => {
                    v.insert(index);
                }
                Entry::Occupied(_) => {
                    self.collided.insert(key, index);
                }
            }
        }
        Ok(())
    }

    /// Does rule `first` have the key `(kind, text)`? Its stem is at hand; its id and
    /// names come from reading it again (a rule that cannot be read again is taken to
    /// have it: the clash is then reported rather than missed).
    fn same_key(
        &self,
        rules: &[&RuleSource],
        first: u32,
        kind: Kind,
        text: &str,
        backends: &Backends,
    ) -> bool {
        let earlier = rules[first as usize];
        match kind {
            Kind::Stem => earlier.stem.to_string_lossy() == text,
            Kind::Id | Kind::Name(..) => match read_rule(earlier, backends) {
                Ok(parsed) => keys(earlier, &parsed)
                    .iter()
                    .any(|(k, t)| *k == kind && t == text),
                Err(_) => true,
            },
        }
    }
}

/// The error for `source`, whose key `(kind, text)` `first` claimed already.
fn clash(first: &RuleSource, source: &RuleSource, kind: Kind, text: &str) -> Error {
    let message = match kind {
        Kind::Stem => format!(
            "{} and {} both write the pack files `{text}.*`: rename one of them",
            first.path.display(),
            source.path.display(),
        ),
        Kind::Id => format!("rule id {text} is also used by {}", first.path.display()),
        Kind::Name(what, remedy) => format!(
            "{} and {} both become {what} `{text}`: {remedy}",
            first.path.display(),
            source.path.display(),
        ),
    };
    Error::new(ErrorKind::Conflict, message).in_file(&source.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// A rule file under a fresh folder, with its source.
    fn rule(dir: &Path, file: &str, id: &str, name: &str) -> RuleSource {
        let text = std::fs::read_to_string("rules/netsupport/filesig.yaml")
            .unwrap()
            .lines()
            .map(|l| {
                if l.starts_with("id:") {
                    format!("id: {id}")
                } else if l.starts_with("name:") {
                    format!("name: {name:?}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.join(file);
        std::fs::write(&path, text + "\n").unwrap();
        RuleSource {
            stem: PathBuf::from("netsupport").join(file).with_extension(""),
            name: PathBuf::from("rules/netsupport").join(file),
            path,
        }
    }

    fn folder(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rmmc-conflicts-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Claims every rule in turn; the messages of the rules that clash.
    fn claim_all(keys: &mut ConflictKeys, sources: &[RuleSource]) -> Vec<String> {
        let backends = Backends::embedded().unwrap();
        let rules: Vec<&RuleSource> = sources.iter().collect();
        let mut errors = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            let parsed = read_rule(s, &backends).unwrap();
            if let Err(e) = keys.claim(&rules, i, &parsed, &backends) {
                errors.push(e.to_string());
            }
        }
        errors
    }

    #[test]
    fn the_table_is_sized_for_every_key_of_every_rule() {
        let dir = folder("sized");
        let source = rule(&dir, "a.yaml", A, "A rule");
        let parsed = read_rule(&source, &Backends::embedded().unwrap()).unwrap();
        assert_eq!(
            keys(&source, &parsed).len(),
            2 + crate::lower::RULE_SET_NAMES
        );
        let table = ConflictKeys::for_rules(1000);
        assert!(table.seen.capacity() >= 1000 * keys(&source, &parsed).len());
        let _ = std::fs::remove_dir_all(&dir);
    }

    const A: &str = "11111111-1111-4111-8111-111111111111";
    const B: &str = "22222222-2222-4222-8222-222222222222";
    const C: &str = "33333333-3333-4333-8333-333333333333";

    fn clashing_set(dir: &Path) -> Vec<RuleSource> {
        let mut same_stem = rule(dir, "d.yaml", "44444444-4444-4444-8444-444444444444", "D");
        same_stem.stem = PathBuf::from("netsupport/a");
        vec![
            rule(dir, "a.yaml", A, "First"),
            rule(dir, "b.yaml", B, "Second"),
            // The id of a.yaml.
            rule(dir, "c.yaml", A, "Third"),
            // The stanza of b.yaml (`[`, `]` are dropped from stanza names).
            rule(dir, "e.yaml", C, "[Second]"),
            same_stem,
        ]
    }

    #[test]
    fn every_kind_of_clash_names_both_rules() {
        let dir = folder("kinds");
        let errors = claim_all(&mut ConflictKeys::default(), &clashing_set(&dir));
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].contains(&format!("rule id {A} is also used by")));
        assert!(errors[0].contains("a.yaml"), "{}", errors[0]);
        assert!(
            errors[1].contains("savedsearches.conf stanza `Second`")
                && errors[1].contains("b.yaml")
                && errors[1].contains("e.yaml"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].contains("both write the pack files `netsupport/a.*`"),
            "{}",
            errors[2]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fingerprint_collision_is_not_a_clash_and_hides_none() {
        let dir = folder("collide");
        // Every key has the same fingerprint: only the full-text confirmation tells
        // keys apart.
        let mut colliding = ConflictKeys {
            fingerprint: |_, _| 7,
            ..ConflictKeys::default()
        };
        let distinct: Vec<RuleSource> = clashing_set(&dir).into_iter().take(2).collect();
        assert_eq!(claim_all(&mut colliding, &distinct), Vec::<String>::new());
        let mut colliding = ConflictKeys {
            fingerprint: |_, _| 7,
            ..ConflictKeys::default()
        };
        let with_default = claim_all(&mut ConflictKeys::default(), &clashing_set(&dir));
        assert_eq!(claim_all(&mut colliding, &clashing_set(&dir)), with_default);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
