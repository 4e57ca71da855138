//! Where a build's files go while it streams: memory (the library's [`super::build`]),
//! a folder on disk (staging for `rmmc build` and `--check`), or nowhere (`rmmc check`).
//!
//! A build hands files over rule by rule, in rule-stem order, and appends to gathered
//! files (savedsearches.conf, rules.ndjson, FIDELITY.md) as it goes, so no sink but
//! the in-memory one holds more than one rule's text.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The receiving end of a streaming build. Paths are relative to the output root
/// (`kql/netsupport/filesig.kql`).
pub trait Sink {
    /// A whole file.
    fn write(&mut self, rel: &Path, text: &str) -> Result<()>;
    /// A whole file of one rule, the one whose output stem is `stem`
    /// (`netsupport/filesig`). Sinks that treat some rules' files apart (subset builds
    /// and checks) learn from this which files a rule owns, whatever they are named.
    fn rule_file(&mut self, stem: &Path, rel: &Path, text: &str) -> Result<()> {
        let _ = stem;
        self.write(rel, text)
    }
    /// Text added to the end of a file, which the first call creates.
    fn append(&mut self, rel: &Path, text: &str) -> Result<()>;
    /// Everything handed over is stored (files flushed and closed).
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Keeps every file in memory: for libraries and tests over small rule sets.
#[derive(Debug, Default)]
pub struct MemorySink {
    /// Every file, by path relative to the output root.
    pub files: BTreeMap<PathBuf, String>,
}

impl Sink for MemorySink {
    fn write(&mut self, rel: &Path, text: &str) -> Result<()> {
        self.files.insert(rel.to_path_buf(), text.to_string());
        Ok(())
    }

    fn append(&mut self, rel: &Path, text: &str) -> Result<()> {
        self.files
            .entry(rel.to_path_buf())
            .or_default()
            .push_str(text);
        Ok(())
    }
}

/// Drops everything: `rmmc check` compiles and renders but writes nothing.
#[derive(Debug, Default)]
pub struct DiscardSink;

impl Sink for DiscardSink {
    fn write(&mut self, _: &Path, _: &str) -> Result<()> {
        Ok(())
    }

    fn append(&mut self, _: &Path, _: &str) -> Result<()> {
        Ok(())
    }
}

/// Writes under a folder as files arrive; gathered files stay open for appending
/// until [`Sink::finish`].
///
/// A file costs the system calls of creating it and no more: the folders made so far
/// are remembered (a few, [`DirSink::MADE`]: rules arrive in stem order, so a rule's
/// folder is one of the last ones made) instead of asking for each file's folder again,
/// and a file is created with `O_EXCL` instead of first removing whatever is there.
///
/// Made with [`DirSink::reusing`] the live tree a build replaces, a whole file whose
/// text equals the live file at the same place becomes a hard link to it: a rebuild
/// creates and frees no inode for what did not change. (Creating many files within
/// seconds of deleting many is several times slower on some file systems, e.g. ext4
/// without a journal skips every recently freed inode on each allocation: a rebuild of
/// 5,000 rules right after another took 34 s of system time instead of 7.)
#[derive(Debug)]
pub struct DirSink {
    root: PathBuf,
    open: BTreeMap<PathBuf, BufWriter<File>>,
    /// Folders known to exist, most recent last (at most [`DirSink::MADE`]).
    made: Vec<PathBuf>,
    /// The live tree whose unchanged files are linked, not written again.
    live: Option<PathBuf>,
    /// The live file being compared (one file's text at a time).
    buffer: Vec<u8>,
}

impl DirSink {
    /// How many folders known to exist are remembered.
    const MADE: usize = 16;

    /// A sink writing under `root`, which need not exist yet.
    pub fn new(root: &Path) -> DirSink {
        DirSink {
            root: root.to_path_buf(),
            open: BTreeMap::new(),
            made: Vec::new(),
            live: None,
            buffer: Vec::new(),
        }
    }

    /// A sink writing under `root` that links each whole file unchanged from the same
    /// place under `live` (the tree `root` will replace; never written to).
    pub fn reusing(root: &Path, live: &Path) -> DirSink {
        DirSink {
            live: Some(live.to_path_buf()),
            ..DirSink::new(root)
        }
    }

    /// Link `rel` from the live tree if the live file (a plain file, not a link to
    /// one) holds exactly `text`; false if it does not or cannot be linked.
    fn link_unchanged(&mut self, rel: &Path, text: &str) -> Result<bool> {
        let Some(live) = &self.live else {
            return Ok(false);
        };
        let old = live.join(rel);
        match std::fs::symlink_metadata(&old) {
            Ok(m) if m.is_file() && m.len() == text.len() as u64 => {}
            _ => return Ok(false),
        }
        self.buffer.clear();
        let same = File::open(&old)
            .and_then(|mut f| f.read_to_end(&mut self.buffer))
            .is_ok_and(|_| self.buffer == text.as_bytes());
        if !same {
            return Ok(false);
        }
        let dest = self.root.join(rel);
        if let Some(parent) = dest.parent() {
            self.make_dir(parent)?;
        }
        Ok(std::fs::hard_link(&old, &dest).is_ok())
    }

    /// Make `dir` unless it is one of the folders made last.
    fn make_dir(&mut self, dir: &Path) -> Result<()> {
        if self.made.iter().rev().any(|d| d == dir) {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(|e| cannot_write(dir, e))?;
        if self.made.len() == DirSink::MADE {
            self.made.remove(0);
        }
        self.made.push(dir.to_path_buf());
        Ok(())
    }

    fn create(&mut self, rel: &Path) -> Result<File> {
        let dest = self.root.join(rel);
        if let Some(parent) = dest.parent() {
            self.make_dir(parent)?;
        }
        let create = || File::options().write(true).create_new(true).open(&dest);
        match create() {
            Ok(file) => Ok(file),
            // A staged tree may share files with the live one through hard links (a
            // subset build starts from a linked copy): replace the link, never write
            // through it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&dest).map_err(|e| cannot_write(&dest, e))?;
                create().map_err(|e| cannot_write(&dest, e))
            }
            // A remembered folder removed since: make it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.made.clear();
                if let Some(parent) = dest.parent() {
                    self.make_dir(parent)?;
                }
                create().map_err(|e| cannot_write(&dest, e))
            }
            Err(e) => Err(cannot_write(&dest, e)),
        }
    }
}

impl Sink for DirSink {
    fn write(&mut self, rel: &Path, text: &str) -> Result<()> {
        if self.link_unchanged(rel, text)? {
            return Ok(());
        }
        let dest = self.root.join(rel);
        let mut file = self.create(rel)?;
        file.write_all(text.as_bytes())
            .map_err(|e| cannot_write(&dest, e))
    }

    fn append(&mut self, rel: &Path, text: &str) -> Result<()> {
        if !self.open.contains_key(rel) {
            let file = self.create(rel)?;
            self.open.insert(rel.to_path_buf(), BufWriter::new(file));
        }
        let writer = self.open.get_mut(rel).expect("opened above");
        writer
            .write_all(text.as_bytes())
            .map_err(|e| cannot_write(&self.root.join(rel), e))
    }

    fn finish(&mut self) -> Result<()> {
        for (rel, mut writer) in std::mem::take(&mut self.open) {
            writer
                .flush()
                .map_err(|e| cannot_write(&self.root.join(&rel), e))?;
        }
        Ok(())
    }
}

/// An I/O error while writing `path`.
pub(crate) fn cannot_write(path: &Path, err: std::io::Error) -> Error {
    Error::io_write(path, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rmmc-sink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn files_land_in_folders_made_in_any_order() {
        let root = folder("order");
        let mut sink = DirSink::new(&root);
        // More folders than are remembered, then back to the first ones.
        let dirs: Vec<String> = (0..DirSink::MADE + 4).map(|i| format!("t/d{i}")).collect();
        for (i, d) in dirs.iter().chain(dirs.iter().take(3)).enumerate() {
            sink.write(&Path::new(d).join(format!("f{i}.txt")), d)
                .unwrap();
        }
        sink.append(Path::new("t/all.txt"), "a").unwrap();
        sink.append(Path::new("t/all.txt"), "b").unwrap();
        // A remembered folder removed behind the sink's back is made again.
        std::fs::remove_dir_all(root.join("t/d0")).unwrap();
        sink.write(Path::new("t/d0/again.txt"), "x").unwrap();
        sink.finish().unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("t/d1/f1.txt")).unwrap(),
            "t/d1"
        );
        let back = DirSink::MADE + 4 + 2;
        assert_eq!(
            std::fs::read_to_string(root.join(format!("t/d2/f{back}.txt"))).unwrap(),
            "t/d2"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("t/all.txt")).unwrap(),
            "ab"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("t/d0/again.txt")).unwrap(),
            "x"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn unchanged_files_are_linked_from_the_live_tree_and_changed_ones_written() {
        use std::os::unix::fs::MetadataExt;
        let root = folder("reuse");
        let live = root.join("live");
        std::fs::create_dir_all(live.join("t/a")).unwrap();
        std::fs::write(live.join("t/a/same.txt"), "same").unwrap();
        std::fs::write(live.join("t/a/changed.txt"), "old!").unwrap();
        std::fs::write(live.join("t/a/target.txt"), "link").unwrap();
        std::os::unix::fs::symlink(live.join("t/a/target.txt"), live.join("t/a/symlink.txt"))
            .unwrap();
        let mut sink = DirSink::reusing(&root.join("staged"), &live);
        for (name, text) in [
            ("same.txt", "same"),
            ("changed.txt", "new!"),
            ("symlink.txt", "link"),
            ("fresh.txt", "new"),
        ] {
            sink.write(&Path::new("t/a").join(name), text).unwrap();
        }
        sink.finish().unwrap();
        let staged = |name: &str| root.join("staged/t/a").join(name);
        let ino = |p: &Path| std::fs::symlink_metadata(p).unwrap().ino();
        assert_eq!(ino(&staged("same.txt")), ino(&live.join("t/a/same.txt")));
        assert_ne!(
            ino(&staged("changed.txt")),
            ino(&live.join("t/a/changed.txt"))
        );
        assert_eq!(
            std::fs::read_to_string(staged("changed.txt")).unwrap(),
            "new!"
        );
        assert_eq!(
            std::fs::read_to_string(live.join("t/a/changed.txt")).unwrap(),
            "old!"
        );
        // A link in the live tree is never carried over: a plain file is written.
        assert!(
            std::fs::symlink_metadata(staged("symlink.txt"))
                .unwrap()
                .is_file()
        );
        assert_eq!(std::fs::read_to_string(staged("fresh.txt")).unwrap(), "new");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_file_linked_to_another_is_replaced_not_written_through() {
        let root = folder("link");
        std::fs::create_dir_all(root.join("staged")).unwrap();
        std::fs::write(root.join("live.txt"), "old").unwrap();
        std::fs::hard_link(root.join("live.txt"), root.join("staged/rule.txt")).unwrap();
        let mut sink = DirSink::new(&root.join("staged"));
        sink.write(Path::new("rule.txt"), "new").unwrap();
        sink.finish().unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("live.txt")).unwrap(),
            "old"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("staged/rule.txt")).unwrap(),
            "new"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
