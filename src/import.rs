//! Importing Microsoft Sentinel hunting queries as rmmc rules.
//! (Work in progress: see issue 3.)

use crate::backends::Backends;
use crate::error::{Error, ErrorKind, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// What an import did, per file.
#[derive(Debug, Default)]
pub struct Summary {
    pub imported: Vec<PathBuf>,
    pub repaired: Vec<(PathBuf, String)>,
    pub failures: Vec<Error>,
}

impl Summary {
    pub fn failed(&self) -> usize {
        self.failures.len()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "imported {}, repaired {}, failed {}",
            self.imported.len(),
            self.repaired.len(),
            self.failures.len()
        )
    }
}

pub fn import_sentinel(_paths: &[PathBuf], _into: &Path, _backends: &Backends) -> Result<Summary> {
    Err(Error::new(ErrorKind::UnsupportedKql, "import is not implemented yet"))
}
