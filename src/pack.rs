//! Pack writing: rule discovery, compiling a rule set for the chosen targets in
//! memory, writing `out/<target>/` atomically, and `--check` against what is there.

use crate::backends::Backends;
use crate::error::{Error, ErrorKind, Errors, Result};
use crate::lower::{Fidelity, Target, lower, output_stem};
use crate::parse::{Parsed, parse_rule};
use crate::render::{Rendered, Renderer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A rule file and where its pack files go (`netsupport/filesig`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleSource {
    pub path: PathBuf,
    pub stem: PathBuf,
}

/// Is this a rule file (and not a fixture, expectation or other YAML beside rules)?
pub fn is_rule_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    (name.ends_with(".yaml") || name.ends_with(".yml"))
        && !name.ends_with(".fixtures.yaml")
        && !name.starts_with('.')
}

/// The rules named by files, folders (searched recursively) and glob patterns.
pub fn discover(inputs: &[String]) -> Result<Vec<RuleSource>> {
    let mut found: Vec<RuleSource> = Vec::new();
    for input in inputs {
        let path = Path::new(input);
        if path.is_dir() {
            let pattern = format!("{}/**/*", input.trim_end_matches('/'));
            for p in glob_paths(&pattern)? {
                if p.is_file() && is_rule_file(&p) {
                    let stem = output_stem(&p, path);
                    found.push(RuleSource { path: p, stem });
                }
            }
        } else if path.is_file() {
            found.push(RuleSource {
                stem: stem_for_file(path),
                path: path.to_path_buf(),
            });
        } else if input.contains(['*', '?', '[']) {
            let matches: Vec<PathBuf> = glob_paths(input)?
                .into_iter()
                .filter(|p| p.is_file() && is_rule_file(p))
                .collect();
            for p in matches {
                found.push(RuleSource {
                    stem: stem_for_file(&p),
                    path: p,
                });
            }
        } else {
            return Err(Error::new(
                ErrorKind::Io,
                format!("cannot read `{input}`: no such file or directory"),
            )
            .in_file(path));
        }
    }
    found.sort();
    found.dedup();
    if found.is_empty() {
        return Err(Error::new(
            ErrorKind::EmptyRuleSet,
            format!(
                "no rule files (*.yaml, *.yml) in {}",
                inputs
                    .iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(found)
}

fn glob_paths(pattern: &str) -> Result<Vec<PathBuf>> {
    let paths = glob::glob(pattern)
        .map_err(|e| Error::new(ErrorKind::Io, format!("bad glob pattern `{pattern}`: {e}")))?;
    let mut out = Vec::new();
    for p in paths {
        out.push(p.map_err(|e| Error::io(e.path(), std::io::Error::other(e.to_string())))?);
    }
    Ok(out)
}

/// A file under a `rules` folder keeps its path below it, so building one file
/// writes where building the whole folder would.
fn stem_for_file(path: &Path) -> PathBuf {
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    for ancestor in abs.ancestors().skip(1) {
        if ancestor.file_name().is_some_and(|n| n == "rules") {
            return output_stem(&abs, ancestor);
        }
    }
    PathBuf::from(path.file_stem().unwrap_or_default())
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub targets: Vec<Target>,
    pub profile: Option<String>,
    pub strict: bool,
}

/// A compiled rule set: every rule × target in memory, not yet written.
#[derive(Debug, Clone, Default)]
pub struct Build {
    pub rendered: Vec<Rendered>,
    /// Parser and lowering warnings, per rule file.
    pub warnings: Vec<(PathBuf, String)>,
    /// Every file of the packs, relative to the output root (`kql/netsupport/filesig.kql`).
    pub files: BTreeMap<PathBuf, String>,
    pub targets: Vec<Target>,
}

/// Read and parse every rule, reporting every bad one.
pub fn load_rules(
    sources: &[RuleSource],
    backends: &Backends,
) -> Result<Vec<(RuleSource, Parsed)>, Errors> {
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    for s in sources {
        match std::fs::read_to_string(&s.path)
            .map_err(|e| Error::io(&s.path, e))
            .and_then(|text| parse_rule(&s.path, &text, backends))
        {
            Ok(parsed) => rules.push((s.clone(), parsed)),
            Err(e) => errors.push(e),
        }
    }
    let mut ids: BTreeMap<&str, &Path> = BTreeMap::new();
    for (s, p) in &rules {
        if let Some(first) = ids.insert(&p.rule.meta.id, &s.path) {
            errors.push(
                Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "rule id {} is also used by {}",
                        p.rule.meta.id,
                        first.display()
                    ),
                )
                .in_file(&s.path),
            );
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(Errors(errors))
    }
}

/// Compile every rule for every target in memory.
pub fn build(
    sources: &[RuleSource],
    backends: &Backends,
    options: &BuildOptions,
) -> Result<Build, Errors> {
    let rules = load_rules(sources, backends)?;
    let renderer = Renderer::new(backends)?;
    let mut errors = Vec::new();
    let mut out = Build {
        targets: options.targets.clone(),
        ..Build::default()
    };
    let mut profiles = Vec::new();
    for &target in &options.targets {
        match backends.profile(target, options.profile.as_deref()) {
            Ok(p) => profiles.push((target, p)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(Errors(errors));
    }
    for (source, parsed) in &rules {
        for w in &parsed.warnings {
            out.warnings.push((source.path.clone(), w.clone()));
        }
        let mut exclusion_warnings_done = false;
        for (target, profile) in &profiles {
            let result = lower(&parsed.rule, &source.path, *target, profile)
                .and_then(|l| renderer.render_rule(&parsed.rule, &l, &source.path, &source.stem));
            match result {
                Ok(r) => {
                    if !exclusion_warnings_done {
                        for w in &r.warnings {
                            out.warnings.push((source.path.clone(), w.clone()));
                        }
                        exclusion_warnings_done = true;
                    }
                    if options.strict
                        && let Fidelity::Approximate(list) = &r.fidelity
                    {
                        for a in list {
                            errors.push(
                                Error::new(
                                    ErrorKind::Approximation,
                                    format!(
                                        "--strict: {target} can only approximate {}: {}",
                                        a.construct, a.reason
                                    ),
                                )
                                .in_file(&source.path),
                            );
                        }
                    }
                    for (rel, text) in &r.files {
                        let key = Path::new(target.as_str()).join(rel);
                        if out.files.insert(key.clone(), text.clone()).is_some() {
                            errors.push(
                                Error::new(
                                    ErrorKind::Conflict,
                                    format!("two rules write {}", key.display()),
                                )
                                .in_file(&source.path),
                            );
                        }
                    }
                    out.rendered.push(r);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    if !errors.is_empty() {
        return Err(Errors(errors));
    }
    for &target in &options.targets {
        add_index_files(&mut out, target, &renderer).map_err(|e| Errors(vec![e]))?;
    }
    Ok(out)
}

/// Per-target files that gather all rules: the Splunk app's files, rules.ndjson and
/// the fidelity table.
fn add_index_files(build: &mut Build, target: Target, renderer: &Renderer) -> Result<()> {
    let mut rendered: Vec<&Rendered> = build
        .rendered
        .iter()
        .filter(|r| r.target == target)
        .collect();
    rendered.sort_by(|a, b| a.stem.cmp(&b.stem));
    let gather = |ext: &str| -> String {
        rendered
            .iter()
            .filter_map(|r| {
                r.files
                    .iter()
                    .find(|(p, _)| p.extension().is_some_and(|e| e == ext))
            })
            .map(|(_, t)| t.trim_end().to_string() + "\n")
            .collect::<Vec<_>>()
            .join(if ext == "conf" { "\n" } else { "" })
    };
    match target {
        Target::Spl => {
            let conf = gather("conf");
            let app = splunk_app_files(&rendered, conf, renderer)?;
            for (rel, text) in app {
                build.files.insert(Path::new("spl").join(rel), text);
            }
        }
        Target::Eql => {
            let text = gather("ndjson");
            build
                .files
                .insert(Path::new("eql").join("rules.ndjson"), text);
        }
        Target::Kql | Target::Sigma => {}
    }
    let mut table = format!(
        "# {target} fidelity\n\nGenerated by rmmc. One row per rule: `exact`, or each construct {target} can only approximate and why.\n\n| rule | file | verdict | approximations |\n|---|---|---|---|\n"
    );
    for r in &rendered {
        let (verdict, detail) = match &r.fidelity {
            Fidelity::Exact => ("exact".to_string(), String::new()),
            Fidelity::Approximate(list) => (
                "approximate".to_string(),
                list.iter()
                    .map(|a| format!("{}: {}", a.construct, a.reason))
                    .collect::<Vec<_>>()
                    .join("<br>"),
            ),
        };
        table.push_str(&format!(
            "| {} | {} | {verdict} | {} |\n",
            r.rule_name.replace('|', "\\|"),
            r.stem.display(),
            detail.replace('|', "\\|")
        ));
    }
    build
        .files
        .insert(Path::new(target.as_str()).join("FIDELITY.md"), table);
    Ok(())
}

/// The Splunk app `out/spl/` is: `default/savedsearches.conf` (every rule's stanza),
/// `default/macros.conf` (the data-source macros the searches start with and each
/// rule's `_filter` macro they end with), `default/app.conf`, `metadata/default.meta`
/// and `README.md`. Two rules whose stanzas or filter macros would share a name, or two
/// data sources defining one macro differently, are an error: Splunk would silently
/// merge them.
fn splunk_app_files(
    rendered: &[&Rendered],
    savedsearches: String,
    renderer: &Renderer,
) -> Result<Vec<(&'static str, String)>> {
    let mut stanzas: BTreeMap<String, &Path> = BTreeMap::new();
    let mut sources: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut rules = Vec::new();
    let mut profile = String::new();
    for r in rendered {
        let c = &r.context;
        let text = |key: &str| c[key].as_str().unwrap_or_default().to_string();
        let stanza = crate::lower::one_line(&r.rule_name).replace(['[', ']'], "");
        let filter = text("filter_macro");
        for name in [format!("stanza [{stanza}]"), format!("macro [{filter}]")] {
            if let Some(first) = stanzas.insert(name.clone(), &r.source_file) {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "the Splunk app would have two {name}: rename this rule or {}",
                        first.display()
                    ),
                )
                .in_file(&r.source_file));
            }
        }
        let (macro_name, definition) = (text("source_macro"), text("source_definition"));
        match sources.get(&macro_name) {
            Some(s) if s["definition"] != definition.as_str() => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("data-source macro `{macro_name}` is defined two ways by the profile: `{}` and `{definition}`", s["definition"].as_str().unwrap_or_default()),
                )
                .in_file(&r.source_file));
            }
            Some(_) => {}
            None => {
                let description = format!(
                    "Where the {} events are (profile {}). Add your index here.",
                    c["rule"]["source"].as_str().unwrap_or_default(),
                    text("profile")
                );
                sources.insert(
                    macro_name.clone(),
                    serde_json::json!({"macro": macro_name, "definition": definition, "description": description}),
                );
            }
        }
        profile = text("profile");
        rules.push(serde_json::json!({
            "name": r.rule_name,
            "stem": r.stem.to_string_lossy().replace('\\', "/"),
            "filter_macro": filter,
            "severity": c["rule"]["severity"],
            "window": c["window"],
        }));
    }
    let context = serde_json::json!({
        "app": {
            "id": SPLUNK_APP_ID,
            "version": env!("CARGO_PKG_VERSION"),
            "label": "RMM abuse detections (rmmc)",
            "description": "Scheduled alerts for abused remote monitoring and management tools (MITRE ATT&CK T1219), compiled by rmmc from one rule set shared with KQL, EQL and Sigma.",
        },
        "profile": profile,
        "sources": sources.into_values().collect::<Vec<_>>(),
        "rules": rules,
    });
    let mut files = vec![("default/savedsearches.conf", savedsearches)];
    for (path, template) in [
        ("default/macros.conf", "spl/macros.conf.tera"),
        ("default/app.conf", "spl/app.conf.tera"),
        ("metadata/default.meta", "spl/default.meta.tera"),
        ("README.md", "spl/README.md.tera"),
    ] {
        files.push((path, renderer.render(template, &context)?));
    }
    Ok(files)
}

/// The id (and installed folder name) of the Splunk app in `out/spl/`.
pub const SPLUNK_APP_ID: &str = "rmmc_rmm_detections";

/// Write the packs under `out_dir`, replacing each target's folder whole. Every file
/// is first written to a staging folder, so a failure leaves the old packs in place.
pub fn write(build: &Build, out_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let pid = std::process::id();
    let mut staged = Vec::new();
    for &target in &build.targets {
        let staging = out_dir.join(format!(".rmmc-staging-{target}-{pid}"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        }
        let result = (|| {
            for (rel, text) in &build.files {
                let Ok(inner) = rel.strip_prefix(target.as_str()) else {
                    continue;
                };
                let dest = staging.join(inner);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                std::fs::write(&dest, text).map_err(|e| Error::io(&dest, e))?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&staging);
            for (s, _) in staged {
                let _ = std::fs::remove_dir_all::<PathBuf>(s);
            }
            return Err(e);
        }
        staged.push((staging, target));
    }
    for (staging, target) in staged {
        let dest = out_dir.join(target.as_str());
        let old = out_dir.join(format!(".rmmc-old-{target}-{pid}"));
        if dest.exists() {
            std::fs::rename(&dest, &old).map_err(|e| Error::io(&dest, e))?;
        }
        std::fs::rename(&staging, &dest).map_err(|e| Error::io(&staging, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
    }
    Ok(())
}

/// One difference between the packs a build would write and what `out/` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    Missing(PathBuf),
    Changed { path: PathBuf, diff: String },
    Extra(PathBuf),
}

/// Compare a build with `out_dir`, file by file, with unified diffs.
pub fn check(build: &Build, out_dir: &Path) -> Result<Vec<Stale>> {
    let mut stale = Vec::new();
    for (rel, text) in &build.files {
        let path = out_dir.join(rel);
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing == *text => {}
            Ok(existing) => stale.push(Stale::Changed {
                diff: unified_diff(&existing, text, &path),
                path,
            }),
            Err(_) => stale.push(Stale::Missing(path)),
        }
    }
    for &target in &build.targets {
        let dir = out_dir.join(target.as_str());
        if !dir.is_dir() {
            continue;
        }
        let pattern = format!("{}/**/*", dir.display());
        for p in glob_paths(&pattern)? {
            if p.is_file() {
                let rel = p.strip_prefix(out_dir).expect("under out").to_path_buf();
                if !build.files.contains_key(&rel) {
                    stale.push(Stale::Extra(p));
                }
            }
        }
    }
    Ok(stale)
}

/// A unified diff from `old` to `new`, labelled with the path.
pub fn unified_diff(old: &str, new: &str, path: &Path) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{} (in out/)", path.display()),
            &format!("{} (rebuilt)", path.display()),
        )
        .to_string()
}
