//! Where a build's files go while it streams: memory (the library's [`super::build`]),
//! a folder on disk (staging for `rmmc build` and `--check`), or nowhere (`rmmc check`).
//!
//! A build hands files over rule by rule, in rule-stem order, and appends to gathered
//! files (savedsearches.conf, rules.ndjson, FIDELITY.md) as it goes, so no sink but
//! the in-memory one holds more than one rule's text.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
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
#[derive(Debug)]
pub struct DirSink {
    root: PathBuf,
    open: BTreeMap<PathBuf, BufWriter<File>>,
}

impl DirSink {
    /// A sink writing under `root`, which need not exist yet.
    pub fn new(root: &Path) -> DirSink {
        DirSink {
            root: root.to_path_buf(),
            open: BTreeMap::new(),
        }
    }

    fn create(&self, rel: &Path) -> Result<File> {
        let dest = self.root.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| cannot_write(parent, e))?;
        }
        // A staged tree may share files with the live one through hard links (a
        // subset build starts from a linked copy): replace the link, never write
        // through it.
        match std::fs::remove_file(&dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(cannot_write(&dest, e)),
        }
        File::create(&dest).map_err(|e| cannot_write(&dest, e))
    }
}

impl Sink for DirSink {
    fn write(&mut self, rel: &Path, text: &str) -> Result<()> {
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
