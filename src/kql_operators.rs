//! The KQL string operators rmmc reads (Sentinel hunting queries, [`crate::parse::kql`])
//! and writes (the KQL target): one table, so what rmmc writes it can read back and
//! the two cannot drift apart.

use crate::ir::{Case, MatchKind, Quantifier};

/// One KQL comparison operator and the predicate it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KqlOperator {
    /// As written in KQL: `has`, `!startswith_cs`, `=~`, `has_any`.
    pub name: &'static str,
    /// The predicate kind.
    pub kind: MatchKind,
    /// Case sensitivity.
    pub case: Case,
    /// `!`-operators match where the predicate does not.
    pub negated: bool,
    /// For list operators (`has_any (...)`), whether any or all values must match;
    /// `None` for operators on one value.
    pub list: Option<Quantifier>,
}

const fn op(name: &'static str, kind: MatchKind, case: Case, negated: bool) -> KqlOperator {
    KqlOperator {
        name,
        kind,
        case,
        negated,
        list: None,
    }
}

const fn list(
    name: &'static str,
    kind: MatchKind,
    case: Case,
    q: Quantifier,
    negated: bool,
) -> KqlOperator {
    KqlOperator {
        name,
        kind,
        case,
        negated,
        list: Some(q),
    }
}

use Case::{Insensitive as I, Sensitive as S};
use MatchKind::{Contains, Equals, Prefix, Suffix, Term};

/// Every string operator of the subset, positive before negated.
pub const OPERATORS: &[KqlOperator] = &[
    op("==", Equals, S, false),
    op("=~", Equals, I, false),
    op("has_cs", Term, S, false),
    op("has", Term, I, false),
    op("contains_cs", Contains, S, false),
    op("contains", Contains, I, false),
    op("startswith_cs", Prefix, S, false),
    op("startswith", Prefix, I, false),
    op("endswith_cs", Suffix, S, false),
    op("endswith", Suffix, I, false),
    op("!=", Equals, S, true),
    op("!~", Equals, I, true),
    op("!has", Term, I, true),
    op("!has_cs", Term, S, true),
    op("!contains", Contains, I, true),
    op("!contains_cs", Contains, S, true),
    op("!startswith", Prefix, I, true),
    op("!startswith_cs", Prefix, S, true),
    op("!endswith", Suffix, I, true),
    op("!endswith_cs", Suffix, S, true),
    list("in", Equals, S, Quantifier::Any, false),
    list("in~", Equals, I, Quantifier::Any, false),
    list("has_any", Term, I, Quantifier::Any, false),
    list("has_all", Term, I, Quantifier::All, false),
    list("!in", Equals, S, Quantifier::Any, true),
    list("!in~", Equals, I, Quantifier::Any, true),
];

/// The operator named `name`, if the subset has it.
pub fn by_name(name: &str) -> Option<&'static KqlOperator> {
    OPERATORS.iter().find(|o| o.name == name)
}

/// The positive one-value operator of a predicate kind and case (`has`, `==`), if
/// KQL has one (`matches regex` and `isempty()` are not comparison operators).
pub fn single(kind: MatchKind, case: Case) -> Option<&'static str> {
    OPERATORS
        .iter()
        .find(|o| o.kind == kind && o.case == case && !o.negated && o.list.is_none())
        .map(|o| o.name)
}

/// The positive list operator for a predicate kind, case and quantifier (`has_any`),
/// if KQL has one.
pub fn list_of(kind: MatchKind, case: Case, q: Quantifier) -> Option<&'static str> {
    OPERATORS
        .iter()
        .find(|o| o.kind == kind && o.case == case && !o.negated && o.list == Some(q))
        .map(|o| o.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_case_of_a_comparison_has_one_positive_operator() {
        for kind in [Equals, Term, Contains, Prefix, Suffix] {
            for case in [S, I] {
                let n = OPERATORS
                    .iter()
                    .filter(|o| o.kind == kind && o.case == case && !o.negated && o.list.is_none())
                    .count();
                assert_eq!(n, 1, "{kind:?} {case:?}");
            }
        }
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in OPERATORS.iter().enumerate() {
            assert!(
                OPERATORS[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
        }
    }

    #[test]
    fn list_operators_are_the_ones_kql_has() {
        assert_eq!(list_of(Term, I, Quantifier::Any), Some("has_any"));
        assert_eq!(list_of(Term, I, Quantifier::All), Some("has_all"));
        assert_eq!(list_of(Equals, I, Quantifier::Any), Some("in~"));
        assert_eq!(list_of(Term, S, Quantifier::Any), None);
    }
}
