//! Pack writing: rule discovery, compiling a rule set for the chosen targets rule by
//! rule into a [`Sink`] (memory, a staging folder, or nowhere), replacing
//! `out/<target>/` atomically, and `--check` against what is there.

mod sink;
mod swap;

pub use sink::{DirSink, DiscardSink, MemorySink, Sink};

use crate::backends::Backends;
use crate::error::{Error, ErrorKind, Errors, Result};
use crate::ir::Rule;
use crate::lower::{Fidelity, Gathered, Target, lower, output_stem};
use crate::parse::{Parsed, parse_rule, read_rule_text};
use crate::render::{Rendered, Renderer};
use sink::cannot_write;
use std::collections::{BTreeMap, HashMap};
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
            for p in walk_files(path)? {
                if is_rule_file(&p) {
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
    // The same file named twice (`rules/a.yaml ./rules/a.yaml`, a folder and a file
    // in it, a symlink) is one rule, not a rule whose id is used by itself.
    let mut seen = std::collections::BTreeSet::new();
    found.retain(|s| seen.insert(s.path.canonicalize().unwrap_or_else(|_| s.path.clone())));
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

/// Every file below `dir`, following symbolic links but never into a folder that
/// contains the link (a loop), which is an error naming the link.
fn walk_files(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, ancestors: &mut Vec<PathBuf>, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
            .collect::<Result<_>>()?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                let real = p.canonicalize().map_err(|e| Error::io(&p, e))?;
                if ancestors.contains(&real) {
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!(
                            "symbolic link loop: `{}` leads back to `{}`, which contains it",
                            p.display(),
                            real.display()
                        ),
                    )
                    .in_file(&p));
                }
                ancestors.push(real);
                walk(&p, ancestors, out)?;
                ancestors.pop();
            } else if p.is_file() {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut ancestors = vec![dir.canonicalize().map_err(|e| Error::io(dir, e))?];
    let mut out = Vec::new();
    walk(dir, &mut ancestors, &mut out)?;
    Ok(out)
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
    /// The targets to compile for, in registry order.
    pub targets: Vec<Target>,
    /// The field-map profile; `None` is each target's default.
    pub profile: Option<String>,
    /// Fail on any approximation instead of reporting it.
    pub strict: bool,
}

/// A compiled rule set held in memory: every rule × target, not yet written. Made by
/// [`build`] for libraries and tests; `rmmc build` streams instead ([`write_packs`]).
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// Every rule × target, in rule-stem order.
    pub rendered: Vec<Rendered>,
    /// Parser and lowering warnings, per rule file.
    pub warnings: Vec<(PathBuf, String)>,
    /// Every file of the packs, relative to the output root (`kql/netsupport/filesig.kql`).
    pub files: BTreeMap<PathBuf, String>,
    /// The targets built.
    pub targets: Vec<Target>,
}

/// What a streaming build tells its caller about one rule, as soon as the rule is
/// compiled for every target: enough to report on it, nothing that must be kept.
pub struct RuleReport<'a> {
    /// The rule file.
    pub source: &'a RuleSource,
    /// Parser warnings and the rule's target-independent lowering warnings.
    pub warnings: &'a [String],
    /// The rule compiled for each target (query, files and verdict).
    pub rendered: &'a [Rendered],
}

/// Totals of a streaming build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rules compiled.
    pub rules: usize,
    /// Files handed to the sink (gathered files count once).
    pub files: usize,
}

/// Read and parse every rule, reporting every bad one.
pub fn load_rules(
    sources: &[RuleSource],
    backends: &Backends,
) -> Result<Vec<(RuleSource, Parsed)>, Errors> {
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    let mut keys = ConflictKeys::default();
    for s in sources {
        match read_rule(s, backends) {
            Ok(parsed) => {
                if let Err(e) = keys.claim(s, &parsed) {
                    errors.push(e);
                }
                rules.push((s.clone(), parsed));
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(Errors(errors))
    }
}

fn read_rule(source: &RuleSource, backends: &Backends) -> Result<Parsed> {
    let text = read_rule_text(&source.path)?;
    parse_rule(&source.path, &text, backends)
}

/// The only things a streaming build keeps per rule: its id and output stem, to find
/// two rules that would clash.
#[derive(Default)]
struct ConflictKeys {
    ids: HashMap<String, PathBuf>,
    stems: HashMap<PathBuf, PathBuf>,
}

impl ConflictKeys {
    fn claim(&mut self, source: &RuleSource, parsed: &Parsed) -> Result<()> {
        let conflict =
            |message: String| Err(Error::new(ErrorKind::Conflict, message).in_file(&source.path));
        if let Some(first) = self.stems.get(&source.stem) {
            return conflict(format!(
                "{} and {} both write the pack files `{}.*`: rename one of them",
                first.display(),
                source.path.display(),
                source.stem.display()
            ));
        }
        if let Some(first) = self.ids.get(&parsed.rule.meta.id) {
            return conflict(format!(
                "rule id {} is also used by {}",
                parsed.rule.meta.id,
                first.display()
            ));
        }
        self.stems.insert(source.stem.clone(), source.path.clone());
        self.ids
            .insert(parsed.rule.meta.id.clone(), source.path.clone());
        Ok(())
    }
}

/// Compile every rule for every target in memory (for libraries and tests; a large
/// rule set is better streamed with [`stream`] or [`write_packs`]).
pub fn build(
    sources: &[RuleSource],
    backends: &Backends,
    options: &BuildOptions,
) -> Result<Build, Errors> {
    let mut sink = MemorySink::default();
    let mut out = Build {
        targets: options.targets.clone(),
        ..Build::default()
    };
    stream(sources, backends, options, &mut sink, |report| {
        for w in report.warnings {
            out.warnings.push((report.source.path.clone(), w.clone()));
        }
        out.rendered.extend(report.rendered.iter().cloned());
    })?;
    out.files = sink.files;
    Ok(out)
}

/// Compile, render and hand over every rule's files to `sink` one rule at a time, in
/// rule-stem order, calling `on_rule` after each rule. Gathered files
/// (savedsearches.conf, rules.ndjson, FIDELITY.md) are appended to as rules arrive.
/// Memory stays bounded by one rule plus each rule's id and stem.
///
/// Every rule is compiled even after an error, so all errors are reported together;
/// the caller discards what the sink received when this returns errors.
pub fn stream(
    sources: &[RuleSource],
    backends: &Backends,
    options: &BuildOptions,
    sink: &mut dyn Sink,
    mut on_rule: impl FnMut(&RuleReport),
) -> Result<Summary, Errors> {
    let mut errors = Vec::new();
    let mut profiles = Vec::new();
    for &target in &options.targets {
        match backends.profile_choice(target, options.profile.as_deref()) {
            Ok(p) => profiles.push((target, p)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(Errors(errors));
    }
    let renderer = Renderer::new(backends)?;
    let mut ordered: Vec<&RuleSource> = sources.iter().collect();
    ordered.sort_by(|a, b| (&a.stem, &a.path).cmp(&(&b.stem, &b.path)));

    let mut summary = Summary::default();
    let mut gathered = Gatherer::new(&options.targets);
    gathered.start(sink)?;
    // Gathered files rendered from the whole rule set need every rule's context; only
    // targets that declare one keep their rules (the others stream in constant memory).
    let mut kept: BTreeMap<Target, Vec<Rendered>> = BTreeMap::new();
    let mut keys = ConflictKeys::default();
    let mut rendered = Vec::with_capacity(profiles.len());
    for source in ordered {
        let parsed = match read_rule(source, backends) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Err(e) = keys.claim(source, &parsed) {
            errors.push(e);
            continue;
        }
        let mut warnings = parsed.warnings.clone();
        rendered.clear();
        for (target, profile) in &profiles {
            let result = lower(&parsed.rule, &source.path, *target, profile)
                .and_then(|l| renderer.render_rule(&parsed.rule, &l, &source.path, &source.stem));
            match result {
                Ok(r) => {
                    if rendered.is_empty() {
                        warnings.extend(r.warnings.iter().cloned());
                    }
                    if options.strict {
                        errors.extend(strict_errors(&parsed.rule, &r, *target, &source.path));
                    }
                    rendered.push(r);
                }
                Err(e) => errors.push(e),
            }
        }
        if rendered.len() != profiles.len() {
            continue;
        }
        for r in &rendered {
            if errors.is_empty() {
                for (rel, text) in &r.files {
                    sink.write(&Path::new(r.target.as_str()).join(rel), text)?;
                    summary.files += 1;
                }
                gathered.add(sink, r)?;
            }
            if !r.target.spec().gathered.iter().all(is_streamed) {
                kept.entry(r.target).or_default().push(r.clone());
            }
        }
        summary.rules += 1;
        on_rule(&RuleReport {
            source,
            warnings: &warnings,
            rendered: &rendered,
        });
    }
    if !errors.is_empty() {
        return Err(Errors(errors));
    }
    for (target, rules) in &kept {
        let refs: Vec<&Rendered> = rules.iter().collect();
        for (rel, text) in renderer.render_gathered_templates(*target, &refs)? {
            sink.write(&Path::new(target.as_str()).join(rel), &text)?;
        }
    }
    summary.files += gathered.count();
    sink.finish()?;
    Ok(summary)
}

fn is_streamed(g: &Gathered) -> bool {
    matches!(g, Gathered::Concat { .. })
}

/// `--strict`: every approximation the rule does not acknowledge is an error.
fn strict_errors(rule: &Rule, r: &Rendered, target: Target, rule_file: &Path) -> Vec<Error> {
    match &r.fidelity {
        Fidelity::Exact => Vec::new(),
        Fidelity::Approximate(list) => list
            .iter()
            .filter(|a| !crate::lint::acknowledges_approximation(rule, target, a))
            .map(|a| {
                Error::new(
                    ErrorKind::Approximation,
                    format!(
                        "--strict: {target} can only approximate {}: {}",
                        a.construct, a.reason
                    ),
                )
                .in_file(rule_file)
            })
            .collect(),
    }
}

/// The files that gather all rules of each target and are written by appending, in
/// rule-stem order: the registry's `Concat` files and `FIDELITY.md`.
struct Gatherer {
    targets: Vec<Target>,
    /// (target, gathered path) that already have a rule, so the next one gets the separator.
    started: std::collections::HashSet<(Target, &'static str)>,
}

impl Gatherer {
    fn new(targets: &[Target]) -> Gatherer {
        Gatherer {
            targets: targets.to_vec(),
            started: Default::default(),
        }
    }

    fn fidelity_path(target: Target) -> PathBuf {
        Path::new(target.as_str()).join("FIDELITY.md")
    }

    /// Create every gathered file (empty, or with its header), so a pack has them even
    /// when no rule contributes.
    fn start(&self, sink: &mut dyn Sink) -> Result<()> {
        for &target in &self.targets {
            for g in target.spec().gathered {
                if let Gathered::Concat { path, .. } = g {
                    sink.append(&Path::new(target.as_str()).join(path), "")?;
                }
            }
            sink.append(
                &Gatherer::fidelity_path(target),
                &format!(
                    "# {target} fidelity\n\nGenerated by rmmc. One row per rule: `exact`, or each construct {target} can only approximate and why.\n\n| rule | file | verdict | approximations |\n|---|---|---|---|\n"
                ),
            )?;
        }
        Ok(())
    }

    fn add(&mut self, sink: &mut dyn Sink, r: &Rendered) -> Result<()> {
        let target = r.target;
        for g in target.spec().gathered {
            let Gathered::Concat {
                path,
                extension,
                separator,
            } = g
            else {
                continue;
            };
            let wanted = crate::render::with_ext(&r.stem, extension);
            let Some((_, text)) = r.files.iter().find(|(p, _)| *p == wanted) else {
                continue;
            };
            let rel = Path::new(target.as_str()).join(path);
            if !self.started.insert((target, path)) {
                sink.append(&rel, separator)?;
            }
            sink.append(&rel, text.trim_end())?;
            sink.append(&rel, "\n")?;
        }
        sink.append(&Gatherer::fidelity_path(target), &fidelity_row(r))
    }

    fn count(&self) -> usize {
        self.targets
            .iter()
            .map(|t| 1 + t.spec().gathered.iter().filter(|g| is_streamed(g)).count())
            .sum()
    }
}

/// One row of FIDELITY.md.
fn fidelity_row(r: &Rendered) -> String {
    let (verdict, detail) = match &r.fidelity {
        Fidelity::Exact => ("exact", String::new()),
        Fidelity::Approximate(list) => (
            "approximate",
            list.iter()
                .map(|a| format!("{}: {}", a.construct, a.reason))
                .collect::<Vec<_>>()
                .join("<br>"),
        ),
    };
    format!(
        "| {} | {} | {verdict} | {} |\n",
        r.rule_name.replace('|', "\\|"),
        r.stem.display(),
        detail.replace('|', "\\|")
    )
}

/// Build the packs of the chosen targets into `out_dir`, streaming every file into a
/// staging folder and then replacing each `out_dir/<target>/` in one step
/// ([`swap`](self::swap)): on any error nothing in `out_dir` changes, and a build
/// killed at any moment leaves each target folder whole (old or new).
pub fn write_packs(
    sources: &[RuleSource],
    backends: &Backends,
    options: &BuildOptions,
    out_dir: &Path,
    on_rule: impl FnMut(&RuleReport),
) -> Result<Summary, Errors> {
    let created = !out_dir.exists();
    let lock = swap::lock(out_dir)?;
    let staging = swap::temporary(out_dir, swap::STAGING_PREFIX);
    let mut sink = DirSink::new(&staging);
    let result = stream(sources, backends, options, &mut sink, on_rule);
    let result = result.and_then(|summary| {
        for &target in &options.targets {
            let staged = staging.join(target.as_str());
            std::fs::create_dir_all(&staged).map_err(|e| cannot_write(&staged, e))?;
            swap::swap_in(&staged, &out_dir.join(target.as_str()))?;
        }
        Ok(summary)
    });
    let _ = std::fs::remove_dir_all(&staging);
    if result.is_err() && created {
        // A failed first build leaves no output folder behind, not even the lock.
        drop(lock);
        let _ = std::fs::remove_dir_all(out_dir);
    }
    result
}

/// Write an in-memory build under `out_dir`, replacing each target's folder whole,
/// as [`write_packs`] does.
pub fn write(build: &Build, out_dir: &Path) -> Result<()> {
    let _lock = swap::lock(out_dir)?;
    let staging = swap::temporary(out_dir, swap::STAGING_PREFIX);
    let mut sink = DirSink::new(&staging);
    let result = (|| {
        for (rel, text) in &build.files {
            sink.write(rel, text)?;
        }
        sink.finish()?;
        for &target in &build.targets {
            let staged = staging.join(target.as_str());
            std::fs::create_dir_all(&staged).map_err(|e| cannot_write(&staged, e))?;
            swap::swap_in(&staged, &out_dir.join(target.as_str()))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
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

/// Compare what a build of `sources` would write with `out_dir`, streaming: each
/// file is compared as it is produced (gathered files once complete), so memory stays
/// bounded as for [`write_packs`]. Only the chosen targets' folders are compared.
pub fn check_packs(
    sources: &[RuleSource],
    backends: &Backends,
    options: &BuildOptions,
    out_dir: &Path,
    on_rule: impl FnMut(&RuleReport),
) -> Result<Vec<Stale>, Errors> {
    let spill = std::env::temp_dir().join(
        swap::temporary(Path::new(""), ".rmmc-check-")
            .file_name()
            .expect("a file name"),
    );
    let mut sink = CompareSink {
        out_dir: out_dir.to_path_buf(),
        produced: Default::default(),
        stale: Vec::new(),
        spill: DirSink::new(&spill),
        spill_root: spill.clone(),
        spilled: Vec::new(),
    };
    let result = stream(sources, backends, options, &mut sink, on_rule);
    let _ = std::fs::remove_dir_all(&spill);
    result?;
    let mut stale = sink.stale;
    for &target in &options.targets {
        let dir = out_dir.join(target.as_str());
        if !dir.is_dir() {
            continue;
        }
        let pattern = format!("{}/**/*", dir.display());
        for p in glob_paths(&pattern)? {
            if p.is_file() {
                let rel = p.strip_prefix(out_dir).expect("under out").to_path_buf();
                if !sink.produced.contains(&rel) {
                    stale.push(Stale::Extra(p));
                }
            }
        }
    }
    Ok(stale)
}

/// Compares each file with the one in `out_dir` as it arrives; appended (gathered)
/// files are spilled to a temporary folder and compared when complete.
struct CompareSink {
    out_dir: PathBuf,
    produced: std::collections::HashSet<PathBuf>,
    stale: Vec<Stale>,
    spill: DirSink,
    spill_root: PathBuf,
    spilled: Vec<PathBuf>,
}

impl CompareSink {
    fn compare(&mut self, rel: &Path, text: &str) {
        self.produced.insert(rel.to_path_buf());
        let path = self.out_dir.join(rel);
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing == text => {}
            Ok(existing) => self.stale.push(Stale::Changed {
                diff: unified_diff(&existing, text, &path),
                path,
            }),
            Err(_) => self.stale.push(Stale::Missing(path)),
        }
    }
}

impl Sink for CompareSink {
    fn write(&mut self, rel: &Path, text: &str) -> Result<()> {
        self.compare(rel, text);
        Ok(())
    }

    fn append(&mut self, rel: &Path, text: &str) -> Result<()> {
        if !self.spilled.iter().any(|p| p == rel) {
            self.spilled.push(rel.to_path_buf());
        }
        self.spill.append(rel, text)
    }

    fn finish(&mut self) -> Result<()> {
        self.spill.finish()?;
        for rel in std::mem::take(&mut self.spilled) {
            let path = self.spill_root.join(&rel);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            self.compare(&rel, &text);
        }
        Ok(())
    }
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
