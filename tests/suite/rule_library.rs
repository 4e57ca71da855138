//! The rule library in rules/ is consistent with its generators (no corpus needed):
//! rules/README.md is what `rmmc list rules --format markdown` prints, and every
//! generated fixture file is what the fixture generator writes for its rule.

use rmmc::coverage;
use rmmc::fixtures::generate as fixtures_gen;
use rmmc::pack::{self, BuildOptions};
use rmmc::{Backends, Target};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn rules_readme_is_up_to_date() {
    // Paths in the table are relative to the crate root, as for `rmmc` run there.
    assert_eq!(std::env::current_dir().unwrap(), root());
    let backends = Backends::embedded().unwrap();
    let sources = pack::discover(&["rules".to_string()]).unwrap();
    let loaded = pack::load_rules(&sources, &backends).unwrap();
    let options = BuildOptions {
        targets: Target::ALL.to_vec(),
        profile: None,
        strict: false,
    };
    let build = pack::build(&sources, &backends, &options).unwrap();
    let want = coverage::markdown(&build, &loaded);
    let have = std::fs::read_to_string(root().join("rules/README.md")).unwrap_or_default();
    if have != want {
        panic!(
            "rules/README.md is stale: run `cargo run -- list rules --format markdown > rules/README.md`\n{}",
            pack::unified_diff(&have, &want, Path::new("rules/README.md"))
        );
    }
}

#[test]
fn generated_fixtures_are_up_to_date() {
    let backends = Backends::embedded().unwrap();
    let sources = pack::discover(&["rules".to_string()]).unwrap();
    let loaded = pack::load_rules(&sources, &backends).unwrap();
    let mut generated = 0;
    for (source, parsed) in &loaded {
        let path = rmmc::fixtures::fixture_path(&source.path);
        let Ok(have) = std::fs::read_to_string(&path) else {
            continue;
        };
        if !have.starts_with(fixtures_gen::GENERATED_MARK) {
            continue;
        }
        let label = source
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let rule_text = std::fs::read_to_string(&source.path).unwrap();
        let want = fixtures_gen::render(
            &fixtures_gen::generate(&parsed.rule),
            &label,
            fixtures_gen::importer_of(&rule_text),
        );
        assert!(
            have == want,
            "{} is stale: run `rmmc import sentinel --fixtures` (or `lolrmm`), then `RMMC_BLESS=1 rmmc test`",
            path.display()
        );
        generated += 1;
    }
    assert!(generated > 0);
}
