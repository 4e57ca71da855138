//! An evaluator for the subset of Splunk SPL that rmmc emits, written from the
//! Splunk documentation (Search Reference: `search`, `where`, `fillnull`, `stats`,
//! `eval`, time modifiers; Search Manual: Boolean expressions), not from rmmc's
//! emitter. It parses the emitted *text*; anything outside the subset is an error,
//! never a guess. No real Splunk runs here: this engine is the SPL oracle.
//!
//! The subset and its semantics:
//!
//! * Macros: `` `name` `` calls (no arguments) are expanded first, textually and
//!   wherever they stand, from the stanzas of a `macros.conf` (`definition = ...`;
//!   `args`, `iseval` and line continuations are outside the subset). An unknown
//!   macro is an error, as in Splunk.
//! * The first command is the implied `search`: `field=value`, `field!=value` and
//!   `field IN (v, ...)` terms, `AND`/`OR`/`NOT` (upper case) and parentheses, with
//!   an implied `AND` between adjacent terms. Precedence as documented for `search`:
//!   parentheses, `NOT`, `OR`, then `AND` (`OR` binds tighter). A value matches the
//!   whole field value, case-insensitively, with `*` the only wildcard (any run of
//!   characters). Quoted values take the escapes `\\` and `\"` only. A term on a
//!   missing field does not match. `earliest=` (inclusive) and `latest=` (exclusive)
//!   take `now`, epoch seconds, or `[+|-]N<unit>` with units s, m, h, d, w; snapping
//!   (`@d`) is outside the subset.
//! * `| search <terms>` later in the pipeline takes the same terms (no time
//!   modifiers), and `*` alone, which keeps every event or result.
//! * `| where <expr>` and `| eval f=<expr>[, g=<expr>]...`: string literals `"..."` (escapes `\\` and
//!   `\"`), numbers, field names (plain, or `'quoted'` with `\'`/`\\`), `==`/`=`,
//!   `!=`, `<`, `<=`, `>`, `>=` (numeric when both sides are numbers, else by text,
//!   case-sensitive), `AND`/`OR`/`NOT` (where/eval precedence: `NOT`, `AND`, `OR`),
//!   parentheses, and the functions `match(s, re)` (PCRE, partial match; run with
//!   the Rust `regex` crate, which differs from PCRE in that `$` matches only at the
//!   very end, not also before a final newline; the pattern must start with the
//!   `(*UTF)` verb, the only mode in which PCRE and the Rust crate both read code
//!   points), `if(c, a, b)` (`b` when `c` is false or null), `now()`, `isnull()`, `isnotnull()`,
//!   `lower()`, `upper()`, `len()`. A missing field is null; comparisons with null are
//!   null, `NOT null` is null, and `where` keeps only true. An eval whose value is
//!   null removes the field; a boolean value is an error (as in Splunk).
//! * `| fillnull value="s" f1 f2 ...`: missing or null fields become `s`.
//! * `| stats F(x) as N ... by f1 f2 ...` with `count`, `count(x)`, `min`, `max`
//!   (numeric when every value is a number, else lexicographic), `values` (distinct,
//!   lexicographically sorted), `dc`; an event with a null by-field is left out of
//!   the groups, as Splunk does.
//! * `_time` is epoch seconds (fractions kept).

#![allow(dead_code)]

use regex::Regex;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct SplError(pub String);

impl fmt::Display for SplError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SPL subset: {}", self.0)
    }
}

type Result<T> = std::result::Result<T, SplError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(SplError(msg.into()))
}

// -------------------------------------------------------------------------------
// Query structure

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub search: Option<SearchExpr>,
    pub earliest: Option<TimeSpec>,
    pub latest: Option<TimeSpec>,
    pub commands: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TimeSpec {
    Now,
    Epoch(f64),
    /// Seconds relative to now.
    Relative(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SearchExpr {
    /// `*` alone: every event.
    All,
    And(Box<SearchExpr>, Box<SearchExpr>),
    Or(Box<SearchExpr>, Box<SearchExpr>),
    Not(Box<SearchExpr>),
    Eq {
        field: String,
        pattern: String,
    },
    Ne {
        field: String,
        pattern: String,
    },
    In {
        field: String,
        patterns: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Where(Expr),
    Eval(Vec<(String, Expr)>),
    Search(SearchExpr),
    Fillnull { value: String, fields: Vec<String> },
    Stats { aggs: Vec<Agg>, by: Vec<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    pub func: String,
    pub field: Option<String>,
    pub alias: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(String),
    Num(f64),
    Field(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

// -------------------------------------------------------------------------------
// Macros

/// The macros of a `macros.conf`: stanza name → definition.
pub fn macros_from_conf(text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut stanza: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.ends_with('\\') {
            return err(format!(
                "macros.conf line {}: continuation lines are outside the subset",
                i + 1
            ));
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if !is_macro_name(name) {
                return err(format!(
                    "macros.conf line {}: macro `{name}` (arguments are outside the subset)",
                    i + 1
                ));
            }
            if out.contains_key(name) {
                return err(format!(
                    "macros.conf line {}: macro `{name}` defined twice",
                    i + 1
                ));
            }
            stanza = Some(name.to_string());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return err(format!(
                "macros.conf line {}: expected `key = value`",
                i + 1
            ));
        };
        let Some(name) = &stanza else {
            return err(format!(
                "macros.conf line {}: setting outside a stanza",
                i + 1
            ));
        };
        match key.trim() {
            "definition" => {
                let value = value.trim();
                if value.is_empty() {
                    return err(format!("macro `{name}` has an empty definition"));
                }
                out.insert(name.clone(), value.to_string());
            }
            "description" => {}
            other => {
                return err(format!(
                    "macro `{name}`: setting `{other}` is outside the subset"
                ));
            }
        }
    }
    Ok(out)
}

fn is_macro_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The search with every `` `macro` `` call replaced by its definition (macros may
/// call macros, up to a depth of 10).
pub fn expand_macros(text: &str, macros: &BTreeMap<String, String>) -> Result<String> {
    let mut current = text.to_string();
    for _ in 0..10 {
        if !current.contains('`') {
            return Ok(current);
        }
        let mut out = String::new();
        let mut rest = current.as_str();
        while let Some(start) = rest.find('`') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('`') else {
                return err("unbalanced backtick (macro call)");
            };
            let name = &after[..end];
            let Some(definition) = macros.get(name) else {
                return err(format!("unknown macro `{name}`"));
            };
            out.push_str(definition);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        current = out;
    }
    err("macros nested deeper than 10")
}

// -------------------------------------------------------------------------------
// Lexing

/// A token of the SPL subset; `Str` is a decoded double-quoted string.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Word(String),
    Str(String),
    /// A single-quoted field name (where/eval), decoded.
    QField(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Pipe,
}

impl Tok {
    /// The token's kind without its text, for comparing the structure of two queries.
    pub fn kind(&self) -> String {
        match self {
            Tok::Word(w) => format!("word:{w}"),
            Tok::Str(_) => "str".into(),
            Tok::QField(f) => format!("qfield:{f}"),
            Tok::Num(_) => "num".into(),
            Tok::Op(o) => format!("op:{o}"),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Comma => ",".into(),
            Tok::Pipe => "|".into(),
        }
    }
}

fn read_quoted(chars: &[char], i: &mut usize, quote: char) -> Result<String> {
    // chars[*i] is the opening quote.
    *i += 1;
    let mut out = String::new();
    loop {
        let Some(&c) = chars.get(*i) else {
            return err("unterminated quoted string");
        };
        *i += 1;
        if c == quote {
            return Ok(out);
        }
        if c == '\\' {
            match chars.get(*i) {
                Some(&n) if n == '\\' || n == quote => {
                    out.push(n);
                    *i += 1;
                }
                Some(n) => return err(format!("escape `\\{n}` is outside the subset")),
                None => return err("unterminated escape"),
            }
        } else {
            out.push(c);
        }
    }
}

/// Tokens of the whole query text.
pub fn tokenize(text: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '"' => out.push(Tok::Str(read_quoted(&chars, &mut i, '"')?)),
            '\'' => out.push(Tok::QField(read_quoted(&chars, &mut i, '\'')?)),
            '`' => return err("an unexpanded macro call (expand_macros first)"),
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '=' | '!' | '<' | '>' => {
                let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
                let op: &'static str = match two.as_str() {
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    _ => match c {
                        '=' => "=",
                        '<' => "<",
                        '>' => ">",
                        _ => return err("`!` outside `!=`"),
                    },
                };
                i += op.len();
                out.push(Tok::Op(op));
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !"\"'(),|=!<>`".contains(chars[i])
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.is_empty() {
                    return err(format!("unexpected character {c:?}"));
                }
                let numeric = word.chars().next().is_some_and(|c| c.is_ascii_digit())
                    && word.parse::<f64>().is_ok();
                out.push(if numeric {
                    Tok::Num(word.parse().expect("checked"))
                } else {
                    Tok::Word(word)
                });
            }
        }
    }
    Ok(out)
}

// -------------------------------------------------------------------------------
// Parsing

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.pos + n)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: &Tok) -> Result<()> {
        match self.next() {
            Some(ref got) if got == t => Ok(()),
            got => err(format!("expected {t:?}, found {got:?}")),
        }
    }
    fn at_command_end(&self) -> bool {
        matches!(self.peek(), None | Some(Tok::Pipe))
    }
}

fn is_search_field(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:@-".contains(c))
}

fn is_keyword(t: Option<&Tok>, word: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w == word)
}

/// Parse the query text.
pub fn parse(text: &str) -> Result<Query> {
    let mut p = Parser {
        toks: tokenize(text)?,
        pos: 0,
    };
    let mut query = Query {
        search: None,
        earliest: None,
        latest: None,
        commands: Vec::new(),
    };
    // The implied search.
    if is_keyword(p.peek(), "search") {
        p.next();
    }
    if !p.at_command_end() {
        let e = search_and(&mut p, &mut query)?;
        query.search = e;
    }
    while let Some(t) = p.next() {
        if t != Tok::Pipe {
            return err(format!("expected `|`, found {t:?}"));
        }
        let Some(Tok::Word(cmd)) = p.next() else {
            return err("expected a command name after `|`");
        };
        let c = match cmd.as_str() {
            "where" => Command::Where(expr_or(&mut p)?),
            "eval" => {
                let mut assignments = Vec::new();
                loop {
                    let name = match p.next() {
                        Some(Tok::Word(w)) if is_search_field(&w) => w,
                        t => return err(format!("eval: expected a field name, found {t:?}")),
                    };
                    p.expect(&Tok::Op("="))?;
                    assignments.push((name, expr_or(&mut p)?));
                    if p.peek() != Some(&Tok::Comma) {
                        break;
                    }
                    p.next();
                }
                Command::Eval(assignments)
            }
            "search" => {
                let mut inner = Query {
                    search: None,
                    earliest: None,
                    latest: None,
                    commands: Vec::new(),
                };
                let e = search_and(&mut p, &mut inner)?;
                if inner.earliest.is_some() || inner.latest.is_some() {
                    return err("time modifiers in a later search command are outside the subset");
                }
                match e {
                    Some(e) => Command::Search(e),
                    None => return err("search command without terms"),
                }
            }
            "fillnull" => {
                let mut value = "0".to_string();
                if is_keyword(p.peek(), "value") {
                    p.next();
                    p.expect(&Tok::Op("="))?;
                    value = match p.next() {
                        Some(Tok::Str(s)) => s,
                        t => return err(format!("fillnull value: expected a string, found {t:?}")),
                    };
                }
                let mut fields = Vec::new();
                while !p.at_command_end() {
                    match p.next() {
                        Some(Tok::Word(w)) if is_search_field(&w) => fields.push(w),
                        t => return err(format!("fillnull: expected a field name, found {t:?}")),
                    }
                }
                if fields.is_empty() {
                    return err("fillnull without a field list is outside the subset");
                }
                Command::Fillnull { value, fields }
            }
            "stats" => stats(&mut p)?,
            other => return err(format!("command `{other}` is outside the subset")),
        };
        if !p.at_command_end() {
            return err(format!("{cmd}: unexpected {:?}", p.peek()));
        }
        query.commands.push(c);
    }
    Ok(query)
}

fn stats(p: &mut Parser) -> Result<Command> {
    let mut aggs = Vec::new();
    loop {
        if is_keyword(p.peek(), "by") || p.at_command_end() {
            break;
        }
        let Some(Tok::Word(func)) = p.next() else {
            return err("stats: expected a function");
        };
        if !["count", "min", "max", "values", "dc"].contains(&func.as_str()) {
            return err(format!("stats function `{func}` is outside the subset"));
        }
        let mut field = None;
        if p.peek() == Some(&Tok::LParen) {
            p.next();
            field = match p.next() {
                Some(Tok::Word(w)) if is_search_field(&w) => Some(w),
                t => return err(format!("stats {func}(): expected a field, found {t:?}")),
            };
            p.expect(&Tok::RParen)?;
        } else if func != "count" {
            return err(format!("stats {func} needs a field"));
        }
        let mut alias = match &field {
            Some(f) => format!("{func}({f})"),
            None => func.clone(),
        };
        if is_keyword(p.peek(), "as") || is_keyword(p.peek(), "AS") {
            p.next();
            alias = match p.next() {
                Some(Tok::Word(w)) if is_search_field(&w) => w,
                t => return err(format!("stats as: expected a name, found {t:?}")),
            };
        }
        if p.peek() == Some(&Tok::Comma) {
            p.next();
        }
        aggs.push(Agg { func, field, alias });
    }
    if aggs.is_empty() {
        return err("stats without a function");
    }
    let mut by = Vec::new();
    if is_keyword(p.peek(), "by") {
        p.next();
        while !p.at_command_end() {
            match p.next() {
                Some(Tok::Word(w)) if is_search_field(&w) => by.push(w),
                Some(Tok::Comma) => {}
                t => return err(format!("stats by: expected a field, found {t:?}")),
            }
        }
        if by.is_empty() {
            return err("stats by without fields");
        }
    }
    Ok(Command::Stats { aggs, by })
}

fn time_spec(t: Tok) -> Result<TimeSpec> {
    let text = match t {
        Tok::Word(w) => w,
        Tok::Num(n) => return Ok(TimeSpec::Epoch(n)),
        Tok::Str(s) => s,
        t => return err(format!("time modifier: unexpected {t:?}")),
    };
    if text == "now" {
        return Ok(TimeSpec::Now);
    }
    let (sign, rest) = match text.chars().next() {
        Some('-') => (-1.0, &text[1..]),
        Some('+') => (1.0, &text[1..]),
        _ => return err(format!("time modifier `{text}` is outside the subset")),
    };
    if rest.contains('@') {
        return err(format!("snapping (`{text}`) is outside the subset"));
    }
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let unit = &rest[digits.len()..];
    let n: f64 = if digits.is_empty() {
        1.0
    } else {
        digits
            .parse()
            .map_err(|_| SplError(format!("bad time `{text}`")))?
    };
    let size = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 7.0 * 86_400.0,
        _ => return err(format!("time unit in `{text}` is outside the subset")),
    };
    Ok(TimeSpec::Relative(sign * n * size))
}

/// `search`: AND (explicit or implied) binds loosest, then OR, then NOT.
fn search_and(p: &mut Parser, q: &mut Query) -> Result<Option<SearchExpr>> {
    let mut acc: Option<SearchExpr> = None;
    loop {
        if p.at_command_end() || p.peek() == Some(&Tok::RParen) {
            return Ok(acc);
        }
        if is_keyword(p.peek(), "AND") {
            p.next();
            continue;
        }
        let Some(e) = search_or(p, q)? else { continue };
        acc = Some(match acc {
            None => e,
            Some(a) => SearchExpr::And(Box::new(a), Box::new(e)),
        });
    }
}

fn search_or(p: &mut Parser, q: &mut Query) -> Result<Option<SearchExpr>> {
    let mut left = search_not(p, q)?;
    while is_keyword(p.peek(), "OR") {
        p.next();
        let right = search_not(p, q)?;
        left = match (left, right) {
            (Some(a), Some(b)) => Some(SearchExpr::Or(Box::new(a), Box::new(b))),
            _ => return err("OR with a time modifier is outside the subset"),
        };
    }
    Ok(left)
}

fn search_not(p: &mut Parser, q: &mut Query) -> Result<Option<SearchExpr>> {
    if is_keyword(p.peek(), "NOT") {
        p.next();
        return match search_not(p, q)? {
            Some(e) => Ok(Some(SearchExpr::Not(Box::new(e)))),
            None => err("NOT of a time modifier"),
        };
    }
    search_term(p, q)
}

fn search_value(p: &mut Parser) -> Result<String> {
    match p.next() {
        Some(Tok::Str(s)) => Ok(s),
        Some(Tok::Word(w)) => {
            if w.contains('\\') {
                return err("backslash in an unquoted search value");
            }
            Ok(w)
        }
        Some(Tok::Num(_)) => {
            // Numbers keep their text: re-read from the token stream is not possible,
            // so the subset takes quoted values or words only.
            err("unquoted numeric search values are outside the subset")
        }
        t => err(format!("search: expected a value, found {t:?}")),
    }
}

fn search_term(p: &mut Parser, q: &mut Query) -> Result<Option<SearchExpr>> {
    match p.next() {
        Some(Tok::Word(w)) if w == "*" => Ok(Some(SearchExpr::All)),
        Some(Tok::LParen) => {
            let inner = search_and(p, q)?;
            p.expect(&Tok::RParen)?;
            match inner {
                Some(e) => Ok(Some(e)),
                None => err("empty parentheses in search"),
            }
        }
        Some(Tok::Word(field)) if is_search_field(&field) => {
            if field == "earliest" || field == "latest" {
                p.expect(&Tok::Op("="))?;
                let spec = time_spec(p.next().ok_or_else(|| SplError("time value".into()))?)?;
                if field == "earliest" {
                    q.earliest = Some(spec);
                } else {
                    q.latest = Some(spec);
                }
                return Ok(None);
            }
            match p.next() {
                Some(Tok::Op("=")) => Ok(Some(SearchExpr::Eq {
                    field,
                    pattern: search_value(p)?,
                })),
                Some(Tok::Op("!=")) => Ok(Some(SearchExpr::Ne {
                    field,
                    pattern: search_value(p)?,
                })),
                Some(Tok::Word(w)) if w == "IN" => {
                    p.expect(&Tok::LParen)?;
                    let mut patterns = vec![search_value(p)?];
                    while p.peek() == Some(&Tok::Comma) {
                        p.next();
                        patterns.push(search_value(p)?);
                    }
                    p.expect(&Tok::RParen)?;
                    Ok(Some(SearchExpr::In { field, patterns }))
                }
                t => err(format!(
                    "search term `{field}` followed by {t:?}: outside the subset"
                )),
            }
        }
        t => err(format!(
            "search: {t:?} is outside the subset (bare keywords are)"
        )),
    }
}

// where/eval: OR < AND < NOT < comparison
fn expr_or(p: &mut Parser) -> Result<Expr> {
    let mut left = expr_and(p)?;
    while is_keyword(p.peek(), "OR") {
        p.next();
        left = Expr::Or(Box::new(left), Box::new(expr_and(p)?));
    }
    Ok(left)
}

fn expr_and(p: &mut Parser) -> Result<Expr> {
    let mut left = expr_not(p)?;
    while is_keyword(p.peek(), "AND") {
        p.next();
        left = Expr::And(Box::new(left), Box::new(expr_not(p)?));
    }
    Ok(left)
}

fn expr_not(p: &mut Parser) -> Result<Expr> {
    if is_keyword(p.peek(), "NOT") {
        p.next();
        return Ok(Expr::Not(Box::new(expr_not(p)?)));
    }
    expr_cmp(p)
}

fn expr_cmp(p: &mut Parser) -> Result<Expr> {
    let left = expr_primary(p)?;
    let op = match p.peek() {
        Some(Tok::Op("==")) | Some(Tok::Op("=")) => CmpOp::Eq,
        Some(Tok::Op("!=")) => CmpOp::Ne,
        Some(Tok::Op("<")) => CmpOp::Lt,
        Some(Tok::Op("<=")) => CmpOp::Le,
        Some(Tok::Op(">")) => CmpOp::Gt,
        Some(Tok::Op(">=")) => CmpOp::Ge,
        _ => return Ok(left),
    };
    p.next();
    let right = expr_primary(p)?;
    Ok(Expr::Cmp(op, Box::new(left), Box::new(right)))
}

const FUNCTIONS: [&str; 8] = [
    "match",
    "if",
    "now",
    "isnull",
    "isnotnull",
    "lower",
    "upper",
    "len",
];

fn expr_primary(p: &mut Parser) -> Result<Expr> {
    match p.next() {
        Some(Tok::Str(s)) => Ok(Expr::Str(s)),
        Some(Tok::Num(n)) => Ok(Expr::Num(n)),
        Some(Tok::QField(f)) => Ok(Expr::Field(f)),
        Some(Tok::LParen) => {
            let e = expr_or(p)?;
            p.expect(&Tok::RParen)?;
            Ok(e)
        }
        Some(Tok::Word(w)) => {
            if p.peek() == Some(&Tok::LParen) {
                if !FUNCTIONS.contains(&w.as_str()) {
                    return err(format!("function `{w}` is outside the subset"));
                }
                p.next();
                let mut args = Vec::new();
                if p.peek() != Some(&Tok::RParen) {
                    args.push(expr_or(p)?);
                    while p.peek() == Some(&Tok::Comma) {
                        p.next();
                        args.push(expr_or(p)?);
                    }
                }
                p.expect(&Tok::RParen)?;
                let arity = match w.as_str() {
                    "if" => 3,
                    "match" => 2,
                    "now" => 0,
                    _ => 1,
                };
                if args.len() != arity {
                    return err(format!("{w}() takes {arity} arguments"));
                }
                if w == "match" {
                    match &args[1] {
                        Expr::Str(re) if re.starts_with("(*UTF)") => {}
                        Expr::Str(re) => {
                            return err(format!(
                                "match(): pattern {re:?} without the (*UTF) verb: PCRE may run it on bytes, the engine cannot"
                            ));
                        }
                        _ => return err("match(): the pattern must be a string literal"),
                    }
                }
                Ok(Expr::Call(w, args))
            } else if ["AND", "OR", "NOT"].contains(&w.as_str()) {
                err(format!("unexpected `{w}`"))
            } else if w
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                Ok(Expr::Field(w))
            } else {
                err(format!("`{w}` is not a plain field name (quote it)"))
            }
        }
        t => err(format!("expression: unexpected {t:?}")),
    }
}

// -------------------------------------------------------------------------------
// Evaluation

#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Null,
    Str(String),
    Num(f64),
    Bool(bool),
}

/// An event as Splunk holds it: field → value (numbers as numbers).
pub type SplEvent = BTreeMap<String, V>;

pub fn from_json(v: &Value) -> V {
    match v {
        Value::Null => V::Null,
        Value::String(s) => V::Str(s.clone()),
        Value::Number(n) => V::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::Bool(b) => V::Str(b.to_string()),
        other => V::Str(other.to_string()),
    }
}

fn text(v: &V) -> Option<String> {
    match v {
        V::Null => None,
        V::Str(s) => Some(s.clone()),
        V::Num(n) => Some(num_text(*n)),
        V::Bool(b) => Some(b.to_string()),
    }
}

pub fn num_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn as_num(v: &V) -> Option<f64> {
    match v {
        V::Num(n) => Some(*n),
        V::Str(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|_| !s.trim().is_empty()),
        _ => None,
    }
}

/// Whole-value wildcard match, case-insensitive; `*` is the only wildcard.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let v: Vec<char> = value.to_lowercase().chars().collect();
    // Classic two-pointer glob match with backtracking on `*`.
    let (mut pi, mut vi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while vi < v.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn search_matches(e: &SearchExpr, ev: &SplEvent) -> bool {
    let field_text = |f: &str| ev.get(f).and_then(text);
    match e {
        SearchExpr::All => true,
        SearchExpr::And(a, b) => search_matches(a, ev) && search_matches(b, ev),
        SearchExpr::Or(a, b) => search_matches(a, ev) || search_matches(b, ev),
        SearchExpr::Not(a) => !search_matches(a, ev),
        SearchExpr::Eq { field, pattern } => {
            field_text(field).is_some_and(|t| wildcard_match(pattern, &t))
        }
        SearchExpr::Ne { field, pattern } => {
            field_text(field).is_some_and(|t| !wildcard_match(pattern, &t))
        }
        SearchExpr::In { field, patterns } => {
            field_text(field).is_some_and(|t| patterns.iter().any(|p| wildcard_match(p, &t)))
        }
    }
}

pub struct Context {
    pub now: f64,
    /// Shared, not cloned: a cloned `Regex` starts with an empty match cache, which
    /// costs more to build than most matches here.
    regexes: std::cell::RefCell<BTreeMap<String, std::rc::Rc<Regex>>>,
}

impl Context {
    pub fn new(now: f64) -> Context {
        Context {
            now,
            regexes: Default::default(),
        }
    }

    fn regex(&self, pattern: &str) -> Result<std::rc::Rc<Regex>> {
        if let Some(r) = self.regexes.borrow().get(pattern) {
            return Ok(r.clone());
        }
        let r = Regex::new(pattern).map(std::rc::Rc::new).map_err(|e| {
            SplError(format!(
                "match(): pattern {pattern:?} does not compile: {e}"
            ))
        })?;
        self.regexes
            .borrow_mut()
            .insert(pattern.to_string(), r.clone());
        Ok(r)
    }
}

fn truth(v: &V) -> Option<bool> {
    match v {
        V::Bool(b) => Some(*b),
        V::Null => None,
        _ => None,
    }
}

pub fn eval_expr(e: &Expr, ev: &SplEvent, cx: &Context) -> Result<V> {
    Ok(match e {
        Expr::Str(s) => V::Str(s.clone()),
        Expr::Num(n) => V::Num(*n),
        Expr::Field(f) => ev.get(f).cloned().unwrap_or(V::Null),
        Expr::Not(x) => match truth(&eval_expr(x, ev, cx)?) {
            Some(b) => V::Bool(!b),
            None => V::Null,
        },
        Expr::And(a, b) => {
            let (a, b) = (truth(&eval_expr(a, ev, cx)?), truth(&eval_expr(b, ev, cx)?));
            match (a, b) {
                (Some(false), _) | (_, Some(false)) => V::Bool(false),
                (Some(true), Some(true)) => V::Bool(true),
                _ => V::Null,
            }
        }
        Expr::Or(a, b) => {
            let (a, b) = (truth(&eval_expr(a, ev, cx)?), truth(&eval_expr(b, ev, cx)?));
            match (a, b) {
                (Some(true), _) | (_, Some(true)) => V::Bool(true),
                (Some(false), Some(false)) => V::Bool(false),
                _ => V::Null,
            }
        }
        Expr::Cmp(op, a, b) => {
            let (a, b) = (eval_expr(a, ev, cx)?, eval_expr(b, ev, cx)?);
            if a == V::Null || b == V::Null {
                return Ok(V::Null);
            }
            let ord = match (&a, &b) {
                (V::Num(x), V::Num(y)) => x.partial_cmp(y),
                _ => match (as_num(&a), as_num(&b), &a, &b) {
                    (Some(x), Some(y), V::Num(_), _) | (Some(x), Some(y), _, V::Num(_)) => {
                        x.partial_cmp(&y)
                    }
                    _ => text(&a).partial_cmp(&text(&b)),
                },
            };
            let Some(ord) = ord else { return Ok(V::Null) };
            use std::cmp::Ordering::*;
            V::Bool(match op {
                CmpOp::Eq => ord == Equal,
                CmpOp::Ne => ord != Equal,
                CmpOp::Lt => ord == Less,
                CmpOp::Le => ord != Greater,
                CmpOp::Gt => ord == Greater,
                CmpOp::Ge => ord != Less,
            })
        }
        Expr::Call(f, args) => {
            match f.as_str() {
                "now" => V::Num(cx.now),
                "match" => {
                    let s = eval_expr(&args[0], ev, cx)?;
                    let re = eval_expr(&args[1], ev, cx)?;
                    match (text(&s), text(&re)) {
                        (Some(s), Some(re)) => {
                            let Some(pattern) = re.strip_prefix("(*UTF)") else {
                                return err(format!(
                                    "match(): pattern {re:?} without the (*UTF) verb: PCRE may run it on bytes, the engine cannot"
                                ));
                            };
                            V::Bool(cx.regex(pattern)?.is_match(&s))
                        }
                        _ => V::Null,
                    }
                }
                "if" => match truth(&eval_expr(&args[0], ev, cx)?) {
                    Some(true) => eval_expr(&args[1], ev, cx)?,
                    _ => eval_expr(&args[2], ev, cx)?,
                },
                "isnull" => V::Bool(eval_expr(&args[0], ev, cx)? == V::Null),
                "isnotnull" => V::Bool(eval_expr(&args[0], ev, cx)? != V::Null),
                "lower" => text(&eval_expr(&args[0], ev, cx)?)
                    .map_or(V::Null, |s| V::Str(s.to_lowercase())),
                "upper" => text(&eval_expr(&args[0], ev, cx)?)
                    .map_or(V::Null, |s| V::Str(s.to_uppercase())),
                "len" => text(&eval_expr(&args[0], ev, cx)?)
                    .map_or(V::Null, |s| V::Num(s.chars().count() as f64)),
                other => return err(format!("function `{other}`")),
            }
        }
    })
}

/// What a query returns over events: the events left before `stats` (by index)
/// and the result rows (the events themselves when there is no `stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub matched: Vec<usize>,
    pub rows: Vec<BTreeMap<String, V>>,
}

fn resolve(t: &TimeSpec, now: f64) -> f64 {
    match t {
        TimeSpec::Now => now,
        TimeSpec::Epoch(e) => *e,
        TimeSpec::Relative(d) => now + d,
    }
}

/// Run the query over events at search time `now` (epoch seconds). Each event must
/// carry `_time` as a number.
pub fn run(q: &Query, events: &[SplEvent], now: f64) -> Result<Output> {
    let cx = Context::new(now);
    let earliest = q.earliest.as_ref().map(|t| resolve(t, now));
    let latest = resolve(q.latest.as_ref().unwrap_or(&TimeSpec::Now), now);
    let mut live: Vec<(usize, SplEvent)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let Some(V::Num(t)) = e.get("_time") else {
            return err(format!("event {i} has no numeric _time"));
        };
        if earliest.is_some_and(|s| *t < s) || *t >= latest {
            continue;
        }
        if q.search.as_ref().is_none_or(|s| search_matches(s, e)) {
            live.push((i, e.clone()));
        }
    }
    let mut stats_rows: Option<Vec<BTreeMap<String, V>>> = None;
    let mut matched: Option<Vec<usize>> = None;
    for c in &q.commands {
        if let Some(rows) = &mut stats_rows {
            // After stats only eval is in the subset.
            match c {
                Command::Eval(assignments) => {
                    for r in rows.iter_mut() {
                        eval_into(assignments, r, &cx)?;
                    }
                }
                Command::Search(s) => rows.retain(|r| search_matches(s, r)),
                _ => return err("only eval and search may follow stats in the subset"),
            }
            continue;
        }
        match c {
            Command::Where(x) => {
                let mut keep = Vec::new();
                for (i, e) in live {
                    if truth(&eval_expr(x, &e, &cx)?) == Some(true) {
                        keep.push((i, e));
                    }
                }
                live = keep;
            }
            Command::Eval(assignments) => {
                for (_, e) in live.iter_mut() {
                    eval_into(assignments, e, &cx)?;
                }
            }
            Command::Search(s) => live.retain(|(_, e)| search_matches(s, e)),
            Command::Fillnull { value, fields } => {
                for (_, e) in live.iter_mut() {
                    for f in fields {
                        if matches!(e.get(f), None | Some(V::Null)) {
                            e.insert(f.clone(), V::Str(value.clone()));
                        }
                    }
                }
            }
            Command::Stats { aggs, by } => {
                matched = Some(live.iter().map(|(i, _)| *i).collect());
                stats_rows = Some(stats_run(aggs, by, &live)?);
            }
        }
    }
    let matched = matched.unwrap_or_else(|| live.iter().map(|(i, _)| *i).collect());
    let rows = stats_rows.unwrap_or_else(|| live.into_iter().map(|(_, e)| e).collect());
    Ok(Output { matched, rows })
}

/// `eval` assignments, left to right: a null value removes the field, a boolean is
/// an error.
fn eval_into(assignments: &[(String, Expr)], e: &mut SplEvent, cx: &Context) -> Result<()> {
    for (f, x) in assignments {
        match eval_expr(x, e, cx)? {
            V::Null => {
                e.remove(f);
            }
            V::Bool(_) => return err(format!("eval {f}: the value is a boolean")),
            v => {
                e.insert(f.clone(), v);
            }
        }
    }
    Ok(())
}

fn stats_run(
    aggs: &[Agg],
    by: &[String],
    live: &[(usize, SplEvent)],
) -> Result<Vec<BTreeMap<String, V>>> {
    let mut groups: BTreeMap<Vec<String>, Vec<&SplEvent>> = BTreeMap::new();
    for (_, e) in live {
        let mut key = Vec::new();
        let mut null = false;
        for f in by {
            match e.get(f).and_then(text) {
                Some(t) => key.push(t),
                None => null = true,
            }
        }
        if null {
            continue; // Splunk drops events whose by-field is null.
        }
        groups.entry(key).or_default().push(e);
    }
    if by.is_empty() && groups.is_empty() {
        groups.insert(vec![], vec![]);
    }
    let mut rows = Vec::new();
    for (key, members) in groups {
        let mut row = BTreeMap::new();
        for (f, k) in by.iter().zip(&key) {
            row.insert(f.clone(), V::Str(k.clone()));
        }
        for a in aggs {
            let vals: Vec<&V> = match &a.field {
                Some(f) => members
                    .iter()
                    .filter_map(|e| e.get(f))
                    .filter(|v| **v != V::Null)
                    .collect(),
                None => vec![],
            };
            let out = match a.func.as_str() {
                "count" => V::Num(match &a.field {
                    None => members.len(),
                    Some(_) => vals.len(),
                } as f64),
                "min" | "max" => {
                    let all_num = !vals.is_empty() && vals.iter().all(|v| as_num(v).is_some());
                    let pick = if all_num {
                        vals.iter()
                            .copied()
                            .min_by(|x, y| {
                                let c = as_num(x).partial_cmp(&as_num(y)).expect("numbers");
                                if a.func == "min" { c } else { c.reverse() }
                            })
                            .map(|v| V::Num(as_num(v).expect("number")))
                    } else {
                        vals.iter()
                            .copied()
                            .min_by(|x, y| {
                                let c = text(x).cmp(&text(y));
                                if a.func == "min" { c } else { c.reverse() }
                            })
                            .cloned()
                    };
                    pick.unwrap_or(V::Null)
                }
                "values" => {
                    let set: BTreeSet<String> = vals.iter().filter_map(|v| text(v)).collect();
                    V::Str(
                        serde_json::to_string(&set.into_iter().collect::<Vec<_>>()).expect("json"),
                    )
                }
                "dc" => {
                    let set: BTreeSet<String> = vals.iter().filter_map(|v| text(v)).collect();
                    V::Num(set.len() as f64)
                }
                other => return err(format!("stats {other}")),
            };
            row.insert(a.alias.clone(), out);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A `values()` output back as its list (the engine keeps multivalue fields as a
/// JSON list in a string, a representation private to this engine).
pub fn multivalue(v: &V) -> Option<Vec<String>> {
    match v {
        V::Str(s) if s.starts_with('[') => serde_json::from_str(s).ok(),
        _ => None,
    }
}

pub fn to_json(v: &V) -> Value {
    match v {
        V::Null => Value::Null,
        V::Str(s) => Value::String(s.clone()),
        V::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        V::Bool(b) => Value::Bool(*b),
    }
}

pub fn event_from_json(m: &Map<String, Value>) -> SplEvent {
    m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*netsupport*", "NetSupport Ltd"));
        assert!(wildcard_match("a*b", "ab"));
        assert!(!wildcard_match("a*b", "abc"));
        assert!(wildcard_match("a?b", "a?b"));
        assert!(!wildcard_match("a?b", "axb"));
    }
}
