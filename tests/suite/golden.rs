//! Golden tests: the committed packs in `out/` are the golden files. Every rule in
//! `rules/` is compiled for every target in memory and compared with `out/`; a
//! difference fails with a unified diff. `RMMC_BLESS=1 cargo test` rewrites `out/`
//! (review the diff before committing). A new rule file is covered without new code.

use rmmc::pack::{self, BuildOptions, Stale};
use rmmc::{Backends, Target};
use std::path::Path;

#[test]
fn every_rule_on_every_target_matches_the_committed_packs() {
    // cargo runs integration tests from the crate root, so `rules` is relative to it,
    // as it is for `rmmc build` there, and generated headers name the same paths.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(std::env::current_dir().unwrap(), root);
    let backends = Backends::embedded().unwrap();
    let sources = pack::discover(&["rules".to_string()]).unwrap();
    let options = BuildOptions {
        targets: Target::ALL.to_vec(),
        profile: None,
        strict: false,
    };
    let build = pack::build(&sources, &backends, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(build.rendered.len(), sources.len() * Target::ALL.len());
    let out = root.join("out");
    if rmmc::golden::bless_requested() {
        pack::write(&build, &out).unwrap();
        return;
    }
    let stale = pack::check(&build, &out).unwrap();
    let mut report = String::new();
    for s in &stale {
        match s {
            Stale::Missing(p) => report.push_str(&format!("missing golden file {}\n", p.display())),
            Stale::Extra(p) => {
                report.push_str(&format!("golden file no rule produces: {}\n", p.display()))
            }
            Stale::Changed { diff, .. } => report.push_str(diff),
        }
    }
    assert!(
        stale.is_empty(),
        "{} golden file(s) differ; review and re-bless with RMMC_BLESS=1 cargo test:\n{report}",
        stale.len()
    );
}
