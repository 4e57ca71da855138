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
        add_index_files(&mut out, &renderer, target)?;
    }
    Ok(out)
}

/// Per-target files that gather all rules (the registry's gathered files, e.g.
/// savedsearches.conf and rules.ndjson) and the fidelity table.
fn add_index_files(build: &mut Build, renderer: &Renderer, target: Target) -> Result<()> {
    let mut rendered: Vec<&Rendered> = build
        .rendered
        .iter()
        .filter(|r| r.target == target)
        .collect();
    rendered.sort_by(|a, b| a.stem.cmp(&b.stem));
    for (rel, text) in renderer.render_gathered(target, &rendered)? {
        build
            .files
            .insert(Path::new(target.as_str()).join(rel), text);
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
