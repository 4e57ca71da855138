//! Every Sentinel file in `out/kql/` passes every check Azure-Sentinel's CI makes on
//! hunting queries (`../shared/reference/sentinel/hunting-query-checks.md`): ASCII
//! only, a GUID id used once across the pack, name/description/query lengths, tactics
//! from the enum, technique ids well formed, every technique with one of its tactics,
//! a known connector id whose `dataTypes` are exactly the tables the query reads.
//! The same holds for the scheduled analytics rules (ARM templates a Sentinel
//! Repositories connection deploys unchanged, checked for the shape Sentinel's API
//! takes) and the Defender XDR custom detections (the query returns `Timestamp`,
//! `ReportId` and `DeviceId`). The committed `out/` is what users deploy;
//! `tests/suite/golden.rs` proves it is what the compiler produces.

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
        if rmmc::attack::tactic_entry(t).is_none() {
            problems.push(format!("tactic `{t}` is not in the enum"));
        }
    }
    for t in techniques {
        if !rmmc::attack::is_technique_id(t) {
            problems.push(format!(
                "technique `{t}` does not match T\\d{{4}}(\\.\\d{{3}})?"
            ));
        }
        match rmmc::attack::technique_entry(t) {
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

/// An ISO 8601 duration of days, hours, minutes and seconds, in seconds.
fn iso_seconds(d: &str) -> Option<u64> {
    let rest = d.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = 0;
    for (part, units) in [
        (date, &[('D', 86_400)][..]),
        (time, &[('H', 3_600), ('M', 60), ('S', 1)][..]),
    ] {
        let mut digits = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
            } else {
                let size = units.iter().find(|(u, _)| *u == c)?.1;
                total += digits.parse::<u64>().ok()? * size;
                digits.clear();
            }
        }
        if !digits.is_empty() {
            return None;
        }
    }
    Some(total)
}

/// The columns a rendered query returns: the `summarize` outputs and group columns
/// (with `arg_max(T, a, b)` returning T, a, b), or, without one, every column of
/// the table (None). Constants add their names.
fn result_columns(query: &str) -> Option<Vec<String>> {
    let mut columns = Vec::new();
    let summarize = query.lines().find_map(|l| l.strip_prefix("| summarize "))?;
    let (aggs, by) = summarize.rsplit_once(" by ")?;
    columns.extend(by.split(", ").map(str::to_string));
    let arg_max = regex::Regex::new(r"arg_max\(([^)]*)\)").unwrap();
    for c in arg_max.captures_iter(aggs) {
        columns.extend(c[1].split(", ").map(str::to_string));
    }
    let named = regex::Regex::new(r"(?:^|, )([A-Za-z_][A-Za-z0-9_]*)=").unwrap();
    for c in named.captures_iter(aggs) {
        columns.push(c[1].to_string());
    }
    for l in query.lines().filter_map(|l| l.strip_prefix("| extend ")) {
        columns.push(l.split(" = ").next().unwrap_or_default().to_string());
    }
    Some(columns)
}

const ENTITY_IDENTIFIERS: &[(&str, &[&str])] = &[
    (
        "Host",
        &[
            "FullName",
            "HostName",
            "DnsDomain",
            "NTDomain",
            "NetBiosName",
            "AzureID",
            "OMSAgentID",
        ],
    ),
    (
        "Account",
        &[
            "FullName",
            "Name",
            "NTDomain",
            "UPNSuffix",
            "Sid",
            "AadUserId",
            "ObjectGuid",
        ],
    ),
    ("URL", &["Url"]),
    ("IP", &["Address"]),
];

/// The shape checks of one per-rule analytics-rule ARM template, against the rule's
/// hunting query text.
fn analytics_problems(text: &str, hunting_query: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !text.is_ascii() {
        problems.push("not ASCII".to_string());
    }
    let doc: serde_json::Value = match serde_json::from_str(text) {
        Ok(d) => d,
        Err(e) => return vec![format!("not JSON: {e}")],
    };
    if doc["$schema"]
        != "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
        || doc["contentVersion"] != "1.0.0.0"
        || doc["parameters"]["workspace"]["type"] != "String"
    {
        problems.push("not an ARM deployment template with a `workspace` parameter".into());
    }
    let resources = doc["resources"].as_array().cloned().unwrap_or_default();
    if resources.len() != 1 {
        return vec![format!("{} resources, expected 1", resources.len())];
    }
    let r = &resources[0];
    let p = &r["properties"];
    let name = r["name"].as_str().unwrap_or_default();
    let id = name
        .trim_end_matches("')]")
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if r["type"] != "Microsoft.OperationalInsights/workspaces/providers/alertRules"
        || r["kind"] != "Scheduled"
        || !is_guid(id)
        || !name.starts_with("[concat(parameters('workspace'),'/Microsoft.SecurityInsights/")
        || !r["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("20"))
    {
        problems.push(format!(
            "not a Scheduled alertRules resource named by a GUID: {name}"
        ));
    }
    let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
    for (key, max) in [
        ("displayName", 256),
        ("description", 5000),
        ("query", 10000),
    ] {
        let n = s(key).chars().count();
        if n == 0 || n > max {
            problems.push(format!("{key} has {n} characters, expected 1..{max}"));
        }
    }
    if s("query") != hunting_query.trim_end() {
        problems.push("the query is not the hunting query".into());
    }
    let frequency = iso_seconds(&s("queryFrequency"));
    let period = iso_seconds(&s("queryPeriod"));
    match (frequency, period) {
        (Some(f), Some(p)) if (300..=14 * 86_400).contains(&p) && (300..=p).contains(&f) => {}
        _ => problems.push(format!(
            "queryFrequency {} / queryPeriod {}: expected 5 minutes <= frequency <= period <= 14 days",
            s("queryFrequency"),
            s("queryPeriod")
        )),
    }
    if !["Informational", "Low", "Medium", "High"].contains(&s("severity").as_str()) {
        problems.push(format!("severity {}", s("severity")));
    }
    if !["GreaterThan", "LessThan", "Equal", "NotEqual"].contains(&s("triggerOperator").as_str())
        || !p["triggerThreshold"].is_u64()
        || p["enabled"] != true
    {
        problems.push("trigger or enabled missing".into());
    }
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let techniques = list(&p["techniques"]);
    if techniques.iter().any(|t| t.contains('.')) {
        problems.push("sub-techniques belong in subTechniques".into());
    }
    let mut all = techniques.clone();
    all.extend(list(&p["subTechniques"]));
    problems.extend(attack_problems(&list(&p["tactics"]), &all));
    let columns = result_columns(&s("query"));
    let has_column = |c: &str| columns.as_ref().is_none_or(|cs| cs.iter().any(|x| x == c));
    let mut mapped_entities = Vec::new();
    for m in p["entityMappings"].as_array().cloned().unwrap_or_default() {
        let entity = m["entityType"].as_str().unwrap_or_default().to_string();
        let Some((_, identifiers)) = ENTITY_IDENTIFIERS.iter().find(|(e, _)| *e == entity) else {
            problems.push(format!("entity type {entity}"));
            continue;
        };
        for f in m["fieldMappings"].as_array().cloned().unwrap_or_default() {
            let (identifier, column) = (
                f["identifier"].as_str().unwrap_or_default(),
                f["columnName"].as_str().unwrap_or_default(),
            );
            if !identifiers.contains(&identifier) || !has_column(column) {
                problems.push(format!(
                    "{entity}.{identifier} from column `{column}` the query does not return"
                ));
            }
        }
        mapped_entities.push(entity);
    }
    if !mapped_entities.iter().any(|e| e == "Host") {
        problems.push("no Host entity".into());
    }
    let details = p["customDetails"].as_object().cloned().unwrap_or_default();
    for (key, column) in &details {
        if !key.chars().all(|c| c.is_ascii_alphanumeric())
            || !has_column(column.as_str().unwrap_or_default())
        {
            problems.push(format!("custom detail {key} = {column}"));
        }
    }
    let grouping = &p["incidentConfiguration"]["groupingConfiguration"];
    let lookback = iso_seconds(grouping["lookbackDuration"].as_str().unwrap_or_default());
    if !lookback.is_some_and(|l| (300..=7 * 86_400).contains(&l))
        || grouping["matchingMethod"] != "Selected"
    {
        problems
            .push("grouping lookback outside 5 minutes..7 days, or not by selected fields".into());
    }
    let by_entities = list(&grouping["groupByEntities"]);
    let by_details = list(&grouping["groupByCustomDetails"]);
    if by_entities.iter().any(|e| !mapped_entities.contains(e))
        || by_details.iter().any(|d| !details.contains_key(d))
    {
        problems.push("grouping by an entity or custom detail the rule does not map".into());
    }
    if by_entities.is_empty() && by_details.is_empty() {
        problems.push("alerts are grouped by nothing".into());
    }
    if columns.is_some() {
        // Every group field of the query is part of the alert grouping.
        let by_line = s("query")
            .lines()
            .find_map(|l| l.strip_prefix("| summarize ").map(str::to_string))
            .unwrap_or_default();
        let group: Vec<&str> = by_line
            .rsplit_once(" by ")
            .map(|(_, b)| b.split(", ").collect())
            .unwrap_or_default();
        for g in group {
            let as_entity = p["entityMappings"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| {
                    by_entities.iter().any(|e| m["entityType"] == e.as_str())
                        && m["fieldMappings"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|f| f["columnName"] == g)
                });
            let as_detail = by_details
                .iter()
                .any(|d| details.get(d).is_some_and(|c| c == g));
            if !as_entity && !as_detail {
                problems.push(format!("group field {g} is not in the alert grouping"));
            }
        }
    }
    problems
}

/// The custom detection: its query is the hunting query with the summarize extended
/// (the same filter lines), it returns Timestamp, ReportId and DeviceId, and the
/// Graph API body carries that query, a valid schedule, severity and assets.
fn detection_problems(query: &str, body: &str, hunting_query: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !query.is_ascii() || !body.is_ascii() {
        problems.push("not ASCII".to_string());
    }
    let code = |q: &str| -> Vec<String> {
        q.lines()
            .filter(|l| !l.starts_with("//") && !l.starts_with("| summarize "))
            .map(str::to_string)
            .collect()
    };
    if code(query) != code(hunting_query) {
        problems.push("the filter differs from the hunting query's".into());
    }
    let columns = result_columns(query);
    for required in ["Timestamp", "ReportId", "DeviceId"] {
        if columns
            .as_ref()
            .is_some_and(|cs| !cs.iter().any(|c| c == required))
        {
            problems.push(format!("the query does not return {required}"));
        }
    }
    let doc: serde_json::Value = match serde_json::from_str(body) {
        Ok(d) => d,
        Err(e) => return vec![format!("not JSON: {e}")],
    };
    if doc["queryCondition"]["queryText"].as_str() != Some(query.trim_end()) {
        problems.push("queryText is not the detection query".into());
    }
    if !["PT1H", "PT3H", "PT12H", "P1D"]
        .contains(&doc["schedule"]["frequency"].as_str().unwrap_or_default())
    {
        problems.push(format!("schedule {}", doc["schedule"]));
    }
    let alert = &doc["detectionAction"]["alertTemplate"];
    if !["informational", "low", "medium", "high"]
        .contains(&alert["severity"].as_str().unwrap_or_default())
        || rmmc::attack::tactic_entry(alert["category"].as_str().unwrap_or_default()).is_none()
        || doc["displayName"].as_str().is_none_or(str::is_empty)
    {
        problems.push("alert severity, category or name".into());
    }
    for a in alert["impactedAssets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let id = a["identifier"].as_str().unwrap_or_default();
        let column: String = id[..1].to_ascii_uppercase() + &id[1..];
        if columns.as_ref().is_some_and(|cs| !cs.contains(&column)) {
            problems.push(format!(
                "impacted asset {id}: the query does not return {column}"
            ));
        }
    }
    problems
}

#[test]
fn every_analytics_rule_and_custom_detection_has_a_deployable_shape() {
    let mut files = Vec::new();
    files_under(Path::new("out/kql"), "yaml", &mut files);
    files.sort();
    let mut failures = Vec::new();
    let mut resources = Vec::new();
    for hunting in &files {
        let stem = hunting.with_extension("");
        let read = |ext: &str| {
            std::fs::read_to_string(format!("{}.{ext}", stem.display()))
                .unwrap_or_else(|e| panic!("{}.{ext}: {e}", stem.display()))
        };
        let query = read("kql");
        let analytics = read("analytics.json");
        for p in analytics_problems(&analytics, &query) {
            failures.push(format!("{}.analytics.json: {p}", stem.display()));
        }
        let doc: serde_json::Value = serde_json::from_str(&analytics).unwrap();
        resources.push(doc["resources"][0].clone());
        for p in detection_problems(&read("detection.kql"), &read("detection.json"), &query) {
            failures.push(format!("{}.detection.*: {p}", stem.display()));
        }
    }
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("out/kql/analytics-rules.json").unwrap())
            .unwrap();
    let mut gathered = all["resources"].as_array().cloned().unwrap_or_default();
    let key = |r: &serde_json::Value| r["name"].as_str().unwrap_or_default().to_string();
    gathered.sort_by_key(key);
    resources.sort_by_key(key);
    if gathered != resources {
        failures.push("analytics-rules.json does not hold exactly the per-rule resources".into());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each defect planted in a passing analytics rule or custom detection is reported.
#[test]
fn the_deployable_shape_checks_catch_each_defect() {
    let stem = "out/kql/netsupport/netconn";
    let read = |ext: &str| std::fs::read_to_string(format!("{stem}.{ext}")).unwrap();
    let (query, analytics) = (read("kql"), read("analytics.json"));
    assert_eq!(analytics_problems(&analytics, &query), Vec::<String>::new());
    for (from, to, says) in [
        (
            r#""queryPeriod": "P5D""#,
            r#""queryPeriod": "P15D""#,
            "queryPeriod P15D",
        ),
        (
            r#""queryFrequency": "PT1H""#,
            r#""queryFrequency": "P6D""#,
            "queryFrequency P6D",
        ),
        (
            r#""kind": "Scheduled""#,
            r#""kind": "NRT""#,
            "not a Scheduled",
        ),
        (
            r#""severity": "Medium""#,
            r#""severity": "Critical""#,
            "severity",
        ),
        (
            r#""columnName":"RemoteUrl""#,
            r#""columnName":"RemoteIP""#,
            "does not return",
        ),
        (
            r#""groupByCustomDetails": ["DeviceId"]"#,
            r#""groupByCustomDetails": []"#,
            "group field DeviceId",
        ),
        (
            r#""tactics": ["CommandAndControl"]"#,
            r#""tactics": ["Persistence"]"#,
            "without its tactic",
        ),
        (
            "has \\\"netsupport\\\"",
            "has \\\"netsupportx\\\"",
            "not the hunting query",
        ),
    ] {
        let bad = analytics.replacen(from, to, 1);
        assert_ne!(bad, analytics, "{from}");
        let problems = analytics_problems(&bad, &query);
        assert!(
            problems.iter().any(|p| p.contains(says)),
            "{says}: {problems:?}"
        );
    }
    let (detection, body) = (read("detection.kql"), read("detection.json"));
    assert_eq!(
        detection_problems(&detection, &body, &query),
        Vec::<String>::new()
    );
    let without_latest = detection.replacen("arg_max(Timestamp, ReportId), ", "", 1);
    let problems = detection_problems(&without_latest, &body, &query);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("does not return Timestamp")),
        "{problems:?}"
    );
    let bad_body = body.replacen(r#""frequency": "P1D""#, r#""frequency": "PT5M""#, 1);
    assert!(
        detection_problems(&detection, &bad_body, &query)
            .iter()
            .any(|p| p.contains("schedule"))
    );
}

/// A rule whose aggregation output takes the name of a column the custom detection
/// must return is refused with a message that names it, never emitted ambiguous.
#[test]
fn an_output_named_like_a_required_column_is_an_error() {
    let compiler = rmmc::Compiler::embedded().unwrap();
    let rule = |output: &str| {
        format!(
            "id: 5b8e7f0c-3f0e-4a35-9d0b-6a7f1c2d3e45\nname: Clash\ndescription: x\ntool: Test\n\
             tactics: [CommandAndControl]\ntechniques: [T1219]\nsource: file_signature\nwindow: 5d\n\
             detection:\n  field: file.code_signature.subject_name\n  has: netsupport\n\
             aggregation:\n  by: [host.id]\n  outputs:\n    - {{ name: {output}, function: count }}\n"
        )
    };
    let ok = compiler.load_rule("ok.yaml", &rule("Count")).unwrap();
    let r = compiler.compile(&ok.rule, rmmc::Target::Kql, None).unwrap();
    assert!(
        r.files
            .iter()
            .any(|(p, t)| p.to_string_lossy().ends_with(".detection.kql")
                && t.contains(
                    "| summarize arg_max(Timestamp, ReportId), Count=count() by DeviceId"
                ))
    );
    let clash = compiler.load_rule("clash.yaml", &rule("ReportId")).unwrap();
    let err = compiler
        .compile(&clash.rule, rmmc::Target::Kql, None)
        .unwrap_err();
    assert!(err.to_string().contains("output `ReportId`"), "{err}");
    assert!(err.to_string().contains("rename the output"), "{err}");
}

/// A rule without aggregation returns events, which carry Timestamp, ReportId and
/// DeviceId: the custom detection is the hunting query, and the analytics rule maps
/// Host, Account and URL from the event columns.
#[test]
fn a_rule_without_aggregation_has_both_forms() {
    let compiler = rmmc::Compiler::embedded().unwrap();
    let text = "id: 5b8e7f0c-3f0e-4a35-9d0b-6a7f1c2d3e46\nname: Events\ndescription: x\ntool: Test\n\
                tactics: [CommandAndControl]\ntechniques: [T1219]\nsource: network_connection\nwindow: 2h\n\
                detection:\n  field: url.original\n  has: example.com\n";
    let parsed = compiler.load_rule("events.yaml", text).unwrap();
    let r = compiler
        .compile(&parsed.rule, rmmc::Target::Kql, None)
        .unwrap();
    let file = |suffix: &str| {
        r.files
            .iter()
            .find(|(p, _)| p.to_string_lossy().ends_with(suffix))
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    let (query, analytics) = (file(".kql"), file(".analytics.json"));
    assert_eq!(analytics_problems(&analytics, &query), Vec::<String>::new());
    assert!(
        analytics.contains(r#""queryPeriod": "PT2H""#),
        "{analytics}"
    );
    assert!(
        analytics.contains(r#""groupByEntities": ["Host","Account","URL"]"#),
        "{analytics}"
    );
    let (detection, body) = (file(".detection.kql"), file(".detection.json"));
    assert!(!detection.contains("summarize"));
    assert_eq!(
        detection_problems(&detection, &body, &query),
        Vec::<String>::new()
    );
    assert!(body.contains(r#""frequency": "PT1H""#), "{body}");
}
