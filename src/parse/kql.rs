//! A tokenizer and recursive-descent parser for the KQL subset of Microsoft Sentinel
//! hunting queries (the RemoteManagementMonitoringTools style):
//!
//! ```text
//! let Time_start = now(-5d);
//! let Time_end = now();
//! let rmmProcess =
//! SomeTable
//! | where Timestamp between (Time_start..Time_end)
//! | where ColumnA has 'x' and (ColumnB has_any ('y', 'z') or isempty(ColumnC))
//! | summarize FirstSeen=min(Timestamp), Count=count() by DeviceId, DeviceName
//! | extend rmmProcessName = 'x'
//! ;
//! rmmProcess
//! ```
//!
//! The result is a [`KqlQuery`]: the table, the look-back window, the non-time
//! filters as one [`Expr`], the aggregation and the constant columns. Column names
//! are kept exactly as written in KQL; mapping them to canonical fields is the
//! caller's business.
//!
//! Anything outside the subset is a [`KqlError`] that points at the offending token
//! (byte offset plus 1-based line and column, the column counted in characters).
//! The parser never panics, whatever the input.

use crate::ir::{
    AggFunction, Aggregation, Case, Constant, Expr, MatchKind, Output, Predicate, Quantifier,
};
use crate::kql_operators;
use std::collections::HashMap;
use std::fmt;

/// A parsed hunting query.
#[derive(Debug, Clone, PartialEq)]
pub struct KqlQuery {
    /// The source table, e.g. `DeviceFileCertificateInfo`.
    pub table: String,
    /// The look-back window from the time filter, in seconds.
    pub window_seconds: Option<u64>,
    /// The column used in the time filter, e.g. `Timestamp`.
    pub time_column: Option<String>,
    /// Every non-time `where` condition, ANDed ([`Expr::All`] when more than one).
    pub filter: Option<Expr>,
    /// `summarize ... by ...`, with KQL column names.
    pub aggregation: Option<Aggregation>,
    /// `extend X = 'const'` columns.
    pub constants: Vec<Constant>,
    /// `project` (keep) or `project-away` (drop) stages, in order, with their columns:
    /// they choose result columns, never which events match.
    pub projections: Vec<Projection>,
}

/// One `project` or `project-away` stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// `true` for `project-away`.
    pub away: bool,
    /// The columns named.
    pub columns: Vec<String>,
}

/// A parse error, located in the query text.
#[derive(Debug, Clone, PartialEq)]
pub struct KqlError {
    /// Byte offset of the offending token.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What went wrong, for programs to branch on.
    pub kind: KqlErrorKind,
    /// What was found and what was expected, positions in it counted in the query.
    pub message: String,
    /// The other place the message names, e.g. the `(` an unclosed list opened at.
    pub related: Option<Related>,
    /// The message around the related position, to write it in another frame.
    around_related: Option<Box<(String, String)>>,
}

/// What kind of KQL error: the cases a reader of upstream queries explains apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KqlErrorKind {
    /// Something else than the grammar of the subset allows here.
    Unexpected,
    /// A `(` that is never closed.
    UnclosedParenthesis,
    /// Two items of a literal list with no `,` between them.
    MissingListComma,
    /// A literal list that ends without `)`.
    UnclosedList,
    /// A list operator (`has_any`, `in`, ...) followed by another operator, not `(`.
    ListOperatorTwice,
    /// A tabular operator after `|` outside the subset (`where`, `summarize`, `extend`).
    UnsupportedOperator,
}

/// A second position an error refers to, in the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Related {
    /// Byte offset in the query.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl KqlError {
    /// The message with the related position moved by `at` from query coordinates
    /// (line 1 is the query's first line) to another frame, e.g. the file around the
    /// query: `(line, column) -> (line, column)`.
    pub fn message_at(&self, at: impl Fn(usize, usize) -> (usize, usize)) -> String {
        match (&self.related, &self.around_related) {
            (Some(r), Some(around)) => {
                let (before, after) = around.as_ref();
                let (line, column) = at(r.line, r.column);
                format!("{before}line {line}, column {column}{after}")
            }
            _ => self.message.clone(),
        }
    }
}

impl fmt::Display for KqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for KqlError {}

/// Parse one hunting query.
pub fn parse_kql(text: &str) -> Result<KqlQuery, KqlError> {
    let tokens = Lexer::new(text).run()?;
    Parser::new(text, tokens).query()
}

// ---------------------------------------------------------------------------------
// Errors and positions

fn error_at(src: &str, offset: usize, message: impl Into<String>) -> KqlError {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    KqlError {
        offset,
        line,
        column,
        kind: KqlErrorKind::Unexpected,
        message: message.into(),
        related: None,
        around_related: None,
    }
}

// ---------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier or keyword; also the glued operators `!has`, `!contains`, `in~`,
    /// `!in`, `!in~`.
    Word(String),
    /// A string literal, decoded.
    Str(String),
    /// An integer, with the letters directly after it (a timespan unit, maybe empty).
    Num {
        value: u64,
        unit: String,
    },
    /// Punctuation: `| ( ) , ; = == != =~ !~ .. - > >= < <=`.
    Punct(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: Vec<Token>,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src,
            bytes: src.as_bytes(),
            pos: 0,
            out: Vec::new(),
        }
    }

    fn byte(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> KqlError {
        error_at(self.src, offset, message)
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.out.push(Token {
            tok,
            start,
            end: self.pos,
        });
    }

    fn run(mut self) -> Result<Vec<Token>, KqlError> {
        while let Some(c) = self.src.get(self.pos..).and_then(|s| s.chars().next()) {
            let start = self.pos;
            let next = self.byte(start + 1);
            match c {
                c if c.is_whitespace() || c == '\u{feff}' => self.pos += c.len_utf8(),
                '/' if next == Some(b'/') => {
                    while let Some(b) = self.byte(self.pos) {
                        if b == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                '\'' | '"' => {
                    let s = self.string(start, 1, false)?;
                    self.push(Tok::Str(s), start);
                }
                '@' if matches!(next, Some(b'\'') | Some(b'"')) => {
                    let s = self.string(start, 2, true)?;
                    self.push(Tok::Str(s), start);
                }
                '!' if next == Some(b'=') => self.punct("!=", start),
                '!' if next == Some(b'~') => self.punct("!~", start),
                '!' if next.is_some_and(is_ident_start) => {
                    self.pos += 1;
                    self.word(start);
                }
                '=' if next == Some(b'=') => self.punct("==", start),
                '=' if next == Some(b'~') => self.punct("=~", start),
                '=' => self.punct("=", start),
                '.' if next == Some(b'.') => self.punct("..", start),
                '>' if next == Some(b'=') => self.punct(">=", start),
                '>' => self.punct(">", start),
                '<' if next == Some(b'=') => self.punct("<=", start),
                '<' => self.punct("<", start),
                '|' => self.punct("|", start),
                '(' => self.punct("(", start),
                ')' => self.punct(")", start),
                ',' => self.punct(",", start),
                ';' => self.punct(";", start),
                '-' => self.punct("-", start),
                c if c.is_ascii_digit() => self.number(start)?,
                c if c.is_ascii() && is_ident_start(c as u8) => self.word(start),
                c => return Err(self.err(start, format!("unexpected character `{c}`"))),
            }
        }
        let end = self.src.len();
        self.out.push(Token {
            tok: Tok::Eof,
            start: end,
            end,
        });
        Ok(self.out)
    }

    fn punct(&mut self, p: &'static str, start: usize) {
        self.pos = start + p.len();
        self.push(Tok::Punct(p), start);
    }

    /// An identifier from `self.pos` (a leading `!` already consumed if any).
    fn word(&mut self, start: usize) {
        while self.byte(self.pos).is_some_and(is_ident_char) {
            self.pos += 1;
        }
        let text = &self.src[start..self.pos];
        if (text == "in" || text == "!in") && self.byte(self.pos) == Some(b'~') {
            self.pos += 1;
        }
        let text = self.src[start..self.pos].to_string();
        self.push(Tok::Word(text), start);
    }

    fn number(&mut self, start: usize) -> Result<(), KqlError> {
        while self.byte(self.pos).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits_end = self.pos;
        while self.byte(self.pos).is_some_and(is_ident_char) {
            self.pos += 1;
        }
        let value: u64 = self.src[start..digits_end].parse().map_err(|_| {
            self.err(
                start,
                format!("number `{}` is too large", &self.src[start..digits_end]),
            )
        })?;
        let unit = self.src[digits_end..self.pos].to_string();
        self.push(Tok::Num { value, unit }, start);
        Ok(())
    }

    /// A string literal starting at `start`; the opening quote is at `start + skip - 1`.
    fn string(&mut self, start: usize, skip: usize, verbatim: bool) -> Result<String, KqlError> {
        let quote = self.bytes[start + skip - 1] as char;
        self.pos = start + skip;
        let mut out = String::new();
        loop {
            let Some(c) = self.src.get(self.pos..).and_then(|s| s.chars().next()) else {
                return Err(self.err(
                    start,
                    format!("unterminated string literal: expected a closing `{quote}`"),
                ));
            };
            match c {
                '\n' | '\r' => {
                    return Err(self.err(
                        start,
                        format!(
                            "unterminated string literal: expected a closing `{quote}` \
                             before the end of the line"
                        ),
                    ));
                }
                c if c == quote => {
                    self.pos += 1;
                    if verbatim && self.byte(self.pos) == Some(quote as u8) {
                        out.push(quote);
                        self.pos += 1;
                    } else {
                        return Ok(out);
                    }
                }
                '\\' if !verbatim && self.byte(self.pos + 1) == Some(b'u') => {
                    let at = self.pos;
                    let (c, len) = self.unicode_escape(at)?;
                    out.push(c);
                    self.pos += len;
                }
                '\\' if !verbatim => {
                    let at = self.pos;
                    let escaped = match self.byte(at + 1) {
                        Some(b'\\') => '\\',
                        Some(b'"') => '"',
                        Some(b'\'') => '\'',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        _ => {
                            let what = self
                                .src
                                .get(at + 1..)
                                .and_then(|s| s.chars().next())
                                .map_or_else(|| "end of query".to_string(), |c| format!("`\\{c}`"));
                            return Err(self.err(
                                at,
                                format!(
                                    "unknown escape sequence {what} in string literal: expected \
                                     one of `\\\\ \\\" \\' \\n \\r \\t \\uXXXX` (use a verbatim @'...' \
                                     string for backslashes)"
                                ),
                            ));
                        }
                    };
                    out.push(escaped);
                    self.pos += 2;
                }
                c => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }
}

impl Lexer<'_> {
    /// A `\uXXXX` escape at `at` (a UTF-16 code unit, as in KQL): the character and the
    /// length of its text, a surrogate pair read as one character.
    fn unicode_escape(&self, at: usize) -> Result<(char, usize), KqlError> {
        let unit = |i: usize| {
            self.src
                .get(i + 2..i + 6)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
        };
        let bad = |what: &str| {
            self.err(
                at,
                format!("invalid unicode escape in string literal: expected {what}"),
            )
        };
        let first = unit(at).ok_or_else(|| bad("`\\u` and four hexadecimal digits"))?;
        if let Some(c) = char::from_u32(first) {
            return Ok((c, 6));
        }
        let low = (0xD800..0xDC00)
            .contains(&first)
            .then(|| (self.src.get(at + 6..at + 8) == Some("\\u")).then(|| unit(at + 6)))
            .flatten()
            .flatten()
            .filter(|low| (0xDC00..0xE000).contains(low))
            .ok_or_else(|| {
                bad("a high surrogate followed by a `\\uDC00`..`\\uDFFF` low surrogate")
            })?;
        let c = char::from_u32(0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00))
            .expect("a surrogate pair is a character");
        Ok((c, 12))
    }
}

// ---------------------------------------------------------------------------------
// Parser

/// Words that can never be a table, column or `let` name.
const RESERVED: &[&str] = &[
    "and",
    "or",
    "not",
    "let",
    "where",
    "summarize",
    "extend",
    "by",
    "between",
    "in",
    "matches",
    "has",
    "has_cs",
    "has_any",
    "has_all",
    "contains",
    "contains_cs",
    "startswith",
    "startswith_cs",
    "endswith",
    "endswith_cs",
];

const MAX_DEPTH: usize = 64;

/// Where the pipeline is: operators must come in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Filter,
    Summarized,
    Extended,
}

#[derive(Debug, Clone)]
struct Pipeline {
    table: String,
    window_seconds: Option<u64>,
    time_column: Option<String>,
    filters: Vec<Expr>,
    aggregation: Option<Aggregation>,
    constants: Vec<Constant>,
    projections: Vec<Projection>,
    stage: Stage,
}

impl Pipeline {
    fn new(table: String) -> Self {
        Pipeline {
            table,
            window_seconds: None,
            time_column: None,
            filters: Vec::new(),
            aggregation: None,
            constants: Vec::new(),
            projections: Vec::new(),
            stage: Stage::Filter,
        }
    }

    fn finish(self) -> KqlQuery {
        let filter = match self.filters.len() {
            0 => None,
            1 => self.filters.into_iter().next(),
            _ => Some(Expr::All(self.filters)),
        };
        KqlQuery {
            table: self.table,
            window_seconds: self.window_seconds,
            time_column: self.time_column,
            filter,
            aggregation: self.aggregation,
            constants: self.constants,
            projections: self.projections,
        }
    }
}

/// A `where` condition before the time filter is split off.
#[derive(Debug)]
enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Pred(Expr),
    Time {
        column: String,
        window: u64,
        offset: usize,
    },
}

impl Cond {
    fn into_expr(self, src: &str) -> Result<Expr, KqlError> {
        Ok(match self {
            Cond::And(xs) => Expr::All(
                xs.into_iter()
                    .map(|x| x.into_expr(src))
                    .collect::<Result<_, _>>()?,
            ),
            Cond::Or(xs) => Expr::Any(
                xs.into_iter()
                    .map(|x| x.into_expr(src))
                    .collect::<Result<_, _>>()?,
            ),
            Cond::Not(x) => Expr::Not(Box::new(x.into_expr(src)?)),
            Cond::Pred(e) => e,
            Cond::Time { column, offset, .. } => {
                return Err(error_at(
                    src,
                    offset,
                    format!(
                        "the time filter on `{column}` must be a top-level `and` term of \
                         `where`, not under `or` or `not()`"
                    ),
                ));
            }
        })
    }
}

/// Join conditions with `and`/`or`, flattening nested joins of the same kind.
fn join(items: Vec<Cond>, and: bool) -> Cond {
    if items.len() == 1 {
        return items.into_iter().next().expect("one item");
    }
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Cond::And(xs) if and => flat.extend(xs),
            Cond::Or(xs) if !and => flat.extend(xs),
            x => flat.push(x),
        }
    }
    if and { Cond::And(flat) } else { Cond::Or(flat) }
}

/// A tabular `let`: its pipeline, or the error its body had (reported only if used,
/// or at the end if nothing else went wrong).
type TableLet = Result<Pipeline, KqlError>;

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    /// `let NAME = now(...)` / `ago(...)`: seconds relative to now (negative = past).
    time_lets: HashMap<String, i128>,
    table_lets: HashMap<String, TableLet>,
}

fn pred(field: &str, kind: MatchKind, case: Case, values: Vec<String>, q: Quantifier) -> Expr {
    Expr::Match(Predicate {
        field: field.to_string(),
        kind,
        case,
        values,
        quantifier: q,
    })
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, toks: Vec<Token>) -> Self {
        Parser {
            src,
            toks,
            pos: 0,
            depth: 0,
            time_lets: HashMap::new(),
            table_lets: HashMap::new(),
        }
    }

    // --- token helpers -------------------------------------------------------------

    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> &Token {
        let last = self.toks.len() - 1; // the lexer always ends with Eof
        &self.toks[(self.pos + n).min(last)]
    }

    fn advance(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is_word(t: &Token, w: &str) -> bool {
        matches!(&t.tok, Tok::Word(x) if x == w)
    }

    fn is_punct(t: &Token, p: &str) -> bool {
        matches!(&t.tok, Tok::Punct(x) if *x == p)
    }

    fn peek_word(&self, w: &str) -> bool {
        Self::is_word(self.peek(), w)
    }

    fn peek_punct(&self, p: &str) -> bool {
        Self::is_punct(self.peek(), p)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.peek_punct(p) {
            self.advance();
            true
        } else {
            false
        }
    }

    /// `|`, `;` or end of query: what may follow a complete operator.
    fn at_operator_end(&self) -> bool {
        let t = self.peek();
        matches!(t.tok, Tok::Eof) || Self::is_punct(t, "|") || Self::is_punct(t, ";")
    }

    fn describe(&self, t: &Token) -> String {
        let raw = self.src.get(t.start..t.end).unwrap_or("");
        match &t.tok {
            Tok::Eof => "end of query".to_string(),
            Tok::Str(_) => {
                let mut s: String = raw.chars().take(60).collect();
                if raw.chars().count() > 60 {
                    s.push_str("...");
                }
                format!("string {s}")
            }
            _ => format!("`{raw}`"),
        }
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> KqlError {
        error_at(self.src, offset, message)
    }

    /// "expected WHAT, found <next token>" at the next token.
    fn expected(&self, what: &str) -> KqlError {
        let t = self.peek();
        self.err(t.start, format!("expected {what}{}", self.found(t)))
    }

    /// ", found <token>", and why when the token is a stray `)`.
    fn found(&self, t: &Token) -> String {
        let mut msg = format!(", found {}", self.describe(t));
        if Self::is_punct(t, ")") {
            msg.push_str(" (unbalanced parenthesis)");
        }
        msg
    }

    /// "expected WHAT-BEFORE line L, column C, found <next token>": an error at the
    /// next token that names `open`, the token it relates to, as a [`Related`] span.
    fn expected_related(&self, before: &str, open: &Token) -> KqlError {
        let t = self.peek();
        let at = self.err(open.start, "");
        let before = format!("expected {before}");
        let after = self.found(t);
        let mut e = self.err(
            t.start,
            format!("{before}line {}, column {}{after}", at.line, at.column),
        );
        e.related = Some(Related {
            offset: at.offset,
            line: at.line,
            column: at.column,
        });
        e.around_related = Some(Box::new((before, after)));
        e
    }

    fn expect_punct(&mut self, p: &str, what: &str) -> Result<Token, KqlError> {
        if self.peek_punct(p) {
            Ok(self.advance())
        } else {
            Err(self.expected(what))
        }
    }

    /// A name: table, column or `let` name.
    fn name(&mut self, what: &str) -> Result<(String, usize), KqlError> {
        let t = self.peek().clone();
        if let Tok::Word(w) = &t.tok
            && w.as_bytes().first().is_some_and(|&b| is_ident_start(b))
            && !w.ends_with('~')
            && !RESERVED.contains(&w.as_str())
        {
            self.advance();
            return Ok((w.clone(), t.start));
        }
        Err(self.expected(what))
    }

    fn enter(&mut self) -> Result<(), KqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                self.peek().start,
                format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    // --- statements ---------------------------------------------------------------

    fn query(&mut self) -> Result<KqlQuery, KqlError> {
        while self.peek_word("let") {
            self.let_statement()?;
        }
        let pipeline = self.pipeline()?;
        if self.eat_punct(";") && !matches!(self.peek().tok, Tok::Eof) {
            return Err(self.expected(
                "end of query after the final `;` (only one tabular statement, \
                 after the `let` statements, is supported)",
            ));
        }
        if !matches!(self.peek().tok, Tok::Eof) {
            return Err(self.expected("`|`, `;` or end of query"));
        }
        // A `let` body that did not parse is an error even when unused.
        let mut deferred: Vec<&KqlError> = self
            .table_lets
            .values()
            .filter_map(|l| l.as_ref().err())
            .collect();
        deferred.sort_by_key(|e| e.offset);
        if let Some(e) = deferred.first() {
            return Err((*e).clone());
        }
        Ok(pipeline.finish())
    }

    fn let_statement(&mut self) -> Result<(), KqlError> {
        self.advance(); // `let`
        let (name, _) = self.name("a name after `let`")?;
        self.expect_punct("=", &format!("`=` after `let {name}`"))?;
        let t = self.peek().clone();
        let is_time_call = (Self::is_word(&t, "now") || Self::is_word(&t, "ago"))
            && Self::is_punct(self.peek_at(1), "(");
        if is_time_call {
            let value = self.time_value()?;
            self.expect_punct(";", &format!("`;` after the value of `let {name}`"))?;
            self.table_lets.remove(&name);
            self.time_lets.insert(name, value);
            return Ok(());
        }
        let body = self.pipeline().and_then(|p| {
            self.expect_punct(
                ";",
                &format!("`;` after the tabular expression of `let {name}`"),
            )?;
            Ok(p)
        });
        if let Err(e) = &body {
            // Resynchronise after the `;` that ends the statement; if there is none,
            // the error stands now.
            let resume = self.toks[self.pos..]
                .iter()
                .position(|t| Self::is_punct(t, ";"))
                .map(|i| self.pos + i + 1);
            match resume {
                Some(p) => self.pos = p,
                None => return Err(e.clone()),
            }
        }
        self.time_lets.remove(&name);
        self.table_lets.insert(name, body);
        Ok(())
    }

    /// `Table | op | op ...`, up to (not including) the `;` or end of query.
    fn pipeline(&mut self) -> Result<Pipeline, KqlError> {
        let (table, start) = self.name("a table name")?;
        let mut p = if let Some(l) = self.table_lets.get(&table) {
            l.clone()?
        } else if self.time_lets.contains_key(&table) {
            return Err(self.err(
                start,
                format!("`{table}` is a time value bound by `let`, not a table"),
            ));
        } else {
            Pipeline::new(table)
        };
        while self.eat_punct("|") {
            let op = self.peek().clone();
            if Self::is_word(&op, "where") {
                self.advance();
                self.where_op(&mut p, &op)?;
            } else if Self::is_word(&op, "summarize") {
                self.advance();
                self.summarize_op(&mut p, &op)?;
            } else if Self::is_word(&op, "extend") {
                self.advance();
                self.extend_op(&mut p, &op)?;
            } else if Self::is_word(&op, "project") {
                self.advance();
                self.project_op(&mut p)?;
            } else {
                let mut e = self.expected(
                    "`where`, `summarize`, `extend`, `project` or `project-away` after `|`",
                );
                e.kind = KqlErrorKind::UnsupportedOperator;
                return Err(e);
            }
        }
        if !self.at_operator_end() {
            return Err(self.expected("`|`, `;` or end of query"));
        }
        Ok(p)
    }

    fn check_stage(
        &self,
        p: &Pipeline,
        op: &Token,
        name: &str,
        stage: Stage,
    ) -> Result<(), KqlError> {
        if p.stage > stage || (stage == Stage::Summarized && p.stage == stage) {
            let after = match p.stage {
                Stage::Filter => "`where`",
                Stage::Summarized => "`summarize`",
                Stage::Extended => "`extend`",
            };
            return Err(self.err(
                op.start,
                format!(
                    "`{name}` after {after} is not supported: expected the operators in the \
                     order `where`, `summarize`, `extend`"
                ),
            ));
        }
        Ok(())
    }

    // --- where ---------------------------------------------------------------------

    fn where_op(&mut self, p: &mut Pipeline, op: &Token) -> Result<(), KqlError> {
        self.check_stage(p, op, "where", Stage::Filter)?;
        let cond = self.or_expr()?;
        if !self.at_operator_end() {
            return Err(self.expected("`and`, `or`, `|`, `;` or end of query after the condition"));
        }
        let terms = match cond {
            Cond::And(xs) => xs,
            x => vec![x],
        };
        for term in terms {
            match term {
                Cond::Time {
                    column,
                    window,
                    offset,
                } => {
                    if p.window_seconds.is_some() {
                        return Err(self.err(
                            offset,
                            format!(
                                "a second time filter on `{column}`: expected only one time \
                                 filter per query"
                            ),
                        ));
                    }
                    p.window_seconds = Some(window);
                    p.time_column = Some(column);
                }
                Cond::And(xs) => p.filters.extend(
                    xs.into_iter()
                        .map(|x| x.into_expr(self.src))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                other => p.filters.push(other.into_expr(self.src)?),
            }
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Cond, KqlError> {
        self.enter()?;
        let mut items = vec![self.and_expr()?];
        while self.peek_word("or") {
            self.advance();
            items.push(self.and_expr()?);
        }
        self.depth -= 1;
        Ok(join(items, false))
    }

    fn and_expr(&mut self) -> Result<Cond, KqlError> {
        let mut items = vec![self.unary()?];
        while self.peek_word("and") {
            self.advance();
            items.push(self.unary()?);
        }
        Ok(join(items, true))
    }

    fn unary(&mut self) -> Result<Cond, KqlError> {
        let t = self.peek().clone();
        if Self::is_word(&t, "not") {
            self.advance();
            let open = self.expect_punct(
                "(",
                "`(` after `not` (in KQL `not` is a function: `not(...)`)",
            )?;
            let inner = self.or_expr()?;
            self.close(&open)?;
            return Ok(Cond::Not(Box::new(inner)));
        }
        if Self::is_punct(&t, "(") {
            self.advance();
            let inner = self.or_expr()?;
            self.close(&t)?;
            return Ok(inner);
        }
        if (Self::is_word(&t, "isempty") || Self::is_word(&t, "isnotempty"))
            && Self::is_punct(self.peek_at(1), "(")
        {
            self.advance();
            let open = self.advance();
            let (column, _) = self.name("a column name")?;
            self.close(&open)?;
            let kind = if Self::is_word(&t, "isempty") {
                MatchKind::Empty
            } else {
                MatchKind::NotEmpty
            };
            return Ok(Cond::Pred(pred(
                &column,
                kind,
                Case::Insensitive,
                Vec::new(),
                Quantifier::Any,
            )));
        }
        let (column, _) =
            self.name("a condition (a column name, `(`, `not(`, `isempty(` or `isnotempty(`)")?;
        self.predicate(column)
    }

    fn close(&mut self, open: &Token) -> Result<(), KqlError> {
        if self.eat_punct(")") {
            return Ok(());
        }
        let mut e = self.expected_related("`)` to close the `(` at ", open);
        e.kind = KqlErrorKind::UnclosedParenthesis;
        Err(e)
    }

    fn predicate(&mut self, column: String) -> Result<Cond, KqlError> {
        use MatchKind::*;
        let op = self.peek().clone();
        let op_text = self.src.get(op.start..op.end).unwrap_or("").to_string();
        let operator = match &op.tok {
            Tok::Word(w) => kql_operators::by_name(w),
            Tok::Punct(p) => kql_operators::by_name(p),
            _ => None,
        };
        let negate = |e: Expr, neg: bool| if neg { Expr::Not(Box::new(e)) } else { e };

        match &op.tok {
            _ if operator.is_some() => {
                let o = operator.expect("checked");
                self.advance();
                let values = match o.list {
                    Some(_) => self.string_list(&op_text)?,
                    None => vec![self.string(&format!("a string after `{op_text}`"))?.0],
                };
                let q = o.list.unwrap_or(Quantifier::Any);
                Ok(Cond::Pred(negate(
                    pred(&column, o.kind, o.case, values, q),
                    o.negated,
                )))
            }
            Tok::Word(w) if w == "matches" => {
                self.advance();
                if !self.peek_word("regex") {
                    return Err(self.expected("`regex` after `matches`"));
                }
                self.advance();
                let (pattern, at) =
                    self.string("a regular expression string after `matches regex`")?;
                if let Err(e) = regex::Regex::new(&pattern) {
                    let detail = e.to_string();
                    let detail = detail
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("")
                        .trim()
                        .trim_start_matches("error: ")
                        .to_string();
                    return Err(self.err(at, format!("invalid regular expression: {detail}")));
                }
                Ok(Cond::Pred(pred(
                    &column,
                    Regex,
                    Case::Sensitive,
                    vec![pattern],
                    Quantifier::Any,
                )))
            }
            Tok::Word(w) if w == "between" => {
                self.advance();
                let open = self.expect_punct("(", "`(` after `between`")?;
                let lo_at = self.peek().start;
                let lo = self.time_value()?;
                self.expect_punct("..", "`..` between the two time bounds")?;
                let hi_at = self.peek().start;
                let hi = self.time_value()?;
                self.close(&open)?;
                if hi != 0 {
                    return Err(self.err(
                        hi_at,
                        "the time window must end at `now()`: expected `now()` or a name \
                         bound to `now()` as the upper bound",
                    ));
                }
                let window = self.window(lo, lo_at)?;
                Ok(Cond::Time {
                    column,
                    window,
                    offset: op.start,
                })
            }
            Tok::Punct(">" | ">=") => {
                self.advance();
                let at = self.peek().start;
                let lo = self.time_value()?;
                let window = self.window(lo, at)?;
                Ok(Cond::Time {
                    column,
                    window,
                    offset: op.start,
                })
            }
            _ => Err(self.expected(&format!(
                "an operator after column `{column}` (such as `has`, `has_any`, `contains`, \
                 `startswith`, `==`, `=~`, `in`, `matches regex` or `between`)"
            ))),
        }
    }

    fn window(&self, lo: i128, at: usize) -> Result<u64, KqlError> {
        if lo >= 0 {
            return Err(self.err(
                at,
                "the time window must start in the past: expected `now(-N)` or `ago(N)` \
                 with N > 0",
            ));
        }
        u64::try_from(-lo).map_err(|_| self.err(at, "the time window is too long"))
    }

    /// One string literal: (value, offset).
    fn string(&mut self, what: &str) -> Result<(String, usize), KqlError> {
        let t = self.peek().clone();
        if let Tok::Str(s) = &t.tok {
            self.advance();
            return Ok((s.clone(), t.start));
        }
        Err(self.expected(what))
    }

    /// `( 'a', 'b', ... )`, trailing comma allowed.
    fn string_list(&mut self, op: &str) -> Result<Vec<String>, KqlError> {
        let open = self
            .expect_punct("(", &format!("`(` after `{op}`"))
            .map_err(|mut e| {
                let list_operator =
                    |w: &str| kql_operators::by_name(w).is_some_and(|o| o.list.is_some());
                if matches!(&self.peek().tok, Tok::Word(w) if list_operator(w)) {
                    e.kind = KqlErrorKind::ListOperatorTwice;
                }
                e
            })?;
        let mut values = Vec::new();
        loop {
            if !values.is_empty() && self.eat_punct(")") {
                break; // after a trailing comma
            }
            let t = self.peek().clone();
            match &t.tok {
                Tok::Str(s) => {
                    self.advance();
                    values.push(s.clone());
                }
                Tok::Word(w) if w.as_bytes().first().is_some_and(|&b| is_ident_start(b)) => {
                    return Err(self.err(
                        t.start,
                        format!(
                            "expected a string literal in the `{op}` list, found `{w}` \
                             (subqueries and `let`-bound tables are not supported)"
                        ),
                    ));
                }
                _ => {
                    let what = if values.is_empty() {
                        format!("a string literal in the `{op}` list")
                    } else {
                        format!("a string literal or `)` after `,` in the `{op}` list")
                    };
                    return Err(self.expected(&what));
                }
            }
            if self.eat_punct(",") {
                continue;
            }
            if self.eat_punct(")") {
                break;
            }
            let mut e =
                self.expected_related(&format!("`,` or `)` in the `{op}` list opened at "), &open);
            e.kind = if matches!(self.peek().tok, Tok::Str(..)) {
                KqlErrorKind::MissingListComma
            } else {
                KqlErrorKind::UnclosedList
            };
            return Err(e);
        }
        Ok(values)
    }

    /// `now()`, `now(-5d)`, `ago(5d)` or a name bound by `let` to one of them:
    /// seconds relative to now.
    fn time_value(&mut self) -> Result<i128, KqlError> {
        let t = self.peek().clone();
        let func = if Self::is_word(&t, "now") {
            Some(false)
        } else if Self::is_word(&t, "ago") {
            Some(true)
        } else {
            None
        };
        if let Some(ago) = func
            && Self::is_punct(self.peek_at(1), "(")
        {
            self.advance();
            let open = self.advance();
            if !ago && self.eat_punct(")") {
                return Ok(0);
            }
            let minus = !ago && self.eat_punct("-");
            let span = self.timespan()?;
            self.close(&open)?;
            return Ok(if ago || minus { -span } else { span });
        }
        if let Tok::Word(w) = &t.tok {
            if let Some(v) = self.time_lets.get(w) {
                let v = *v;
                self.advance();
                return Ok(v);
            }
            if w.as_bytes().first().is_some_and(|&b| is_ident_start(b)) && func.is_none() {
                return Err(self.err(
                    t.start,
                    format!(
                        "unknown time value `{w}`: expected `now()`, `now(-5d)`, `ago(5d)` \
                         or a name bound to one of them by `let`"
                    ),
                ));
            }
        }
        Err(self.expected("a time value (`now()`, `now(-5d)`, `ago(5d)` or a `let` name)"))
    }

    /// `5d`, `12h`, `30m`, `45s`: seconds.
    fn timespan(&mut self) -> Result<i128, KqlError> {
        let t = self.peek().clone();
        let Tok::Num { value, unit } = &t.tok else {
            return Err(self.expected("a timespan such as `5d`"));
        };
        let size: i128 = match unit.as_str() {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            "" => {
                return Err(self.err(
                    t.start,
                    format!("expected a timespan unit (`d`, `h`, `m` or `s`) after `{value}`"),
                ));
            }
            other => {
                return Err(self.err(
                    t.start,
                    format!("unsupported timespan unit `{other}`: expected `d`, `h`, `m` or `s`"),
                ));
            }
        };
        self.advance();
        Ok(i128::from(*value) * size)
    }

    // --- summarize and extend ------------------------------------------------------

    fn summarize_op(&mut self, p: &mut Pipeline, op: &Token) -> Result<(), KqlError> {
        self.check_stage(p, op, "summarize", Stage::Summarized)?;
        let mut outputs: Vec<Output> = Vec::new();
        loop {
            let t = self.peek().clone();
            if let Tok::Word(w) = &t.tok
                && Self::is_punct(self.peek_at(1), "(")
            {
                return Err(self.err(
                    t.start,
                    format!("expected `Name=` before the aggregation `{w}(...)`"),
                ));
            }
            let (name, name_at) = self.name("an output name (`Name=function(...)`)")?;
            self.expect_punct("=", &format!("`=` after the output name `{name}`"))?;
            let f = self.peek().clone();
            let fname =
                match &f.tok {
                    Tok::Word(w) => w.clone(),
                    _ => return Err(self.expected(
                        "an aggregation function (`min`, `max`, `make_set`, `count` or `dcount`)",
                    )),
                };
            let ctor: Option<fn(String) -> AggFunction> = match fname.as_str() {
                "min" => Some(AggFunction::Min),
                "max" => Some(AggFunction::Max),
                "make_set" => Some(AggFunction::DistinctSet),
                "dcount" => Some(AggFunction::DistinctCount),
                "count" => None,
                _ => {
                    return Err(self.err(
                        f.start,
                        format!(
                            "unsupported aggregation function `{fname}`: expected `min`, `max`, \
                             `make_set`, `count` or `dcount`"
                        ),
                    ));
                }
            };
            self.advance();
            let open = self.expect_punct("(", &format!("`(` after `{fname}`"))?;
            let function = match ctor {
                None => {
                    if !self.peek_punct(")") {
                        return Err(self.expected("`)`: `count()` takes no argument"));
                    }
                    self.advance();
                    AggFunction::Count
                }
                Some(ctor) => {
                    let (col, _) = self.name(&format!("a column name in `{fname}(...)`"))?;
                    if !self.peek_punct(")") {
                        if self.peek_punct(",") {
                            return Err(self.expected(&format!(
                                "`)` after `{fname}({col}` (only one argument is supported)"
                            )));
                        }
                        self.close(&open)?;
                    }
                    self.advance();
                    ctor(col)
                }
            };
            if outputs.iter().any(|o| o.name == name) {
                return Err(self.err(name_at, format!("duplicate output name `{name}`")));
            }
            outputs.push(Output { name, function });
            if self.eat_punct(",") {
                if self.peek_word("by") || self.at_operator_end() {
                    break; // trailing comma
                }
                continue;
            }
            break;
        }
        let mut group_by = Vec::new();
        if self.peek_word("by") {
            self.advance();
            loop {
                let (col, _) = self.name("a column name in the `by` list")?;
                group_by.push(col);
                if self.eat_punct(",") {
                    if self.at_operator_end() {
                        break; // trailing comma
                    }
                    continue;
                }
                break;
            }
            if !self.at_operator_end() {
                return Err(self.expected("`,`, `|`, `;` or end of query in the `by` list"));
            }
        } else if !self.at_operator_end() {
            return Err(self.expected("`,`, `by`, `|`, `;` or end of query after the aggregation"));
        }
        p.aggregation = Some(Aggregation { group_by, outputs });
        p.stage = Stage::Summarized;
        Ok(())
    }

    /// `project A, B` / `project-away A, B`: plain column names only (no renames or
    /// computed columns). Recorded; the filter is unchanged.
    fn project_op(&mut self, p: &mut Pipeline) -> Result<(), KqlError> {
        let away = if self.eat_punct("-") {
            let t = self.peek().clone();
            if !Self::is_word(&t, "away") {
                return Err(self.expected(
                    "`away` after `project-` (only `project` and `project-away` are supported)",
                ));
            }
            self.advance();
            true
        } else {
            false
        };
        let what = if away { "project-away" } else { "project" };
        let mut columns = Vec::new();
        loop {
            let (name, _) = self.name(&format!("a column name after `{what}`"))?;
            columns.push(name);
            if !self.eat_punct(",") {
                break;
            }
        }
        if !self.at_operator_end() {
            return Err(self.expected(&format!(
                "`,`, `|`, `;` or end of query after the `{what}` column (renames and computed columns are not supported)"
            )));
        }
        p.projections.push(Projection { away, columns });
        Ok(())
    }

    fn extend_op(&mut self, p: &mut Pipeline, op: &Token) -> Result<(), KqlError> {
        self.check_stage(p, op, "extend", Stage::Extended)?;
        loop {
            let (name, name_at) = self.name("a column name after `extend`")?;
            self.expect_punct("=", &format!("`=` after `extend {name}`"))?;
            let (value, _) = self.string(&format!(
                "a string constant after `{name} =` (only constant string columns are supported)"
            ))?;
            if p.constants.iter().any(|c| c.name == name) {
                return Err(self.err(name_at, format!("duplicate column `{name}` in `extend`")));
            }
            p.constants.push(Constant { name, value });
            if !self.eat_punct(",") {
                break;
            }
        }
        if !self.at_operator_end() {
            return Err(self.expected("`,`, `|`, `;` or end of query after the `extend` column"));
        }
        p.stage = Stage::Extended;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Case::{Insensitive as I, Sensitive as S};
    use MatchKind::*;
    use Quantifier::{All as QAll, Any as QAny};

    fn m(field: &str, kind: MatchKind, case: Case, values: &[&str], q: Quantifier) -> Expr {
        pred(
            field,
            kind,
            case,
            values.iter().map(|v| v.to_string()).collect(),
            q,
        )
    }

    fn has(field: &str, v: &str) -> Expr {
        m(field, Term, I, &[v], QAny)
    }

    fn not(e: Expr) -> Expr {
        Expr::Not(Box::new(e))
    }

    fn any(v: Vec<Expr>) -> Expr {
        Expr::Any(v)
    }

    fn all(v: Vec<Expr>) -> Expr {
        Expr::All(v)
    }

    fn filter(cond: &str) -> Expr {
        let q = format!("T | where {cond}");
        match parse_kql(&q) {
            Ok(k) => k.filter.expect("a filter"),
            Err(e) => panic!("{q:?}: {e}"),
        }
    }

    #[test]
    #[rustfmt::skip]
    fn operators() {
        let cases: Vec<(&str, Expr)> = vec![
            ("A has 'x'",              m("A", Term, I, &["x"], QAny)),
            ("A has_cs 'x'",           m("A", Term, S, &["x"], QAny)),
            ("A !has 'x'",             not(m("A", Term, I, &["x"], QAny))),
            ("A !has_cs 'x'",          not(m("A", Term, S, &["x"], QAny))),
            ("A has_any ('x', 'y')",   m("A", Term, I, &["x", "y"], QAny)),
            ("A has_any('x')",         m("A", Term, I, &["x"], QAny)),
            ("A has_all ('x', 'y')",   m("A", Term, I, &["x", "y"], QAll)),
            ("A contains 'x'",         m("A", Contains, I, &["x"], QAny)),
            ("A contains_cs 'x'",      m("A", Contains, S, &["x"], QAny)),
            ("A !contains 'x'",        not(m("A", Contains, I, &["x"], QAny))),
            ("A !contains_cs 'x'",     not(m("A", Contains, S, &["x"], QAny))),
            ("A startswith 'x'",       m("A", Prefix, I, &["x"], QAny)),
            ("A startswith_cs 'x'",    m("A", Prefix, S, &["x"], QAny)),
            ("A !startswith 'x'",      not(m("A", Prefix, I, &["x"], QAny))),
            ("A endswith 'x'",         m("A", Suffix, I, &["x"], QAny)),
            ("A endswith_cs 'x'",      m("A", Suffix, S, &["x"], QAny)),
            ("A !endswith_cs 'x'",     not(m("A", Suffix, S, &["x"], QAny))),
            ("A == 'x'",               m("A", Equals, S, &["x"], QAny)),
            ("A=='x'",                 m("A", Equals, S, &["x"], QAny)),
            ("A != 'x'",               not(m("A", Equals, S, &["x"], QAny))),
            ("A =~ 'x'",               m("A", Equals, I, &["x"], QAny)),
            ("A !~ 'x'",               not(m("A", Equals, I, &["x"], QAny))),
            ("A in ('x', 'y')",        m("A", Equals, S, &["x", "y"], QAny)),
            ("A in~ ('x', 'y')",       m("A", Equals, I, &["x", "y"], QAny)),
            ("A !in ('x')",            not(m("A", Equals, S, &["x"], QAny))),
            ("A !in~ ('x')",           not(m("A", Equals, I, &["x"], QAny))),
            (r"A matches regex @'^\d+\.exe$'", m("A", Regex, S, &[r"^\d+\.exe$"], QAny)),
            (r"A matches regex '\\w'", m("A", Regex, S, &[r"\w"], QAny)),
            ("isempty(A)",             m("A", Empty, I, &[], QAny)),
            ("isnotempty( A )",        m("A", NotEmpty, I, &[], QAny)),
            ("not(A has 'x')",         not(has("A", "x"))),
            ("not(not(A has 'x'))",    not(not(has("A", "x")))),
        ];
        for (cond, want) in cases {
            assert_eq!(filter(cond), want, "{cond}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn precedence() {
        let (a, b, c) = (has("a", "x"), has("b", "y"), has("c", "z"));
        let cases: Vec<(&str, Expr)> = vec![
            ("a has 'x' or b has 'y' and c has 'z'",        any(vec![a.clone(), all(vec![b.clone(), c.clone()])])),
            ("a has 'x' and b has 'y' or c has 'z'",        any(vec![all(vec![a.clone(), b.clone()]), c.clone()])),
            ("(a has 'x' or b has 'y') and c has 'z'",      all(vec![any(vec![a.clone(), b.clone()]), c.clone()])),
            ("a has 'x' and (b has 'y' or c has 'z')",      all(vec![a.clone(), any(vec![b.clone(), c.clone()])])),
            ("a has 'x' or b has 'y' or c has 'z'",         any(vec![a.clone(), b.clone(), c.clone()])),
            ("a has 'x' or (b has 'y' or c has 'z')",       any(vec![a.clone(), b.clone(), c.clone()])),
            ("((a has 'x'))",                               a.clone()),
            ("not(a has 'x' or b has 'y') and c has 'z'",   all(vec![not(any(vec![a.clone(), b.clone()])), c.clone()])),
            ("a has 'x' and not(b has 'y') or c has 'z'",   any(vec![all(vec![a.clone(), not(b.clone())]), c.clone()])),
        ];
        for (cond, want) in cases {
            assert_eq!(filter(cond), want, "{cond}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn strings() {
        let cases: Vec<(&str, &str)> = vec![
            (r"'plain'",                  "plain"),
            (r#""double""#,               "double"),
            (r#"'it\'s'"#,                "it's"),
            (r#""say \"hi\"""#,           r#"say "hi""#),
            (r#"'a"b'"#,                  r#"a"b"#),
            (r#""a'b""#,                  "a'b"),
            (r"'back\\slash'",            r"back\slash"),
            (r"'tab\there'",              "tab\there"),
            (r"'nl\ncr\r'",               "nl\ncr\r"),
            (r"@'C:\Program Files\'",     r"C:\Program Files\"),
            (r#"@"C:\dir\""#,             r"C:\dir\"),
            (r"@'it''s'",                 "it's"),
            (r#"@"say ""hi""""#,          r#"say "hi""#),
            (r"''",                       ""),
            ("'Krämer İ // no comment'",  "Krämer İ // no comment"),
        ];
        for (lit, want) in cases {
            assert_eq!(filter(&format!("A == {lit}")), m("A", Equals, S, &[want], QAny), "{lit}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn lists_comments_crlf() {
        let xy = m("A", Term, I, &["x", "y"], QAny);
        let cases: Vec<&str> = vec![
            "A has_any ('x', 'y',)",
            "A has_any (\n  'x', // first\n  'y', // second\n)",
            "A has_any ( // open\n 'x',\t\t// tab then comment\n 'y'\n // before close\n )",
            "A has_any (\r\n  'x',\r\n  'y'\r\n)",
            "A has_any ('x',\r\n'y') // trailing comment",
            "A has_any (@'x', \"y\")",
            "// leading comment\r\nA has_any ('x', 'y')",
        ];
        for cond in cases {
            assert_eq!(filter(cond), xy, "{cond:?}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn time_filters() {
        // (query, window seconds, time column)
        let cases: Vec<(&str, u64, &str)> = vec![
            ("let S = now(-5d); let E = now(); T | where Timestamp between (S..E)",   432_000, "Timestamp"),
            ("let S = ago(5d); let E = now(); T | where Timestamp between(S .. E)",   432_000, "Timestamp"),
            ("T | where Time between (ago(12h) .. now())",                            43_200,  "Time"),
            ("T | where Timestamp between ( now( -30m ) .. now( ) )",                 1_800,   "Timestamp"),
            ("T | where Timestamp > ago(45s)",                                        45,      "Timestamp"),
            ("T | where Timestamp >= ago(2d)",                                        172_800, "Timestamp"),
            ("let S = now(-1h);\r\nT\r\n| where Timestamp >= S",                      3_600,   "Timestamp"),
            ("T | where Timestamp > ago(1d) and A has 'x'",                           86_400,  "Timestamp"),
            ("T | where (A has 'x' and Timestamp > ago(1d))",                         86_400,  "Timestamp"),
        ];
        for (q, secs, col) in cases {
            let k = parse_kql(q).unwrap_or_else(|e| panic!("{q:?}: {e}"));
            assert_eq!(k.window_seconds, Some(secs), "{q}");
            assert_eq!(k.time_column.as_deref(), Some(col), "{q}");
        }
        let k = parse_kql("T | where Timestamp > ago(1d) and A has 'x'").unwrap();
        assert_eq!(k.filter, Some(has("A", "x")));
        let k = parse_kql("T | where A has 'x'").unwrap();
        assert_eq!((k.window_seconds, k.time_column), (None, None));
    }

    #[test]
    fn whole_query() {
        let q = "let Time_start = now(-5d);\r\nlet Time_end = now();\r\n//\r\n\
                 let hits = \r\nSomeTable \r\n\
                 | where Timestamp between (Time_start..Time_end)\r\n\
                 | where Vendor has 'Example'\r\n    and Product has_any ('A', 'B')\r\n\
                 | where isempty(Path)\r\n\
                 | summarize First=min(Timestamp), Last=max(Timestamp), \r\n    \
                 Ids=make_set(ReportId), N=count(), Hosts=dcount(DeviceId) by DeviceId, DeviceName,\r\n    \
                 AccountUpn \r\n\
                 | extend hitName = 'example', other = \"two\" \r\n; \r\nhits\r\n";
        let k = parse_kql(q).unwrap_or_else(|e| panic!("{e}"));
        let out = |name: &str, function| Output {
            name: name.into(),
            function,
        };
        let want = KqlQuery {
            table: "SomeTable".into(),
            window_seconds: Some(432_000),
            time_column: Some("Timestamp".into()),
            filter: Some(all(vec![
                has("Vendor", "Example"),
                m("Product", Term, I, &["A", "B"], QAny),
                m("Path", Empty, I, &[], QAny),
            ])),
            aggregation: Some(Aggregation {
                group_by: vec!["DeviceId".into(), "DeviceName".into(), "AccountUpn".into()],
                outputs: vec![
                    out("First", AggFunction::Min("Timestamp".into())),
                    out("Last", AggFunction::Max("Timestamp".into())),
                    out("Ids", AggFunction::DistinctSet("ReportId".into())),
                    out("N", AggFunction::Count),
                    out("Hosts", AggFunction::DistinctCount("DeviceId".into())),
                ],
            }),
            constants: vec![
                Constant {
                    name: "hitName".into(),
                    value: "example".into(),
                },
                Constant {
                    name: "other".into(),
                    value: "two".into(),
                },
            ],
            projections: Vec::new(),
        };
        assert_eq!(k, want);
    }

    #[test]
    #[rustfmt::skip]
    fn pipelines() {
        let ab = || Some(all(vec![has("A", "x"), has("B", "y")]));
        // (query, table, filter, number of outputs, number of constants)
        let cases: Vec<(&str, &str, Option<Expr>, usize, usize)> = vec![
            ("T",                                                   "T", None,                0, 0),
            ("T;",                                                  "T", None,                0, 0),
            ("T | where A has 'x' | where B has 'y'",               "T", ab(),                0, 0),
            ("T | where A has 'x' and B has 'y'",                   "T", ab(),                0, 0),
            ("let x = T | where A has 'x'; x | where B has 'y'",    "T", ab(),                0, 0),
            ("let x = T; let y = x | where A has 'x'; y;",          "T", Some(has("A", "x")), 0, 0),
            ("let x = U; let x = T; x",                             "T", None,                0, 0),
            ("T | summarize N=count()",                             "T", None,                1, 0),
            ("T | summarize N=count(), by A",                       "T", None,                1, 0),
            ("T | summarize N=count() by A, B, | extend C = 'c'",   "T", None,                1, 1),
            ("T | extend C = 'c' | extend D = 'd'",                 "T", None,                0, 2),
        ];
        for (q, table, filter, outputs, constants) in cases {
            let k = parse_kql(q).unwrap_or_else(|e| panic!("{q:?}: {e}"));
            assert_eq!(k.table, table, "{q}");
            assert_eq!(k.filter, filter, "{q}");
            assert_eq!(k.aggregation.map_or(0, |a| a.outputs.len()), outputs, "{q}");
            assert_eq!(k.constants.len(), constants, "{q}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn errors() {
        // (query, line, column, fragment of the message)
        let cases: Vec<(&str, usize, usize, &str)> = vec![
            ("T\n| where A has 'x'\n| Sha1 in ('a')", 3, 3, "expected `where`, `summarize`, `extend`, `project` or `project-away` after `|`, found `Sha1`"),
            ("T | where A has_all has_any ('x')", 1, 21, "expected `(` after `has_all`, found `has_any`"),
            ("T | where A has_any (\n  'x'\n  'y',\n)", 3, 3, "expected `,` or `)` in the `has_any` list opened at line 1, column 21, found string 'y'"),
            ("T | where (A has 'x'\n  or B has 'y'\n| summarize N=count()", 3, 1, "expected `)` to close the `(` at line 1, column 11, found `|`"),
            ("T | where A has 'x')", 1, 20, "found `)` (unbalanced parenthesis)"),
            ("T | where A has_any ('x') and or B has_any ('y')", 1, 31, "expected a condition (a column name, `(`, `not(`, `isempty(` or `isnotempty(`), found `or`"),
            ("T | where A has 'x' and", 1, 24, "expected a condition"),
            ("T | where A has_any ('x') or", 1, 29, "expected a condition"),
            ("T | where A in (U | where B has 'x')", 1, 17, "found `U` (subqueries and `let`-bound tables are not supported)"),
            ("let s = U | where B has 'x'; T | where A in (s)", 1, 46, "found `s` (subqueries and `let`-bound tables are not supported)"),
            ("T | where A in ()", 1, 17, "expected a string literal in the `in` list, found `)`"),
            ("T | where A has_any ('x',,)", 1, 26, "expected a string literal or `)` after `,`"),
            ("T | where A matches regex '(a'", 1, 27, "invalid regular expression"),
            ("T | where A matches 'a'", 1, 21, "expected `regex` after `matches`"),
            ("T | where A has 'a\\d'", 1, 19, "unknown escape sequence `\\d`"),
            ("T | where A has 'abc", 1, 17, "unterminated string literal"),
            ("T | where A has 'ab\nc'", 1, 17, "unterminated string literal"),
            ("T | where A has @'ab\\'c'", 1, 24, "unterminated string literal"),
            ("T | Where A has 'x'", 1, 5, "found `Where`"),
            ("T | where A HAS 'x'", 1, 13, "expected an operator after column `A`"),
            ("T | where A has 'x' AND B has 'y'", 1, 21, "expected `and`, `or`, `|`, `;` or end of query after the condition, found `AND`"),
            ("T | where not A has 'x'", 1, 15, "expected `(` after `not`"),
            ("T | where A has 'x' or Timestamp > ago(1d)", 1, 34, "must be a top-level `and` term"),
            ("T | where Timestamp > ago(1d) | where Timestamp > ago(2d)", 1, 49, "a second time filter"),
            ("let S = now(-5d); T | where Timestamp between (S .. ago(1d))", 1, 53, "must end at `now()`"),
            ("T | where Timestamp between (now() .. now())", 1, 30, "must start in the past"),
            ("T | where Timestamp between (now(5d) .. now())", 1, 30, "must start in the past"),
            ("T | where Timestamp between (Start .. now())", 1, 30, "unknown time value `Start`"),
            ("T | where Timestamp between (ago(1d), now())", 1, 37, "expected `..` between the two time bounds"),
            ("T | where Timestamp > ago(5ms)", 1, 27, "unsupported timespan unit `ms`"),
            ("T | where Timestamp > ago(5)", 1, 27, "expected a timespan unit"),
            ("T | where Timestamp > ago(-5d)", 1, 27, "expected a timespan such as `5d`, found `-`"),
            ("T | where A > 'x'", 1, 15, "expected a time value"),
            ("T | where A 'x'", 1, 13, "expected an operator after column `A`"),
            ("T | where A has 5", 1, 17, "expected a string after `has`"),
            ("T | summarize count() by A", 1, 15, "expected `Name=` before the aggregation `count(...)`"),
            ("T | summarize N=make_list(A) by A", 1, 17, "unsupported aggregation function `make_list`"),
            ("T | summarize N=count(A)", 1, 23, "`count()` takes no argument"),
            ("T | summarize N=min(A, B)", 1, 22, "only one argument is supported"),
            ("T | summarize N=count(), N=count()", 1, 26, "duplicate output name `N`"),
            ("T | summarize N=count() by A B", 1, 30, "expected `,`, `|`, `;` or end of query in the `by` list, found `B`"),
            ("T | summarize N=count() by", 1, 27, "expected a column name in the `by` list, found end of query"),
            ("T | summarize N=count() | where A has 'x'", 1, 27, "`where` after `summarize` is not supported"),
            ("T | summarize N=count() | summarize M=count()", 1, 27, "`summarize` after `summarize` is not supported"),
            ("T | extend C = 'c' | summarize N=count()", 1, 22, "`summarize` after `extend` is not supported"),
            ("T | extend C = 1", 1, 16, "expected a string constant after `C =`"),
            ("T | extend C = 'c', C = 'd'", 1, 21, "duplicate column `C` in `extend`"),
            ("T | where A has 'x'; U", 1, 22, "expected end of query after the final `;`"),
            ("let S = now(-5d);", 1, 18, "expected a table name, found end of query"),
            ("let S = now(-5d); S", 1, 19, "`S` is a time value bound by `let`, not a table"),
            ("let S = now(-5d) T", 1, 18, "expected `;` after the value of `let S`"),
            ("let x = T | where A has 'x' x", 1, 29, "expected `and`, `or`, `|`, `;` or end of query after the condition, found `x`"),
            ("let x = T | where A has 'x'", 1, 28, "expected `;` after the tabular expression of `let x`"),
            ("let x = T | distinct A; x", 1, 13, "expected `where`, `summarize`, `extend`, `project` or `project-away` after `|`, found `distinct`"),
            ("let unused = U | distinct A; T", 1, 18, "found `distinct`"),
            ("let where = T; where", 1, 5, "expected a name after `let`, found `where`"),
            ("", 1, 1, "expected a table name, found end of query"),
            ("Too broad for use", 1, 5, "expected `|`, `;` or end of query, found `broad`"),
            ("T | where A has 'x' # note", 1, 21, "unexpected character `#`"),
            ("T | where A has\r\n  'x'\r\n  and B has 'y' and\r\n  | summarize N=count()", 4, 3, "expected a condition"),
            ("T | where A has 'Krämer' and B ~ 'x'", 1, 32, "unexpected character `~`"),
            ("T | where A has 'x' and B has_any ('y')\n  and C has 'z' and D has_any ('w' 'v')", 2, 36, "expected `,` or `)` in the `has_any` list opened at line 2, column 31"),
            ("T | where Timestamp > ago(99999999999999999999d)", 1, 27, "number `99999999999999999999` is too large"),
        ];
        for (q, line, column, fragment) in cases {
            match parse_kql(q) {
                Ok(k) => panic!("{q:?} parsed: {k:?}"),
                Err(e) => {
                    assert!(e.message.contains(fragment), "{q:?}: {e}");
                    assert_eq!((e.line, e.column), (line, column), "{q:?}: {e}");
                    assert!(e.offset <= q.len(), "{q:?}");
                }
            }
        }
    }

    #[test]
    fn error_offset_is_a_byte_offset() {
        let q = "T | where A has 'é' and B ~ 'x'";
        let e = parse_kql(q).unwrap_err();
        assert_eq!(&q[e.offset..e.offset + 1], "~");
        assert_eq!(e.column, q[..e.offset].chars().count() + 1);
        assert_eq!(
            e.to_string(),
            format!("line 1, column {}: {}", e.column, e.message)
        );
    }

    /// A synthetic query in the corpus style, using most of the subset.
    const SAMPLE: &str = "let Start = now(-7d);\r\nlet End = now();\r\n// a synthetic query\r\n\
        let hits =\r\nExampleEvents\r\n| where EventTime between (Start .. End)\r\n\
        | where Vendor has_any ('Example Corp', \"Sample, Inc.\", // note\r\n      @'C:\\Tools\\',)\r\n\
        \x20   and (not(Product !has_cs 'X') or isnotempty(Product) or Path matches regex @'\\d+\\.exe$')\r\n\
        \x20   and Name in~ ('a.exe', 'b.exe') and Hash !in ('00') and Url !contains \"x\\\"y\"\r\n\
        | summarize First=min(EventTime), Last=max(EventTime), Ids=make_set(Id), N=count(),\r\n\
        \x20   Hosts=dcount(Host) by Host, User,\r\n\
        | extend Label = 'example', Source = \"synthetic\"\r\n;\r\nhits\r\n";

    #[test]
    fn sample_parses() {
        let k = parse_kql(SAMPLE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.table, "ExampleEvents");
        assert_eq!(k.window_seconds, Some(7 * 86_400));
        assert_eq!(k.time_column.as_deref(), Some("EventTime"));
        let Some(Expr::All(terms)) = &k.filter else {
            panic!("{:?}", k.filter)
        };
        assert_eq!(terms.len(), 5);
        let vendors = &["Example Corp", "Sample, Inc.", r"C:\Tools\"];
        assert_eq!(terms[0], m("Vendor", Term, I, vendors, QAny));
        let product = m("Product", Term, S, &["X"], QAny);
        let regex = m("Path", Regex, S, &[r"\d+\.exe$"], QAny);
        let not_empty = m("Product", NotEmpty, I, &[], QAny);
        assert_eq!(terms[1], any(vec![not(not(product)), not_empty, regex]));
        assert_eq!(terms[4], not(m("Url", Contains, I, &["x\"y"], QAny)));
        assert_eq!(k.aggregation.unwrap().group_by, vec!["Host", "User"]);
        assert_eq!(k.constants.len(), 2);
    }

    #[test]
    fn never_panics() {
        // Every prefix and every one-character deletion of a full query.
        for (i, _) in SAMPLE.char_indices() {
            let _ = parse_kql(&SAMPLE[..i]);
            let mut rest = SAMPLE[i..].chars();
            rest.next();
            let _ = parse_kql(&format!("{}{}", &SAMPLE[..i], rest.as_str()));
        }
        // Deep nesting is an error, not a stack overflow.
        let deep = format!("T | where {}A has 'x'", "(".repeat(100_000));
        let e = parse_kql(&deep).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{e}");
        let deep_not = format!("T | where {}", "not(".repeat(100_000));
        assert!(parse_kql(&deep_not).is_err());
        // Token soup and random bytes.
        let parts = [
            "(",
            ")",
            "'",
            "\"",
            "@",
            "@'",
            "|",
            " where ",
            " has ",
            " ",
            "\n",
            "\r\n",
            "let ",
            "=",
            ";",
            "now",
            "ago",
            "-",
            "5d",
            "..",
            " and ",
            " or ",
            "not",
            "A",
            "'x'",
            ",",
            "//",
            "\\",
            "é",
            " in~ ",
            "!in",
            " between ",
            " summarize ",
            " by ",
            "count()",
            " extend ",
            "T",
            "has_any",
            "isempty",
            "matches regex",
            ">",
            ">=",
            "==",
            "!",
            "~",
            "0",
            "99999999999999999999999",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let n = (next() % 24) as usize;
            let mut s = String::new();
            for _ in 0..n {
                s.push_str(parts[(next() % parts.len() as u64) as usize]);
            }
            let _ = parse_kql(&s);
            let _ = parse_kql(&format!("T | where {s}"));
            let _ = parse_kql(&format!("let S = now(-5d); T | {s}"));
            let bytes: Vec<u8> = (0..n).map(|_| (next() % 256) as u8).collect();
            let _ = parse_kql(&String::from_utf8_lossy(&bytes));
        }
    }
}
