//! The command line as a user meets it: exit codes, messages, and that a failed
//! build leaves `out/` as it was.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{rmmc, rmmc_command, text};

/// A scratch folder with a copy of the bundled NetSupport rules.
fn workspace(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rmmc-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rules = dir.join("rules/netsupport");
    std::fs::create_dir_all(&rules).unwrap();
    for f in ["filesig.yaml", "createproc.yaml", "netconn.yaml"] {
        std::fs::copy(Path::new("rules/netsupport").join(f), rules.join(f)).unwrap();
    }
    dir
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = glob::glob(&format!("{}/**/*", dir.display()))
        .unwrap()
        .map(|p| p.unwrap())
        .filter(|p| p.is_file())
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn build_writes_every_target_then_check_passes() {
    let ws = workspace("build");
    let o = rmmc(&["build"], &ws);
    assert!(o.status.success(), "{}", text(&o));
    for f in [
        "out/kql/netsupport/filesig.kql",
        "out/kql/netsupport/filesig.yaml",
        "out/spl/default/savedsearches.conf",
        "out/spl/default/macros.conf",
        "out/spl/default/app.conf",
        "out/spl/metadata/default.meta",
        "out/spl/README.md",
        "out/eql/rules.ndjson",
        "out/sigma/netsupport/proc_creation_win_rmm_netsupport.yml",
        "out/sigma/netsupport/correlation_proc_creation_win_rmm_netsupport.yml",
        "out/eql/FIDELITY.md",
    ] {
        assert!(ws.join(f).is_file(), "{f} missing:\n{}", text(&o));
    }
    let o = rmmc(&["build", "--check"], &ws);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("up to date"), "{}", text(&o));
}

#[test]
fn check_reports_a_stale_pack_with_a_diff_and_exit_3() {
    let ws = workspace("stale");
    assert!(rmmc(&["build"], &ws).status.success());
    let kql = ws.join("out/kql/netsupport/filesig.kql");
    let edited = std::fs::read_to_string(&kql)
        .unwrap()
        .replace("netsupport", "netsupp0rt");
    std::fs::write(&kql, edited).unwrap();
    std::fs::write(ws.join("out/kql/leftover.kql"), "x").unwrap();
    std::fs::remove_file(ws.join("out/spl/default/savedsearches.conf")).unwrap();
    let o = rmmc(&["build", "--check"], &ws);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("-| where Signer has \"netsupp0rt\""), "{t}");
    assert!(t.contains("+| where Signer has \"netsupport\""), "{t}");
    assert!(t.contains("leftover.kql"), "{t}");
    assert!(
        t.contains("missing:") && t.contains("savedsearches.conf"),
        "{t}"
    );
}

#[test]
fn a_failed_build_leaves_out_untouched() {
    let ws = workspace("atomic");
    assert!(rmmc(&["build"], &ws).status.success());
    let before = snapshot(&ws.join("out"));
    std::fs::write(
        ws.join("rules/netsupport/broken.yaml"),
        "id: 6f1c7a52-0b7e-4d33-9a4e-1f0c2d3e4b5a\nname: [unclosed\n",
    )
    .unwrap();
    let o = rmmc(&["build"], &ws);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("broken.yaml:2:"), "{}", text(&o));
    assert_eq!(snapshot(&ws.join("out")), before);
}

#[test]
fn strict_turns_approximations_into_errors() {
    let ws = workspace("strict");
    let o = rmmc(&["build", "--strict", "--target", "eql"], &ws);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("error[approximation]: --strict: eql can only approximate aggregation"),
        "{}",
        text(&o)
    );
    assert!(!ws.join("out").exists());
    let o = rmmc(&["build", "--strict", "--target", "kql"], &ws);
    assert!(o.status.success(), "KQL is exact: {}", text(&o));
}

#[test]
fn unknown_target_and_profile_list_the_valid_ones() {
    let ws = workspace("names");
    let o = rmmc(&["build", "--target", "splunk"], &ws);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("[possible values: kql, spl, eql, sigma, all]"),
        "{}",
        text(&o)
    );
    let o = rmmc(&["build", "--target", "eql", "--profile", "sysmon"], &ws);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o)
            .contains("unknown profile `sysmon` for target `eql`: expected one of ecs, defender"),
        "{}",
        text(&o)
    );
}

#[test]
fn empty_and_unreadable_inputs_are_errors() {
    let ws = workspace("empty");
    std::fs::create_dir_all(ws.join("nothing")).unwrap();
    let o = rmmc(&["build", "nothing"], &ws);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("error[empty-rule-set]: no rule files"),
        "{}",
        text(&o)
    );
    let o = rmmc(&["build", "no/such/rules.yaml"], &ws);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("error[io]: cannot read `no/such/rules.yaml`"),
        "{}",
        text(&o)
    );
}

#[test]
fn an_unmapped_field_names_rule_field_target_and_map_file() {
    let ws = workspace("unmapped");
    let profiles = ws.join("mybackends/spl/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let profile = std::fs::read_to_string("backends/spl/profiles/defender.yaml")
        .unwrap()
        .replace(
            "      process.pe.company: properties.ProcessVersionInfoCompanyName\n",
            "",
        );
    std::fs::write(profiles.join("defender.yaml"), profile).unwrap();
    let o = rmmc(
        &[
            "--backends",
            "mybackends",
            "build",
            "--target",
            "spl",
            "rules/netsupport/createproc.yaml",
        ],
        &ws,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(
            "rules/netsupport/createproc.yaml: error[unmapped-field]: field `process.pe.company`"
        ),
        "{t}"
    );
    assert!(
        t.contains("target `spl`") && t.contains("mybackends/spl/profiles/defender.yaml"),
        "{t}"
    );
}

#[test]
fn one_rule_file_builds_to_the_same_place_as_its_folder() {
    let ws = workspace("single");
    let o = rmmc(
        &[
            "build",
            "--target",
            "kql",
            "rules/netsupport/filesig.yaml",
            "--out",
            "packs",
        ],
        &ws,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(ws.join("packs/kql/netsupport/filesig.kql").is_file());
}

#[test]
fn explain_prints_the_ir_and_each_target() {
    let ws = workspace("explain");
    let o = rmmc(
        &[
            "explain",
            "rules/netsupport/filesig.yaml",
            "--format",
            "json",
        ],
        &ws,
    );
    assert!(o.status.success(), "{}", text(&o));
    let ir: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ir["detection"]["match"]["kind"], "term");
    assert_eq!(ir["detection"]["match"]["case"], "insensitive");
    let o = rmmc(
        &[
            "explain",
            "rules/netsupport/filesig.yaml",
            "--target",
            "all",
        ],
        &ws,
    );
    let t = text(&o);
    for header in ["== kql ==", "== spl ==", "== eql ==", "== sigma =="] {
        assert!(t.contains(header), "{t}");
    }
    assert!(t.contains("-- fidelity: approximate"), "{t}");
}

#[test]
fn list_shows_targets_profiles_and_rules() {
    let ws = workspace("list");
    let t = text(&rmmc(&["list", "targets"], &ws));
    assert!(t.starts_with("kql"), "{t}");
    let t = text(&rmmc(&["list", "profiles"], &ws));
    assert!(t.contains("eql    ecs (default)"), "{t}");
    // Elastic Defend's process stream also holds end events: the profile says it selects.
    assert!(
        t.contains("       process_creation: only events whose event.type is start\n"),
        "{t}"
    );
    let t = text(&rmmc(&["list", "rules"], &ws));
    assert!(t.contains("b05f18dd-69df-4dc3-9eed-04b29d379ee5"), "{t}");
}

#[test]
fn test_command_fails_when_expected_rows_are_missing() {
    let ws = workspace("fixtures");
    std::fs::copy(
        "rules/netsupport/filesig.fixtures.yaml",
        ws.join("rules/netsupport/filesig.fixtures.yaml"),
    )
    .unwrap();
    let o = rmmc(&["test"], &ws);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        text(&o).contains("filesig.expected.json is missing"),
        "{}",
        text(&o)
    );
    std::fs::copy(
        "rules/netsupport/filesig.expected.json",
        ws.join("rules/netsupport/filesig.expected.json"),
    )
    .unwrap();
    let o = rmmc(&["test"], &ws);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("1 passed, 0 failed, 2 skipped"),
        "{}",
        text(&o)
    );
}

#[test]
fn explain_points_markdown_files_to_the_importer() {
    let ws = workspace("markdown");
    std::fs::write(
        ws.join("RMM_AHQ_X.md"),
        "# x\n```\nDeviceProcessEvents\n```\n",
    )
    .unwrap();
    let o = rmmc(&["explain", "RMM_AHQ_X.md"], &ws);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("`rmmc import sentinel FILE.md`"),
        "{}",
        text(&o)
    );
}

#[test]
fn import_lolrmm_warns_where_a_catalogue_file_is_bad_and_imports_the_rest() {
    let dir = std::env::temp_dir().join(format!("rmmc-cli-lolrmm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalogue = root.join("tests/lolrmm/catalogue");
    let into = dir.join("rules");
    let o = rmmc(
        &[
            "import",
            "lolrmm",
            catalogue.to_str().unwrap(),
            "--into",
            into.to_str().unwrap(),
        ],
        root,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no_name.yaml:1:1: warning[schema]: no `Name`"),
        "{err}"
    );
    assert!(
        err.contains("bad_path.yaml:5:11: warning[invalid-value]"),
        "{err}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("held back by the quality gate"), "{out}");
    assert!(into.join("example-rmm/createproc.yaml").is_file());
    assert!(!into.join("bad-path-tool").exists());
    // The written rules build for every target.
    let o = rmmc(&["check", into.to_str().unwrap()], root);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn new_writes_a_skeleton_that_checks_tests_after_blessing_and_builds() {
    let ws = workspace("new");
    let o = rmmc(&["new", "Foo Remote", "createproc"], &ws);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("wrote rules/fooremote/createproc.yaml\nwrote rules/fooremote/createproc.fixtures.yaml\n"),
        "{}",
        text(&o)
    );
    let rule = std::fs::read_to_string(ws.join("rules/fooremote/createproc.yaml")).unwrap();
    assert!(rule.contains("tool: Foo Remote\n"), "{rule}");
    assert!(
        rule.contains("# optional: false-positive scenarios"),
        "{rule}"
    );
    let o = rmmc(&["check", "rules/fooremote"], &ws);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("warning"), "{}", text(&o));
    // Blessing names the file it wrote; a second run passes without writing.
    let o = rmmc_command(&ws)
        .env("RMMC_BLESS", "1")
        .args(["test", "rules/fooremote"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("wrote rules/fooremote/createproc.expected.json (review it)"),
        "{}",
        text(&o)
    );
    let o = rmmc(&["test", "rules/fooremote"], &ws);
    assert!(
        text(&o).contains("ok    rules/fooremote/createproc.yaml (2 events, 1 matched, 1 rows)"),
        "{}",
        text(&o)
    );
    let o = rmmc(&["new", "Foo Remote", "createproc"], &ws);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        text(&o),
        "rules/fooremote/createproc.yaml: error[io]: the file exists: rmmc new never overwrites a file\n"
    );
    let o = rmmc(&["new", "Foo Remote", "process"], &ws);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn a_fixture_field_outside_the_vocabulary_is_an_error_at_its_line() {
    let ws = workspace("fixture-field");
    std::fs::write(
        ws.join("rules/netsupport/createproc.fixtures.yaml"),
        "now: \"2026-01-15T12:00:00Z\"\nevents:\n  - name: \"typo\"\n    expect: no_match\n    event:\n      \"@timestamp\": \"2026-01-14T12:00:00Z\"\n      proces.name: client32.exe\n",
    )
    .unwrap();
    let o = rmmc(&["test", "rules/netsupport/createproc.yaml"], &ws);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        text(&o),
        "rules/netsupport/createproc.fixtures.yaml:7:7: error[unknown-field]: event `typo` has field `proces.name`, which data source `process_creation` does not have: expected one of @timestamp, host.id, host.name, event.id, process.name, process.executable, process.command_line, process.hash.sha1, process.pe.company, process.pe.product, process.pe.description, process.pe.original_file_name, process.parent.name, process.parent.command_line, user.name, user.upn\n"
    );
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn targets_are_a_comma_list_or_repeated() {
    let ws = workspace("targets");
    let o = rmmc(&["build", "--target", "kql,spl", "--target", "eql"], &ws);
    assert!(o.status.success(), "{}", text(&o));
    for t in ["kql", "spl", "eql"] {
        assert!(ws.join("out").join(t).is_dir(), "{t}: {}", text(&o));
    }
    assert!(!ws.join("out/sigma").exists());
    assert!(text(&o).contains("3 rule(s) x 3 target(s)"), "{}", text(&o));
}

#[test]
fn out_dash_and_explain_raw_print_one_query_and_nothing_else() {
    let ws = workspace("raw");
    let rule = "rules/netsupport/filesig.yaml";
    let built = rmmc(&["build", "--target", "kql", "--out", "-", rule], &ws);
    assert!(built.status.success(), "{}", text(&built));
    let raw = rmmc(&["explain", rule, "--target", "kql", "--raw"], &ws);
    assert!(raw.status.success(), "{}", text(&raw));
    assert_eq!(stdout(&built), stdout(&raw));
    assert!(
        stdout(&raw).contains("| where Signer has \"netsupport\""),
        "{}",
        stdout(&raw)
    );
    assert!(!stdout(&raw).contains("== kql"), "{}", stdout(&raw));
    assert!(stdout(&raw).ends_with(")\n") || stdout(&raw).ends_with("\n"));
    assert!(!ws.join("out").exists(), "--out - wrote files");
    // More than one query is a usage error, not a concatenation.
    let o = rmmc(&["build", "--target", "kql,spl", "--out", "-", rule], &ws);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--out - prints one query"),
        "{}",
        text(&o)
    );
    let o = rmmc(
        &["explain", "rules/netsupport", "--target", "kql", "--raw"],
        &ws,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn explain_takes_a_folder_and_json_with_targets() {
    let ws = workspace("explain-folder");
    let o = rmmc(&["explain", "rules/netsupport", "--target", "kql"], &ws);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o).matches("== rules/netsupport/").count(),
        3,
        "{}",
        stdout(&o)
    );
    let o = rmmc(
        &[
            "explain",
            "rules/netsupport",
            "--target",
            "kql,eql",
            "--format",
            "json",
        ],
        &ws,
    );
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["target"], "kql");
    assert_eq!(lines[1]["target"], "eql");
    assert_eq!(lines[1]["fidelity"]["verdict"], "approximate");
    assert!(
        lines[0]["query"]
            .as_str()
            .unwrap()
            .contains("DeviceProcessEvents")
    );
}

/// A rule with a lint warning, beside the NetSupport rules.
fn with_warning(ws: &Path) {
    std::fs::create_dir_all(ws.join("rules/foo")).unwrap();
    std::fs::copy(
        "tests/errors/warning_not_a_file_name.yaml",
        ws.join("rules/foo/createproc.yaml"),
    )
    .unwrap();
}

#[test]
fn check_diagnostics_as_json_and_sarif() {
    let ws = workspace("diag");
    with_warning(&ws);
    let o = rmmc(&["check", "rules/foo", "--format", "json"], &ws);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["ok"], true);
    let d = &v["diagnostics"][0];
    assert_eq!(
        (
            d["severity"].as_str(),
            d["code"].as_str(),
            d["file"].as_str(),
            d["line"].as_u64()
        ),
        (
            Some("warning"),
            Some("not-a-file-name"),
            Some("rules/foo/createproc.yaml"),
            Some(19)
        )
    );
    let o = rmmc(&["check", "rules/foo", "--format", "sarif"], &ws);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let r = &v["runs"][0]["results"][0];
    assert_eq!(r["ruleId"], "not-a-file-name");
    assert_eq!(
        r["locations"][0]["physicalLocation"]["region"]["startLine"],
        19
    );
    // Errors are diagnostics too, on stdout, with exit 1.
    std::fs::write(ws.join("rules/foo/createproc.yaml"), "id: x\n").unwrap();
    let o = rmmc(&["check", "rules/foo", "--format", "json"], &ws);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["diagnostics"][0]["severity"], "error");
    assert_eq!(v["diagnostics"][0]["file"], "rules/foo/createproc.yaml");
    // JUnit is for `test`, SARIF for `check`.
    let o = rmmc(&["build", "--format", "sarif"], &ws);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn test_results_as_junit_and_json() {
    let ws = workspace("junit");
    for f in ["filesig.fixtures.yaml", "filesig.expected.json"] {
        std::fs::copy(
            Path::new("rules/netsupport").join(f),
            ws.join("rules/netsupport").join(f),
        )
        .unwrap();
    }
    let o = rmmc(&["test", "--format", "junit"], &ws);
    assert!(o.status.success(), "{}", text(&o));
    let xml = stdout(&o);
    assert!(
        xml.contains("<testsuite name=\"rmmc test\" tests=\"3\" failures=\"0\" skipped=\"2\">"),
        "{xml}"
    );
    assert!(
        xml.contains("name=\"rules/netsupport/filesig.yaml\">\n      <system-out>25 events"),
        "{xml}"
    );
    std::fs::remove_file(ws.join("rules/netsupport/filesig.expected.json")).unwrap();
    let o = rmmc(&["test", "--format", "json"], &ws);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["failed"].as_u64(), v["skipped"].as_u64()),
        (Some(1), Some(2))
    );
    let failed: Vec<&serde_json::Value> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "failed")
        .collect();
    assert_eq!(failed[0]["rule"], "rules/netsupport/filesig.yaml");
}

#[test]
fn quiet_prints_nothing_on_success_and_failures_still() {
    let ws = workspace("quiet");
    with_warning(&ws);
    for args in [
        &["check", "-q"][..],
        &["build", "-q"],
        &["build", "--check", "-q"],
        &["test", "-q"],
    ] {
        let o = rmmc(args, &ws);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert_eq!(text(&o), "", "{args:?}");
    }
    std::fs::write(ws.join("rules/foo/createproc.yaml"), "id: x\n").unwrap();
    let o = rmmc(&["check", "-q"], &ws);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("error["), "{}", text(&o));
}

#[test]
fn acknowledged_warnings_are_not_printed() {
    let ws = workspace("ack");
    with_warning(&ws);
    let o = rmmc(&["check", "rules/foo"], &ws);
    assert!(
        text(&o).contains(
            "rules/foo/createproc.yaml:19:7: warning[not-a-file-name]: exclusion `scheduled_task`"
        ),
        "{}",
        text(&o)
    );
    let rule = std::fs::read_to_string(ws.join("rules/foo/createproc.yaml")).unwrap();
    let acknowledged = rule.replace(
        "detection:",
        "acknowledged:\n  - warning: not-a-file-name\n    reason: kept as documentation\ndetection:",
    );
    std::fs::write(ws.join("rules/foo/createproc.yaml"), acknowledged).unwrap();
    let o = rmmc(&["check", "rules/foo"], &ws);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("warning"), "{}", text(&o));
}

#[test]
fn strict_accepts_only_the_approximations_a_rule_acknowledges() {
    let ws = workspace("strict-ack");
    let rule = ws.join("rules/netsupport/createproc.yaml");
    let o = rmmc(
        &["check", "--strict", "rules/netsupport/createproc.yaml"],
        &ws,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("--strict: eql can only approximate aggregation"),
        "{}",
        text(&o)
    );
    let text0 = std::fs::read_to_string(&rule).unwrap();
    let eql_only = text0.replace(
        "acknowledged:\n",
        "acknowledged:\n  - warning: approximate\n    target: eql\n    reason: one alert per event is fine\n",
    );
    std::fs::write(&rule, &eql_only).unwrap();
    let o = rmmc(
        &["check", "--strict", "rules/netsupport/createproc.yaml"],
        &ws,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!text(&o).contains("--strict: eql"), "{}", text(&o));
    assert!(text(&o).contains("--strict: sigma"), "{}", text(&o));
    let both = eql_only.replace(
        "acknowledged:\n",
        "acknowledged:\n  - warning: approximate\n    target: sigma\n    reason: counts only\n",
    );
    std::fs::write(&rule, both).unwrap();
    let o = rmmc(
        &["check", "--strict", "rules/netsupport/createproc.yaml"],
        &ws,
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn profiles_per_target() {
    let ws = workspace("profiles");
    let rule = "rules/netsupport/filesig.yaml";
    // Elastic Defend records signers on process events (the ecs profile's rewrite):
    // of processes started or already running, not of their ends.
    let ecs = rmmc(&["explain", rule, "--target", "eql", "--raw"], &ws);
    assert!(
        stdout(&ecs).contains(
            r#"process where event.type in ("start", "info") and (process.code_signature.subject_name :"#
        ),
        "{}",
        text(&ecs)
    );
    let o = rmmc(
        &[
            "explain",
            rule,
            "--target",
            "eql,kql",
            "--profile",
            "eql=defender",
        ],
        &ws,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("file where (Signer :"),
        "{}",
        stdout(&o)
    );
    let o = rmmc(&["build", "--profile", "splunk=x"], &ws);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("--profile splunk=x: unknown target `splunk`"),
        "{}",
        text(&o)
    );
}

#[test]
fn rules_are_selected_by_tool_tag_status_and_severity() {
    let ws = workspace("select");
    let o = rmmc(
        &["list", "rules", "--tool", "netsupport", "--tag", "T1219"],
        &ws,
    );
    assert_eq!(stdout(&o).lines().count(), 3, "{}", text(&o));
    let o = rmmc(
        &[
            "build",
            "--target",
            "kql",
            "--status",
            "experimental",
            "--severity",
            "medium",
        ],
        &ws,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("3 rule(s)"), "{}", text(&o));
    let o = rmmc(&["build", "--severity", "high"], &ws);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no rule under rules matches the selection"),
        "{}",
        text(&o)
    );
}

#[test]
fn list_rules_takes_paths_and_aligns_columns() {
    let ws = workspace("list-align");
    let o = rmmc(
        &[
            "list",
            "rules",
            "rules/netsupport/filesig.yaml",
            "rules/netsupport/netconn.yaml",
        ],
        &ws,
    );
    assert!(o.status.success(), "{}", text(&o));
    let listed = stdout(&o);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2);
    let column = |l: &str| l.find("rules/").unwrap();
    assert_eq!(column(lines[0]), column(lines[1]), "{lines:?}");
}

#[test]
fn completions_and_man_page() {
    let ws = workspace("completions");
    for shell in ["bash", "zsh", "fish"] {
        let o = rmmc(&["completions", shell], &ws);
        assert!(o.status.success(), "{shell}");
        assert!(stdout(&o).contains("explain"), "{shell}");
    }
    let o = rmmc(&["man"], &ws);
    assert!(stdout(&o).contains(".TH rmmc 1"), "{}", stdout(&o));
    assert!(stdout(&o).contains("completions"), "{}", stdout(&o));
}

#[test]
fn importing_ones_own_sentinel_query_with_project_and_a_tool_name() {
    let ws = workspace("import-own");
    std::fs::create_dir_all(ws.join("mine")).unwrap();
    std::fs::write(
        ws.join("mine/hunt.yaml"),
        "id: 4e8b1f55-6f7a-4c93-8aef-4a5b6c7d8e9f\nname: My own AnyDesk hunt\ndescription: Our SOC's query.\ntactics: [CommandAndControl]\nrelevantTechniques: [T1219]\nquery: |\n  DeviceProcessEvents\n  | where Timestamp > ago(7d)\n  | where ProcessVersionInfoCompanyName has \"anydesk\"\n  | project Timestamp, DeviceName, FileName\n  | project-away FileName\n",
    )
    .unwrap();
    let o = rmmc(
        &[
            "import",
            "sentinel",
            "mine/hunt.yaml",
            "--into",
            "imported",
            "--tool",
            "AnyDesk Custom",
        ],
        &ws,
    );
    assert!(o.status.success(), "{}", text(&o));
    let rule = std::fs::read_to_string(ws.join("imported/anydesk-custom/createproc.yaml")).unwrap();
    // Provenance is the user's file, never the upstream corpus or its author.
    assert!(
        rule.starts_with("# Generated by `rmmc import sentinel` from mine/hunt.yaml.\n"),
        "{rule}"
    );
    assert!(
        !rule.contains("Schell") && !rule.contains("RemoteManagementMonitoringTools"),
        "{rule}"
    );
    assert!(rule.contains("tool: \"AnyDesk Custom\"\n"), "{rule}");
    // The projected columns are on record; the detection is the `where` alone.
    assert!(rule.contains("# Warning: `| project Timestamp, DeviceName, FileName` chooses result columns, not events"), "{rule}");
    assert!(
        rule.contains("# Warning: `| project-away FileName`"),
        "{rule}"
    );
    let o = rmmc(
        &[
            "explain",
            "imported/anydesk-custom/createproc.yaml",
            "--target",
            "kql",
            "--raw",
        ],
        &ws,
    );
    assert!(
        stdout(&o).contains("| where ProcessVersionInfoCompanyName has \"anydesk\""),
        "{}",
        text(&o)
    );
    // Renames are not plain projections: refused with the position.
    std::fs::write(
        ws.join("mine/hunt.yaml"),
        "id: 4e8b1f55-6f7a-4c93-8aef-4a5b6c7d8e9f\nname: x\ndescription: x\ntactics: [CommandAndControl]\nrelevantTechniques: [T1219]\nquery: |\n  DeviceProcessEvents\n  | where Timestamp > ago(7d)\n  | where FileName has \"anydesk\"\n  | project Name = FileName\n",
    )
    .unwrap();
    let o = rmmc(
        &[
            "import",
            "sentinel",
            "mine/hunt.yaml",
            "--into",
            "imported2",
        ],
        &ws,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(
            "after the `project` column (renames and computed columns are not supported)"
        ),
        "{}",
        text(&o)
    );
}
