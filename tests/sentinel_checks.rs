//! Every Sentinel file in `out/kql/` passes every check Azure-Sentinel's CI makes on
//! hunting queries (`../shared/reference/sentinel/hunting-query-checks.md`): ASCII
//! only, a GUID id used once across the pack, name/description/query lengths, tactics
//! from the enum, technique ids well formed, every technique with one of its tactics,
//! a known connector id whose `dataTypes` are exactly the tables the query reads.
//! The committed `out/` is what users deploy; `tests/golden.rs` proves it is what
//! the compiler produces.

use rmmc::parse::kql::parse_kql;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Connector ids of Defender XDR data, as listed in Azure-Sentinel's
/// `.script/tests/detectionTemplateSchemaValidation/ValidConnectorIds.json`.
const KNOWN_CONNECTORS: &[&str] = &[
    "MicrosoftThreatProtection",
    "MicrosoftDefenderAdvancedThreatProtection",
];

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The CI checks on one hunting-query file, except the cross-file id check; each
/// problem as a line.
fn hunting_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some((i, c)) = text.char_indices().find(|(_, c)| !c.is_ascii()) {
        let line = text[..i].matches('\n').count() + 1;
        problems.push(format!("non-ASCII character {c:?} on line {line}"));
    }
    let doc: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(d) => d,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    let get = |k: &str| doc.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    if !is_guid(get("id")) {
        problems.push(format!("id `{}` is not a GUID", get("id")));
    }
    for (key, min, max) in [
        ("name", 1, 256),
        ("description", 1, 5000),
        ("query", 1, 10000),
    ] {
        let n = get(key).chars().count();
        if n < min || n > max {
            problems.push(format!("{key} has {n} characters, expected {min}..{max}"));
        }
    }
    problems.extend(attack_problems(
        &strings(&doc["tactics"]),
        &strings(&doc["relevantTechniques"]),
    ));
    let tables = match parse_kql(get("query")) {
        Ok(q) => vec![q.table],
        Err(e) => {
            problems.push(format!("query does not parse: {e:?}"));
            Vec::new()
        }
    };
    let connectors = doc["requiredDataConnectors"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    if connectors.is_empty() {
        problems.push("no requiredDataConnectors".into());
    }
    for c in &connectors {
        let id = c["connectorId"].as_str().unwrap_or_default();
        if !KNOWN_CONNECTORS.contains(&id) {
            problems.push(format!("unknown connectorId `{id}`"));
        }
        let mut types = strings(&c["dataTypes"]);
        types.sort();
        if types != tables {
            problems.push(format!(
                "dataTypes {types:?} are not the query's tables {tables:?}"
            ));
        }
    }
    problems
}

/// Tactics from the enum, technique ids in ATT&CK's format, and every technique with
/// one of its tactics listed (`NoTechniquesWithoutMatchingTactics`).
fn attack_problems(tactics: &[String], techniques: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if tactics.is_empty() {
        problems.push("no tactics".to_string());
    }
    for t in tactics {
        if rmmc::attack::tactic(t).is_none() {
            problems.push(format!("tactic `{t}` is not in the enum"));
        }
    }
    for t in techniques {
        if !rmmc::attack::is_technique_id(t) {
            problems.push(format!(
                "technique `{t}` does not match T\\d{{4}}(\\.\\d{{3}})?"
            ));
        }
        match rmmc::attack::technique(t) {
            Some(k) if k.tactics.iter().any(|x| tactics.contains(x)) => {}
            Some(k) => problems.push(format!(
                "technique `{t}` without its tactic {:?}",
                k.tactics
            )),
            None => problems.push(format!("technique `{t}` is unknown")),
        }
    }
    problems
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn every_hunting_query_passes_the_azure_sentinel_checks() {
    let mut files = Vec::new();
    files_under(Path::new("out/kql"), "yaml", &mut files);
    files.sort();
    assert!(files.len() >= 194, "{} hunting files", files.len());
    let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for p in hunting_problems(&text) {
            failures.push(format!("{}: {p}", f.display()));
        }
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let id = doc["id"].as_str().unwrap_or_default().to_ascii_lowercase();
        if let Some(first) = ids.insert(id.clone(), f.clone()) {
            failures.push(format!(
                "{}: id {id} already used by {}",
                f.display(),
                first.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The checks find what they look for: each defect planted in a passing file is reported.
#[test]
fn the_checks_catch_each_defect() {
    let good = std::fs::read_to_string("out/kql/servereye/filesig.yaml").unwrap();
    assert!(
        good.contains(r"Kr\u00e4mer"),
        "the non-ASCII signer is escaped"
    );
    assert_eq!(hunting_problems(&good), Vec::<String>::new());
    for (from, to, says) in [
        (r"Kr\u00e4mer", "Krämer", "non-ASCII"),
        ("id: ", "id: x", "not a GUID"),
        (
            "  - CommandAndControl",
            "  - Persistence",
            "without its tactic",
        ),
        (
            "  - CommandAndControl",
            "  - CommandControl",
            "not in the enum",
        ),
        ("  - T1219", "  - T1219.1", "does not match"),
        (
            "connectorId: MicrosoftThreatProtection",
            "connectorId: Defender",
            "unknown connectorId",
        ),
        (
            "      - DeviceFileCertificateInfo",
            "      - DeviceProcessEvents",
            "are not the query's tables",
        ),
    ] {
        let bad = good.replacen(from, to, 1);
        assert_ne!(bad, good, "{from}");
        let problems = hunting_problems(&bad);
        assert!(
            problems.iter().any(|p| p.contains(says)),
            "{says}: {problems:?}"
        );
    }
    let long_name = good.replacen("name: ", &format!("name: {}", "x".repeat(257)), 1);
    assert!(
        hunting_problems(&long_name)
            .iter()
            .any(|p| p.contains("name has 3"))
    );
}
