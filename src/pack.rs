//! Pack writing: rule discovery, compiling a rule set for the chosen targets rule by
//! rule into a [`Sink`] (memory, a staging folder, or nowhere), replacing
//! `out/<target>/` atomically, and `--check` against what is there.
//!
//! Building a rule folder in memory, for every registered target:
//!
//! ```
//! use rmmc::pack::{self, BuildOptions};
//! use rmmc::{Backends, Target};
//!
//! let dir = std::env::temp_dir().join(format!("rmmc-doc-pack-{}", std::process::id()));
//! std::fs::create_dir_all(dir.join("netsupport"))?;
//! let rule_text = "id: 6f1c7a52-0b7e-4d33-9a4e-1f0c2d3e4b5a
//! name: Example - NetSupport signer
//! description: Files signed by NetSupport.
//! tool: NetSupport
//! tactics: [CommandAndControl]
//! techniques: [T1219]
//! source: file_signature
//! window: 5d
//! detection:
//!   field: file.code_signature.subject_name
//!   has: netsupport
//! ";
//! std::fs::write(dir.join("netsupport/filesig.yaml"), rule_text)?;
//! let sources = pack::discover(&[dir.display().to_string()])?;
//! let options = BuildOptions { targets: Target::all().collect(), profile: None, strict: false };
//! let build = pack::build(&sources, &Backends::embedded()?, &options)?;
//! assert!(build.files.contains_key(std::path::Path::new("kql/netsupport/filesig.kql")));
//! assert!(build.files.contains_key(std::path::Path::new("spl/default/savedsearches.conf")));
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod conflicts;
mod sink;
mod swap;

pub use sink::{DirSink, DiscardSink, MemorySink, Sink};

use crate::backends::Backends;
use crate::compiler::Compiler;
use crate::error::{Error, ErrorKind, Errors, Remark, Result};
pub use crate::golden::unified_diff;
use crate::ir::Rule;
use crate::lower::{Fidelity, Gathered, Piece, Target};
use crate::parse::{Parsed, Warning, parse_rule, read_rule_text};
use crate::render::Rendered;
use conflicts::ConflictKeys;
use sink::cannot_write;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A rule file and where its pack files go (`netsupport/filesig`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleSource {
    /// The file, as the inputs named it (error messages use this).
    pub path: PathBuf,
    /// Where its pack files go, relative to `out/<target>/`, without extension. It
    /// depends only on the rule's place under its rules root, never on how the path
    /// was typed (`rules/x`, `./rules/x`, a glob, an absolute path).
    pub stem: PathBuf,
    /// The rule's name in generated headers: its path under the rules root, prefixed
    /// by the root's folder name (`rules/netsupport/filesig.yaml`), so building from
    /// another directory or with an absolute path changes no byte.
    pub name: PathBuf,
}

/// Where rules are looked for.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The rules root: a rule below it is placed by its path under it.
    pub root: PathBuf,
    /// Folders never read as rules (the output folder: `--out rules/gen` twice works).
    pub exclude: Vec<PathBuf>,
}

impl Default for Layout {
    fn default() -> Layout {
        Layout {
            root: PathBuf::from("rules"),
            exclude: Vec::new(),
        }
    }
}

/// The rules the inputs name, and whether they are whole rule sets.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// Every rule file, sorted, each once.
    pub sources: Vec<RuleSource>,
    /// Every input is a whole rules root (the root itself, or a folder outside it,
    /// which is a root of its own): a build replaces the target folders whole.
    /// Otherwise the inputs are a subset of the root.
    pub whole: bool,
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

/// The rules named by files, folders (searched recursively) and glob patterns, placed
/// under the default rules root `rules`.
pub fn discover(inputs: &[String]) -> Result<Vec<RuleSource>> {
    Ok(discover_in(inputs, &Layout::default())?.sources)
}

/// The rules named by files, folders (searched recursively; a link loop is an error,
/// not a hang) and glob patterns.
pub fn discover_in(inputs: &[String], layout: &Layout) -> Result<Discovery> {
    let root = Root::new(&layout.root);
    let exclude: Vec<PathBuf> = layout
        .exclude
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    let mut found: BTreeMap<PathBuf, RuleSource> = BTreeMap::new();
    let mut whole = true;
    // `key`: the file's canonical path, which finds one file named twice (a folder
    // walk knows it without asking the file system again).
    let mut add = |path: PathBuf, key: Option<PathBuf>, placed: (PathBuf, PathBuf)| {
        let key = key.unwrap_or_else(|| path.canonicalize().unwrap_or_else(|_| path.clone()));
        found.entry(key).or_insert(RuleSource {
            path,
            stem: placed.0,
            name: placed.1,
        });
    };
    for input in inputs {
        let path = Path::new(input);
        if path.is_dir() {
            let abs = path.canonicalize().map_err(|e| Error::io(path, e))?;
            // A folder outside the rules root is a root of its own.
            let base = match &root.abs {
                Some(r) if abs.starts_with(r) => {
                    whole &= abs == *r;
                    Root {
                        abs: Some(r.clone()),
                        label: root.label.clone(),
                    }
                }
                _ => Root {
                    label: PathBuf::from(abs.file_name().unwrap_or_default()),
                    abs: Some(abs.clone()),
                },
            };
            walk_files(path, &exclude, &mut |p, key| {
                if is_rule_file(&p) {
                    let placed = base.place(&p);
                    add(p, Some(key), placed);
                }
            })?;
        } else if path.is_file() {
            whole = false;
            add(path.to_path_buf(), None, root.place(path));
        } else if input.contains(['*', '?', '[']) {
            whole = false;
            for p in glob_paths(input)? {
                if p.is_file() && is_rule_file(&p) {
                    let placed = root.place(&p);
                    add(p, None, placed);
                }
            }
        } else {
            return Err(Error::new(
                ErrorKind::Io,
                format!("cannot read `{input}`: no such file or directory"),
            )
            .in_file(path));
        }
    }
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
    let mut sources: Vec<RuleSource> = found.into_values().collect();
    sources.sort();
    Ok(Discovery { sources, whole })
}

/// A rules root: where it is, and the name it has in headers.
struct Root {
    abs: Option<PathBuf>,
    label: PathBuf,
}

impl Root {
    fn new(root: &Path) -> Root {
        let abs = root.canonicalize().ok();
        let label = abs
            .as_deref()
            .and_then(Path::file_name)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("rules"));
        Root { abs, label }
    }

    /// The stem and header name of a rule file: by its path under this root; a file
    /// elsewhere by its path under the nearest `rules` folder above it, else as
    /// `<folder>/<file>` (the `<tool>/<kind>.yaml` layout).
    fn place(&self, file: &Path) -> (PathBuf, PathBuf) {
        let abs = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
        let under = |root: &Path, label: &Path| {
            abs.strip_prefix(root)
                .ok()
                .map(|rel| (rel.with_extension(""), label.join(rel)))
        };
        if let Some(placed) = self.abs.as_deref().and_then(|r| under(r, &self.label)) {
            return placed;
        }
        for ancestor in abs.ancestors().skip(1) {
            if ancestor.file_name().is_some_and(|n| n == "rules")
                && let Some(placed) = under(ancestor, Path::new("rules"))
            {
                return placed;
            }
        }
        let name = abs.file_name().map(PathBuf::from).unwrap_or_default();
        let parent = abs
            .parent()
            .and_then(Path::file_name)
            .map(PathBuf::from)
            .unwrap_or_default();
        (parent.join(&name).with_extension(""), parent.join(name))
    }
}

/// Every file below `dir`, in path order, given to `visit` with its canonical path as
/// it is found (a walk of a large rule set holds one folder's entries at a time),
/// following symbolic links but never into a folder that contains the link (a loop),
/// which is an error naming the link. Excluded folders (the output folder) and hidden
/// ones (`.git`) are skipped.
fn walk_files(
    dir: &Path,
    exclude: &[PathBuf],
    visit: &mut dyn FnMut(PathBuf, PathBuf),
) -> Result<()> {
    fn walk(
        dir: &Path,
        exclude: &[PathBuf],
        ancestors: &mut Vec<PathBuf>,
        visit: &mut dyn FnMut(PathBuf, PathBuf),
    ) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
            .collect::<Result<_>>()?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                let real = p.canonicalize().map_err(|e| Error::io(&p, e))?;
                let hidden = p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if hidden || exclude.contains(&real) {
                    continue;
                }
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
                walk(&p, exclude, ancestors, visit)?;
                ancestors.pop();
            } else if p.is_file() {
                // In a folder whose canonical path is known, a file that is not a link
                // is that path and its name: no realpath per file.
                let link = p
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink());
                let key = match (link, ancestors.last(), p.file_name()) {
                    (false, Some(folder), Some(name)) => folder.join(name),
                    _ => p.canonicalize().unwrap_or_else(|_| p.clone()),
                };
                visit(p, key);
            }
        }
        Ok(())
    }
    let mut ancestors = vec![dir.canonicalize().map_err(|e| Error::io(dir, e))?];
    walk(dir, exclude, &mut ancestors, visit)
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
    pub warnings: Vec<(PathBuf, Remark)>,
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
    pub warnings: &'a [Remark],
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
    let mut keys = ConflictKeys::for_rules(sources.len());
    let all: Vec<&RuleSource> = sources.iter().collect();
    for (i, s) in sources.iter().enumerate() {
        match read_rule(s, backends) {
            Ok(parsed) => {
                if let Err(e) = keys.claim(&all, i, &parsed, backends) {
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
/// Memory stays bounded by one rule plus a fingerprint of each rule's keys (id,
/// stem, stanza and Sigma names: `pack/conflicts.rs`).
///
/// Every rule is compiled even after an error, so all errors are reported together;
/// the caller discards what the sink received when this returns errors.
pub fn stream(
    sources: &[RuleSource],
    backends: &Backends,
    options: &BuildOptions,
    sink: &mut dyn Sink,
    on_rule: impl FnMut(&RuleReport),
) -> Result<Summary, Errors> {
    let compiler = Compiler::with_backends(backends.clone())?;
    stream_with(&compiler, sources, options, sink, on_rule)
}

/// [`stream`] with a compiler already set up: every rule goes through
/// [`Compiler::compile_to`], the one compile path of the crate.
pub fn stream_with(
    compiler: &Compiler,
    sources: &[RuleSource],
    options: &BuildOptions,
    sink: &mut dyn Sink,
    mut on_rule: impl FnMut(&RuleReport),
) -> Result<Summary, Errors> {
    let backends = compiler.backends();
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
    let mut ordered: Vec<&RuleSource> = sources.iter().collect();
    ordered.sort_by(|a, b| (&a.stem, &a.path).cmp(&(&b.stem, &b.path)));

    let mut summary = Summary::default();
    let mut gathered = Gatherer::new(&options.targets);
    gathered.start(sink, compiler.renderer(), &profiles)?;
    let mut keys = ConflictKeys::for_rules(ordered.len());
    let mut rendered = Vec::with_capacity(profiles.len());
    for (index, &source) in ordered.iter().enumerate() {
        let parsed = match read_rule(source, backends) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Err(e) = keys.claim(&ordered, index, &parsed, backends) {
            errors.push(e);
            continue;
        }
        let mut warnings: Vec<Remark> = parsed.warnings.iter().map(Warning::remark).collect();
        rendered.clear();
        for (target, profile) in &profiles {
            let result = compiler.compile_to(
                &parsed.rule,
                &source.path,
                &source.name,
                &source.stem,
                *target,
                Some(&profile.name),
            );
            match result {
                Ok(r) => {
                    if rendered.is_empty() {
                        warnings.extend(r.warnings.iter().cloned().map(Remark::new));
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
                    sink.rule_file(&source.stem, &Path::new(r.target.as_str()).join(rel), text)?;
                    summary.files += 1;
                }
                gathered.add(sink, r)?;
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
    gathered.finish(sink)?;
    summary.files += gathered.count();
    sink.finish()?;
    Ok(summary)
}

/// `--strict`: every approximation the rule does not acknowledge is an error, and so
/// is a rule the target's data cannot run (no file is written for it).
fn strict_errors(rule: &Rule, r: &Rendered, target: Target, rule_file: &Path) -> Vec<Error> {
    match &r.fidelity {
        Fidelity::Exact => Vec::new(),
        Fidelity::Unsupported(u) => vec![
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "--strict: {target} (profile {}) cannot run the rule: {u}",
                    r.profile
                ),
            )
            .in_file(rule_file),
        ],
        Fidelity::Approximate(list) => list
            .iter()
            .filter(|a| !crate::lint::acknowledges_approximation(rule, target, a))
            .map(|a| {
                Error::new(
                    ErrorKind::Approximation,
                    format!(
                        "--strict: {target} can only approximate {}: {}",
                        a.construct,
                        a.reason()
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
    /// Each wrapped document's text after its parts, written once every rule is in.
    footers: Vec<(PathBuf, String)>,
}

impl Gatherer {
    fn new(targets: &[Target]) -> Gatherer {
        Gatherer {
            targets: targets.to_vec(),
            started: Default::default(),
            footers: Vec::new(),
        }
    }

    fn fidelity_path(target: Target) -> PathBuf {
        Path::new(target.as_str()).join("FIDELITY.md")
    }

    /// Create every gathered file (empty, or with its header; a fixed file whole), so
    /// a pack has them even when no rule contributes. They read the pack's context
    /// (the profile's), never a rule's.
    fn start(
        &mut self,
        sink: &mut dyn Sink,
        renderer: &crate::render::Renderer,
        profiles: &[(Target, &crate::profile::Profile)],
    ) -> Result<()> {
        for &(target, profile) in profiles {
            let pack = target.pack_context(profile)?;
            for g in target.spec().gathered {
                match g {
                    Gathered::Concat { path, .. } => {
                        sink.append(&Path::new(target.as_str()).join(path), "")?;
                    }
                    Gathered::Wrapped { path, template, .. } => {
                        let (head, foot) = renderer.wrapper(target, template, &pack)?;
                        let rel = Path::new(target.as_str()).join(path);
                        sink.append(&rel, &head)?;
                        self.footers.push((rel, foot));
                    }
                    Gathered::Fixed { path, template } => {
                        let text = renderer.fixed(target, template, &pack)?;
                        sink.append(&Path::new(target.as_str()).join(path), &text)?;
                    }
                }
            }
            sink.append(
                &Gatherer::fidelity_path(target),
                &format!(
                    "# {target} fidelity\n\nGenerated by rmmc. One row per rule: `exact`; or each construct {target} can only approximate and why; or `unsupported`, with the field the profile's data does not record and why (no file is written for that rule).\n\n| rule | file | verdict | approximations |\n|---|---|---|---|\n"
                ),
            )?;
        }
        Ok(())
    }

    fn add(&mut self, sink: &mut dyn Sink, r: &Rendered) -> Result<()> {
        let target = r.target;
        for g in target.spec().gathered {
            let (path, extension, separator, piece) = match g {
                Gathered::Concat {
                    path,
                    extension,
                    separator,
                } => (path, extension, separator, None),
                Gathered::Wrapped {
                    path,
                    extension,
                    separator,
                    piece,
                    ..
                } => (path, extension, separator, Some(*piece)),
                Gathered::Fixed { .. } => continue,
            };
            let part = match piece {
                // Rendered with the rule, for the rules that have the file.
                Some(Piece::Template(_)) => r
                    .parts
                    .iter()
                    .find(|(p, _)| p == path)
                    .map(|(_, t)| t.clone()),
                _ => {
                    let wanted = crate::render::with_ext(&r.stem, extension);
                    match r.files.iter().find(|(p, _)| *p == wanted) {
                        None => None,
                        Some((_, text)) => Some(match piece {
                            None => format!("{}\n", text.trim_end()),
                            Some(piece) => crate::render::piece(piece, text)?,
                        }),
                    }
                }
            };
            let Some(part) = part else {
                continue;
            };
            let rel = Path::new(target.as_str()).join(path);
            if !self.started.insert((target, path)) {
                sink.append(&rel, separator)?;
            }
            sink.append(&rel, &part)?;
        }
        sink.append(&Gatherer::fidelity_path(target), &fidelity_row(r))
    }

    /// End the wrapped documents.
    fn finish(&self, sink: &mut dyn Sink) -> Result<()> {
        for (rel, foot) in &self.footers {
            sink.append(rel, foot)?;
        }
        Ok(())
    }

    fn count(&self) -> usize {
        self.targets
            .iter()
            .map(|t| 1 + t.spec().gathered.len())
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
                .map(|a| format!("{}: {}", a.construct, a.reason()))
                .collect::<Vec<_>>()
                .join("<br>"),
        ),
        Fidelity::Unsupported(u) => ("unsupported", u.to_string()),
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
/// (`pack::swap`): on any error nothing in `out_dir` changes, and a build
/// killed at any moment leaves each target folder whole (old or new).
///
/// With `only`, a subset build: the rules' files whose stems are in `only` are
/// replaced, every other rule's files are kept byte for byte, and the gathered files
/// are rebuilt from all of `sources` (which should be the whole rule set).
pub fn write_packs(
    sources: &[RuleSource],
    backends: &Backends,
    options: &BuildOptions,
    out_dir: &Path,
    only: Option<&Selection>,
    on_rule: impl FnMut(&RuleReport),
) -> Result<Summary, Errors> {
    let created = !out_dir.exists();
    let lock = swap::lock(out_dir)?;
    let staging = swap::temporary(out_dir, swap::STAGING_PREFIX);
    // A rebuild links every file that did not change from the tree it replaces.
    let sink = || match created {
        true => DirSink::new(&staging),
        false => DirSink::reusing(&staging, out_dir),
    };
    let result = match only {
        None => stream(sources, backends, options, &mut sink(), on_rule),
        Some(selection) => (|| {
            let mut sink = SelectSink {
                inner: sink(),
                selection,
                live: out_dir,
                kept: Vec::new(),
            };
            let summary = stream(sources, backends, options, &mut sink, on_rule)?;
            keep_live_files(out_dir, &staging, &sink.kept)?;
            Ok(summary)
        })(),
    };
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

/// The rules a subset build or check is about: their output stems. Which files a
/// rule owns is learnt as the build produces them ([`Sink::rule_file`]), never
/// guessed from file names: a target may name a rule's files as it likes (Sigma
/// follows SigmaHQ's convention).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    stems: std::collections::BTreeSet<PathBuf>,
}

impl Selection {
    /// The rules of `sources`.
    pub fn of(sources: &[RuleSource]) -> Selection {
        Selection {
            stems: sources.iter().map(|s| s.stem.clone()).collect(),
        }
    }

    /// Is the rule with output stem `stem` selected?
    fn contains(&self, stem: &Path) -> bool {
        self.stems.contains(stem)
    }
}

/// A subset build: writes the selected rules' files and every gathered file; of every
/// other rule it notes the files it produces, to be kept as `out/` has them (or written
/// fresh where `out/` lacks one). Files in `out/` that no rule produces any more (a
/// selected rule's old names, a deleted rule's files) are not carried over.
struct SelectSink<'a, S: Sink> {
    inner: S,
    selection: &'a Selection,
    /// The output folder being replaced.
    live: &'a Path,
    /// Other rules' files to carry over from `live`, relative to it.
    kept: Vec<PathBuf>,
}

impl<S: Sink> Sink for SelectSink<'_, S> {
    fn write(&mut self, rel: &Path, text: &str) -> Result<()> {
        self.inner.write(rel, text)
    }

    fn rule_file(&mut self, stem: &Path, rel: &Path, text: &str) -> Result<()> {
        if self.selection.contains(stem) || !self.live.join(rel).is_file() {
            self.inner.write(rel, text)
        } else {
            self.kept.push(rel.to_path_buf());
            Ok(())
        }
    }

    fn append(&mut self, rel: &Path, text: &str) -> Result<()> {
        self.inner.append(rel, text)
    }

    fn finish(&mut self) -> Result<()> {
        self.inner.finish()
    }
}

/// Put the `kept` files of `live` into `staging` at the same place, as hard links
/// (copies where links are impossible): those rules' files stay byte for byte.
fn keep_live_files(live: &Path, staging: &Path, kept: &[PathBuf]) -> Result<()> {
    for rel in kept {
        let (from, dest) = (live.join(rel), staging.join(rel));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| cannot_write(parent, e))?;
        }
        if std::fs::hard_link(&from, &dest).is_err() {
            std::fs::copy(&from, &dest).map_err(|e| cannot_write(&dest, e))?;
        }
    }
    Ok(())
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
    /// A file the build produces that `out/` lacks.
    Missing(PathBuf),
    /// A file whose text differs.
    Changed {
        /// The file in `out/`.
        path: PathBuf,
        /// A unified diff from what is there to what the build produces.
        diff: String,
    },
    /// A file in `out/<target>/` no rule produces.
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
    stale.extend(extra_files(out_dir, &build.targets, |rel| {
        !build.files.contains_key(rel)
    })?);
    Ok(stale)
}

/// The files in the chosen targets' folders of `out_dir` that `is_extra` (given the
/// path relative to `out_dir`) says no build produced.
fn extra_files(
    out_dir: &Path,
    targets: &[Target],
    is_extra: impl Fn(&Path) -> bool,
) -> Result<Vec<Stale>> {
    let mut extra = Vec::new();
    for &target in targets {
        let dir = out_dir.join(target.as_str());
        if !dir.is_dir() {
            continue;
        }
        let pattern = format!("{}/**/*", dir.display());
        for p in glob_paths(&pattern)? {
            if p.is_file() && is_extra(p.strip_prefix(out_dir).expect("under out")) {
                extra.push(Stale::Extra(p));
            }
        }
    }
    Ok(extra)
}

/// Compare what a build of `sources` would write with `out_dir`, streaming: each
/// file is compared as it is produced (gathered files once complete), so memory stays
/// bounded as for [`write_packs`]. Only the chosen targets' folders are compared.
///
/// With `only`, just the selected rules' own files are compared (a subset check). Either
/// way a file in `out_dir` that no rule and no gathered file produces is reported.
pub fn check_packs(
    sources: &[RuleSource],
    backends: &Backends,
    options: &BuildOptions,
    out_dir: &Path,
    only: Option<&Selection>,
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
        only,
    };
    let result = stream(sources, backends, options, &mut sink, on_rule);
    let _ = std::fs::remove_dir_all(&spill);
    result?;
    let mut stale = sink.stale;
    stale.extend(extra_files(out_dir, &options.targets, |rel| {
        !sink.produced.contains(rel)
    })?);
    Ok(stale)
}

/// Compares each file with the one in `out_dir` as it arrives; appended (gathered)
/// files are spilled to a temporary folder and compared when complete.
struct CompareSink<'a> {
    out_dir: PathBuf,
    /// A subset check compares only these rules' own files.
    only: Option<&'a Selection>,
    produced: std::collections::HashSet<PathBuf>,
    stale: Vec<Stale>,
    spill: DirSink,
    spill_root: PathBuf,
    spilled: Vec<PathBuf>,
}

impl CompareSink<'_> {
    fn compare(&mut self, rel: &Path, text: &str) {
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

impl Sink for CompareSink<'_> {
    /// A whole file that is no one rule's (rules' files come through `rule_file`): a
    /// gathered file, compared in a whole check only.
    fn write(&mut self, rel: &Path, text: &str) -> Result<()> {
        self.produced.insert(rel.to_path_buf());
        if self.only.is_none() {
            self.compare(rel, text);
        }
        Ok(())
    }

    fn rule_file(&mut self, stem: &Path, rel: &Path, text: &str) -> Result<()> {
        self.produced.insert(rel.to_path_buf());
        if self.only.is_none_or(|selection| selection.contains(stem)) {
            self.compare(rel, text);
        }
        Ok(())
    }

    fn append(&mut self, rel: &Path, text: &str) -> Result<()> {
        self.produced.insert(rel.to_path_buf());
        if self.only.is_some() {
            return Ok(());
        }
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
