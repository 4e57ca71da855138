//! Builds of some rules never touch the other rules' files, and a rule's output path
//! and headers do not depend on how its path was typed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{self, rmmc, text};

fn ok(o: Output) -> String {
    let text = text(&o);
    assert!(o.status.success(), "{text}");
    text
}

/// Every file under `dir` with its bytes, by path relative to it, but the build's own
/// `.rmmc*` files (its lock).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = support::tree(dir);
    files.retain(|p, _| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".rmmc"))
    });
    files
}

/// A scratch copy of three tools' rules, built once.
fn workspace(name: &str) -> PathBuf {
    let ws = std::env::temp_dir().join(format!("rmmc-subset-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&ws);
    for tool in ["anydesk", "netsupport", "teamviewer"] {
        let to = ws.join("rules").join(tool);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(Path::new("rules").join(tool))
            .unwrap()
            .flatten()
        {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    ok(rmmc(&["build"], &ws));
    ws
}

/// The files that differ between two trees.
fn changed(a: &BTreeMap<PathBuf, Vec<u8>>, b: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = a.keys().chain(b.keys()).cloned().collect();
    paths.sort();
    paths.dedup();
    paths.into_iter().filter(|p| a.get(p) != b.get(p)).collect()
}

#[test]
fn a_subset_build_replaces_exactly_its_rules_files_however_the_path_is_typed() {
    let ws = workspace("typed");
    let full = tree(&ws.join("out"));
    let rule = ws.join("rules/netsupport/filesig.yaml");
    let abs = ws.join("rules/netsupport").display().to_string();
    for input in [
        "rules/netsupport",
        "./rules/netsupport",
        "rules/netsupport/*.yaml",
        abs.as_str(),
        "rules/netsupport/filesig.yaml",
    ] {
        let text = ok(rmmc(&["build", input], &ws));
        assert!(
            text.contains("kept the other rules' files"),
            "{input}: {text}"
        );
        assert!(
            changed(&full, &tree(&ws.join("out"))).is_empty(),
            "{input}: building unchanged rules changed files"
        );
    }

    // A changed rule: only its own files and the gathered files change. Its own files
    // are what it alone builds to, whatever a target names them.
    let text = std::fs::read_to_string(&rule).unwrap();
    std::fs::write(
        &rule,
        text.replace("has: netsupport", "has: netsupportmanager"),
    )
    .unwrap();
    let own = rule_files(&ws, "rules/netsupport/filesig.yaml");
    assert!(
        own.iter()
            .any(|p| p.starts_with("sigma/netsupport") && !p.ends_with("filesig.yml")),
        "Sigma names the rule's file after SigmaHQ's convention: {own:?}"
    );
    ok(rmmc(&["build", "./rules/netsupport/filesig.yaml"], &ws));
    let after = tree(&ws.join("out"));
    for path in changed(&full, &after) {
        assert!(
            own.contains(&path) || is_gathered(&path),
            "a subset build changed {}",
            path.display()
        );
    }
    assert!(
        changed(&full, &after)
            .iter()
            .any(|p| p.to_string_lossy() == "kql/netsupport/filesig.kql"),
        "the rebuilt rule's query changed"
    );
    // The gathered files now say what a whole build says.
    ok(rmmc(&["build", "--check"], &ws));
    let _ = std::fs::remove_dir_all(&ws);
}

/// The files `rule` builds to on its own, gathered files left out.
fn rule_files(ws: &Path, rule: &str) -> Vec<PathBuf> {
    let alone = ws.join("alone");
    let _ = std::fs::remove_dir_all(&alone);
    ok(rmmc(&["build", "--clean", "--out", "alone", rule], ws));
    let files = tree(&alone)
        .into_keys()
        .filter(|p| !is_gathered(p))
        .collect();
    std::fs::remove_dir_all(&alone).unwrap();
    files
}

/// A file built from the whole rule set, not from one rule.
fn is_gathered(path: &Path) -> bool {
    let p = path.to_string_lossy();
    p.ends_with("savedsearches.conf")
        || p.ends_with("rules.ndjson")
        || p.ends_with("analytics-rules.json")
        || p.ends_with("FIDELITY.md")
        || p.starts_with("sigma/pipelines/")
        || p.split('/').nth(1).is_some_and(|d| d == "default")
}

/// A subset build drops the files its rule no longer builds to (here a Sigma file
/// renamed because the rule's tool changed); other rules' files stay byte for byte.
#[test]
fn a_subset_build_drops_the_files_a_rule_no_longer_produces() {
    let ws = workspace("renamed");
    let full = tree(&ws.join("out"));
    let old_sigma = PathBuf::from("sigma/teamviewer/proc_creation_win_rmm_teamviewer.yml");
    assert!(full.contains_key(&old_sigma), "{:?}", full.keys());
    let rule = ws.join("rules/teamviewer/createproc.yaml");
    let text = std::fs::read_to_string(&rule).unwrap();
    std::fs::write(
        &rule,
        text.replace("tool: TeamViewer", "tool: TeamViewer Host"),
    )
    .unwrap();
    ok(rmmc(&["build", "rules/teamviewer/createproc.yaml"], &ws));
    let after = tree(&ws.join("out"));
    assert!(
        !after.contains_key(&old_sigma),
        "the old Sigma file is left behind"
    );
    assert!(after.contains_key(Path::new(
        "sigma/teamviewer/proc_creation_win_rmm_teamviewer_host.yml"
    )));
    for (path, bytes) in &full {
        let p = path.to_string_lossy();
        if p.starts_with("sigma/anydesk") || p.starts_with("kql/netsupport") {
            assert_eq!(after.get(path), Some(bytes), "{p} changed");
        }
    }
    ok(rmmc(&["build", "--check"], &ws));
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn check_of_a_subset_checks_only_that_subset() {
    let ws = workspace("check");
    std::fs::remove_file(ws.join("out/kql/anydesk/filesig.kql")).unwrap();
    let o = rmmc(&["build", "--check", "rules/netsupport"], &ws);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = rmmc(&["build", "--check"], &ws);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stdout).contains("missing: out/kql/anydesk/filesig.kql"));
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn clean_replaces_the_whole_tree() {
    let ws = workspace("clean");
    ok(rmmc(&["build", "--clean", "rules/netsupport"], &ws));
    assert!(!ws.join("out/kql/anydesk").exists());
    assert!(ws.join("out/kql/netsupport/filesig.kql").exists());
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn headers_do_not_depend_on_the_working_directory_and_out_is_never_read_as_rules() {
    let ws = workspace("cwd");
    let full = tree(&ws.join("out"));
    // From another directory, with absolute paths: not a byte changes.
    let elsewhere = std::env::temp_dir();
    let out = ws.join("out").display().to_string();
    let rules = ws.join("rules").display().to_string();
    ok(rmmc(&["build", "--out", &out, &rules], &elsewhere));
    assert!(changed(&full, &tree(&ws.join("out"))).is_empty());
    let kql = std::fs::read_to_string(ws.join("out/kql/netsupport/filesig.kql")).unwrap();
    assert!(kql.contains("rules/netsupport/filesig.yaml"), "{kql}");
    assert!(!kql.contains(&rules), "{kql}");

    // An output folder inside the rules folder is not read back as rules.
    ok(rmmc(&["build", "--out", "rules/gen"], &ws));
    ok(rmmc(&["build", "--out", "rules/gen"], &ws));
    let _ = std::fs::remove_dir_all(&ws);
}
