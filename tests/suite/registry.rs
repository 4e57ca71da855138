//! The target registry against the repository: every registered target has its
//! templates, its default profile and golden output, and every backend folder is a
//! registered target. A target added halfway fails here, not at run time.

use rmmc::lower::{Gathered, Target};
use rmmc::{Backends, Compiler};
use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_target_has_its_templates_on_disk() {
    for target in Target::all() {
        let spec = target.spec();
        assert!(
            !spec.rule_files.is_empty(),
            "{target} writes no file per rule"
        );
        for template in target.templates() {
            let path = root().join("backends").join(&template);
            assert!(
                path.is_file(),
                "{target}: missing template {}",
                path.display()
            );
        }
    }
}

#[test]
fn every_target_has_its_default_profile() {
    let backends = Backends::embedded().unwrap();
    for target in Target::all() {
        let default = target.spec().default_profile;
        let path = root()
            .join("backends")
            .join(target.as_str())
            .join("profiles")
            .join(format!("{default}.yaml"));
        assert!(path.is_file(), "{target}: missing {}", path.display());
        let profile = backends.profile(target, None).unwrap();
        assert_eq!(profile.name, default, "{target}");
        assert_eq!(
            backends.profiles(target)[0].name,
            default,
            "{target}: default first"
        );
    }
}

#[test]
fn every_target_has_golden_output() {
    for target in Target::all() {
        let dir = root().join("out").join(target.as_str());
        assert!(
            dir.join("FIDELITY.md").is_file(),
            "{target}: no golden pack in {}",
            dir.display()
        );
        for gathered in target.spec().gathered {
            let path = dir.join(gathered.path());
            assert!(
                path.is_file(),
                "{target}: missing gathered file {}",
                path.display()
            );
        }
        let per_rule = target.spec().rule_files[0].extension;
        let has_rule_file = glob::glob(&format!("{}/**/*.{per_rule}", dir.display()))
            .unwrap()
            .any(|p| p.is_ok_and(|p| p.is_file()));
        assert!(
            has_rule_file,
            "{target}: no *.{per_rule} under {}",
            dir.display()
        );
    }
}

#[test]
fn every_backend_folder_is_a_registered_target() {
    let registered: BTreeSet<&str> = Target::all().map(Target::as_str).collect();
    for entry in std::fs::read_dir(root().join("backends")).unwrap() {
        let entry = entry.unwrap();
        // The data field lists, shared by every target's profiles.
        if entry.file_name() == rmmc::backends::DATA_FOLDER {
            continue;
        }
        if entry.path().is_dir() {
            let name = entry.file_name().to_string_lossy().to_string();
            assert!(
                registered.contains(name.as_str()),
                "backends/{name} is in no registry line"
            );
        }
    }
}

#[test]
fn names_are_unique_and_parse_back() {
    let names: Vec<&str> = Target::all().map(Target::as_str).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    for target in Target::all() {
        assert_eq!(target.as_str().parse::<Target>().unwrap(), target);
    }
    assert_eq!(Target::ALL.to_vec(), Target::all().collect::<Vec<_>>());
}

#[test]
fn gathered_files_do_not_collide_with_rule_files_or_the_fidelity_table() {
    for target in Target::all() {
        let mut paths = BTreeSet::from(["FIDELITY.md"]);
        for g in target.spec().gathered {
            assert!(paths.insert(g.path()), "{target}: {} twice", g.path());
            if let Gathered::Concat { extension, .. } = g {
                assert!(
                    target
                        .spec()
                        .rule_files
                        .iter()
                        .any(|f| f.extension == *extension),
                    "{target}: {} gathers *.{extension}, which no rule file has",
                    g.path()
                );
            }
        }
    }
}

#[test]
fn the_embedded_backends_compile_every_target() {
    // Renderer construction loads every registered template; a missing one fails here.
    Compiler::embedded().unwrap_or_else(|e| panic!("{e}"));
}
