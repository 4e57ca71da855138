//! The crate's modules form layers: no module imports a module that imports it back
//! (directly or through others). Read from the sources, so a new import that closes a
//! cycle fails here with the cycle spelled out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its code names as `crate::<module>`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let pattern = format!("{}/**/*.rs", src.display());
    let crate_path = regex::Regex::new(r"crate::([a-z_]+)").unwrap();
    for path in glob::glob(&pattern).unwrap() {
        let path = path.unwrap();
        let rel = path.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for line in text.lines() {
            // Doc links name modules without depending on them.
            if line.trim_start().starts_with("//") {
                continue;
            }
            for c in crate_path.captures_iter(line) {
                if c[1] != module {
                    deps.insert(c[1].to_string());
                }
            }
        }
    }
    graph
}

/// A cycle through `start`, if any, as the list of modules along it.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in graph.get(at).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(c) = cycle_from(graph, start, next, path, seen) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let graph = imports();
    assert!(
        graph.contains_key("lower") && graph.contains_key("parse"),
        "{graph:?}"
    );
    for module in graph.keys() {
        let mut path = vec![module.clone()];
        if let Some(cycle) = cycle_from(&graph, module, module, &mut path, &mut BTreeSet::new()) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

/// The layers of the crate docs' diagram (`src/lib.rs`), top first.
const LAYERS: &[&[&str]] = &[
    &["commands"],
    &["fixtures", "coverage", "scaffold", "diagnostics"],
    &["import"],
    &["pack"],
    &["compiler"],
    &["render"],
    &["parse"],
    &["backends", "lint"],
    &["lower"],
    &["eval"],
    &["profile", "vocabulary", "kql_operators"],
    &["ir", "error", "text", "attack", "golden"],
];

#[test]
fn every_import_goes_down_the_documented_layers() {
    let layer = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
    let graph = imports();
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for (module, deps) in &graph {
        let Some(at) = layer(module) else {
            panic!("module `{module}` is in no layer of tests/suite/layers.rs and src/lib.rs");
        };
        assert!(
            docs.contains(module.as_str()),
            "the crate docs do not name `{module}`"
        );
        for dep in deps {
            let below = layer(dep).unwrap_or_else(|| panic!("`{dep}` is in no layer"));
            assert!(
                below > at,
                "`{module}` imports `{dep}`, which is not below it"
            );
        }
    }
}

#[test]
fn leaves_import_nothing_but_errors() {
    let graph = imports();
    for leaf in ["error", "text", "attack", "ir"] {
        let deps = &graph[leaf];
        assert!(deps.is_empty(), "{leaf} imports {deps:?}");
    }
}
