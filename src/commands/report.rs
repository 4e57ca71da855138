//! What `build` and `check` say about a streaming build: each rule's warnings as it
//! arrives, and at the end each approximation reason once with its count and the
//! verdicts per target.

use super::{Console, DiagFormat};
use crate::diagnostics::Diagnostic;
use crate::lower::{Fidelity, Target};
use crate::pack;
use std::collections::BTreeMap;

/// Prints a streaming build's warnings as rules arrive (text format, unless quiet) and
/// keeps them as diagnostics; at the end, the totals.
pub(super) struct Reporter {
    console: Console,
    verbose: bool,
    format: DiagFormat,
    /// Every warning, for the JSON and SARIF documents (none kept for text).
    pub(super) diagnostics: Vec<Diagnostic>,
    reasons: BTreeMap<(Target, String), usize>,
    /// Exact, approximate and unsupported rules per target.
    totals: BTreeMap<Target, (usize, usize, usize)>,
}

impl Reporter {
    pub(super) fn new(console: Console, verbose: bool, format: DiagFormat) -> Reporter {
        Reporter {
            console,
            verbose,
            format,
            diagnostics: Vec::new(),
            reasons: BTreeMap::new(),
            totals: BTreeMap::new(),
        }
    }

    fn text(&self) -> bool {
        self.format == DiagFormat::Text
    }

    /// One rule compiled for every target.
    pub(super) fn rule(&mut self, report: &pack::RuleReport) {
        for w in report.warnings {
            let d = Diagnostic::from_warning(&report.source.path, w);
            // Text is printed as it comes and kept nowhere: memory stays bounded
            // however many rules warn. The JSON and SARIF documents need them all.
            if self.text() {
                self.console.note(d.text());
            } else {
                self.diagnostics.push(d);
            }
        }
        let file = report.source.path.display();
        for r in report.rendered {
            let t = self.totals.entry(r.target).or_default();
            match &r.fidelity {
                Fidelity::Exact => t.0 += 1,
                // Always said: no file is written for the rule on this target.
                Fidelity::Unsupported(u) => {
                    t.2 += 1;
                    if self.text() {
                        self.console.note(format_args!(
                            "{file}: unsupported [{} profile {}]: {u}",
                            r.target, r.profile
                        ));
                    }
                }
                Fidelity::Approximate(list) => {
                    t.1 += 1;
                    for a in list {
                        if self.verbose && self.text() {
                            self.console.note(format_args!(
                                "{file}: approximate [{}]: {}: {}",
                                r.target,
                                a.construct,
                                a.reason()
                            ));
                        }
                        *self.reasons.entry((r.target, a.reason())).or_default() += 1;
                    }
                }
            }
        }
    }

    /// The totals, after the last rule (text format only).
    pub(super) fn finish(&self) {
        if !self.text() {
            return;
        }
        for ((target, reason), n) in &self.reasons {
            self.console
                .note(format_args!("approximate [{target}] x{n}: {reason}"));
        }
        let line: Vec<String> = self
            .totals
            .iter()
            .map(|(t, (exact, approx, unsupported))| {
                format!("{t} {exact} exact / {approx} approximate / {unsupported} unsupported")
            })
            .collect();
        if !line.is_empty() {
            self.console.note(format_args!(
                "fidelity: {}{}",
                line.join(", "),
                if self.verbose {
                    ""
                } else {
                    " (--verbose lists each rule)"
                }
            ));
        }
    }
}
