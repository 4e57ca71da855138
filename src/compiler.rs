//! The compile path: rule text → IR → one target's files, through parse, lower and
//! render. [`crate::pack`] builds whole rule sets through it.

use crate::backends::Backends;
use crate::error::Result;
use crate::ir::Rule;
use crate::lower::{self, Target};
use crate::parse::{self, Parsed};
use crate::render::{self, Rendered};
use std::path::Path;

/// Backends and rendering set up once, for compiling many rules.
pub struct Compiler {
    backends: Backends,
    renderer: render::Renderer,
}

impl Compiler {
    /// A compiler with the templates and field maps embedded in the crate.
    pub fn embedded() -> Result<Compiler> {
        Compiler::with_backends(Backends::embedded()?)
    }

    /// A compiler with the given templates and field maps (e.g. [`Backends::from_dir`]).
    pub fn with_backends(backends: Backends) -> Result<Compiler> {
        let renderer = render::Renderer::new(&backends)?;
        Ok(Compiler { backends, renderer })
    }

    /// The renderer with every registered target's templates loaded.
    pub fn renderer(&self) -> &render::Renderer {
        &self.renderer
    }

    /// The templates and field maps the compiler uses.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// Parse one rule (rmmc YAML or Sentinel hunting-query YAML); `name` is used in
    /// error messages.
    pub fn load_rule(&self, name: &str, text: &str) -> Result<Parsed> {
        parse::parse_rule(Path::new(name), text, &self.backends)
    }

    /// Compile a rule for one target with the named profile (or the target's default).
    pub fn compile(&self, rule: &Rule, target: Target, profile: Option<&str>) -> Result<Rendered> {
        self.compile_file(rule, Path::new("rule.yaml"), target, profile)
    }

    /// The same, naming the rule's file in errors and in generated headers.
    pub fn compile_file(
        &self,
        rule: &Rule,
        rule_file: &Path,
        target: Target,
        profile: Option<&str>,
    ) -> Result<Rendered> {
        self.compile_to(
            rule,
            rule_file,
            rule_file,
            Path::new(&rule.meta.id),
            target,
            profile,
        )
    }

    /// The same, with the pack files named after `stem` (`netsupport/filesig`) and
    /// generated headers naming the rule as `name` (its path under the rules root), as
    /// [`crate::pack::build`] writes them.
    pub fn compile_to(
        &self,
        rule: &Rule,
        rule_file: &Path,
        name: &Path,
        stem: &Path,
        target: Target,
        profile: Option<&str>,
    ) -> Result<Rendered> {
        let profile = self.backends.profile_choice(target, profile)?;
        let lowered = lower::lower(rule, rule_file, target, profile)?;
        self.renderer.render_rule(rule, &lowered, name, stem)
    }
}
