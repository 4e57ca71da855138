//! MITRE ATT&CK as data: the tactics (under Microsoft Sentinel's names) and the
//! techniques a rule may name, each with the tactics ATT&CK lists it under. The table
//! is `src/attack/attack.yaml`, embedded in the binary; every target reads tactic ids,
//! display names and technique names from here, and the parser checks each rule's
//! tactic/technique pairs against it.

use serde::Deserialize;
use std::sync::OnceLock;

/// One ATT&CK tactic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tactic {
    /// The name Sentinel's tactic enum uses, e.g. `CommandAndControl`.
    pub name: String,
    /// The ATT&CK id, e.g. `TA0011`.
    pub id: String,
    /// The ATT&CK display name, e.g. `Command and Control`.
    pub display: String,
}

/// One ATT&CK technique or sub-technique.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Technique {
    /// e.g. `T1219` or `T1219.002`.
    pub id: String,
    /// e.g. `Remote Access Tools`.
    pub name: String,
    /// The tactics (Sentinel names) ATT&CK lists the technique under.
    pub tactics: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    tactics: Vec<Tactic>,
    techniques: Vec<Technique>,
}

/// Where the table lives, for messages that tell a user how to extend it.
pub const TABLE_FILE: &str = "src/attack/attack.yaml";

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_yaml::from_str(include_str!("attack/attack.yaml"))
            .expect("the embedded ATT&CK table is valid (tested)")
    })
}

/// Every tactic, in ATT&CK's kill-chain order.
pub fn tactics() -> &'static [Tactic] {
    &table().tactics
}

/// Every technique rmmc knows.
pub fn techniques() -> &'static [Technique] {
    &table().techniques
}

/// The tactic with this Sentinel name.
pub fn tactic_entry(name: &str) -> Option<&'static Tactic> {
    tactics().iter().find(|t| t.name == name)
}

/// The technique with this id.
pub fn technique_entry(id: &str) -> Option<&'static Technique> {
    techniques().iter().find(|t| t.id == id)
}

/// The ATT&CK id and display name of a tactic named as in Sentinel content
/// (`CommandAndControl` → `TA0011`, `Command and Control`); an unknown name keeps
/// itself as display name with an empty id (the parser rejects unknown tactics).
///
/// ```
/// assert_eq!(rmmc::attack::tactic("CommandAndControl"), ("TA0011", "Command and Control".to_string()));
/// ```
pub fn tactic(name: &str) -> (&'static str, String) {
    match tactic_entry(name) {
        Some(t) => (t.id.as_str(), t.display.clone()),
        None => ("", name.to_string()),
    }
}

/// The display name of an ATT&CK technique in the table, else the id itself.
///
/// ```
/// assert_eq!(rmmc::attack::technique_name("T1219"), "Remote Access Tools");
/// ```
pub fn technique_name(id: &str) -> &str {
    technique_entry(id).map_or(id, |t| t.name.as_str())
}

/// Is `id` written as ATT&CK writes technique ids: `T` and four digits, optionally
/// `.` and three digits for a sub-technique?
pub fn is_technique_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match bytes {
        [b'T', rest @ ..] if rest.len() == 4 => digits(rest),
        [b'T', rest @ ..] if rest.len() == 8 => {
            digits(&rest[..4]) && rest[4] == b'.' && digits(&rest[5..])
        }
        _ => false,
    }
}

/// Why a rule's tactics and techniques are not valid ATT&CK, with the value to point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The tactic or technique the message is about, as the rule writes it.
    pub value: String,
    /// What is wrong and what is expected.
    pub message: String,
}

/// Check a rule's tactics and techniques: every tactic is in the enum, every technique
/// is well formed and known, and each technique has at least one of its tactics listed
/// (what Azure-Sentinel's CI calls `NoTechniquesWithoutMatchingTactics`).
pub fn check(rule_tactics: &[String], rule_techniques: &[String]) -> Result<(), Invalid> {
    let invalid = |value: &str, message: String| Invalid {
        value: value.to_string(),
        message,
    };
    if rule_tactics.is_empty() {
        return Err(invalid(
            "tactics",
            "`tactics` is empty: name at least one ATT&CK tactic, e.g. CommandAndControl".into(),
        ));
    }
    for t in rule_tactics {
        if tactic_entry(t).is_none() {
            let names: Vec<&str> = tactics().iter().map(|t| t.name.as_str()).collect();
            return Err(invalid(
                t,
                format!("unknown tactic `{t}`: expected one of {}", names.join(", ")),
            ));
        }
    }
    for id in rule_techniques {
        if !is_technique_id(id) {
            return Err(invalid(
                id,
                format!(
                    "technique `{id}` is not an ATT&CK technique id: expected T and four digits, optionally . and three (T1219, T1219.002)"
                ),
            ));
        }
        let Some(known) = technique_entry(id) else {
            return Err(invalid(
                id,
                format!(
                    "technique `{id}` is not in rmmc's ATT&CK table: add it with its tactics to {TABLE_FILE}"
                ),
            ));
        };
        if !known.tactics.iter().any(|t| rule_tactics.contains(t)) {
            return Err(invalid(
                id,
                format!(
                    "technique `{id}` ({}) needs one of its tactics in `tactics`: {}",
                    known.name,
                    known.tactics.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consistent() {
        assert_eq!(tactics().len(), 14);
        for t in techniques() {
            assert!(is_technique_id(&t.id), "{}", t.id);
            assert!(!t.tactics.is_empty(), "{}", t.id);
            for name in &t.tactics {
                assert!(
                    tactic_entry(name).is_some(),
                    "{}: unknown tactic {name}",
                    t.id
                );
            }
            if let Some((parent, _)) = t.id.split_once('.') {
                assert!(
                    technique_entry(parent).is_some(),
                    "{}: parent missing",
                    t.id
                );
            }
        }
        let mut ids: Vec<&str> = techniques().iter().map(|t| t.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), techniques().len(), "duplicate technique ids");
    }

    #[test]
    fn t1219_is_remote_access_tools_under_command_and_control() {
        let t = technique_entry("T1219").unwrap();
        assert_eq!(t.name, "Remote Access Tools");
        assert_eq!(t.tactics, ["CommandAndControl"]);
        let c2 = tactic_entry("CommandAndControl").unwrap();
        assert_eq!(
            (c2.id.as_str(), c2.display.as_str()),
            ("TA0011", "Command and Control")
        );
    }

    #[test]
    fn technique_ids_follow_attack_format() {
        for (id, ok) in [
            ("T1219", true),
            ("T1219.002", true),
            ("T121", false),
            ("T1219.02", false),
            ("t1219", false),
            ("T1219.", false),
            ("TA0011", false),
            ("T12190", false),
        ] {
            assert_eq!(is_technique_id(id), ok, "{id}");
        }
    }

    #[test]
    fn invalid_pairs_name_the_value() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check(&s(&["CommandAndControl"]), &s(&["T1219"])).is_ok());
        assert!(
            check(
                &s(&["Persistence", "LateralMovement"]),
                &s(&["T1133", "T1021"])
            )
            .is_ok()
        );
        for (tactics, techniques, value, says) in [
            (
                &["Persistence"][..],
                &["T1219"][..],
                "T1219",
                "its tactics in `tactics`: CommandAndControl",
            ),
            (
                &["CommandControl"][..],
                &["T1219"][..],
                "CommandControl",
                "unknown tactic",
            ),
            (
                &["CommandAndControl"][..],
                &["T12"][..],
                "T12",
                "not an ATT&CK technique id",
            ),
            (
                &["CommandAndControl"][..],
                &["T9999"][..],
                "T9999",
                TABLE_FILE,
            ),
            (&[][..], &["T1219"][..], "tactics", "is empty"),
        ] {
            let e = check(&s(tactics), &s(techniques)).unwrap_err();
            assert_eq!(e.value, value);
            assert!(e.message.contains(says), "{}", e.message);
        }
    }
}
