//! `rmmc import lolrmm`: a small catalogue in tests/lolrmm/catalogue (good and bad
//! entries, and one tool the library already has from the Sentinel import), and,
//! when it is present next to the crate, the real LOLRMM catalogue.

use rmmc::Backends;
use rmmc::import::lolrmm::{self, Fate, LolrmmOptions, Written, gate::Gate};
use rmmc::ir::{Expr, MatchKind};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A rules folder holding a copy of the Sentinel-derived AnyDesk rules.
fn library(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rmmc-lolrmm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let any = dir.join("anydesk");
    std::fs::create_dir_all(&any).unwrap();
    for f in ["filesig.yaml", "createproc.yaml", "netconn.yaml"] {
        std::fs::copy(root().join("rules/anydesk").join(f), any.join(f)).unwrap();
    }
    dir
}

fn import(into: &Path) -> lolrmm::Summary {
    let options = LolrmmOptions {
        into: into.to_path_buf(),
        force: false,
    };
    lolrmm::import_lolrmm(
        &[PathBuf::from("tests/lolrmm/catalogue")],
        &options,
        &Backends::embedded().unwrap(),
    )
    .unwrap()
}

#[test]
fn bad_files_get_located_warnings_and_the_rest_is_imported() {
    let into = library("bad");
    let summary = import(&into);
    let got = summary.warnings().join("\n") + "\n";
    let expected_path = root().join("tests/lolrmm/warnings.expected");
    if rmmc::golden::bless_requested() {
        std::fs::write(&expected_path, &got).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert_eq!(got, expected, "{summary}");
    // Nothing partial for the malformed tools; their good values are not written.
    assert!(!into.join("bad-domain-tool").exists());
    assert!(!into.join("bad-path-tool").exists());
    for kind in ["filesig", "createproc", "netconn"] {
        let f = into.join(format!("example-rmm/{kind}.yaml"));
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.starts_with(lolrmm::GENERATED_MARK), "{}", f.display());
        assert!(text.contains("Apache License 2.0"), "{text}");
        assert!(text.contains("catalogue/example_rmm.yaml"), "{text}"); // provenance
        assert!(
            text.contains("created 2026-01-02, last modified 2026-03-04"),
            "{text}"
        );
        assert!(text.contains("techniques: [T1219]"), "{text}");
        // The entry's own author, and the catalogue's license.
        assert!(text.contains("author: \"rmmc tests\"\n"), "{text}");
        assert!(text.contains("license: \"Apache-2.0\"\n"), "{text}");
        assert!(
            text.contains("https://example-rmm.test/docs/firewall"),
            "{text}"
        );
        // A branch link is left out of the references and named in the header; a
        // permalink (a commit hash) is kept; the catalogue is named by its repository.
        let rule: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let refs: Vec<&str> = rule["references"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(
            refs,
            [
                "https://example-rmm.test/docs/firewall",
                "https://github.com/example-rmm/agent/blob/0123456789abcdef0123456789abcdef01234567/install.ps1",
                "https://example-rmm.test/",
                "https://github.com/magicsword-io/LOLRMM",
            ],
            "{text}"
        );
        assert!(
            text.contains(
                "# - https://github.com/example-rmm/agent/blob/main/install.ps1 (catalogue/example_rmm.yaml:42): a GitHub link to a branch"
            ),
            "{text}"
        );
    }
    let text = summary.to_string();
    assert!(text.contains("Example RMM"), "{text}");
    assert!(
        text.contains("  Example RMM | https://github.com/example-rmm/agent/blob/main/install.ps1 | catalogue/example_rmm.yaml:42:7 | a GitHub link to a branch"),
        "{text}"
    );
    assert!(text.contains("failed"), "{text}");
}

fn tool<'a>(s: &'a lolrmm::Summary, name: &str) -> &'a lolrmm::Tool {
    s.tools.iter().find(|t| t.name == name).unwrap()
}

fn fate<'a>(t: &'a lolrmm::Tool, value: &str) -> &'a Fate {
    &t.indicators
        .iter()
        .find(|i| i.raw.value == value)
        .unwrap()
        .fate
}

#[test]
fn each_star_becomes_the_kind_it_means_and_the_gate_holds_back_shared_values() {
    let into = library("kinds");
    let s = import(&into);
    let t = tool(&s, "Example RMM");
    assert!(matches!(fate(t, "setup.exe"), Fate::Gated(r) if r.contains("generic name")));
    assert!(
        matches!(fate(t, "*.amazonaws.com"), Fate::Gated(r) if r.contains("shared infrastructure"))
    );
    assert!(matches!(fate(t, "Microsoft Corporation"), Fate::Gated(_)));
    assert!(matches!(fate(t, "user_managed"), Fate::Skipped(_)));
    assert!(
        matches!(fate(t, "C:\\Users\\*\\AppData\\Local\\Example\\*"), Fate::Skipped(r) if r.contains("overlap"))
    );
    assert!(matches!(
        fate(t, "C:\\Program Files\\Example RMM\\helper.dll"),
        Fate::Skipped(_)
    ));
    assert!(matches!(
        fate(t, "%ProgramFiles%\\Example\\*"),
        Fate::Skipped(_)
    ));
    let createproc = &t
        .rules
        .iter()
        .find(|r| r.kind == lolrmm::Kind::CreateProc)
        .unwrap()
        .rule;
    let preds: Vec<(String, MatchKind, Vec<String>)> = createproc
        .detection
        .predicates()
        .iter()
        .map(|p| (p.field.clone(), p.kind, p.values.clone()))
        .collect();
    let has = |field: &str, kind: MatchKind, v: &str| {
        preds
            .iter()
            .any(|(f, k, vs)| f == field && *k == kind && vs.iter().any(|x| x == v))
    };
    assert!(has(
        "process.executable",
        MatchKind::Prefix,
        "C:\\Program Files\\Example RMM\\"
    ));
    assert!(has(
        "process.executable",
        MatchKind::Suffix,
        "\\ExampleService.exe"
    ));
    assert!(has(
        "process.executable",
        MatchKind::Contains,
        "\\Example RMM\\"
    ));
    assert!(has(
        "process.executable",
        MatchKind::Equals,
        "/opt/example-rmm/bin/example-agent"
    ));
    assert!(has("process.name", MatchKind::Prefix, "ExampleViewer"));
    assert!(has("process.name", MatchKind::Suffix, ".exe"));
    assert!(has(
        "process.pe.original_file_name",
        MatchKind::Equals,
        "ExampleAgent.exe"
    ));
    assert!(has(
        "process.pe.product",
        MatchKind::Equals,
        "Example RMM Agent"
    ));
    // `C:\*\exrmm.exe`: starts and ends right, and `C:\exrmm.exe` (the two fixed
    // parts overlapping) is excluded.
    let Expr::Any(branches) = &createproc.detection else {
        panic!()
    };
    assert!(branches.iter().any(|b| matches!(b, Expr::All(xs) if xs.iter().any(
        |x| matches!(x, Expr::Not(n) if matches!(&**n, Expr::Match(p) if p.values == ["C:\\exrmm.exe"]))
    ))));
    let netconn = &t
        .rules
        .iter()
        .find(|r| r.kind == lolrmm::Kind::NetConn)
        .unwrap()
        .rule;
    let preds = netconn.detection.predicates();
    // `*.example-rmm.test`: the domain and its subdomains; the port is dropped.
    assert!(
        preds
            .iter()
            .any(|p| p.kind == MatchKind::Equals
                && p.values.contains(&"example-rmm.test".to_string()))
    );
    assert!(
        preds
            .iter()
            .any(|p| p.kind == MatchKind::Suffix && p.values == [".example-rmm.test"])
    );
    assert!(
        preds
            .iter()
            .any(|p| p.values.contains(&"api.example-rmm.test".to_string()))
    );
    assert!(
        preds
            .iter()
            .any(|p| p.field == "destination.ip" && p.values == ["203.0.113.7"])
    );
}

#[test]
fn sentinel_derived_rules_keep_precedence_and_lolrmm_adds_what_they_lack() {
    let into = library("merge");
    let s = import(&into);
    let t = tool(&s, "AnyDesk");
    assert_eq!(t.merged_into.as_deref(), Some("AnyDesk"));
    assert_eq!(t.dir, "anydesk");
    // The Sentinel rules test the product, the signer and anydesk.com already.
    assert!(matches!(fate(t, "AnyDesk"), Fate::Covered(p) if p.ends_with("createproc.yaml")));
    assert!(matches!(fate(t, "*.anydesk.com"), Fate::Covered(p) if p.ends_with("netconn.yaml")));
    assert!(matches!(fate(t, "boot.net.anydesk.com"), Fate::Covered(_)));
    assert!(matches!(fate(t, "AnyDesk.exe"), Fate::Imported { .. }));
    assert!(
        matches!(fate(t, "relay-[a-f0-9]{8}.net.anydesk.com:443"), Fate::Skipped(r) if r.contains("regular expression"))
    );
    let files: Vec<String> = t
        .rules
        .iter()
        .map(|r| r.rel_dest.display().to_string())
        .collect();
    assert!(
        files.contains(&"anydesk/lolrmm-createproc.yaml".to_string()),
        "{files:?}"
    );
    assert!(!files.iter().any(|f| f.ends_with("/netconn.yaml")
        || f.ends_with("/createproc.yaml") && !f.contains("lolrmm")));
    // The Sentinel-derived files are untouched.
    for f in ["filesig.yaml", "createproc.yaml", "netconn.yaml"] {
        assert_eq!(
            std::fs::read_to_string(into.join("anydesk").join(f)).unwrap(),
            std::fs::read_to_string(root().join("rules/anydesk").join(f)).unwrap()
        );
    }
    // A second run writes nothing new.
    let again = import(&into);
    assert!(
        again
            .tools
            .iter()
            .flat_map(|t| &t.rules)
            .all(|r| r.written == Written::Unchanged)
    );
}

fn catalogue() -> Option<PathBuf> {
    let dir = root().join("../shared/corpus/lolrmm/yaml");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: the LOLRMM catalogue is not at {}", dir.display());
        None
    }
}

#[test]
fn the_real_catalogue_imports_into_one_library_without_duplicate_tools() {
    let Some(dir) = catalogue() else { return };
    let backends = Backends::embedded().unwrap();
    let s = lolrmm::plan(
        &[dir],
        &root().join("rules"),
        &backends,
        &Gate::embedded().unwrap(),
    )
    .unwrap();
    assert_eq!(s.files, 319);
    assert!(s.unreadable.is_empty(), "{:?}", s.unreadable);
    // Every catalogue file belongs to exactly one tool.
    let files: usize = s.tools.iter().map(|t| t.entries.len()).sum();
    assert_eq!(files, 319);
    // One folder per tool, one tool per folder.
    let mut dirs: Vec<&str> = s.tools.iter().map(|t| t.dir.as_str()).collect();
    dirs.sort();
    let n = dirs.len();
    dirs.dedup();
    assert_eq!(dirs.len(), n, "two tools share a folder");
    assert!(s.imported_tools() >= 250, "{}", s.imported_tools());
    // Every indicator has a fate with a reason where it is not imported.
    for t in &s.tools {
        for i in &t.indicators {
            match &i.fate {
                Fate::Gated(r) | Fate::Skipped(r) | Fate::Malformed(r) => assert!(!r.is_empty()),
                _ => {}
            }
        }
    }
    // Every rule carries the catalogue's license and an author: the entry's own, or the
    // catalogue's contributors where the entry names none.
    for r in s.tools.iter().flat_map(|t| &t.rules) {
        assert_eq!(r.rule.meta.license.as_deref(), Some("Apache-2.0"));
        assert!(r.rule.meta.author.is_some());
    }
    let author = |name: &str| {
        let t = s.tools.iter().find(|t| t.name == name).unwrap();
        t.rules[0].rule.meta.author.clone().unwrap()
    };
    assert_eq!(author("Alpemix"), "Nasreddine Bencherchali");
    assert_eq!(author("Action1"), "@kostastsale");
    assert_eq!(author("Access Remote PC"), "LOLRMM contributors");
    // No reference is a GitHub branch link (SigmaHQ's SigmahqGithubLinkIssue): those
    // are left out and listed.
    for r in s.tools.iter().flat_map(|t| &t.rules) {
        for u in &r.rule.meta.references {
            assert!(!lolrmm::unpinned_github_link(u), "{u}");
        }
    }
    // An ATT&CK technique page becomes the technique (and its tactic), not a link.
    let mstsc = s
        .tools
        .iter()
        .find(|t| t.entries.iter().any(|(rel, _)| rel == "yaml/mstsc.yaml"))
        .unwrap();
    for r in &mstsc.rules {
        assert_eq!(r.rule.meta.techniques, ["T1219", "T1021.001"]);
        assert_eq!(
            r.rule.meta.tactics,
            ["CommandAndControl", "LateralMovement"]
        );
        assert!(
            !r.rule
                .meta
                .references
                .iter()
                .any(|u| u.contains("attack.mitre.org"))
        );
    }
    let remotely = s.tools.iter().find(|t| t.name == "Remotely").unwrap();
    assert!(
        remotely
            .left_out_links
            .iter()
            .any(|(l, _, _)| l.url == "https://github.com/immense/Remotely/blob/master/README.md")
    );
    // Tools in both catalogues are merged, never written twice.
    for name in ["AnyDesk", "TeamViewer", "NetSupport", "Atera"] {
        let t = s.tools.iter().find(|t| t.name == name).unwrap();
        assert!(t.merged_into.is_some(), "{name}");
        assert!(t.rules.iter().all(|r| {
            r.rel_dest
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("lolrmm-")
        }));
    }
}
