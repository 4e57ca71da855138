//! MITRE ATT&CK names: tactic ids and display names, technique names. A leaf module.

/// `(name used in rules and Sentinel content, tactic id, display name)`.
const TACTICS: &[(&str, &str, &str)] = &[
    ("Reconnaissance", "TA0043", "Reconnaissance"),
    ("ResourceDevelopment", "TA0042", "Resource Development"),
    ("InitialAccess", "TA0001", "Initial Access"),
    ("Execution", "TA0002", "Execution"),
    ("Persistence", "TA0003", "Persistence"),
    ("PrivilegeEscalation", "TA0004", "Privilege Escalation"),
    ("DefenseEvasion", "TA0005", "Defense Evasion"),
    ("CredentialAccess", "TA0006", "Credential Access"),
    ("Discovery", "TA0007", "Discovery"),
    ("LateralMovement", "TA0008", "Lateral Movement"),
    ("Collection", "TA0009", "Collection"),
    ("CommandAndControl", "TA0011", "Command and Control"),
    ("Exfiltration", "TA0010", "Exfiltration"),
    ("Impact", "TA0040", "Impact"),
];

/// The ATT&CK id and display name of a tactic named as in Sentinel content
/// (`CommandAndControl` → `TA0011`, `Command and Control`); an unknown name keeps
/// itself as display name with an empty id.
///
/// ```
/// assert_eq!(rmmc::attack::tactic("CommandAndControl"), ("TA0011", "Command and Control".to_string()));
/// ```
pub fn tactic(name: &str) -> (&str, String) {
    TACTICS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, id, display)| (*id, display.to_string()))
        .unwrap_or(("", name.to_string()))
}

/// The display name of an ATT&CK technique rmmc knows, else the id itself.
pub fn technique_name(id: &str) -> &str {
    match id {
        "T1219" => "Remote Access Software",
        "T1133" => "External Remote Services",
        "T1021" => "Remote Services",
        _ => id,
    }
}
