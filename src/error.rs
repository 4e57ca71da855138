//! The library's error type: a documented [`ErrorKind`], a message that says what was
//! expected, and where known the file, line and column.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, as a stable category a program can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A path could not be read or written.
    Io,
    /// The file is not valid YAML (or JSON lines).
    Syntax,
    /// A key is unknown, missing or of the wrong type.
    Schema,
    /// A value is malformed: a UUID, a window, a regex, an empty literal.
    InvalidValue,
    /// A rule names a field the data source does not have.
    UnknownField,
    /// A target's field map has no column for a canonical field.
    UnmappedField,
    /// A profile maps a field onto one its data does not record.
    UnrecordedField,
    /// The profile's data does not record a field the rule needs (the rule's
    /// verdict is `unsupported`; an error only under `--strict`).
    Unsupported,
    /// No such target.
    UnknownTarget,
    /// No such field-map profile for the target.
    UnknownProfile,
    /// A Sentinel query uses KQL outside the subset rmmc reads.
    UnsupportedKql,
    /// The inputs name no rule at all.
    EmptyRuleSet,
    /// `--strict` and a target can only approximate the rule.
    Approximation,
    /// A backend template failed to render.
    Template,
    /// Two rules share an id or an output path.
    Conflict,
}

impl ErrorKind {
    /// The kind's stable name, as printed in `error[kind]`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Syntax => "syntax",
            ErrorKind::Schema => "schema",
            ErrorKind::InvalidValue => "invalid-value",
            ErrorKind::UnknownField => "unknown-field",
            ErrorKind::UnmappedField => "unmapped-field",
            ErrorKind::UnrecordedField => "unrecorded-field",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::UnknownTarget => "unknown-target",
            ErrorKind::UnknownProfile => "unknown-profile",
            ErrorKind::UnsupportedKql => "unsupported-kql",
            ErrorKind::EmptyRuleSet => "empty-rule-set",
            ErrorKind::Approximation => "approximation",
            ErrorKind::Template => "template",
            ErrorKind::Conflict => "conflict",
        }
    }
}

/// A position in an input file; line and column count from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file the position is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

/// An rmmc error. `Display` gives `file:line:col: error[kind]: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    file: Option<PathBuf>,
    position: Option<(usize, usize)>,
}

/// The result type of the library: [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message that says what was expected.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            file: None,
            position: None,
        }
    }

    /// Attach the file the error is about, unless one is already set.
    pub fn in_file(mut self, file: impl AsRef<Path>) -> Self {
        if self.file.is_none() {
            self.file = Some(file.as_ref().to_path_buf());
        }
        self
    }

    /// Attach a 1-based line and column, unless a position is already set.
    pub fn at(mut self, line: usize, column: usize) -> Self {
        if self.position.is_none() {
            self.position = Some((line, column));
        }
        self
    }

    /// What went wrong, as a category to branch on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without file and position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The file the error is about, if known.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// File, line and column, when both file and position are known.
    pub fn location(&self) -> Option<Location> {
        let file = self.file.clone()?;
        let (line, column) = self.position?;
        Some(Location { file, line, column })
    }

    /// A failed write, create, rename or remove.
    pub(crate) fn io_write(path: &Path, err: std::io::Error) -> Self {
        Error::new(
            ErrorKind::Io,
            format!("cannot write `{}`: {err}", path.display()),
        )
        .in_file(path)
    }

    pub(crate) fn io(path: &Path, err: std::io::Error) -> Self {
        Error::new(
            ErrorKind::Io,
            format!("cannot read `{}`: {err}", path.display()),
        )
        .in_file(path)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.position) {
            (Some(file), Some((line, col))) => write!(f, "{}:{line}:{col}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            _ => {}
        }
        write!(f, "error[{}]: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

thread_local! {
    /// The kind of the error a value conversion raised while serde_yaml was
    /// deserializing on this thread (see [`rejected`]): serde_yaml's errors carry text
    /// only, so the kind travels beside the error until [`yaml_error`] takes it.
    static REJECTED: std::cell::Cell<Option<ErrorKind>> = const { std::cell::Cell::new(None) };
}

/// The message of a value that a conversion run inside deserialization rejects (a
/// `TryFrom` behind `#[serde(try_from)]`, a visitor), recording its kind for
/// [`yaml_error`]. The caller hands the message to serde, which aborts the parse.
pub(crate) fn rejected(kind: ErrorKind, message: String) -> String {
    REJECTED.with(|k| k.set(Some(kind)));
    message
}

/// Parse YAML text as `T`; an error names the file, line and column and has its kind
/// (see [`yaml_error`]).
pub fn from_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    parse_yaml(text).map_err(|e| yaml_error(path, text, &e))
}

/// Parse YAML text as `T`, keeping serde_yaml's error for a caller that looks at it
/// before turning it into an rmmc error with [`yaml_error`].
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
) -> std::result::Result<T, serde_yaml::Error> {
    REJECTED.with(|k| k.set(None));
    serde_yaml::from_str(text)
}

/// Turn a serde_yaml error from parsing `text` into an rmmc error with the file, line
/// and column. The kind is decided by where the error arose, never by its wording: a
/// conversion that rejected a value said its kind (`rejected`); otherwise text that
/// is not YAML at all is a syntax error, and YAML that does not fit the expected
/// shape (a key unknown, missing or of the wrong type) a schema error.
pub fn yaml_error(path: &Path, text: &str, e: &serde_yaml::Error) -> Error {
    let message = e.to_string();
    // serde_yaml appends " at line L column C" to the message; the location is kept apart.
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    let kind = match REJECTED.with(|k| k.take()) {
        Some(kind) => kind,
        None if serde_yaml::from_str::<serde::de::IgnoredAny>(text).is_ok() => ErrorKind::Schema,
        None => ErrorKind::Syntax,
    };
    let err = Error::new(kind, message).in_file(path);
    match e.location() {
        Some(loc) => err.at(loc.line(), loc.column()),
        None => err,
    }
}

/// A warning as data: where in its file (when known), its code (when it has one) and
/// what it says. Parser, lint, lowering and importer warnings become remarks, so
/// reports (text, JSON, SARIF) take their parts as they are, never from a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remark {
    /// 1-based line and column in the file the warning is about.
    pub position: Option<(usize, usize)>,
    /// The warning's code (`not-a-file-name`), which `acknowledged:` names.
    pub code: Option<&'static str>,
    /// What deserves a look, without position or code.
    pub message: String,
}

impl Remark {
    /// A warning with neither position nor code.
    pub fn new(message: impl Into<String>) -> Remark {
        Remark {
            position: None,
            code: None,
            message: message.into(),
        }
    }
}

/// `line:col: message [code]`, the parts that are known.
impl fmt::Display for Remark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((line, column)) = self.position {
            write!(f, "{line}:{column}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(code) = self.code {
            write!(f, " [{code}]")?;
        }
        Ok(())
    }
}

/// Many errors at once: a build reports every bad rule, not only the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errors(pub Vec<Error>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

impl From<Error> for Errors {
    fn from(e: Error) -> Self {
        Errors(vec![e])
    }
}
