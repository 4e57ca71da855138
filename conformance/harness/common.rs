//! Shared code of the conformance tests (`tests/conformance_*.rs` include it with
//! `#[path]`): rule discovery, generated adversarial events, and the reference
//! evaluator's answers under the semantic variants that documented approximations
//! (and known oracle quirks) stand for.
//!
//! Nothing here knows a particular rule: every rule in `rules/` that has a
//! `*.fixtures.yaml` is picked up, and adversarial events are derived from the
//! rule's own predicate values.

#![allow(dead_code)]

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rmmc::eval::{self, Event};
use rmmc::fixtures::{self, FixtureFile};
use rmmc::ir::{Case, Expr, MatchKind, Predicate, Quantifier, Rule, TIMESTAMP_FIELD};
use rmmc::profile::Profile;
use rmmc::text::has_non_ascii_cased;
use rmmc::{ApproxCategory, Backends, Compiler, Fidelity, Rendered, Target};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository root (where `rules/` lives).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One rule with fixtures.
pub struct RuleCase {
    /// `netsupport/filesig`
    pub stem: String,
    pub rule_file: PathBuf,
    /// The rule as written.
    pub rule: Rule,
    /// The rule as it runs (exclusions whose fields the source lacks removed).
    pub applied: Rule,
    pub fixtures: FixtureFile,
    pub now: DateTime<Utc>,
}

/// One event the engines are run over.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseEvent {
    pub name: String,
    /// `fixture` or `generated`
    pub origin: &'static str,
    pub why: String,
    pub event: Event,
}

pub fn compiler() -> Compiler {
    Compiler::with_backends(Backends::embedded().expect("embedded backends")).expect("compiler")
}

/// Every rule under `rules/` with a fixture file, sorted by path.
pub fn discover() -> Vec<RuleCase> {
    let root = root();
    let rules_dir = root.join("rules");
    let backends = Backends::embedded().expect("embedded backends");
    let sources =
        rmmc::pack::discover(&[rules_dir.to_string_lossy().to_string()]).expect("discover rules");
    let loaded = rmmc::pack::load_rules(&sources, &backends).expect("rules parse");
    let mut out = Vec::new();
    for (source, parsed) in loaded {
        let fixture = fixtures::fixture_path(&source.path);
        if !fixture.exists() {
            continue;
        }
        let file = fixtures::load(&fixture).expect("fixture file parses");
        let now = fixtures::parse_now(&file.now, &fixture).expect("fixture now");
        let rel = source
            .path
            .strip_prefix(&root)
            .unwrap_or(&source.path)
            .to_path_buf();
        out.push(RuleCase {
            stem: source.stem.to_string_lossy().replace('\\', "/"),
            rule_file: rel,
            applied: fixtures::applied(&parsed.rule),
            rule: parsed.rule,
            fixtures: file,
            now,
        });
    }
    out.sort_by(|a, b| a.stem.cmp(&b.stem));
    out
}

impl RuleCase {
    /// The fixture events followed by the generated adversarial ones.
    pub fn events(&self) -> Vec<CaseEvent> {
        let mut out: Vec<CaseEvent> = self
            .fixtures
            .events
            .iter()
            .map(|e| CaseEvent {
                name: e.name.clone(),
                origin: "fixture",
                why: e.why.clone().unwrap_or_default(),
                event: e.event.clone(),
            })
            .collect();
        out.extend(adversarial(self));
        out
    }

    pub fn fixture_count(&self) -> usize {
        self.fixtures.events.len()
    }
}

// ---------------------------------------------------------------------------------
// Generated adversarial events

/// Events derived from the rule's own predicate values: term boundaries, case
/// variants (ASCII, non-ASCII, and non-ASCII letters whose case folds to ASCII),
/// punctuation, wildcard and regex metacharacters, trailing newlines, empty and
/// missing values, each exclusion's scenario and its near misses, and the window
/// edges. The reference evaluator decides what each one must do.
pub fn adversarial(case: &RuleCase) -> Vec<CaseEvent> {
    let rule = &case.applied;
    let base_events: Vec<Event> = case
        .fixtures
        .events
        .iter()
        .map(|e| e.event.clone())
        .collect();
    let evaluation = eval::evaluate(rule, &base_events, case.now).expect("fixtures evaluate");
    let base = evaluation
        .matched
        .first()
        .map(|&i| base_events[i].clone())
        .or_else(|| base_events.first().cloned())
        .unwrap_or_default();
    let mut g = Generator {
        out: Vec::new(),
        seen: BTreeSet::new(),
    };
    // Every fixture event is already there; do not repeat one.
    for e in &base_events {
        g.seen.insert(Value::Object(e.clone()).to_string());
    }

    // Exclusion predicates are varied inside their exclusion's scenario (every other
    // field of the exclusion satisfied), so that the variant decides the outcome.
    let scenario = |x: &rmmc::ir::Exclusion| {
        let mut e = base.clone();
        for p in x.drop_when.predicates() {
            if let (Some(v), false) = (p.values.first(), p.kind == MatchKind::Regex) {
                e.insert(p.field.clone(), Value::String(v.clone()));
            }
        }
        e
    };
    let mut preds: Vec<(String, &Predicate, Event)> = rule
        .detection
        .predicates()
        .into_iter()
        .map(|p| ("detection".to_string(), p, base.clone()))
        .collect();
    for x in &rule.exclusions {
        let s = scenario(x);
        preds.extend(
            x.drop_when
                .predicates()
                .into_iter()
                .map(|p| (format!("exclusion {}", x.name), p, s.clone())),
        );
    }
    for (context, p, base) in &preds {
        let values: Vec<&String> = match p.values.len() {
            0 => vec![],
            1 => vec![&p.values[0]],
            n => vec![&p.values[0], &p.values[n - 1]],
        };
        for v in values {
            if p.kind == MatchKind::Regex {
                continue;
            }
            for (tag, text) in value_variants(v) {
                let mut e = base.clone();
                e.insert(p.field.clone(), Value::String(text));
                g.push(
                    e,
                    &format!("{}-{}", short(&p.field), tag),
                    &format!("{context}: `{}` {} {v:?}: {tag}", p.field, p.kind.as_str()),
                );
            }
        }
        // Empty and missing.
        let mut e = base.clone();
        e.insert(p.field.clone(), Value::String(String::new()));
        g.push(
            e,
            &format!("{}-empty", short(&p.field)),
            &format!("{context}: `{}` is \"\"", p.field),
        );
        let mut e = base.clone();
        e.remove(&p.field);
        g.push(
            e,
            &format!("{}-missing", short(&p.field)),
            &format!("{context}: `{}` is missing", p.field),
        );
        let mut e = base.clone();
        e.insert(p.field.clone(), Value::Null);
        g.push(
            e,
            &format!("{}-null", short(&p.field)),
            &format!("{context}: `{}` is null", p.field),
        );
    }

    // Each exclusion's scenario, with case variants and near misses of each field.
    for x in &rule.exclusions {
        let fields: Vec<&Predicate> = x.drop_when.predicates();
        let satisfying = |e: &mut Event, transform: &dyn Fn(&str) -> String| {
            for p in &fields {
                if let Some(v) = p.values.first()
                    && p.kind != MatchKind::Regex
                {
                    e.insert(p.field.clone(), Value::String(transform(v)));
                }
            }
        };
        let mut e = base.clone();
        satisfying(&mut e, &|v| v.to_string());
        g.push(
            e.clone(),
            &format!("excl-{}", x.name),
            &format!("exclusion {}: its scenario", x.name),
        );
        let mut up = base.clone();
        satisfying(&mut up, &|v| v.to_ascii_uppercase());
        g.push(
            up,
            &format!("excl-{}-upper", x.name),
            &format!("exclusion {}: upper case", x.name),
        );
        for p in &fields {
            let Some(v) = p.values.first() else { continue };
            for (tag, text) in [
                ("miss", format!("{v}x")),
                ("space", format!("{v} ")),
                ("nl", format!("{v}\n")),
            ] {
                let mut near = e.clone();
                near.insert(p.field.clone(), Value::String(text));
                g.push(
                    near,
                    &format!("excl-{}-{}-{tag}", x.name, short(&p.field)),
                    &format!("exclusion {}: `{}` near miss ({tag})", x.name, p.field),
                );
            }
            let mut gone = e.clone();
            gone.remove(&p.field);
            g.push(
                gone,
                &format!("excl-{}-{}-missing", x.name, short(&p.field)),
                &format!("exclusion {}: `{}` missing", x.name, p.field),
            );
        }
    }

    // Window edges around the fixture's `now`.
    let window = TimeDelta::try_seconds(rule.window.seconds as i64).unwrap_or(TimeDelta::MAX);
    let start = case.now - window;
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let ms = TimeDelta::milliseconds(1);
    let edges: Vec<(&str, String)> = vec![
        ("window-start", stamp(start)),
        ("window-start-minus-1ms", stamp(start - ms)),
        ("window-start-plus-1ms", stamp(start + ms)),
        (
            "window-start-minus-1s",
            stamp(start - TimeDelta::seconds(1)),
        ),
        ("window-end", stamp(case.now)),
        ("window-end-minus-1ms", stamp(case.now - ms)),
        ("window-end-plus-1ms", stamp(case.now + ms)),
        (
            "window-end-plus-1s",
            stamp(case.now + TimeDelta::seconds(1)),
        ),
        (
            "window-end-offset",
            (case
                .now
                .with_timezone(&chrono::FixedOffset::east_opt(3600).expect("offset")))
            .to_rfc3339_opts(SecondsFormat::AutoSi, false),
        ),
        (
            "window-middle-fraction",
            stamp(case.now - window / 2 + TimeDelta::milliseconds(500)),
        ),
    ];
    for (tag, ts) in edges {
        let mut e = base.clone();
        e.insert(TIMESTAMP_FIELD.to_string(), Value::String(ts.clone()));
        g.push(e, tag, &format!("@timestamp {ts}"));
    }

    // Group-by values: missing, hostile text.
    if let Some(agg) = &rule.aggregation {
        for f in &agg.group_by {
            let mut e = base.clone();
            e.remove(f);
            g.push(
                e,
                &format!("group-{}-missing", short(f)),
                &format!("group-by `{f}` missing"),
            );
            let mut e = base.clone();
            e.insert(f.clone(), Value::String("Krämer \"q\" \\ *?|%_ 東".into()));
            g.push(
                e,
                &format!("group-{}-hostile", short(f)),
                &format!("group-by `{f}` with punctuation"),
            );
        }
    }
    g.out
}

struct Generator {
    out: Vec<CaseEvent>,
    seen: BTreeSet<String>,
}

impl Generator {
    fn push(&mut self, event: Event, tag: &str, why: &str) {
        let key = Value::Object(event.clone()).to_string();
        if !self.seen.insert(key) {
            return;
        }
        let name = format!("gen-{:03}-{tag}", self.out.len() + 1);
        self.out.push(CaseEvent {
            name,
            origin: "generated",
            why: why.to_string(),
            event,
        });
    }
}

fn short(field: &str) -> String {
    field.replace(['.', '@'], "_").trim_matches('_').to_string()
}

/// Text variants of one predicate value.
pub fn value_variants(v: &str) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = vec![
        ("exact", v.to_string()),
        ("upper", v.to_ascii_uppercase()),
        ("lower", v.to_ascii_lowercase()),
        ("letter-before", format!("x{v}")),
        ("letter-after", format!("{v}x")),
        ("digit-after", format!("{v}2")),
        ("underscore", format!("_{v}_")),
        ("hyphen", format!("-{v}-")),
        ("dots", format!(".{v}.")),
        ("space-krämer", format!("{v} Krämer")),
        ("KRÄMER-space", format!("KRÄMER {v}")),
        ("umlaut-before", format!("Ä{v}")),
        ("accent-after", format!("{v}é")),
        ("cjk-after", format!("{v}東")),
        ("parens-inc", format!("({v}), Inc.")),
        ("quoted", format!("\"{v}\" Ltd")),
        ("path", format!("C:\\Program Files\\{v}\\a.exe")),
        ("url", format!("https://x.{v}/a?b=c&d=%20")),
        ("trailing-newline", format!("{v}\n")),
        ("leading-newline", format!("\n{v}")),
        ("trailing-space", format!("{v} ")),
        ("wildcards-around", format!("*{v}?")),
        ("like-metas", format!("%{v}_")),
        ("regex-metas", format!("^{v}$.+")),
        ("doubled", format!("{v}{v}")),
    ];
    let chars: Vec<char> = v.chars().collect();
    if chars.len() >= 4 {
        let mid = chars.len() / 2;
        let (a, b): (String, String) =
            (chars[..mid].iter().collect(), chars[mid..].iter().collect());
        out.push(("split-underscore", format!("{a}_{b}")));
        out.push(("split-hyphen", format!("{a}-{b}")));
        out.push(("split-space", format!("{a} {b}")));
        out.push(("inner-star", format!("{a}*{b}")));
        out.push((
            "inner-question",
            format!("{a}?{}", &b[b.chars().next().map_or(0, char::len_utf8)..]),
        ));
        out.push(("inner-quote", format!("{a}\"{b}")));
        out.push(("inner-backslash", format!("{a}\\{b}")));
    }
    // Letters outside ASCII whose case folds onto an ASCII letter (U+017F LONG S → s,
    // U+212A KELVIN SIGN → k) and Unicode case variants of non-ASCII letters.
    if v.contains(['s', 'S', 'k', 'K']) {
        out.push((
            "fold-to-ascii",
            v.chars()
                .map(|c| match c {
                    's' | 'S' => 'ſ',
                    'k' | 'K' => '\u{212A}',
                    c => c,
                })
                .collect(),
        ));
    }
    if v.chars().any(|c| !c.is_ascii() && c.is_alphabetic()) {
        out.push(("unicode-upper", v.to_uppercase()));
        out.push(("unicode-lower", v.to_lowercase()));
    }
    out
}

// ---------------------------------------------------------------------------------
// Semantic variants

/// How case-insensitive comparisons fold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fold {
    /// KQL: ASCII letters only (the reference).
    Ascii,
    /// Unicode folding, only for predicates whose values have non-ASCII cased letters
    /// (what a "case-insensitive ... folds non-ASCII letters" approximation documents).
    UnicodeDocumented,
    /// Unicode folding for every case-insensitive predicate (what an engine with a
    /// Unicode-folding operator does, e.g. `ſ` matching `s`).
    Unicode,
    /// Every comparison folds case, Unicode-wide (the `eql` engine).
    Everything,
}

/// One semantic variant of the reference evaluator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Variant {
    pub fold: Fold,
    /// Whole-term boundaries are ASCII letters/digits (Lucene `[^a-zA-Z0-9]`).
    pub ascii_terms: bool,
    /// The window end is exclusive (an event stamped exactly `now` is outside).
    pub end_exclusive: bool,
}

impl Variant {
    pub const EXACT: Variant = Variant {
        fold: Fold::Ascii,
        ascii_terms: false,
        end_exclusive: false,
    };

    pub fn all() -> Vec<Variant> {
        let mut out = Vec::new();
        for fold in [
            Fold::Ascii,
            Fold::UnicodeDocumented,
            Fold::Unicode,
            Fold::Everything,
        ] {
            for ascii_terms in [false, true] {
                for end_exclusive in [false, true] {
                    out.push(Variant {
                        fold,
                        ascii_terms,
                        end_exclusive,
                    });
                }
            }
        }
        out
    }

    pub fn key(&self) -> String {
        let mut parts = vec![match self.fold {
            Fold::Ascii => "exact",
            Fold::UnicodeDocumented => "unicode_fold_documented",
            Fold::Unicode => "unicode_fold",
            Fold::Everything => "fold_everything",
        }];
        if self.ascii_terms {
            parts.push("ascii_terms");
        }
        if self.end_exclusive {
            parts.push("end_exclusive");
        }
        parts.join("+")
    }
}

/// The predicate rewritten for a variant, as a regex predicate where needed (the
/// evaluator's `regex` is the `regex` crate, whose `(?i)` folds Unicode).
fn variant_predicate(p: &Predicate, v: Variant) -> Expr {
    if matches!(p.kind, MatchKind::Empty | MatchKind::NotEmpty) {
        return Expr::Match(p.clone());
    }
    let unicode = match v.fold {
        Fold::Ascii => false,
        Fold::UnicodeDocumented => p.case == Case::Insensitive && has_non_ascii_cased(&p.values),
        Fold::Unicode => p.case == Case::Insensitive,
        Fold::Everything => true,
    };
    let ascii_term = v.ascii_terms && p.kind == MatchKind::Term;
    if !unicode && !ascii_term {
        return Expr::Match(p.clone());
    }
    if p.kind == MatchKind::Regex {
        let mut q = p.clone();
        q.case = if unicode { Case::Insensitive } else { p.case };
        return Expr::Match(q);
    }
    let bounds = if ascii_term {
        "[^a-zA-Z0-9]"
    } else {
        r"[^\p{L}\p{N}]"
    };
    let fold_flag = if unicode { "(?i)" } else { "" };
    let values: Vec<String> = p
        .values
        .iter()
        .map(|value| {
            // ASCII-only folding without the flag: spell ASCII letters as classes.
            let body = if !unicode && p.case == Case::Insensitive {
                value
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphabetic() {
                            format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                        } else {
                            regex::escape(c.encode_utf8(&mut [0; 4]))
                        }
                    })
                    .collect::<String>()
            } else {
                regex::escape(value)
            };
            let pattern = match p.kind {
                MatchKind::Equals => format!(r"^{body}\z"),
                MatchKind::Contains => body,
                MatchKind::Prefix => format!("^{body}"),
                MatchKind::Suffix => format!(r"{body}\z"),
                MatchKind::Term => format!("(^|{bounds}){body}($|{bounds})"),
                _ => unreachable!("handled above"),
            };
            format!("{fold_flag}{pattern}")
        })
        .collect();
    Expr::Match(Predicate {
        field: p.field.clone(),
        kind: MatchKind::Regex,
        case: Case::Sensitive,
        values,
        quantifier: p.quantifier,
    })
}

fn variant_expr(e: &Expr, v: Variant) -> Expr {
    match e {
        Expr::All(xs) => Expr::All(xs.iter().map(|x| variant_expr(x, v)).collect()),
        Expr::Any(xs) => Expr::Any(xs.iter().map(|x| variant_expr(x, v)).collect()),
        Expr::Not(x) => Expr::Not(Box::new(variant_expr(x, v))),
        Expr::Match(p) => variant_predicate(p, v),
    }
}

/// The applied rule under a variant.
pub fn variant_rule(rule: &Rule, v: Variant) -> Rule {
    let mut r = rule.clone();
    r.detection = variant_expr(&rule.detection, v);
    for x in &mut r.exclusions {
        x.drop_when = variant_expr(&x.drop_when, v);
    }
    r
}

/// What one variant of the evaluator says about a list of events.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub matched: Vec<String>,
    pub rows: Vec<serde_json::Map<String, Value>>,
}

/// The evaluator's answer under a variant. With an exclusive window end, events at
/// `now` or later are left out of the input (their matched flag is false).
pub fn answer(rule: &Rule, events: &[CaseEvent], now: DateTime<Utc>, v: Variant) -> Answer {
    let r = variant_rule(rule, v);
    let keep: Vec<usize> = (0..events.len())
        .filter(|&i| !v.end_exclusive || event_time(&events[i].event).is_some_and(|t| t < now))
        .collect();
    let input: Vec<Event> = keep.iter().map(|&i| events[i].event.clone()).collect();
    let e = eval::evaluate(&r, &input, now).expect("evaluates");
    Answer {
        matched: e
            .matched
            .iter()
            .map(|&i| events[keep[i]].name.clone())
            .collect(),
        rows: e.rows,
    }
}

pub fn event_time(e: &Event) -> Option<DateTime<Utc>> {
    e.get(TIMESTAMP_FIELD)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Every variant's answer, keyed by [`Variant::key`].
pub fn answers(case: &RuleCase, events: &[CaseEvent]) -> BTreeMap<String, Answer> {
    Variant::all()
        .into_iter()
        .map(|v| (v.key(), answer(&case.applied, events, case.now, v)))
        .collect()
}

// ---------------------------------------------------------------------------------
// The reference answers, computed once per run of the suite

/// One rule's events (fixture, then generated) and the reference evaluator's answer
/// to them under every variant ([`answers`]).
#[derive(Debug, PartialEq)]
pub struct Reference {
    pub events: Vec<CaseEvent>,
    pub answers: BTreeMap<String, Answer>,
}

/// The reference of `case` (one of [`discover`]'s).
///
/// Generating the events and evaluating them under every variant is the same work in
/// every conformance test binary (the bundle, the SPL engine, rsigma over two
/// profiles): it is done once per process for every rule, and once per state of the
/// sources for all binaries: the first writes `reference-<key>.json` into the results
/// folder (`RMMC_CONFORMANCE_OUT`, which `scripts/conformance` empties at its start)
/// or else `target/conformance-reference/`, and the others read it (one that starts
/// while another computes waits for it, on a lock file beside it). The key is a hash
/// of everything the answers depend on ([`reference_inputs`]); a binary older than any
/// of those files (built before an edit) neither reads nor writes the file.
/// `RMMC_REFERENCE_CACHE=0` computes in every process.
pub fn reference(case: &RuleCase) -> &'static Reference {
    static ALL: OnceLock<BTreeMap<String, Reference>> = OnceLock::new();
    ALL.get_or_init(|| {
        let cases = discover();
        let compute = || {
            cases
                .iter()
                .map(|c| {
                    let events = c.events();
                    let answers = answers(c, &events);
                    (c.stem.clone(), Reference { events, answers })
                })
                .collect::<BTreeMap<_, _>>()
        };
        let Some(path) = reference_file() else {
            return compute();
        };
        // One process computes, the others (the suite's lanes start together) wait for
        // it and read; the lock goes with this process.
        let _lock = lock_reference(&path);
        if let Some(all) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| references_from_json(&text))
        {
            eprintln!("reference answers: read {}", path.display());
            return all;
        }
        let all = compute();
        let text = references_to_json(&all);
        // Written only when it reads back as computed (numbers, key order).
        if references_from_json(&text).as_ref() == Some(&all) {
            store_reference(&path, &text);
            eprintln!("reference answers: computed, wrote {}", path.display());
        }
        all
    })
    .get(&case.stem)
    .unwrap_or_else(|| panic!("{}: not a rule with fixtures under rules/", case.stem))
}

/// The files the reference answers depend on: the rules and fixtures, the crate's
/// sources and backends (parsing, `applied`, the evaluator), this harness (the
/// generated events, the variants) and the locked dependencies. Sorted.
pub fn reference_inputs() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let root = root();
    let mut out = Vec::new();
    for dir in ["rules", "src", "backends", "conformance/harness"] {
        walk(&root.join(dir), &mut out);
    }
    for file in ["Cargo.toml", "Cargo.lock", "build.rs"] {
        out.push(root.join(file));
    }
    out.sort();
    out
}

/// Where this process reads and writes the reference answers: `None` when caching is
/// off, or when any input is newer than this test binary (it may predate an edit).
fn reference_file() -> Option<PathBuf> {
    if std::env::var_os("RMMC_REFERENCE_CACHE").is_some_and(|v| v == "0") {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let built = std::fs::metadata(&exe).ok()?.modified().ok()?;
    let root = root();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for path in reference_inputs() {
        let meta = std::fs::metadata(&path).ok()?;
        if meta.modified().ok()? > built {
            eprintln!(
                "reference answers: {} is newer than this test binary: computed here, not shared",
                path.display()
            );
            return None;
        }
        path.strip_prefix(&root).unwrap_or(&path).hash(&mut hasher);
        std::fs::read(&path).ok()?.hash(&mut hasher);
    }
    // target/<profile>/deps/<test binary>
    let dir = match results_dir() {
        Some(dir) => dir,
        None => exe
            .parent()?
            .parent()?
            .parent()?
            .join("conformance-reference"),
    };
    Some(dir.join(format!("reference-{:016x}.json", hasher.finish())))
}

/// An exclusive lock beside the reference file, held until dropped (`None` where the
/// file system cannot lock: each process then computes on its own).
fn lock_reference(path: &Path) -> Option<std::fs::File> {
    let dir = path.parent()?;
    std::fs::create_dir_all(dir).ok()?;
    let name = format!(".lock-{}", path.file_name()?.to_string_lossy());
    let file = std::fs::File::create(dir.join(name)).ok()?;
    file.lock().ok()?;
    Some(file)
}

/// Write `text` to `path` whole (a reader never sees part of it), replacing the
/// files of other keys.
fn store_reference(path: &Path, text: &str) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("reference-") && e.path() != path {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let tmp = dir.join(format!(".reference-{}.tmp", std::process::id()));
    if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

fn references_to_json(all: &BTreeMap<String, Reference>) -> String {
    let value: BTreeMap<&String, Value> = all
        .iter()
        .map(|(stem, r)| {
            let events: Vec<Value> = r
                .events
                .iter()
                .map(
                    |e| json!({"name": e.name, "origin": e.origin, "why": e.why, "event": e.event}),
                )
                .collect();
            let answers: BTreeMap<&String, Value> = r
                .answers
                .iter()
                .map(|(k, a)| (k, json!({"matched": a.matched, "rows": a.rows})))
                .collect();
            (stem, json!({"events": events, "answers": answers}))
        })
        .collect();
    serde_json::to_string(&value).expect("json")
}

fn references_from_json(text: &str) -> Option<BTreeMap<String, Reference>> {
    let value: BTreeMap<String, Value> = serde_json::from_str(text).ok()?;
    let mut out = BTreeMap::new();
    for (stem, r) in value {
        let mut events = Vec::new();
        for e in r["events"].as_array()? {
            events.push(CaseEvent {
                name: e["name"].as_str()?.to_string(),
                origin: match e["origin"].as_str()? {
                    "fixture" => "fixture",
                    "generated" => "generated",
                    _ => return None,
                },
                why: e["why"].as_str()?.to_string(),
                event: e["event"].as_object()?.clone(),
            });
        }
        let mut answers = BTreeMap::new();
        for (k, a) in r["answers"].as_object()? {
            let matched = a["matched"]
                .as_array()?
                .iter()
                .map(|m| m.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()?;
            let rows = a["rows"]
                .as_array()?
                .iter()
                .map(|row| row.as_object().cloned())
                .collect::<Option<Vec<_>>>()?;
            answers.insert(k.clone(), Answer { matched, rows });
        }
        out.insert(stem, Reference { events, answers });
    }
    Some(out)
}

// ---------------------------------------------------------------------------------
// What a target's fidelity verdict documents, and how results are judged

/// The variant flags a target's verdict documents: `(unicode folding, ASCII term
/// bounds, exclusive window end)`, decided by approximation kind, never by its words.
/// A term-edges approximation documents that term boundaries differ for non-ASCII
/// letters. No target approximates case folding or the window end (KQL's ASCII folding
/// is spelled out, the window is inclusive everywhere), so no kind documents those.
pub fn documented(fidelity: &Fidelity) -> (bool, bool, bool) {
    let term_edges = fidelity
        .approximations()
        .iter()
        .any(|a| a.kind.category() == ApproxCategory::TermEdges);
    (false, term_edges, false)
}

/// The verdict of one engine on one rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Agree,
    Approximate,
    Disagree,
    NotChecked,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Agree => "agree",
            Verdict::Approximate => "approximate-as-documented",
            Verdict::Disagree => "disagree",
            Verdict::NotChecked => "not checked",
        }
    }
}

/// Per-event judgement of an engine's matched set against the variants.
///
/// `allowed_quirks` are variant flags that model the *oracle's* known deviation from
/// the real target (not rmmc's): events explained only by them are "not checked by
/// this oracle". Returns the verdict, per-event notes, and the variant whose matched
/// set equals the engine's (for comparing rows), if any.
pub struct Judgement {
    pub verdict: Verdict,
    pub notes: Vec<String>,
    pub disagreements: Vec<String>,
    pub oracle_limited: Vec<String>,
    pub documented: Vec<String>,
    /// The variant key whose whole matched set equals the engine's.
    pub same_as: Option<String>,
}

impl Judgement {
    /// Set the verdict from the findings: any disagreement, else any documented
    /// approximation, else agreement.
    pub fn settle(&mut self) {
        self.verdict = if !self.disagreements.is_empty() {
            Verdict::Disagree
        } else if !self.documented.is_empty() {
            Verdict::Approximate
        } else {
            Verdict::Agree
        };
    }
}

/// Run one oracle over every rule with fixtures: `check` gives each rule's result
/// line, verdict and printed text. Prints one line per rule (prefixed `label`), writes
/// the lines to `results` for the matrix, and fails on any disagreement, except
/// under `RMMC_CONFORMANCE_REPORT_ONLY` (set by `scripts/conformance`, which
/// gathers every engine's lines into its matrix before it fails).
pub fn run_oracle(
    label: &str,
    results: &str,
    check: impl Fn(&rmmc::Compiler, &RuleCase) -> (serde_json::Value, Verdict, String),
) {
    let compiler = compiler();
    let cases = discover();
    assert!(!cases.is_empty(), "no rule with fixtures found");
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        let (line, verdict, text) = check(&compiler, case);
        println!("{label}  {text}");
        if verdict == Verdict::Disagree {
            failures.push(case.stem.clone());
        }
        lines.push(line);
    }
    write_results(results, &serde_json::json!(lines));
    if std::env::var_os("RMMC_CONFORMANCE_REPORT_ONLY").is_none() {
        assert!(
            failures.is_empty(),
            "{label} disagrees with the reference evaluator on: {failures:?}"
        );
    }
}

pub fn judge_matched(
    events: &[CaseEvent],
    got: &BTreeSet<String>,
    answers: &BTreeMap<String, Answer>,
    documented: (bool, bool, bool),
    quirk_folds: &[Fold],
) -> Judgement {
    let variants = Variant::all();
    let is_documented = |v: &Variant| {
        let fold_ok = match v.fold {
            Fold::Ascii => true,
            Fold::UnicodeDocumented => documented.0,
            _ => false,
        };
        fold_ok && (!v.ascii_terms || documented.1) && (!v.end_exclusive || documented.2)
    };
    let is_quirk = |v: &Variant| {
        let fold_ok = v.fold == Fold::Ascii
            || (v.fold == Fold::UnicodeDocumented && documented.0)
            || quirk_folds.contains(&v.fold);
        fold_ok && (!v.ascii_terms || documented.1) && (!v.end_exclusive || documented.2)
    };
    let sets: BTreeMap<String, BTreeSet<&str>> = answers
        .iter()
        .map(|(k, a)| (k.clone(), a.matched.iter().map(String::as_str).collect()))
        .collect();
    let exact = &sets[&Variant::EXACT.key()];
    let mut j = Judgement {
        verdict: Verdict::Agree,
        notes: vec![],
        disagreements: vec![],
        oracle_limited: vec![],
        documented: vec![],
        same_as: None,
    };
    for e in events {
        let m = got.contains(&e.name);
        if m == exact.contains(e.name.as_str()) {
            continue;
        }
        let explained_by = |pred: &dyn Fn(&Variant) -> bool| {
            variants
                .iter()
                .filter(|v| pred(v))
                .find(|v| sets[&v.key()].contains(e.name.as_str()) == m)
                .map(Variant::key)
        };
        let what = format!(
            "{} ({}; {}): engine {}, evaluator {}",
            e.name,
            e.origin,
            e.why,
            if m { "matches" } else { "does not match" },
            if m { "does not" } else { "does" }
        );
        if let Some(k) = explained_by(&is_documented) {
            j.documented.push(format!("{what} [documented: {k}]"));
        } else if let Some(k) = explained_by(&is_quirk) {
            j.oracle_limited.push(format!("{what} [oracle quirk: {k}]"));
        } else {
            j.disagreements.push(what);
        }
    }
    for v in &variants {
        if sets[&v.key()]
            .iter()
            .copied()
            .eq(got.iter().map(String::as_str))
            && (is_documented(v) || is_quirk(v))
        {
            j.same_as = Some(v.key());
            break;
        }
    }
    j.settle();
    j
}

// ---------------------------------------------------------------------------------
// Compiled rule per target

pub struct Compiled {
    pub target: Target,
    /// The target's default profile, whose field map the events are renamed by.
    pub profile: Profile,
    /// The query, files and fidelity verdict.
    pub rendered: Rendered,
    pub field_map: BTreeMap<String, String>,
    /// Canonical fields the profile's data does not record: left out of events.
    pub unrecorded: Vec<String>,
    /// Canonical fields the profile's data holds in another field (what changes in
    /// meaning is in the verdict): canonical → the field the events carry it in.
    pub substitutes: BTreeMap<String, String>,
    /// What every event of the source carries because the profile's `events` select
    /// it (`event.type: start`), already in the target's names.
    pub selected: Event,
}

pub fn compile(compiler: &Compiler, case: &RuleCase, target: Target) -> Compiled {
    let profile = compiler
        .backends()
        .profile(target, None)
        .expect("default profile");
    let rendered = compiler
        .compile(&case.rule, target, Some(&profile.name))
        .expect("compiles");
    let source = profile.source(case.rule.source).expect("source map");
    Compiled {
        target,
        field_map: source.names(),
        unrecorded: source
            .fields
            .iter()
            .filter(|(_, m)| m.name().is_none())
            .map(|(k, _)| k.clone())
            .collect(),
        substitutes: source
            .fields
            .iter()
            .filter_map(|(k, m)| match m {
                rmmc::backends::FieldMapping::Substitute { field, .. } => {
                    Some((k.clone(), field.clone()))
                }
                _ => None,
            })
            .collect(),
        selected: source.selected_event_fields(),
        profile: profile.clone(),
        rendered,
    }
}

/// An event renamed into the target's schema with the profile's field map; fields
/// the profile's data does not record are left out, as the data would.
pub fn map_event(compiled: &Compiled, e: &Event) -> Event {
    let mut out = Event::new();
    for (k, v) in e {
        if compiled.unrecorded.contains(k) {
            continue;
        }
        let name = compiled.field_map.get(k).unwrap_or_else(|| {
            panic!("fixture field `{k}` has no mapping for {}", compiled.target)
        });
        out.insert(name.clone(), v.clone());
    }
    // One of the events the profile's data source selects (a process start).
    out.extend(compiled.selected.clone());
    out
}

/// The bundle line of one rule × target, for the Python/Node oracles: the library's
/// fixture-bundle line (what `rmmc fixtures` prints) with the events generated here
/// and what the oracles need besides (substitutes, documented approximations,
/// constants, window, the reference answers under each variant).
pub fn bundle_line(
    case: &RuleCase,
    compiled: &Compiled,
    events: &[CaseEvent],
    answers: &BTreeMap<String, Answer>,
) -> Value {
    let events = events
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "origin": e.origin,
                "why": e.why,
                "event": map_event(compiled, &e.event),
            })
        })
        .collect();
    let mut line = fixtures::bundle_line(
        &case.stem,
        &case.rule_file,
        &case.rule,
        &compiled.profile,
        &compiled.rendered,
        events,
    )
    .expect("the profile maps the rule's data source");
    let documented = documented(&compiled.rendered.fidelity);
    let extra = json!({
        "substitutes": compiled.substitutes,
        "documented": {"unicode_fold": documented.0, "ascii_terms": documented.1, "end_exclusive": documented.2},
        "constants": case.rule.constants,
        "window_seconds": case.rule.window.seconds,
        "reads": case.rule.tested_fields(),
        "now": case.fixtures.now,
        // Rows only where they are not the matched events themselves.
        "answers": answers.iter().map(|(k, a)| {
            let rows = if case.rule.aggregation.is_some() { json!(a.rows) } else { json!([]) };
            (k.clone(), json!({"matched": a.matched, "rows": rows}))
        }).collect::<BTreeMap<_, _>>(),
    });
    if let Value::Object(extra) = extra {
        line.extend(extra);
    }
    Value::Object(line)
}

/// Where a test writes its machine-readable results for `scripts/conformance`.
pub fn results_dir() -> Option<PathBuf> {
    std::env::var_os("RMMC_CONFORMANCE_OUT").map(PathBuf::from)
}

pub fn write_results(name: &str, value: &Value) {
    if let Some(dir) = results_dir() {
        std::fs::create_dir_all(&dir).expect("results dir");
        let path = dir.join(name);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(value).expect("json") + "\n",
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// Is `path` (relative to the repository) present?
pub fn exists(rel: &str) -> bool {
    Path::new(&root().join(rel)).exists()
}

/// Normalized scalar text for comparing values across engines: strings as
/// themselves, numbers by their decimal text (`1031` and `"1031"` compare equal; the
/// fixture's `event.id` is text while Defender's ReportId is a long).
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

pub fn quantifier_word(q: Quantifier) -> &'static str {
    match q {
        Quantifier::Any => "any",
        Quantifier::All => "all",
    }
}
