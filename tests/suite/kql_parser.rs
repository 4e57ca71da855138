//! Parses every hunting query of the upstream RemoteManagementMonitoringTools corpus
//! (when it is present next to the crate) and checks that exactly the known-bad ones fail.

use rmmc::ir::{Expr, MatchKind};
use rmmc::parse::kql::{KqlQuery, parse_kql};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Queries of the corpus that do not parse, with a fragment of the expected message.
const KNOWN_BAD: &[(&str, &str)] = &[
    // `| Sha1 in (...)` with no `where`.
    (
        "DWService/rmm_DWService_createproc.yaml",
        "expected `where`, `summarize`, `extend`, `project` or `project-away` after `|`, found `Sha1`",
    ),
    (
        "DWService/RMM_AHQ_DWService.md#0",
        "expected `where`, `summarize`, `extend`, `project` or `project-away` after `|`, found `Sha1`",
    ),
    // `in (rmmInitialFileSet)`: a subquery on a `let`-bound table (whose body also
    // uses `distinct`), outside the subset.
    (
        "DWService/rmm_DWService_netconn.yaml",
        "subqueries and `let`-bound tables are not supported",
    ),
    (
        "DWService/RMM_AHQ_DWService.md#2",
        "subqueries and `let`-bound tables are not supported",
    ),
    // `FolderPath has_all has_any (`.
    (
        "Level/rmm_Level_createproc.yaml",
        "expected `(` after `has_all`, found `has_any`",
    ),
    // A missing comma between two list items.
    (
        "BeamYourScreen/RMM_AHQ_BeamYourScreen.md#2",
        "expected `,` or `)` in the `has_any` list",
    ),
    // `where ( ...` never closed.
    (
        "JumpCloud/RMM_AHQ_JumpCloud.md#0",
        "expected `)` to close the `(`",
    ),
    // Fenced blocks holding prose instead of a query.
    (
        "Itarian/RMM_AHQ_Itarian.md#1",
        "expected `|`, `;` or end of query, found `broad`",
    ),
    (
        "TSPlus/RMM_AHQ_TSPlus.md#0",
        "expected `|`, `;` or end of query, found `does`",
    ),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/rmm-upstream/RMM")
}

/// The indented lines after `query: |`, with the first line's indentation removed.
fn yaml_query(text: &str) -> Option<String> {
    let mut lines = text.split('\n');
    lines.find(|l| l.trim_end().starts_with("query: |"))?;
    let body: Vec<&str> = lines
        .take_while(|l| l.trim_end().is_empty() || l.starts_with(' ') || l.starts_with('\t'))
        .collect();
    let indent = body
        .iter()
        .find(|l| !l.trim().is_empty())
        .map_or(0, |l| l.len() - l.trim_start().len());
    let dedented: Vec<&str> = body
        .iter()
        .map(|l| l.get(indent..).unwrap_or_else(|| l.trim_start()))
        .collect();
    Some(dedented.join("\n"))
}

/// Every fenced ``` block (line endings kept).
fn md_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.split('\n') {
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(block) => out.push(block.join("\n")),
                None => current = Some(Vec::new()),
            }
        } else if let Some(block) = current.as_mut() {
            block.push(line);
        }
    }
    out
}

/// (name, query text) for every query of the corpus, in a stable order.
fn corpus_queries(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut tools: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    tools.sort();
    for tool in tools {
        let tool_name = tool.file_name().unwrap().to_string_lossy().to_string();
        let mut files: Vec<PathBuf> = fs::read_dir(&tool)
            .expect("read tool dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            let key = format!("{tool_name}/{name}");
            if name.starts_with("rmm_") && name.ends_with(".yaml") {
                let text = fs::read_to_string(&file).expect("read yaml");
                if let Some(q) = yaml_query(&text) {
                    out.insert(key, q);
                }
            } else if name.starts_with("RMM_AHQ_") && name.ends_with(".md") {
                let text = fs::read_to_string(&file).expect("read md");
                for (i, block) in md_blocks(&text).into_iter().enumerate() {
                    // Some sections are empty placeholders: no query to parse.
                    if !block.trim().is_empty() {
                        out.insert(format!("{key}#{i}"), block);
                    }
                }
            }
        }
    }
    out
}

fn check_shape(name: &str, q: &KqlQuery) -> Vec<String> {
    let mut problems = Vec::new();
    if q.window_seconds != Some(5 * 86_400) {
        problems.push(format!("window {:?}, expected 5d", q.window_seconds));
    }
    if q.time_column.as_deref() != Some("Timestamp") {
        problems.push(format!("time column {:?}", q.time_column));
    }
    if !q.table.starts_with("Device") {
        problems.push(format!("table {}", q.table));
    }
    if q.filter.is_none() {
        problems.push("no filter".to_string());
    }
    if q.aggregation.is_none() {
        problems.push("no aggregation".to_string());
    }
    if name.contains(".md#") && q.constants.len() != 1 {
        problems.push(format!("{} constants, expected 1", q.constants.len()));
    }
    problems
}

#[test]
fn corpus_parses_except_known_bad() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        println!("skipped: corpus not present");
        return;
    }
    let queries = corpus_queries(&dir);
    assert!(queries.len() > 300, "only {} queries found", queries.len());

    let mut failures = BTreeMap::new();
    let mut shape_problems = Vec::new();
    for (name, text) in &queries {
        match parse_kql(text) {
            Ok(q) => {
                for p in check_shape(name, &q) {
                    shape_problems.push(format!("{name}: {p}"));
                }
            }
            Err(e) => {
                println!("FAIL {name}: {e}");
                failures.insert(name.clone(), e);
            }
        }
    }
    println!(
        "{} queries, {} parsed, {} failed",
        queries.len(),
        queries.len() - failures.len(),
        failures.len()
    );

    let mut unexpected = Vec::new();
    for (name, e) in &failures {
        match KNOWN_BAD.iter().find(|(n, _)| n == name) {
            None => unexpected.push(format!("unexpected failure {name}: {e}")),
            Some((_, fragment)) if !e.message.contains(fragment) => unexpected.push(format!(
                "{name}: expected an error with {fragment:?}, got {e}"
            )),
            Some(_) => {}
        }
    }
    for (name, _) in KNOWN_BAD {
        if !failures.contains_key(*name) {
            unexpected.push(format!("known-bad {name} parsed (or is missing)"));
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
    assert!(shape_problems.is_empty(), "{}", shape_problems.join("\n"));
}

/// The Xeox network query mixes `and` and `or` without parentheses. It is valid KQL
/// and parses, but with KQL precedence (`and` binds tighter): the URL condition only
/// applies to the first alternative.
#[test]
fn xeox_network_query_is_a_precedence_trap() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        println!("skipped: corpus not present");
        return;
    }
    let queries = corpus_queries(&dir);
    let Some(text) = queries.get("Xeox/RMM_AHQ_Xeox.md#2") else {
        panic!("Xeox network block not found");
    };
    let q = parse_kql(text).expect("the Xeox block parses");
    let Some(Expr::Any(alternatives)) = &q.filter else {
        panic!("expected a top-level `or`, got {:?}", q.filter);
    };
    assert_eq!(alternatives.len(), 3);
    let Expr::All(first) = &alternatives[0] else {
        panic!(
            "expected `RemoteUrl ... and ...` first, got {:?}",
            alternatives[0]
        );
    };
    assert_eq!(first[0].fields(), vec!["RemoteUrl"]);
    for alt in &alternatives[1..] {
        assert!(
            matches!(alt, Expr::Match(p) if p.kind == MatchKind::Term && p.field != "RemoteUrl")
        );
    }
}

/// Every prefix of every corpus query, and each query with a byte dropped, parses
/// or fails cleanly.
#[test]
fn corpus_prefixes_never_panic() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        println!("skipped: corpus not present");
        return;
    }
    let queries = corpus_queries(&dir);
    for text in queries.values().take(40) {
        for (i, _) in text.char_indices() {
            let _ = parse_kql(&text[..i]);
            let mut dropped = String::with_capacity(text.len());
            dropped.push_str(&text[..i]);
            let rest = &text[i..];
            let mut chars = rest.chars();
            chars.next();
            dropped.push_str(chars.as_str());
            let _ = parse_kql(&dropped);
        }
    }
}
