//! Finding `and` and `or` mixed in one parenthesis level without parentheses, e.g.
//! `where A has 'x' and B has 'y' or C has 'z'`. KQL reads it as
//! `(A and B) or C` (`and` binds tighter), which is often not what the author meant;
//! the importer keeps KQL's reading and flags the query.

/// Where an `and`/`or` mix starts: 1-based line and column (in characters) of the
/// first `and` or `or` of the group that mixes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// 1-based line in the query.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

#[derive(Default)]
struct Group {
    first: Option<usize>,
    and: bool,
    or: bool,
}

/// Every group of the query that mixes `and` and `or` at its own level. Strings
/// (`'..'`, `".."`, `@'..'`, `@".."`) and `//` comments are skipped; a group is the
/// text inside one pair of parentheses, or one `where` clause between `|`s.
pub fn mixes(query: &str) -> Vec<Mix> {
    let b = query.as_bytes();
    let mut stack: Vec<Group> = vec![Group::default()];
    let mut found: Vec<usize> = Vec::new();
    let close = |g: Group, found: &mut Vec<usize>| {
        if g.and && g.or {
            found.extend(g.first);
        }
    };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'@' if matches!(b.get(i + 1), Some(b'\'') | Some(b'"')) => {
                let q = b[i + 1];
                i += 2;
                while i < b.len() {
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    if b[i] == b'\n' {
                        break;
                    }
                    i += 1;
                }
            }
            b'\'' | b'"' => {
                i += 1;
                while i < b.len() && b[i] != c && b[i] != b'\n' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' => stack.push(Group::default()),
            b')' if stack.len() > 1 => {
                let g = stack.pop().expect("non-empty");
                close(g, &mut found);
            }
            b'|' | b';' if stack.len() == 1 => {
                let g = std::mem::take(&mut stack[0]);
                close(g, &mut found);
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let before_ok = start == 0 || !matches!(b[start - 1], b'!' | b'.');
                let word = &query[start..i];
                if before_ok && (word == "and" || word == "or") {
                    let g = stack.last_mut().expect("non-empty");
                    g.first.get_or_insert(start);
                    if word == "and" {
                        g.and = true;
                    } else {
                        g.or = true;
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    while let Some(g) = stack.pop() {
        close(g, &mut found);
    }
    found.sort();
    found
        .into_iter()
        .map(|offset| {
            let before = &query[..offset];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Mix { line, column }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_xeox_shape() {
        let q = "T\n| where Timestamp between (a..b)\n| where A has 'x'\n    and B has 'y'\n        or C has 'z'\n| summarize N=count() by D";
        assert_eq!(mixes(q), vec![Mix { line: 4, column: 5 }]);
    }

    #[test]
    fn parentheses_and_strings_do_not_mix() {
        for q in [
            "T | where A has 'x' and (B has 'y' or C has 'z')",
            "T | where A has 'x or y and z' and B has 'q'",
            "T | where A has @'a and b' or B has \"c and\" // and or\n| where C has 'x' and D has 'y'",
            "T | where (A has 'x' or B has 'y') and C has_any ('p', 'q')",
            "T | where A has 'x' or B has 'y' | where C has 'z' and D has 'w'",
        ] {
            assert_eq!(mixes(q), vec![], "{q}");
        }
        assert_eq!(
            mixes("T | where (A has 'x' and B has 'y' or C has 'z')").len(),
            1
        );
    }
}
