//! Text that is not a query literal cannot change an output's structure.
//!
//! Every metadata field of a rule (name, description, reference, author, tool,
//! exclusion name, scenario and description) is set to generated hostile text and
//! the rule is compiled for every target. Each output is read with its own parser
//! (serde_yaml for the Sentinel and Sigma files, a savedsearches.conf reader,
//! serde_json for the Elastic rule) and must (a) parse, (b) have the same shape and
//! the same query as the rule with a plain value, and (c) give the value back where
//! it lands: exactly in YAML and JSON, as its one-line form in comments and conf.
//!
//! The values are set on the parsed rule, past the parser's own check
//! (`rmmc::text::check_text`), so the escaping where the text lands is tested on its
//! own. `cargo test` runs 48 values per field on every target; the 10,000-per-field
//! run (each value on one target in turn, 2,500 per field and target) is
//! `#[ignore]`d and run once, by `scripts/conformance` (`--ignored`).

#[path = "../fuzz/checks.rs"]
mod checks;

use checks::{Read, read_conf, read_outputs, shape};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rmmc::text::{conf_line, one_line};
use rmmc::{Compiler, Rule, Target};
use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::path::Path;

const BASE: &str = "rules/netsupport/createproc.yaml";
const RULE_FILE: &str = checks::RULE_FILE;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Name,
    Description,
    Reference,
    Author,
    Tool,
    ExclusionName,
    ExclusionScenario,
    ExclusionDescription,
}

const FIELDS: [Field; 8] = [
    Field::Name,
    Field::Description,
    Field::Reference,
    Field::Author,
    Field::Tool,
    Field::ExclusionName,
    Field::ExclusionScenario,
    Field::ExclusionDescription,
];

fn base_rule(c: &Compiler) -> Rule {
    let text = std::fs::read_to_string(BASE).unwrap();
    c.load_rule(BASE, &text).unwrap().rule
}

fn with_value(base: &Rule, field: Field, v: &str) -> Rule {
    let mut r = base.clone();
    match field {
        Field::Name => r.meta.name = v.into(),
        Field::Description => r.meta.description = v.into(),
        Field::Reference => r.meta.references = vec![v.into()],
        Field::Author => r.meta.author = Some(v.into()),
        Field::Tool => r.meta.tool = v.into(),
        Field::ExclusionName => r.exclusions[0].name = v.into(),
        Field::ExclusionScenario => r.exclusions[0].scenario = v.into(),
        Field::ExclusionDescription => r.exclusions[0].description = v.into(),
    }
    r
}

/// A plain value of the same field, for the shape to compare with.
const PLAIN: &str = "Plain value";

fn strings(j: &Json, out: &mut Vec<String>) {
    match j {
        Json::String(s) => out.push(s.clone()),
        Json::Array(xs) => xs.iter().for_each(|x| strings(x, out)),
        Json::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The outputs of the rule with a plain value, and their shapes: computed once per field
/// and target, compared with every generated value's.
struct Plain {
    read: Read,
    shapes: Vec<Json>,
}

impl Plain {
    fn new(c: &Compiler, base: &Rule, field: Field, target: Target) -> Plain {
        let read = read_outputs(c, &with_value(base, field, PLAIN), target).unwrap();
        let shapes = read.docs.iter().map(shape).collect();
        Plain { read, shapes }
    }
}

/// The whole check for one value of one field on one target.
fn check_against(
    c: &Compiler,
    base: &Rule,
    field: Field,
    v: &str,
    target: Target,
    Plain {
        read: plain,
        shapes: plain_shapes,
    }: &Plain,
) -> Result<(), String> {
    let got = read_outputs(c, &with_value(base, field, v), target)?;
    let ctx = || format!("{field:?} = {v:?} on {target}");
    if got.queries != plain.queries && field != Field::Tool {
        return Err(format!(
            "{}: the query changed:\n{:#?}\nvs plain\n{:#?}",
            ctx(),
            got.queries,
            plain.queries
        ));
    }
    if got.comments.len() != plain.comments.len() {
        return Err(format!("{}: comment lines {:#?}", ctx(), got.comments));
    }
    if got.docs.iter().map(shape).ne(plain_shapes.iter().cloned()) {
        return Err(format!(
            "{}: document shape changed: {:#?}",
            ctx(),
            got.docs
        ));
    }
    let keys = |r: &Read| {
        r.stanzas
            .iter()
            .map(|(_, ks)| ks.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    if keys(&got) != keys(plain) {
        return Err(format!("{}: conf keys changed: {:#?}", ctx(), got.stanzas));
    }
    // The value reads back where it lands.
    let mut texts = Vec::new();
    got.docs.iter().for_each(|d| strings(d, &mut texts));
    let one = one_line(v);
    // Descriptions lose their trailing blanks before the references are added.
    let mut landed_exactly = texts.iter().any(|t| t == v || t.contains(v.trim_end()));
    if field == Field::Name && target.as_str() == "sigma" {
        // A Sigma title follows SigmaHQ's casing (lower-case words capitalized, no
        // final dot): the name lands up to letter case and final dots.
        let wanted = v.trim_end().trim_end_matches('.').to_lowercase();
        landed_exactly |= texts.iter().any(|t| t.to_lowercase().contains(&wanted));
    }
    let expect_exact = matches!(
        (field, target.as_str()),
        (Field::Name | Field::Description, "kql" | "sigma" | "eql")
            | (Field::Reference | Field::Author, "sigma" | "eql")
    );
    if expect_exact && !landed_exactly {
        return Err(format!("{}: value not read back from {texts:#?}", ctx()));
    }
    if field == Field::Name {
        let comment_ok = match target.as_str() {
            "kql" => {
                // KQL comments are ASCII: non-ASCII characters are kept as `\uXXXX`.
                let comment = rmmc::lower::escape::kql_comment(v);
                got.comments.first().map(|l| l.trim_end())
                    == Some(format!("// {comment}").trim_end())
            }
            "spl" => {
                got.comments.first().map(|l| l.trim_end())
                    == Some(format!("# {}", conf_line(v)).trim_end())
            }
            _ => true,
        };
        if !comment_ok && !one.is_empty() {
            return Err(format!(
                "{}: name comment is {:?}",
                ctx(),
                got.comments.first()
            ));
        }
    }
    if field == Field::Description && target.as_str() == "spl" {
        let desc = got.stanzas[0]
            .1
            .iter()
            .find(|(k, _)| k == "description")
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        let want = conf_line(v).trim().to_string();
        if !want.is_empty() && !desc.starts_with(&want) {
            return Err(format!("{}: conf description {desc:?}", ctx()));
        }
    }
    Ok(())
}

/// Hostile text: anything, weighted towards what ends lines, comments, quotes and
/// conf values in some output format.
fn hostile() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '\n',
        '\r',
        '\t',
        '\u{0}',
        '\u{7f}',
        '\u{80}',
        '\u{85}',
        '\u{9f}',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{fffe}',
        '\u{ffff}',
        '\u{fdd0}',
        '\u{10ffff}',
        '"',
        '\'',
        '\\',
        '|',
        '/',
        '#',
        ':',
        '[',
        ']',
        '{',
        '}',
        '-',
        ' ',
        '=',
        '%',
        '&',
        '*',
        '!',
        '`',
    ]);
    let piece = prop_oneof![
        3 => special.prop_map(String::from),
        2 => "[a-zA-Z ]{1,6}",
        1 => any::<char>().prop_map(String::from),
        1 => prop::sample::select(vec![
            "\n| take 0 //", "\u{2028}query: DeviceEvents | take 1\u{2028}", "\\\n",
            "\nsearch = | delete", "]\n[x]", "---\n", "\": \"", "\r\n// ",
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec(piece, 1..8).prop_map(|ps| ps.concat())
}

/// `cases` values per field; each value on every target, or (`rotate`) value `i` on
/// target `i mod 4` only, which keeps the 10,000-per-field run to minutes. Fields are
/// independent: they are shared out to one thread per core, or to
/// `RMMC_HARDENING_THREADS` threads (`scripts/conformance` runs its steps in two lanes,
/// one core each, and gives this step one thread so that it does not slow the other lane).
fn run(cases: u32, rotate: bool) {
    let workers = std::env::var("RMMC_HARDENING_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(FIELDS.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let c = Compiler::embedded().unwrap();
                let base = base_rule(&c);
                while let Some(&field) =
                    FIELDS.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    run_field(&c, &base, field, cases, rotate);
                }
            });
        }
    });
}

fn run_field(c: &Compiler, base: &Rule, field: Field, cases: u32, rotate: bool) {
    let plain: Vec<(Target, Plain)> = Target::all()
        .map(|t| (t, Plain::new(c, base, field, t)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&hostile(), |v| {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let chosen: Vec<_> = if rotate {
                vec![&plain[i % plain.len()]]
            } else {
                plain.iter().collect()
            };
            for (target, plain) in chosen {
                if let Err(e) = check_against(c, base, field, &v, *target, plain) {
                    return Err(TestCaseError::fail(e));
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn metadata_never_changes_an_output() {
    run(48, false);
}

/// 10,000 values per field, spread over the targets: run by `scripts/conformance`.
#[test]
#[ignore = "10,000 values per field: scripts/conformance runs it once, with --ignored"]
fn metadata_never_changes_an_output_10000_per_field() {
    run(10_000, true);
}

/// The numbered defects of issue 13, each as its attacker wrote it.
mod regressions {
    use super::*;

    fn compile(c: &Compiler, rule: &Rule, target: Target) -> rmmc::Rendered {
        c.compile_file(rule, Path::new(RULE_FILE), target, None)
            .unwrap()
    }

    #[test]
    fn an_exclusion_name_cannot_end_its_kql_comment() {
        let c = Compiler::embedded().unwrap();
        let base = base_rule(&c);
        for name in [
            "a\n| take 0 //",
            "a\r| take 0 //",
            "a\u{2028}| take 0",
            "a\u{2029}| take 0",
        ] {
            let rule = with_value(&base, Field::ExclusionName, name);
            let kql = compile(&c, &rule, Target::Kql).query;
            assert!(
                !kql.lines()
                    .any(|l| l.contains("take 0") && !l.starts_with("//")),
                "{name:?}:\n{kql}"
            );
            assert!(!kql.contains(['\r', '\u{2028}', '\u{2029}']), "{kql}");
        }
    }

    #[test]
    fn a_line_separator_cannot_replace_the_sentinel_query() {
        let c = Compiler::embedded().unwrap();
        let base = base_rule(&c);
        let plain = compile(&c, &base, Target::Kql);
        for field in [
            Field::ExclusionName,
            Field::Description,
            Field::Name,
            Field::Reference,
        ] {
            let rule = with_value(
                &base,
                field,
                "x\u{2028}query: DeviceEvents | take 1\u{2028}y",
            );
            let kql = compile(&c, &rule, Target::Kql);
            let yaml = &kql
                .files
                .iter()
                .find(|(p, _)| p.extension().unwrap() == "yaml")
                .unwrap()
                .1;
            let doc: Yaml = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
            assert!(
                !doc["query"].as_str().unwrap().contains("take 1\n"),
                "{yaml}"
            );
            assert_eq!(
                doc["query"]
                    .as_str()
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with("//"))
                    .collect::<Vec<_>>(),
                plain
                    .query
                    .lines()
                    .filter(|l| !l.starts_with("//"))
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn yaml_outputs_carry_c1_del_and_noncharacters() {
        let c = Compiler::embedded().unwrap();
        let base = base_rule(&c);
        for v in ["a\u{fffe}b", "a\u{7f}b", "a\u{80}b\u{9f}", "r\u{2028}s"] {
            for field in [Field::Description, Field::Reference, Field::Name] {
                let rule = with_value(&base, field, v);
                for target in [Target::Kql, Target::Sigma] {
                    for (p, text) in compile(&c, &rule, target).files {
                        if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                            for doc in serde_yaml::Deserializer::from_str(&text) {
                                Yaml::deserialize(doc)
                                    .unwrap_or_else(|e| panic!("{v:?}: {e}\n{text}"));
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_sigma_value_keeps_the_space_before_a_line_separator() {
        let c = Compiler::embedded().unwrap();
        let text = std::fs::read_to_string(BASE)
            .unwrap()
            .replace("  has: netsupport", "  contains: \"x \\u2028y\"");
        let rule = c.load_rule(BASE, &text).unwrap().rule;
        let sigma = compile(&c, &rule, Target::Sigma);
        let doc = serde_yaml::Deserializer::from_str(&sigma.files[0].1)
            .next()
            .unwrap();
        let doc: Yaml = Yaml::deserialize(doc).unwrap();
        let selection = doc["detection"]["selection"].as_mapping().unwrap();
        let value = selection.values().next().unwrap();
        let value = value.as_str().unwrap();
        assert!(
            value.contains("x \u{2028}y")
                || value.contains("x \\u2028y")
                || value.contains("[Xx] \u{2028}[Yy]"),
            "{value:?}"
        );
        assert!(!value.contains("x\u{2028}y"), "{value:?}");
    }

    #[test]
    fn a_description_ending_in_a_backslash_keeps_the_search() {
        let c = Compiler::embedded().unwrap();
        let base = base_rule(&c);
        let mut rule = with_value(&base, Field::Description, "Matches C:\\Tools\\");
        rule.meta.references.clear();
        let spl = compile(&c, &rule, Target::Spl);
        let conf = &spl
            .files
            .iter()
            .find(|(p, _)| p.extension().unwrap() == "conf")
            .unwrap()
            .1;
        let (stanzas, _) = read_conf(conf).unwrap();
        let keys: Vec<&str> = stanzas[0].1.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"search"), "{conf}");
        assert_eq!(
            stanzas[0].1[0],
            ("description".into(), "Matches C:\\Tools\\".into())
        );
    }

    #[test]
    fn exclusions_that_sanitize_alike_keep_their_own_sigma_filters() {
        let c = Compiler::embedded().unwrap();
        let mut rule = base_rule(&c);
        let names = ["a b", "a_b", "\u{2028}", "a_b_2", "a b"];
        for (x, name) in rule.exclusions.iter_mut().zip(names) {
            x.name = name.to_string();
        }
        let sigma = compile(&c, &rule, Target::Sigma);
        let doc = serde_yaml::Deserializer::from_str(&sigma.files[0].1)
            .next()
            .unwrap();
        let doc: Yaml = Yaml::deserialize(doc).unwrap();
        let filters = doc["detection"]
            .as_mapping()
            .unwrap()
            .keys()
            .filter(|k| k.as_str().unwrap().starts_with("filter_"))
            .count();
        assert_eq!(filters, rule.exclusions.len(), "{}", sigma.files[0].1);
    }

    #[test]
    fn a_rule_file_name_cannot_inject_into_generated_by_comments() {
        let c = Compiler::embedded().unwrap();
        let base = base_rule(&c);
        let file = Path::new("rules/x\n| take 0 //\u{2028}y.yaml");
        for target in Target::all() {
            let r = c.compile_file(&base, file, target, None).unwrap();
            for (_, text) in &r.files {
                assert!(
                    !text.lines().any(|l| l.starts_with("| take 0")),
                    "{target}:\n{text}"
                );
            }
            assert!(
                !r.query.lines().any(|l| l.starts_with("| take 0")),
                "{}",
                r.query
            );
        }
    }
}

/// Paths and files as a user (or an attacker) hands them to the command line.
mod paths {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    fn rmmc(args: &[&str], cwd: &Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rmmc"))
            .env_remove("RMMC_BLESS")
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("rmmc runs")
    }

    fn text(o: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    fn workspace(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rmmc-hardening-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rules/netsupport")).unwrap();
        std::fs::copy(
            "rules/netsupport/filesig.yaml",
            dir.join("rules/netsupport/filesig.yaml"),
        )
        .unwrap();
        dir
    }

    #[test]
    fn the_same_file_twice_is_one_rule() {
        let ws = workspace("twice");
        let o = rmmc(
            &[
                "check",
                "rules/netsupport/filesig.yaml",
                "./rules/netsupport/filesig.yaml",
                "rules",
            ],
            &ws,
        );
        assert!(o.status.success(), "{}", text(&o));
        assert!(!text(&o).contains("is also used by"), "{}", text(&o));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_under_rules_is_an_error_not_a_hang() {
        let ws = workspace("loop");
        std::os::unix::fs::symlink("..", ws.join("rules/netsupport/up")).unwrap();
        let started = std::time::Instant::now();
        let o = rmmc(&["check", "rules"], &ws);
        assert!(
            started.elapsed().as_secs() < 30,
            "took {:?}",
            started.elapsed()
        );
        assert!(!o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("symbolic link loop"), "{}", text(&o));
        assert!(text(&o).contains("rules/netsupport/up"), "{}", text(&o));
    }

    #[test]
    fn a_write_failure_says_cannot_write() {
        let ws = workspace("write");
        // `out` is a file: no folder can be made in it.
        std::fs::write(ws.join("out"), "not a folder").unwrap();
        let o = rmmc(&["build", "--target", "kql", "rules"], &ws);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("cannot write"), "{}", text(&o));
        assert!(!text(&o).contains("cannot read"), "{}", text(&o));
    }

    /// Rule text with another id and name, from the NetSupport file-signature rule.
    fn variant(id: &str, name: &str) -> String {
        std::fs::read_to_string("rules/netsupport/filesig.yaml")
            .unwrap()
            .lines()
            .map(|l| {
                if l.starts_with("id:") {
                    format!("id: {id}")
                } else if l.starts_with("name:") {
                    format!("name: {name:?}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    #[test]
    fn two_rules_that_become_one_stanza_are_an_error_naming_both() {
        let ws = workspace("stanza");
        let dir = ws.join("rules/netsupport");
        std::fs::write(
            dir.join("a.yaml"),
            variant("11111111-1111-4111-8111-111111111111", "Same name"),
        )
        .unwrap();
        std::fs::write(
            dir.join("b.yaml"),
            variant("22222222-2222-4222-8222-222222222222", "[Same name]"),
        )
        .unwrap();
        let o = rmmc(&["check", "rules"], &ws);
        let t = text(&o);
        assert!(!o.status.success(), "{t}");
        assert!(t.contains("savedsearches.conf stanza `Same name`"), "{t}");
        assert!(
            t.contains("rules/netsupport/a.yaml") && t.contains("rules/netsupport/b.yaml"),
            "{t}"
        );
    }

    #[test]
    fn two_rules_of_one_tool_and_source_have_distinct_sigma_names() {
        let ws = workspace("sigma-name");
        std::fs::write(
            ws.join("rules/netsupport/second.yaml"),
            variant("33333333-3333-4333-8333-333333333333", "Second rule"),
        )
        .unwrap();
        let o = rmmc(&["build", "--target", "sigma", "rules"], &ws);
        assert!(o.status.success(), "{}", text(&o));
        let name = |f: &str| {
            std::fs::read_to_string(ws.join("out/sigma/netsupport").join(f))
                .unwrap()
                .lines()
                .find(|l| l.starts_with("name: "))
                .unwrap()
                .to_string()
        };
        assert_ne!(
            name("win_file_signature_rmm_netsupport.yml"),
            name("win_file_signature_rmm_netsupport_second.yml")
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_rule() {
        let c = rmmc::Compiler::embedded().unwrap();
        let text = std::fs::read_to_string("rules/netsupport/filesig.yaml").unwrap();
        let parsed = c.load_rule("bom.yaml", &format!("\u{feff}{text}")).unwrap();
        assert_eq!(parsed.rule, c.load_rule("plain.yaml", &text).unwrap().rule);
    }
}
