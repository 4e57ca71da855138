//! Field truth: every profile searches data whose fields are listed in
//! `backends/data/`, those lists are true to the platforms' own references, and no
//! emitted query reads, or suppresses by, a field its data source lacks.
//!
//! The Elastic checks read `../shared/reference/elastic/defend-fields.json` (Elastic
//! Defend's mappings, not part of the repository) and parse the emitted EQL and rule
//! files themselves, independently of the lowering code's own check.

use rmmc::backends::FieldMapping;
use rmmc::pack::{self, BuildOptions};
use rmmc::{Backends, ErrorKind, Fidelity, Target};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Elastic Defend's fields per data stream, from the shared reference.
fn defend_fields() -> Option<BTreeMap<String, BTreeSet<String>>> {
    let path = root().join("../shared/reference/elastic/defend-fields.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "SKIPPED: {} is not present (reference data, not part of the repository)",
            path.display()
        );
        return None;
    };
    let doc: Value = serde_json::from_str(&text).unwrap();
    Some(
        doc["data_streams"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(stream, fields)| {
                let names = fields.as_object().unwrap().keys().cloned().collect();
                (stream.clone(), names)
            })
            .collect(),
    )
}

#[test]
fn elastic_defend_field_lists_are_true_to_the_endpoint_package() {
    let Some(reference) = defend_fields() else {
        return;
    };
    let backends = Backends::embedded().unwrap();
    let schema = &backends.data_schemas()["elastic-defend"];
    assert!(schema.source.contains("endpoint-package"), "source named");
    for (stream, list) in &schema.data_sources {
        let mapped = &reference[stream];
        for field in &list.fields {
            assert!(
                mapped.contains(field),
                "backends/data/elastic-defend.yaml lists `{field}` for stream `{stream}`, which Elastic Defend does not map there"
            );
        }
    }
}

#[test]
fn defender_field_lists_are_true_to_the_schema_reference() {
    let text = std::fs::read_to_string(root().join("conformance/defender_schema.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let backends = Backends::embedded().unwrap();
    let schema = &backends.data_schemas()["defender-xdr"];
    for (table, list) in &schema.data_sources {
        let columns: BTreeSet<&str> = doc[table]
            .as_array()
            .unwrap_or_else(|| panic!("no table {table} in the reference"))
            .iter()
            .map(|c| c[0].as_str().unwrap())
            .collect();
        for field in &list.fields {
            assert!(
                columns.contains(field.as_str()),
                "{table} has no column {field}"
            );
        }
    }
}

/// Every mapping of every embedded profile names a field its data records, and every
/// `unsupported` says why: a profile can never map a rule onto an absent field.
#[test]
fn every_profile_maps_only_onto_recorded_fields() {
    let backends = Backends::embedded().unwrap();
    for target in Target::ALL {
        for profile in backends.profiles(target) {
            for (source, map) in &profile.sources {
                for (canonical, mapping) in &map.fields {
                    match mapping {
                        FieldMapping::Unsupported { unsupported } => {
                            assert!(!unsupported.trim().is_empty(), "{canonical}: a reason")
                        }
                        FieldMapping::Substitute { meaning, .. } => {
                            assert!(!meaning.trim().is_empty(), "{canonical}: what changes")
                        }
                        FieldMapping::Field(_) => {}
                    }
                    if let Some(name) = mapping.name() {
                        assert!(
                            map.recorded.contains(name),
                            "{target} profile {} source {source}: `{canonical}` -> `{name}` is not recorded in {}",
                            profile.name,
                            map.data
                        );
                    }
                }
            }
        }
    }
}

/// The field names an EQL query reads: identifiers outside string literals that are
/// not keywords, function names or the event category.
fn eql_fields(query: &str) -> BTreeSet<String> {
    const WORDS: &[&str] = &[
        "where",
        "and",
        "or",
        "not",
        "null",
        "in",
        "regex",
        "like",
        "true",
        "false",
        "sequence",
        "by",
        "any",
        "file",
        "process",
        "network",
        "library",
        "startsWith",
        "endsWith",
        "stringContains",
    ];
    let mut out = BTreeSet::new();
    let mut chars = query.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut BTreeSet<String>| {
        if !word.is_empty() && !WORDS.contains(&word.as_str()) {
            out.insert(std::mem::take(word));
        }
        word.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                flush(&mut word, &mut out);
                while let Some(s) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                flush(&mut word, &mut out);
                let name: String = chars.by_ref().take_while(|&c| c != '`').collect();
                out.insert(name);
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '@' => word.push(c),
            _ => flush(&mut word, &mut out),
        }
    }
    flush(&mut word, &mut out);
    out
}

#[test]
fn eql_field_reader_sees_fields_not_values() {
    let q = r#"process where (process.pe.company : "*a.b*" and `@timestamp` != null) and not (user.name in ("x\"y.z"))"#;
    let want: BTreeSet<String> = ["process.pe.company", "@timestamp", "user.name"]
        .map(String::from)
        .into();
    assert_eq!(eql_fields(q), want);
}

/// The acceptance check of issue 7 on the committed packs: each Elastic rule reads and
/// suppresses by fields the Elastic Defend stream of its index maps.
#[test]
fn every_emitted_elastic_rule_reads_only_fields_its_stream_maps() {
    let Some(reference) = defend_fields() else {
        return;
    };
    let backends = Backends::embedded().unwrap();
    let sources = pack::discover(&["rules".to_string()]).unwrap();
    let options = BuildOptions {
        targets: vec![Target::Eql],
        profile: Some("ecs".into()),
        strict: false,
    };
    let build = pack::build(&sources, &backends, &options).unwrap();
    let mut checked = 0;
    for r in &build.rendered {
        let Some((_, ndjson)) = r
            .files
            .iter()
            .find(|(p, _)| p.extension().is_some_and(|e| e == "ndjson"))
        else {
            assert!(r.fidelity.is_unsupported(), "{}: no rule file", r.rule_name);
            continue;
        };
        let rule: Value = serde_json::from_str(ndjson).unwrap();
        let index = rule["index"][0].as_str().unwrap();
        let stream = index
            .strip_prefix("logs-endpoint.events.")
            .and_then(|s| s.strip_suffix("-*"))
            .unwrap_or_else(|| panic!("{index} is not an Elastic Defend stream"));
        let mapped = &reference[stream];
        let query = rule["query"].as_str().unwrap();
        // Defend's process stream also holds process ends: a creation rule reads the
        // starts only, a signature rule the starts and already-running processes.
        let selection = match r.source_file.file_stem().and_then(|s| s.to_str()) {
            Some("createproc") => Some(r#"process where event.type == "start" and ("#),
            Some("filesig") => Some(r#"process where event.type in ("start", "info") and ("#),
            _ => None,
        };
        if let Some(selection) = selection {
            assert!(
                query.starts_with(selection),
                "{}: {query}",
                r.source_file.display()
            );
        }
        let mut fields = eql_fields(query);
        for f in rule["alert_suppression"]["group_by"]
            .as_array()
            .into_iter()
            .flatten()
        {
            fields.insert(f.as_str().unwrap().to_string());
        }
        for f in &fields {
            assert!(
                mapped.contains(f),
                "{}: `{f}` is not mapped in logs-endpoint.events.{stream}",
                r.source_file.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} rules checked");
}

const NETCONN: &str = "rules/netsupport/netconn.yaml";

/// A copy of the embedded backends in a temporary folder, with one profile file
/// edited by `edit`.
fn backends_with(profile_file: &str, edit: impl Fn(&str) -> String) -> (Backends, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "rmmc-data-fields-{}-{}",
        std::process::id(),
        profile_file.replace('/', "-")
    ));
    let path = dir.join(profile_file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(root().join("backends").join(profile_file)).unwrap();
    std::fs::write(&path, edit(&text)).unwrap();
    (Backends::from_dir(&dir).unwrap(), dir)
}

#[test]
fn a_mapping_onto_an_unrecorded_field_is_one_clear_line() {
    let (backends, dir) = backends_with("kql/profiles/defender.yaml", |t| {
        t.replace("url.original: RemoteUrl", "url.original: RemoteURL")
    });
    let sources = pack::discover(&[NETCONN.to_string()]).unwrap();
    let options = BuildOptions {
        targets: vec![Target::Kql],
        profile: None,
        strict: false,
    };
    let errors = pack::build(&sources, &backends, &options).unwrap_err();
    std::fs::remove_dir_all(dir).ok();
    assert_eq!(errors.0.len(), 1, "{errors}");
    let e = &errors.0[0];
    assert_eq!(e.kind(), ErrorKind::UnrecordedField);
    let line = e.to_string();
    assert_eq!(line.lines().count(), 1, "{line}");
    for part in [
        NETCONN,
        "`url.original`",
        "`RemoteURL`",
        "target `kql`",
        "profile `defender`",
        "defender-xdr/DeviceNetworkEvents",
    ] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
}

#[test]
fn a_profile_naming_unknown_data_is_refused_at_load() {
    let dir = std::env::temp_dir().join(format!("rmmc-data-unknown-{}", std::process::id()));
    let path = dir.join("eql/profiles/ecs.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(root().join("backends/eql/profiles/ecs.yaml")).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "data: elastic-defend/network",
            "data: elastic-defend/netwrk",
        ),
    )
    .unwrap();
    let e = Backends::from_dir(&dir).unwrap_err();
    std::fs::remove_dir_all(dir).ok();
    let line = e.to_string();
    assert!(line.contains("elastic-defend/netwrk"), "{line}");
    assert!(
        line.contains("elastic-defend/network"),
        "lists the known: {line}"
    );
}

/// The `events` of a data source select by a field of its data, and only a target
/// whose queries add the selection may have them: anything else is refused at load,
/// naming the profile, never silently ignored.
#[test]
fn an_event_selection_the_data_or_target_cannot_honour_is_refused_at_load() {
    let unrecorded = std::env::temp_dir().join(format!("rmmc-events-field-{}", std::process::id()));
    let path = unrecorded.join("eql/profiles/ecs.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(root().join("backends/eql/profiles/ecs.yaml")).unwrap();
    assert!(
        text.contains("event.type: [start]"),
        "ecs selects process starts"
    );
    std::fs::write(
        &path,
        text.replace("event.type: [start]", "event.action: [start]"),
    )
    .unwrap();
    let e = Backends::from_dir(&unrecorded).unwrap_err();
    std::fs::remove_dir_all(unrecorded).ok();
    let line = e.to_string();
    for part in [
        "ecs.yaml",
        "`event.action`",
        "elastic-defend/process",
        "process_creation",
    ] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }

    let other_target = std::env::temp_dir().join(format!("rmmc-events-kql-{}", std::process::id()));
    let path = other_target.join("kql/profiles/defender.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(root().join("backends/kql/profiles/defender.yaml")).unwrap();
    let edited = text.replacen(
        "    fields:\n",
        "    events:\n      IsSigned: [\"1\"]\n    fields:\n",
        1,
    );
    assert_ne!(edited, text, "the edit applies");
    std::fs::write(&path, edited).unwrap();
    let e = Backends::from_dir(&other_target).unwrap_err();
    std::fs::remove_dir_all(other_target).ok();
    let line = e.to_string();
    for part in ["defender.yaml", "target `kql`", "`events`"] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
}

/// A rule needing a field the data does not record: the build says so, writes no
/// file for it, lists it in FIDELITY.md, and `--strict` fails.
#[test]
fn an_unsupported_rule_writes_nothing_and_fails_strict() {
    let backends = Backends::embedded().unwrap();
    let rule = "rules/action1/netconn.yaml";
    let sources = pack::discover(&[rule.to_string()]).unwrap();
    let mut options = BuildOptions {
        targets: vec![Target::Eql],
        profile: None,
        strict: false,
    };
    let build = pack::build(&sources, &backends, &options).unwrap();
    let r = &build.rendered[0];
    let Fidelity::Unsupported(u) = &r.fidelity else {
        panic!("expected unsupported, got {:?}", r.fidelity)
    };
    assert_eq!(u.field, "process.pe.product");
    assert_eq!(u.data, "elastic-defend/network");
    assert!(r.files.is_empty());
    let written: Vec<&PathBuf> = build.files.keys().collect();
    assert!(
        !written.iter().any(|p| p.starts_with("eql/action1")),
        "{written:?}"
    );
    let fidelity = &build.files[Path::new("eql/FIDELITY.md")];
    assert!(
        fidelity.contains("| action1/netconn | unsupported | `process.pe.product` is not recorded in elastic-defend/network: "),
        "{fidelity}"
    );
    assert!(!build.files[Path::new("eql/rules.ndjson")].contains(&r.rule_id));
    // The same rule on Defender-column data is fine.
    options.profile = Some("defender".into());
    let build = pack::build(&sources, &backends, &options).unwrap();
    assert!(!build.rendered[0].fidelity.is_unsupported());
    options.profile = None;
    options.strict = true;
    let errors = pack::build(&sources, &backends, &options).unwrap_err();
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.kind() == ErrorKind::Unsupported
                && e.to_string().contains("process.pe.product")),
        "{errors}"
    );
}

/// The Sigma taxonomy's process-creation field list spells every field as the Sigma
/// specification's taxonomy appendix does (Sysmon's names, case and all), and the
/// default Sigma profile writes no field outside that list: a misspelt `commandLine`
/// would pass rmmc's own checks and silently match nothing after conversion.
#[test]
fn sigma_taxonomy_fields_are_spelled_as_the_taxonomy_appendix() {
    let path = root().join("../shared/reference/sigma/specification/sigma-appendix-taxonomy.md");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("SKIPPED: {} is not present", path.display());
        return;
    };
    // The first column of the table under "Process Creation Events".
    let section = text
        .split("#### Process Creation Events")
        .nth(1)
        .and_then(|s| s.split("####").next())
        .expect("the appendix has a process-creation section");
    let appendix: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix('|'))
        .filter_map(|l| l.split('|').next())
        .map(str::trim)
        .filter(|f| !f.is_empty() && *f != "Field Name" && !f.starts_with('-'))
        .collect();
    assert!(appendix.contains(&"ParentImage"), "{appendix:?}");
    let backends = Backends::embedded().unwrap();
    let listed = &backends.data_schemas()["sigma-taxonomy"].data_sources["process_creation"].fields;
    let mut same = 0;
    for field in listed {
        if let Some(a) = appendix.iter().find(|a| a.eq_ignore_ascii_case(field)) {
            // The appendix writes `imphash`; SigmaHQ's rules and validators `Imphash`.
            if *a != "imphash" {
                assert_eq!(a, field, "sigma-taxonomy spells `{a}` as `{field}`");
            }
            same += 1;
        }
    }
    assert!(
        same >= 20,
        "only {same} of the appendix's fields are listed"
    );
    let profile = backends.profile(Target::Sigma, None).unwrap();
    assert_eq!(profile.name, "taxonomy", "the default Sigma profile");
}

/// The default Sigma profile (the taxonomy) cannot say a network rule on the
/// connecting process's PE company: no Sigma file, the reason in FIDELITY.md; the
/// `defender` profile writes it, in Defender's column names.
#[test]
fn a_field_the_sigma_taxonomy_lacks_is_unsupported_with_the_reason() {
    let backends = Backends::embedded().unwrap();
    let sources = pack::discover(&["rules/netsupport/netconn.yaml".to_string()]).unwrap();
    let mut options = BuildOptions {
        targets: vec![Target::Sigma],
        profile: None,
        strict: false,
    };
    let build = pack::build(&sources, &backends, &options).unwrap();
    let Fidelity::Unsupported(u) = &build.rendered[0].fidelity else {
        panic!("expected unsupported, got {:?}", build.rendered[0].fidelity)
    };
    assert_eq!(
        (u.field.as_str(), u.data.as_str()),
        ("process.pe.company", "sigma-taxonomy/network_connection")
    );
    assert!(u.reason.contains("no PE version information"), "{u}");
    assert!(
        !build
            .files
            .keys()
            .any(|p| p.starts_with("sigma/netsupport")),
        "{:?}",
        build.files.keys()
    );
    let fidelity = &build.files[Path::new("sigma/FIDELITY.md")];
    assert!(
        fidelity.contains("| netsupport/netconn | unsupported | `process.pe.company` is not recorded in sigma-taxonomy/network_connection: "),
        "{fidelity}"
    );
    options.profile = Some("sigma=defender".into());
    let build = pack::build(&sources, &backends, &options).unwrap();
    let text = &build.files[Path::new("sigma/netsupport/net_connection_win_rmm_netsupport.yml")];
    assert!(
        text.contains("InitiatingProcessVersionInfoCompanyName|contains"),
        "{text}"
    );
}

/// Splunk's Defender add-on stores every Defender table as the category
/// `AdvancedHunting-<Table>` with each column as `properties.<Column>`: the add-on's
/// field lists are exactly the schema's columns under `properties.`, and the add-on
/// itself (its props.conf, when the reference is present) reads them so.
#[test]
fn defender_add_on_field_lists_are_the_schema_columns_under_properties() {
    let backends = Backends::embedded().unwrap();
    let schemas = backends.data_schemas();
    let columns = &schemas["defender-xdr"];
    let addon = &schemas["defender-xdr-splunk"];
    assert_eq!(
        addon.data_sources.len(),
        columns.data_sources.len(),
        "one category per table"
    );
    for (table, list) in &columns.data_sources {
        let category = format!("AdvancedHunting-{table}");
        let fields = &addon
            .data_sources
            .get(&category)
            .unwrap_or_else(|| panic!("defender-xdr-splunk has no {category}"))
            .fields;
        let expected: BTreeSet<String> = list
            .fields
            .iter()
            .map(|c| format!("properties.{c}"))
            .collect();
        assert_eq!(fields, &expected, "{category}");
    }
    let props = root()
        .join("../shared/reference/splunk/TA-microsoft-365-defender-advanced-hunting/props.conf");
    let Ok(text) = std::fs::read_to_string(&props) else {
        eprintln!("SKIPPED: {} is not present", props.display());
        return;
    };
    let stanza = text
        .split("\n[")
        .find(|s| s.starts_with("[mscs:azure:eventhub:defender:advancedhunting]"))
        .expect("the add-on's sourcetype");
    assert!(
        stanza.contains("KV_MODE = json"),
        "JSON fields, so properties.<Column>"
    );
    for used in [
        "properties.DeviceName",
        "properties.SHA1",
        "properties.RemoteIP",
        "properties.AccountName",
    ] {
        assert!(stanza.contains(used), "the add-on reads {used}");
    }
    assert!(stanza.contains(r#""AdvancedHunting-DeviceProcessEvents""#));
}

/// Independently of the lowering's own check: every `properties.<Column>` an emitted
/// Splunk search names is recorded for the category its data-source macro searches.
#[test]
fn every_emitted_splunk_search_reads_only_columns_of_its_category() {
    let backends = Backends::embedded().unwrap();
    let profile = backends.profile(Target::Spl, None).unwrap();
    let by_macro: BTreeMap<&str, &BTreeSet<String>> = profile
        .sources
        .values()
        .map(|m| (m.settings["macro"].as_str(), &m.recorded))
        .collect();
    let column = regex::Regex::new(r"properties\.[A-Za-z0-9_]+").unwrap();
    let build = pack::build(
        &pack::discover(&[root().join("rules").display().to_string()]).unwrap(),
        &backends,
        &BuildOptions {
            targets: vec![Target::Spl],
            profile: None,
            strict: false,
        },
    )
    .unwrap();
    let mut searches = 0;
    for r in &build.rendered {
        if r.query.is_empty() {
            continue;
        }
        let called = r.query.split('`').nth(1).unwrap();
        let recorded = by_macro[called];
        for m in column.find_iter(&r.query) {
            assert!(
                recorded.contains(m.as_str()),
                "{}: `{}` is not recorded where `{called}` searches",
                r.stem.display(),
                m.as_str()
            );
        }
        searches += 1;
    }
    assert!(searches > 0, "no search checked");
}
