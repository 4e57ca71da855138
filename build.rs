//! Embeds every file under `backends/` in the binary: a target's templates and
//! profiles are found by walking its folder, so adding a target needs no list here.

use std::path::Path;

fn main() {
    // Read at run time, not compiled in: cargo reuses a build script's binary across
    // checkouts that share a target folder, and each must embed its own backends.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("backends");
    println!("cargo:rerun-if-changed=backends");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    let mut out = String::from("/// Every backend file, by path relative to `backends/`.\n");
    out.push_str("const EMBEDDED: &[(&str, &str)] = &[\n");
    for rel in &files {
        out.push_str(&format!(
            "    ({rel:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/backends/\", {rel:?}))),\n"
        ));
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("embedded_backends.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

/// Every file below `dir`, as `/`-separated paths relative to `root`; hidden files
/// (editor swap files, `.gitkeep`) are skipped.
fn walk(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).expect("below root");
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push(parts.join("/"));
        }
    }
}
