//! Whether an UPDATE/DELETE's WHERE restricts anything: a missing WHERE, or one that is a
//! tautology (`true`, `1=1`, `'a'='a'`, `x = x`, `… OR true`, `NOT false`,
//! `x IS NULL OR x IS NOT NULL`, `x LIKE '%'`, a constant expression that is true), is
//! no restriction. `WHERE CURRENT OF cursor` is effective.

use std::cmp::Ordering;

use sqlparser::ast::{
    BinaryOperator, DataType, Expr, GroupByExpr, InTarget, Query, SetExpr, UnaryOperator, Value,
};

use super::columns::reference;
use super::scope::Scope;

/// Whether `selection` limits the rows touched.
pub(super) fn is_effective(selection: Option<&Expr>, scope: &Scope<'_>) -> bool {
    selection.is_some_and(|e| !is_tautology(e, scope))
}

/// Whether `expr` holds for every row.
#[recursive::recursive]
pub(super) fn is_tautology(expr: &Expr, scope: &Scope<'_>) -> bool {
    let structural = match strip(expr) {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            is_tautology(left, scope)
                || is_tautology(right, scope)
                || complementary(left, right, scope)
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => is_tautology(left, scope) && is_tautology(right, scope),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => is_contradiction(expr, scope),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq | BinaryOperator::LtEq | BinaryOperator::GtEq,
            right,
        } => same(left, right, scope),
        Expr::IsNotDistinctFrom(a, b) => same(a, b, scope),
        Expr::IsTrue(inner) | Expr::IsNotFalse(inner) => is_tautology(inner, scope),
        Expr::IsFalse(inner) | Expr::IsNotTrue(inner) => is_contradiction(inner, scope),
        Expr::In {
            expr,
            target: InTarget::List(items),
            negated: false,
            ..
        } => items.iter().any(|item| same(expr, item, scope)),
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } => same(expr, low, scope) && same(expr, high, scope),
        Expr::Like {
            negated: false,
            any: false,
            pattern,
            escape_char: None,
            ..
        }
        | Expr::ILike {
            negated: false,
            any: false,
            pattern,
            escape_char: None,
            ..
        } => matches_everything(pattern),
        Expr::Exists {
            subquery,
            negated: false,
        } => always_has_a_row(subquery, scope),
        _ => false,
    };
    structural || constant(expr).and_then(truth) == Some(true)
}

/// Whether `expr` holds for no row.
#[recursive::recursive]
fn is_contradiction(expr: &Expr, scope: &Scope<'_>) -> bool {
    let structural = match strip(expr) {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => is_contradiction(left, scope) || is_contradiction(right, scope),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => is_contradiction(left, scope) && is_contradiction(right, scope),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => is_tautology(expr, scope),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::NotEq | BinaryOperator::Lt | BinaryOperator::Gt,
            right,
        } => same(left, right, scope),
        Expr::IsDistinctFrom(a, b) => same(a, b, scope),
        Expr::IsTrue(inner) | Expr::IsNotFalse(inner) => is_contradiction(inner, scope),
        Expr::IsFalse(inner) | Expr::IsNotTrue(inner) => is_tautology(inner, scope),
        _ => false,
    };
    structural || constant(expr).and_then(truth) == Some(false)
}

fn strip(expr: &Expr) -> &Expr {
    let mut expr = expr;
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    expr
}

/// `a IS NULL OR a IS NOT NULL`, `p OR NOT p`.
fn complementary(left: &Expr, right: &Expr, scope: &Scope<'_>) -> bool {
    let pair = |a: &Expr, b: &Expr| match (strip(a), strip(b)) {
        (Expr::IsNull(x), Expr::IsNotNull(y)) => same(x, y, scope),
        (
            p,
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr: q,
            },
        ) => same(p, q, scope),
        _ => false,
    };
    pair(left, right) || pair(right, left)
}

/// Whether two operands are the same: written identically, or column references that
/// resolve to the same column of a known relation (`t.x` and `x`).
fn same(a: &Expr, b: &Expr, scope: &Scope<'_>) -> bool {
    let (a, b) = (strip(a), strip(b));
    if a == b {
        return true;
    }
    let is_column = |e: &Expr| matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
    if !is_column(a) || !is_column(b) {
        return false;
    }
    let (ra, rb) = (reference(a, scope), reference(b, scope));
    let known = |r: &Vec<super::ColumnName>| {
        r.len() == 1 && r.iter().all(|c| c.relation.is_some() && c.column != "*")
    };
    known(&ra) && ra == rb
}

/// A LIKE pattern that is only `%`s matches every non-null string.
fn matches_everything(pattern: &Expr) -> bool {
    matches!(constant(pattern), Some(Const::Str(s)) if !s.is_empty() && s.chars().all(|c| c == '%'))
}

/// `EXISTS (SELECT …)` without FROM, WHERE, GROUP BY, HAVING or LIMIT: always a row.
fn always_has_a_row(query: &Query, scope: &Scope<'_>) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    query.with.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && select.from.is_empty()
        && select.having.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && select
            .selection
            .as_ref()
            .is_none_or(|s| is_tautology(s, scope))
}

/// A constant's value. Numbers are exact decimals.
#[derive(Clone, Debug, PartialEq)]
enum Const {
    Null,
    Bool(bool),
    Num(Decimal),
    Str(String),
}

/// `mantissa / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Decimal {
    mantissa: i128,
    scale: u32,
}

const MAX_SCALE: u32 = 30;

impl Decimal {
    fn parse(text: &str) -> Option<Decimal> {
        let text: String = text.chars().filter(|&c| c != '_').collect();
        let (number, exponent) = match text.find(['e', 'E']) {
            Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
            None => (text.as_str(), 0),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        if !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let digits = format!("{whole}{fraction}");
        let mut mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        if mantissa == 0 {
            return Some(Decimal { mantissa, scale: 0 });
        }
        let mut scale = i64::try_from(fraction.len()).ok()? - i64::from(exponent);
        while scale < 0 {
            mantissa = mantissa.checked_mul(10)?;
            scale += 1;
        }
        let scale = u32::try_from(scale).ok()?;
        (scale <= MAX_SCALE).then_some(Decimal { mantissa, scale })
    }

    /// Both at the same scale.
    fn align(self, other: Decimal) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        let a = self
            .mantissa
            .checked_mul(10i128.checked_pow(scale - self.scale)?)?;
        let b = other
            .mantissa
            .checked_mul(10i128.checked_pow(scale - other.scale)?)?;
        Some((a, b, scale))
    }

    fn compare(self, other: Decimal) -> Option<Ordering> {
        let (a, b, _) = self.align(other)?;
        Some(a.cmp(&b))
    }

    fn add(self, other: Decimal, negate: bool) -> Option<Decimal> {
        let (a, b, scale) = self.align(other)?;
        let b = if negate { b.checked_neg()? } else { b };
        Some(Decimal {
            mantissa: a.checked_add(b)?,
            scale,
        })
    }

    fn multiply(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale + other.scale;
        (scale <= MAX_SCALE).then_some(())?;
        Some(Decimal {
            mantissa: self.mantissa.checked_mul(other.mantissa)?,
            scale,
        })
    }
}

/// PostgreSQL's boolean input: `t`, `true`, `yes`, `on`, `1` and their prefixes.
fn parse_bool(text: &str) -> Option<bool> {
    let text = text.trim().to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| text.len() >= min && word.starts_with(text.as_str());
    if prefix_of("true", 1) || prefix_of("yes", 1) || text == "on" || text == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || text == "0" {
        Some(false)
    } else {
        None
    }
}

/// The truth of a constant used as a condition (a bare string is read as a boolean).
fn truth(value: Const) -> Option<bool> {
    match value {
        Const::Bool(b) => Some(b),
        Const::Str(s) => parse_bool(&s),
        Const::Null | Const::Num(_) => None,
    }
}

/// The value of an expression without column references, where easy to compute.
#[recursive::recursive]
fn constant(expr: &Expr) -> Option<Const> {
    match strip(expr) {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Decimal::parse(n).map(Const::Num),
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::UnicodeStringLiteral(s)
            | Value::NationalStringLiteral(s) => Some(Const::Str(s.clone())),
            Value::DollarQuotedString(s) => Some(Const::Str(s.value.clone())),
            Value::Boolean(b) => Some(Const::Bool(*b)),
            Value::Null => Some(Const::Null),
            _ => None,
        },
        Expr::UnaryOp { op, expr } => {
            let value = constant(expr)?;
            match (op, value) {
                (_, Const::Null) => Some(Const::Null),
                (UnaryOperator::Not, v) => truth(v).map(|b| Const::Bool(!b)),
                (UnaryOperator::Minus, Const::Num(n)) => Some(Const::Num(Decimal {
                    mantissa: n.mantissa.checked_neg()?,
                    scale: n.scale,
                })),
                (UnaryOperator::Plus, Const::Num(n)) => Some(Const::Num(n)),
                _ => None,
            }
        }
        Expr::BinaryOp { left, op, right } => binary(constant(left)?, op, constant(right)?),
        Expr::Cast {
            expr, data_type, ..
        } => {
            let value = constant(expr)?;
            match data_type {
                DataType::Boolean | DataType::Bool => match value {
                    Const::Null => Some(Const::Null),
                    Const::Num(n) => Some(Const::Bool(n.mantissa != 0)),
                    other => truth(other).map(Const::Bool),
                },
                _ => None,
            }
        }
        Expr::IsTrue(e) => Some(Const::Bool(constant(e).and_then(truth) == Some(true))),
        Expr::IsFalse(e) => Some(Const::Bool(constant(e).and_then(truth) == Some(false))),
        Expr::IsNotTrue(e) => Some(Const::Bool(constant(e).and_then(truth) != Some(true))),
        Expr::IsNotFalse(e) => Some(Const::Bool(constant(e).and_then(truth) != Some(false))),
        Expr::IsNull(e) => Some(Const::Bool(constant(e)? == Const::Null)),
        Expr::IsNotNull(e) => Some(Const::Bool(constant(e)? != Const::Null)),
        Expr::IsDistinctFrom(a, b) => distinct(constant(a)?, constant(b)?).map(Const::Bool),
        Expr::IsNotDistinctFrom(a, b) => {
            distinct(constant(a)?, constant(b)?).map(|d| Const::Bool(!d))
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let value = constant(expr)?;
            let ge = binary(value.clone(), &BinaryOperator::GtEq, constant(low)?)?;
            let le = binary(value, &BinaryOperator::LtEq, constant(high)?)?;
            let both = and(ge, le)?;
            if *negated { not(both) } else { Some(both) }
        }
        Expr::In {
            expr,
            target: InTarget::List(items),
            negated,
            ..
        } => {
            let value = constant(expr)?;
            let mut result = Const::Bool(false);
            for item in items {
                let equal = binary(value.clone(), &BinaryOperator::Eq, constant(item)?)?;
                result = or(result, equal)?;
            }
            if *negated { not(result) } else { Some(result) }
        }
        _ => None,
    }
}

fn not(value: Const) -> Option<Const> {
    match value {
        Const::Null => Some(Const::Null),
        other => truth(other).map(|b| Const::Bool(!b)),
    }
}

fn and(a: Const, b: Const) -> Option<Const> {
    let (a, b) = (tristate(a)?, tristate(b)?);
    Some(match (a, b) {
        (Some(false), _) | (_, Some(false)) => Const::Bool(false),
        (Some(true), Some(true)) => Const::Bool(true),
        _ => Const::Null,
    })
}

fn or(a: Const, b: Const) -> Option<Const> {
    let (a, b) = (tristate(a)?, tristate(b)?);
    Some(match (a, b) {
        (Some(true), _) | (_, Some(true)) => Const::Bool(true),
        (Some(false), Some(false)) => Const::Bool(false),
        _ => Const::Null,
    })
}

/// A condition's three-valued truth; `None` if it is not a boolean.
fn tristate(value: Const) -> Option<Option<bool>> {
    match value {
        Const::Null => Some(None),
        other => truth(other).map(Some),
    }
}

fn distinct(a: Const, b: Const) -> Option<bool> {
    match (&a, &b) {
        (Const::Null, Const::Null) => Some(false),
        (Const::Null, _) | (_, Const::Null) => Some(true),
        _ => compare(&a, &b).map(|o| o != Ordering::Equal),
    }
}

/// Compares two non-null constants the way the server coerces literals; strings only for
/// equality (their order depends on the collation).
fn compare(a: &Const, b: &Const) -> Option<Ordering> {
    match (a, b) {
        (Const::Num(x), Const::Num(y)) => x.compare(*y),
        (Const::Num(x), Const::Str(s)) => x.compare(Decimal::parse(s.trim())?),
        (Const::Str(s), Const::Num(y)) => Decimal::parse(s.trim())?.compare(*y),
        (Const::Bool(x), Const::Bool(y)) => Some(x.cmp(y)),
        (Const::Bool(x), Const::Str(s)) => Some(x.cmp(&parse_bool(s)?)),
        (Const::Str(s), Const::Bool(y)) => Some(parse_bool(s)?.cmp(y)),
        (Const::Str(x), Const::Str(y)) => (x == y).then_some(Ordering::Equal),
        _ => None,
    }
}

fn binary(a: Const, op: &BinaryOperator, b: Const) -> Option<Const> {
    use BinaryOperator as B;
    match op {
        B::And => and(a, b),
        B::Or => or(a, b),
        B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq => {
            if a == Const::Null || b == Const::Null {
                return Some(Const::Null);
            }
            let strings = matches!((&a, &b), (Const::Str(_), Const::Str(_)));
            let ordering = match compare(&a, &b) {
                Some(o) => o,
                // Unequal strings: known for = and <>, not for ordering.
                None if strings && matches!(op, B::Eq | B::NotEq) => Ordering::Less,
                None => return None,
            };
            Some(Const::Bool(match op {
                B::Eq => ordering == Ordering::Equal,
                B::NotEq => ordering != Ordering::Equal,
                B::Lt => ordering == Ordering::Less,
                B::LtEq => ordering != Ordering::Greater,
                B::Gt => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            }))
        }
        B::Plus | B::Minus | B::Multiply => match (a, b) {
            (Const::Null, _) | (_, Const::Null) => Some(Const::Null),
            (Const::Num(x), Const::Num(y)) => match op {
                B::Plus => x.add(y, false),
                B::Minus => x.add(y, true),
                _ => x.multiply(y),
            }
            .map(Const::Num),
            _ => None,
        },
        B::StringConcat => match (a, b) {
            (Const::Null, _) | (_, Const::Null) => Some(Const::Null),
            (Const::Str(x), Const::Str(y)) => Some(Const::Str(x + &y)),
            _ => None,
        },
        _ => None,
    }
}
