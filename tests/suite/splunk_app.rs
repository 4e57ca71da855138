//! The Splunk app in `out/spl/` as Splunk reads it: every savedsearches.conf key is
//! one that Splunk's own spec (`../shared/reference/splunk/savedsearches.conf.spec`,
//! Splunk 10.x) names, with a value of the kind the spec allows; every stanza is a
//! scheduled alert whose one-line search starts with a data-source macro and ends
//! with its own `_filter` macro, all defined in the app's `macros.conf`. Checked for
//! every profile, so the Enterprise Security variant is held to the same spec.
//! (`scripts/conformance` also runs Splunk's AppInspect on the app.)

use regex::Regex;
use rmmc::pack::{BuildOptions, build, discover};
use rmmc::{Backends, ErrorKind, Target};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One setting of the spec: the key as a pattern (`<...>` placeholders match names)
/// and the alternatives its value may take.
struct SpecKey {
    key: Regex,
    values: Vec<String>,
}

/// The settings of a `.conf.spec`: lines `key = <value format>` outside comments.
fn spec_keys(spec: &str) -> Vec<SpecKey> {
    let line = Regex::new(r"^([A-Za-z0-9_.<>]+)\s*=\s*(.*)$").expect("regex");
    spec.lines()
        .filter_map(|l| line.captures(l))
        .map(|c| {
            // A placeholder names one dot-free segment, except at the end of the key:
            // `action.<action_name>.<parameter>` has parameters such as
            // `param.rule_title` (defined by the action's alert_actions.conf).
            let pattern = regex::escape(&c[1]);
            let pattern = Regex::new(r"<[^>]*>$")
                .expect("regex")
                .replace(&pattern, r"[^\s=]+");
            let pattern = Regex::new(r"<[^>]*>")
                .expect("regex")
                .replace_all(&pattern, r"[^\s=.]+");
            let format = c[2].trim();
            let format = format
                .strip_prefix('[')
                .and_then(|f| f.strip_suffix(']'))
                .unwrap_or(format);
            SpecKey {
                key: Regex::new(&format!("^{pattern}$")).expect("key pattern"),
                values: format.split('|').map(|v| v.trim().to_string()).collect(),
            }
        })
        .collect()
}

/// Does the value fit one of the spec's alternatives? Booleans and integers are
/// checked, literal alternatives must match exactly, other formats (`<string>`,
/// `<cron string>`, `<time-str>`, ...) take any value.
fn value_fits(alternatives: &[String], value: &str) -> bool {
    alternatives.iter().any(|alt| match alt.as_str() {
        "<boolean>" => ["0", "1", "true", "false"].contains(&value),
        "<integer>" => value.parse::<i64>().is_ok(),
        "<unsigned integer>" => value.parse::<u64>().is_ok(),
        a if a.starts_with('<') || a.contains('<') => true,
        a => a == value,
    })
}

/// Every problem of a savedsearches.conf against the spec: unknown keys, values the
/// spec does not allow, lines that are neither a stanza nor `key = value` (a
/// continuation line would be one), and keys set twice in a stanza.
fn check_against_spec(conf: &str, spec: &[SpecKey]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut stanza = String::new();
    for (i, line) in conf.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            stanza = line.to_string();
            seen.clear();
            continue;
        }
        let Some((key, value)) = line.split_once(" = ") else {
            problems.push(format!("line {n}: not `key = value`: {line}"));
            continue;
        };
        if line.ends_with('\\') {
            problems.push(format!("line {n}: a continuation line ({key})"));
        }
        if !seen.insert(key.to_string()) {
            problems.push(format!("line {n}: `{key}` set twice in {stanza}"));
        }
        // `action.x.y` is both `action.<action_name>` (a boolean) and
        // `action.<action_name>.<parameter>`: any matching setting may allow the value.
        let matching: Vec<&SpecKey> = spec.iter().filter(|s| s.key.is_match(key)).collect();
        if matching.is_empty() {
            problems.push(format!("line {n}: `{key}` is not in the spec ({stanza})"));
        } else if !matching.iter().any(|s| value_fits(&s.values, value)) {
            problems.push(format!(
                "line {n}: `{key} = {value}`: the spec allows {}",
                matching[0].values.join(" | ")
            ));
        }
    }
    problems
}

fn spec() -> Vec<SpecKey> {
    let path = root().join("../shared/reference/splunk/savedsearches.conf.spec");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the reference material beside the repository)",
            path.display()
        )
    });
    let keys = spec_keys(&text);
    assert!(keys.len() > 200, "the spec parses into its settings");
    keys
}

/// The app built from every rule with the profile, once per profile.
fn app(profile: Option<&str>) -> &'static BTreeMap<PathBuf, String> {
    static APPS: [OnceLock<BTreeMap<PathBuf, String>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = PROFILES
        .iter()
        .position(|p| *p == profile)
        .expect("one of PROFILES");
    APPS[slot].get_or_init(|| build_app(profile))
}

fn build_app(profile: Option<&str>) -> BTreeMap<PathBuf, String> {
    let backends = Backends::embedded().expect("backends");
    let sources = discover(&[root().join("rules").to_string_lossy().to_string()]).expect("rules");
    let options = BuildOptions {
        targets: vec![Target::Spl],
        profile: profile.map(str::to_string),
        strict: false,
    };
    build(&sources, &backends, &options)
        .expect("the SPL pack builds")
        .files
}

/// How many rules the library holds: one stanza and one filter macro each.
fn rule_count() -> usize {
    discover(&[root().join("rules").to_string_lossy().to_string()])
        .expect("rules")
        .len()
}

fn file<'a>(files: &'a BTreeMap<PathBuf, String>, rel: &str) -> &'a str {
    files
        .get(&Path::new("spl").join(rel))
        .unwrap_or_else(|| panic!("the app has no {rel}"))
}

const PROFILES: [Option<&str>; 3] = [None, Some("defender_es"), Some("defender_sourcetypes")];

#[test]
fn every_savedsearches_key_is_in_splunks_spec() {
    let spec = spec();
    for profile in PROFILES {
        let files = app(profile);
        let conf = file(files, "default/savedsearches.conf");
        let problems = check_against_spec(conf, &spec);
        assert!(problems.is_empty(), "{profile:?}:\n{}", problems.join("\n"));
    }
}

#[test]
fn the_spec_check_catches_misspelled_keys_and_bad_values() {
    let spec = spec();
    let conf = "[a]\nsearch = x\naction.notable.x = 1\naction.notable = on\nenableSchedule = 1\nenableSched = 2\ncounttype = events\nalert.suppress = yes please\nsearch = y\ncontinued = a \\\nb\n";
    let problems = check_against_spec(conf, &spec);
    for expected in [
        "`enableSchedule` is not in the spec",
        "`action.notable = on`",
        "`enableSched = 2`",
        "`counttype = events`",
        "`alert.suppress = yes please`",
        "`search` set twice",
        "not `key = value`: b",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected} not reported: {problems:?}"
        );
    }
}

/// Each stanza is a scheduled alert, suppressed by its groups for its window; the
/// Enterprise Security profile adds an enabled correlation search with notable and
/// risk actions on the host, the others add none.
#[test]
fn every_stanza_is_a_scheduled_alert() {
    let relative = Regex::new(r"^-\d+[hms]$").unwrap();
    for profile in PROFILES {
        let files = app(profile);
        let conf = file(files, "default/savedsearches.conf");
        let stanzas: Vec<&str> = conf.split("\n[").skip(1).collect();
        assert_eq!(stanzas.len(), rule_count(), "{profile:?}");
        for s in stanzas {
            let get = |key: &str| {
                s.lines()
                    .find_map(|l| l.strip_prefix(&format!("{key} = ")))
                    .unwrap_or_else(|| panic!("{profile:?}: no {key} in [{s}"))
            };
            assert_eq!(get("enableSched"), "1");
            assert_eq!(get("cron_schedule"), "0 * * * *");
            assert_eq!(get("counttype"), "number of events");
            assert_eq!(get("relation"), "greater than");
            assert_eq!(get("quantity"), "0");
            assert_eq!(get("alert.suppress"), "1");
            let window = get("dispatch.earliest_time");
            assert!(relative.is_match(window), "{window}");
            assert_eq!(format!("-{}", get("alert.suppress.period")), window);
            assert!(
                get("search").contains(&format!("earliest={window} latest=+1s")),
                "{profile:?}"
            );
            assert!(!get("alert.suppress.fields").is_empty());
            let es = profile == Some("defender_es");
            for key in [
                "action.correlationsearch.enabled",
                "action.notable",
                "action.risk",
            ] {
                assert_eq!(
                    s.lines().any(|l| l == format!("{key} = 1")),
                    es,
                    "{profile:?} {key}"
                );
            }
            if es {
                assert!(get("action.risk.param._risk").contains(r#""risk_object_type":"system""#));
            }
        }
    }
}

/// The searches start with a data-source macro and end with their own filter macro;
/// every macro they call is in the app's macros.conf, and each filter is
/// `search *` (keeps everything) until a user tunes it.
#[test]
fn searches_call_only_macros_the_app_defines() {
    let call = Regex::new(r"`([^`]*)`").unwrap();
    let shape = Regex::new(
        r"^`(rmmc_defender_[a-z_]+)` earliest=\S+ latest=\+1s .* \| `(rmmc_[a-z0-9]+_filter)`$",
    )
    .unwrap();
    for profile in PROFILES {
        let files = app(profile);
        let macros = file(files, "default/macros.conf");
        let defined: BTreeMap<&str, &str> = macros
            .split("\n[")
            .skip(1)
            .map(|s| {
                let name = s.split(']').next().expect("stanza");
                let definition = s
                    .lines()
                    .find_map(|l| l.strip_prefix("definition = "))
                    .expect("definition");
                (name, definition)
            })
            .collect();
        let mut filters = BTreeSet::new();
        for line in file(files, "default/savedsearches.conf").lines() {
            let Some(search) = line.strip_prefix("search = ") else {
                continue;
            };
            let c = shape
                .captures(search)
                .unwrap_or_else(|| panic!("{profile:?}: {search}"));
            assert!(defined[&c[1]].contains("sourcetype="), "{}", &c[1]);
            assert_eq!(defined[&c[2]], "search *");
            assert!(filters.insert(c[2].to_string()), "filter {} twice", &c[2]);
            for m in call.captures_iter(search) {
                assert!(defined.contains_key(&m[1]), "undefined macro {}", &m[1]);
            }
        }
        assert_eq!(filters.len(), rule_count());
    }
}

/// The default profile reads Splunk's Defender add-on: its sourcetype, the table in
/// `category`, the columns under `properties.`; "null" strings read as missing.
#[test]
fn the_default_profile_reads_the_defender_add_on_layout() {
    let addon =
        root().join("../shared/reference/splunk/TA-microsoft-365-defender-advanced-hunting");
    let props = std::fs::read_to_string(addon.join("props.conf")).expect("add-on props.conf");
    assert!(props.contains("[mscs:azure:eventhub:defender:advancedhunting]"));
    let backends = Backends::embedded().unwrap();
    let profile = backends.profile(Target::Spl, None).unwrap();
    assert_eq!(profile.name, "defender");
    for (source, map) in &profile.sources {
        let search = &map.settings["search"];
        assert!(
            search.starts_with(r#"sourcetype="mscs:azure:eventhub:defender:advancedhunting" category="AdvancedHunting-"#),
            "{source}: {search}"
        );
        assert_eq!(map.settings["null_string"], "null");
        // The data it names is the add-on's category the search selects.
        let category = map.data.strip_prefix("defender-xdr-splunk/").unwrap();
        assert!(
            search.ends_with(&format!(r#"category="{category}""#)),
            "{source}: {search} searches other data than {}",
            map.data
        );
        for (canonical, field) in map.names() {
            assert!(
                field == "_time" || field.starts_with("properties."),
                "{source}: {canonical} -> {field}"
            );
        }
    }
    let files = app(None);
    let search = file(files, "netsupport/filesig.conf")
        .lines()
        .find_map(|l| l.strip_prefix("search = "))
        .unwrap()
        .to_string();
    assert!(
        search.contains(r#"properties.Signer="*netsupport*""#),
        "{search}"
    );
    assert!(
        search.contains(r#"Signer=if('properties.Signer'=="null", "", 'properties.Signer')"#),
        "{search}"
    );
}

/// The Enterprise Security profile is the default profile's data, field for field.
#[test]
fn the_enterprise_security_profile_reads_the_same_data() {
    let backends = Backends::embedded().unwrap();
    let default = backends.profile(Target::Spl, None).unwrap();
    let es = backends.profile(Target::Spl, Some("defender_es")).unwrap();
    assert_eq!(default.sources.len(), es.sources.len());
    for (source, map) in &default.sources {
        let other = &es.sources[source];
        assert_eq!(map.fields, other.fields, "{source}");
        let mut settings = other.settings.clone();
        assert_eq!(
            settings.remove("enterprise_security").as_deref(),
            Some("true")
        );
        assert_eq!(map.settings, settings, "{source}");
    }
}

/// A profile whose macro cannot be written safely is a clear error, not a broken
/// search.
#[test]
fn a_bad_data_source_macro_is_a_clear_error() {
    let base = std::fs::read_to_string(root().join("backends/spl/profiles/defender.yaml")).unwrap();
    let rule = std::fs::read_to_string(root().join("rules/netsupport/filesig.yaml")).unwrap();
    for (from, to, expected) in [
        (
            "macro: rmmc_defender_device_file_certificate_info",
            "macro: rmmc defender`x",
            "macro name `rmmc defender`x` must be ASCII letters, digits and `_`",
        ),
        (
            r#"category="AdvancedHunting-DeviceFileCertificateInfo""#,
            r#"category="AdvancedHunting-DeviceFileCertificateInfo" | delete"#,
            "must be search terms on one line, without `|` or macro calls",
        ),
    ] {
        let dir = std::env::temp_dir().join(format!("rmmc-spl-profile-{}", std::process::id()));
        let profiles = dir.join("spl/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        std::fs::write(profiles.join("defender.yaml"), base.replacen(from, to, 1)).unwrap();
        let compiler = rmmc::Compiler::with_backends(Backends::from_dir(&dir).unwrap()).unwrap();
        let parsed = compiler.load_rule("filesig.yaml", &rule).unwrap();
        let err = compiler
            .compile(&parsed.rule, Target::Spl, None)
            .expect_err("a bad macro is refused");
        assert_eq!(err.kind(), ErrorKind::Schema);
        assert!(err.to_string().contains(expected), "{err}");
        assert!(err.to_string().contains("defender.yaml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// `macros.conf` is written from the profile, not from the rules: one macro name for
/// two data sources, defined two ways, or a data-source macro named like the rules'
/// filter macros, stops the build naming the profile, whatever rules are built.
#[test]
fn data_source_macros_that_would_clash_are_refused() {
    let base = std::fs::read_to_string(root().join("backends/spl/profiles/defender.yaml")).unwrap();
    for (from, to, expected) in [
        (
            "macro: rmmc_defender_device_process_events",
            "macro: rmmc_defender_device_file_certificate_info",
            "data sources `file_signature` and `process_creation` both define macro `rmmc_defender_device_file_certificate_info`, differently",
        ),
        (
            "macro: rmmc_defender_device_process_events",
            "macro: rmmc_b05f18dd_filter",
            "macro name `rmmc_b05f18dd_filter` ends in `_filter`",
        ),
    ] {
        let dir = std::env::temp_dir().join(format!("rmmc-spl-clash-{}", std::process::id()));
        let profiles = dir.join("spl/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        std::fs::write(profiles.join("defender.yaml"), base.replacen(from, to, 1)).unwrap();
        let backends = Backends::from_dir(&dir).unwrap();
        let sources = discover(&[root()
            .join("rules/netsupport/filesig.yaml")
            .display()
            .to_string()])
        .unwrap();
        let options = BuildOptions {
            targets: vec![Target::Spl],
            profile: None,
            strict: false,
        };
        let err = build(&sources, &backends, &options)
            .expect_err("refused")
            .to_string();
        assert!(err.contains(expected), "{err}");
        assert!(err.contains("defender.yaml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Splunk merges stanzas of one name silently: two rules that would be one alert or
/// share a filter macro stop the build with a message naming the rule.
#[test]
fn rules_that_would_share_an_alert_or_filter_macro_are_refused() {
    let original = std::fs::read_to_string(root().join("rules/netsupport/filesig.yaml")).unwrap();
    let name = "name: Remote Management and Monitoring tool - NetSupport - File Signature";
    assert!(original.contains(name));
    let id = "id: b05f18dd-69df-4dc3-9eed-04b29d379ee5";
    for (second_name, second_id, expected) in [
        (
            name,
            "id: 0f4d0a8e-7d4b-4c55-9a53-7b9e1d2c3f40",
            "both become the savedsearches.conf stanza",
        ),
        (
            "name: Remote Management and Monitoring tool NetSupport File Signature",
            "id: b05f18dd-0f4d-4c55-9a53-7b9e1d2c3f40",
            "both become the Splunk filter macro `rmmc_b05f18dd_filter`: give one of them a new id",
        ),
    ] {
        let dir = std::env::temp_dir().join(format!("rmmc-spl-dup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), &original).unwrap();
        let second = original.replace(name, second_name).replace(id, second_id);
        assert_ne!(second, original);
        std::fs::write(dir.join("b.yaml"), second).unwrap();
        let sources = discover(&[dir.to_string_lossy().to_string()]).unwrap();
        let options = BuildOptions {
            targets: vec![Target::Spl],
            profile: None,
            strict: false,
        };
        let err = build(&sources, &Backends::embedded().unwrap(), &options)
            .expect_err("refused")
            .to_string();
        assert!(err.contains(expected), "{err}");
        assert!(
            err.contains("a.yaml") && err.contains("b.yaml"),
            "names both: {err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The README shows one full stanza: the one the build writes.
#[test]
fn the_readme_stanza_is_the_built_one() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("## The Splunk app").expect("README section")..];
    let start = section.find("```ini\n").expect("ini block") + "```ini\n".len();
    let shown = &section[start..start + section[start..].find("\n```").expect("end")];
    let files = app(None);
    let conf = file(files, "netsupport/filesig.conf");
    assert_eq!(
        shown,
        conf[conf.find("\n[").expect("stanza") + 1..].trim_end()
    );
}
