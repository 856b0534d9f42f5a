//! Whether an UPDATE/DELETE's WHERE restricts anything: a missing WHERE, or one that is a
//! tautology (`true`, `1=1`, `'a'='a'`, `x = x`, `… OR true`, `NOT false`,
//! `x IS NULL OR x IS NOT NULL`, `x LIKE '%'`, a constant expression that is true), is
//! no restriction. `WHERE CURRENT OF cursor` is effective.

use std::cmp::Ordering;

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AExpr, AExprKind, BoolExprType, BoolTestType, BooleanTest, Node, NullTestType, SelectStmt,
    SetOperation, SubLinkType, a_const,
};

use super::columns::reference;
use super::names;
use super::scope::Scope;

/// Whether `selection` limits the rows touched.
pub(super) fn is_effective(selection: Option<&Node>, scope: &Scope<'_>) -> bool {
    selection.is_some_and(|e| !is_tautology(e, scope))
}

fn kind(node: &Node) -> Option<&NodeEnum> {
    node.node.as_ref()
}

/// The operator of a plain binary `AExpr` (`=`, `<`, `||` …), with both operands.
fn binary_op(e: &AExpr) -> Option<(&str, &Node, &Node)> {
    if e.kind != AExprKind::AexprOp as i32 {
        return None;
    }
    let [op] = e.name.as_slice() else {
        return None;
    };
    Some((names::string(op)?, e.lexpr.as_deref()?, e.rexpr.as_deref()?))
}

fn operator(e: &AExpr) -> Option<&str> {
    match e.name.as_slice() {
        [op] => names::string(op),
        _ => None,
    }
}

fn list(node: Option<&Node>) -> &[Node] {
    match node.and_then(kind) {
        Some(NodeEnum::List(l)) => &l.items,
        _ => &[],
    }
}

/// Whether `expr` holds for every row.
#[recursive::recursive]
pub(super) fn is_tautology(expr: &Node, scope: &Scope<'_>) -> bool {
    let structural = match kind(expr) {
        Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::OrExpr as i32 => {
            b.args.iter().any(|a| is_tautology(a, scope))
                || b.args
                    .iter()
                    .enumerate()
                    .any(|(i, x)| b.args[i + 1..].iter().any(|y| complementary(x, y, scope)))
        }
        Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::AndExpr as i32 => {
            !b.args.is_empty() && b.args.iter().all(|a| is_tautology(a, scope))
        }
        Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::NotExpr as i32 => {
            b.args.first().is_some_and(|a| is_contradiction(a, scope))
        }
        Some(NodeEnum::AExpr(e)) => match AExprKind::try_from(e.kind) {
            Ok(AExprKind::AexprOp) => match binary_op(e) {
                Some(("=" | "<=" | ">=", l, r)) => same(l, r, scope),
                _ => false,
            },
            Ok(AExprKind::AexprNotDistinct) => match (e.lexpr.as_deref(), e.rexpr.as_deref()) {
                (Some(l), Some(r)) => same(l, r, scope),
                _ => false,
            },
            Ok(AExprKind::AexprIn) if operator(e) == Some("=") => e
                .lexpr
                .as_deref()
                .is_some_and(|l| list(e.rexpr.as_deref()).iter().any(|i| same(l, i, scope))),
            Ok(AExprKind::AexprBetween | AExprKind::AexprBetweenSym) => {
                match (e.lexpr.as_deref(), list(e.rexpr.as_deref())) {
                    (Some(x), [low, high]) => same(x, low, scope) && same(x, high, scope),
                    _ => false,
                }
            }
            Ok(AExprKind::AexprLike | AExprKind::AexprIlike)
                if matches!(operator(e), Some("~~" | "~~*")) =>
            {
                e.rexpr.as_deref().is_some_and(matches_everything)
            }
            _ => false,
        },
        Some(NodeEnum::BooleanTest(t)) => boolean_test_always(t, true, scope),
        Some(NodeEnum::SubLink(s)) if s.sub_link_type == SubLinkType::ExistsSublink as i32 => {
            match s.subselect.as_deref().and_then(kind) {
                Some(NodeEnum::SelectStmt(select)) => always_has_a_row(select, scope),
                _ => false,
            }
        }
        _ => false,
    };
    structural || constant(expr).and_then(truth) == Some(true)
}

/// Whether `expr` holds for no row.
#[recursive::recursive]
fn is_contradiction(expr: &Node, scope: &Scope<'_>) -> bool {
    let structural = match kind(expr) {
        Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::AndExpr as i32 => {
            b.args.iter().any(|a| is_contradiction(a, scope))
        }
        Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::OrExpr as i32 => {
            !b.args.is_empty() && b.args.iter().all(|a| is_contradiction(a, scope))
        }
        Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::NotExpr as i32 => {
            b.args.first().is_some_and(|a| is_tautology(a, scope))
        }
        Some(NodeEnum::AExpr(e)) => match AExprKind::try_from(e.kind) {
            Ok(AExprKind::AexprOp) => match binary_op(e) {
                Some(("<>" | "<" | ">", l, r)) => same(l, r, scope),
                _ => false,
            },
            Ok(AExprKind::AexprDistinct) => match (e.lexpr.as_deref(), e.rexpr.as_deref()) {
                (Some(l), Some(r)) => same(l, r, scope),
                _ => false,
            },
            _ => false,
        },
        Some(NodeEnum::BooleanTest(t)) => boolean_test_always(t, false, scope),
        _ => false,
    };
    structural || constant(expr).and_then(truth) == Some(false)
}

/// Whether `x IS [NOT] TRUE/FALSE` is always `holds`: `x IS TRUE` holds when x always
/// does, `x IS FALSE` when x never does.
fn boolean_test_always(test: &BooleanTest, holds: bool, scope: &Scope<'_>) -> bool {
    let Some(arg) = test.arg.as_deref() else {
        return false;
    };
    let affirms = match BoolTestType::try_from(test.booltesttype) {
        Ok(BoolTestType::IsTrue | BoolTestType::IsNotFalse) => true,
        Ok(BoolTestType::IsFalse | BoolTestType::IsNotTrue) => false,
        _ => return false,
    };
    if affirms == holds {
        is_tautology(arg, scope)
    } else {
        is_contradiction(arg, scope)
    }
}

/// `a IS NULL OR a IS NOT NULL`, `p OR NOT p`.
fn complementary(left: &Node, right: &Node, scope: &Scope<'_>) -> bool {
    let pair = |a: &Node, b: &Node| match (kind(a), kind(b)) {
        (Some(NodeEnum::NullTest(x)), Some(NodeEnum::NullTest(y)))
            if x.nulltesttype == NullTestType::IsNull as i32
                && y.nulltesttype == NullTestType::IsNotNull as i32 =>
        {
            match (x.arg.as_deref(), y.arg.as_deref()) {
                (Some(x), Some(y)) => same(x, y, scope),
                _ => false,
            }
        }
        (_, Some(NodeEnum::BoolExpr(n))) if n.boolop == BoolExprType::NotExpr as i32 => {
            n.args.first().is_some_and(|q| same(a, q, scope))
        }
        _ => false,
    };
    pair(left, right) || pair(right, left)
}

/// Whether two operands are the same: written identically (locations aside), or column
/// references that resolve to the same column of a known relation (`t.x` and `x`).
fn same(a: &Node, b: &Node, scope: &Scope<'_>) -> bool {
    let is_column = |e: &Node| matches!(kind(e), Some(NodeEnum::ColumnRef(_)));
    if is_column(a) && is_column(b) {
        let (ra, rb) = (reference(a, scope), reference(b, scope));
        let known = |r: &Vec<super::ColumnName>| {
            r.len() == 1 && r.iter().all(|c| c.relation.is_some() && c.column != "*")
        };
        return (known(&ra) && ra == rb) || written_alike(a, b);
    }
    if is_column(a) || is_column(b) {
        return false;
    }
    written_alike(a, b)
}

/// Structural equality, ignoring where in the text each node stands.
fn written_alike(a: &Node, b: &Node) -> bool {
    if std::mem::discriminant(&a.node) != std::mem::discriminant(&b.node) {
        return false;
    }
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(mut x), Ok(mut y)) => {
            strip_locations(&mut x);
            strip_locations(&mut y);
            x == y
        }
        _ => false,
    }
}

fn strip_locations(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| k != "location" && !k.ends_with("_location"));
            map.values_mut().for_each(strip_locations);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_locations),
        _ => {}
    }
}

/// A LIKE pattern that is only `%`s matches every non-null string.
fn matches_everything(pattern: &Node) -> bool {
    matches!(constant(pattern), Some(Const::Str(s)) if !s.is_empty() && s.chars().all(|c| c == '%'))
}

/// `EXISTS (SELECT …)` without FROM, WHERE, GROUP BY, HAVING or LIMIT: always a row.
fn always_has_a_row(select: &SelectStmt, scope: &Scope<'_>) -> bool {
    select.op == SetOperation::SetopNone as i32
        && select.values_lists.is_empty()
        && select.with_clause.is_none()
        && select.limit_count.is_none()
        && select.limit_offset.is_none()
        && select.from_clause.is_empty()
        && select.having_clause.is_none()
        && select.group_clause.is_empty()
        && select
            .where_clause
            .as_deref()
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
fn constant(expr: &Node) -> Option<Const> {
    match kind(expr)? {
        NodeEnum::AConst(c) => {
            if c.isnull {
                return Some(Const::Null);
            }
            match c.val.as_ref()? {
                a_const::Val::Ival(i) => Some(Const::Num(Decimal {
                    mantissa: i128::from(i.ival),
                    scale: 0,
                })),
                a_const::Val::Fval(f) => Decimal::parse(&f.fval).map(Const::Num),
                a_const::Val::Boolval(b) => Some(Const::Bool(b.boolval)),
                a_const::Val::Sval(s) => Some(Const::Str(s.sval.clone())),
                a_const::Val::Bsval(_) => None,
            }
        }
        NodeEnum::BoolExpr(b) => {
            let mut values = b.args.iter().map(constant);
            match BoolExprType::try_from(b.boolop).ok()? {
                BoolExprType::NotExpr => not(values.next()??),
                BoolExprType::AndExpr => values.try_fold(Const::Bool(true), |acc, v| and(acc, v?)),
                BoolExprType::OrExpr => values.try_fold(Const::Bool(false), |acc, v| or(acc, v?)),
                BoolExprType::Undefined => None,
            }
        }
        NodeEnum::AExpr(e) => match AExprKind::try_from(e.kind).ok()? {
            AExprKind::AexprOp => {
                let op = operator(e)?;
                match (e.lexpr.as_deref(), e.rexpr.as_deref()) {
                    (None, Some(r)) => match (op, constant(r)?) {
                        (_, Const::Null) => Some(Const::Null),
                        ("-", Const::Num(n)) => Some(Const::Num(Decimal {
                            mantissa: n.mantissa.checked_neg()?,
                            scale: n.scale,
                        })),
                        ("+", Const::Num(n)) => Some(Const::Num(n)),
                        _ => None,
                    },
                    (Some(l), Some(r)) => binary(constant(l)?, op, constant(r)?),
                    _ => None,
                }
            }
            AExprKind::AexprDistinct => distinct(
                constant(e.lexpr.as_deref()?)?,
                constant(e.rexpr.as_deref()?)?,
            )
            .map(Const::Bool),
            AExprKind::AexprNotDistinct => distinct(
                constant(e.lexpr.as_deref()?)?,
                constant(e.rexpr.as_deref()?)?,
            )
            .map(|d| Const::Bool(!d)),
            AExprKind::AexprBetween | AExprKind::AexprNotBetween => {
                let value = constant(e.lexpr.as_deref()?)?;
                let [low, high] = list(e.rexpr.as_deref()) else {
                    return None;
                };
                let ge = binary(value.clone(), ">=", constant(low)?)?;
                let le = binary(value, "<=", constant(high)?)?;
                let both = and(ge, le)?;
                if e.kind == AExprKind::AexprNotBetween as i32 {
                    not(both)
                } else {
                    Some(both)
                }
            }
            AExprKind::AexprIn => {
                let value = constant(e.lexpr.as_deref()?)?;
                let mut result = Const::Bool(false);
                for item in list(e.rexpr.as_deref()) {
                    let equal = binary(value.clone(), "=", constant(item)?)?;
                    result = or(result, equal)?;
                }
                match operator(e)? {
                    "=" => Some(result),
                    "<>" => not(result),
                    _ => None,
                }
            }
            _ => None,
        },
        NodeEnum::TypeCast(c) => {
            let value = constant(c.arg.as_deref()?)?;
            let type_name = c.type_name.as_ref()?;
            let is_bool = type_name.array_bounds.is_empty()
                && matches!(
                    names::strings(&type_name.names).as_deref(),
                    Some([b]) | Some([_, b]) if b == "bool" || b == "boolean"
                );
            if !is_bool {
                return None;
            }
            match value {
                Const::Null => Some(Const::Null),
                Const::Num(n) => Some(Const::Bool(n.mantissa != 0)),
                other => truth(other).map(Const::Bool),
            }
        }
        NodeEnum::BooleanTest(t) => {
            let value = constant(t.arg.as_deref()?).and_then(truth);
            Some(Const::Bool(
                match BoolTestType::try_from(t.booltesttype).ok()? {
                    BoolTestType::IsTrue => value == Some(true),
                    BoolTestType::IsFalse => value == Some(false),
                    BoolTestType::IsNotTrue => value != Some(true),
                    BoolTestType::IsNotFalse => value != Some(false),
                    _ => return None,
                },
            ))
        }
        NodeEnum::NullTest(t) => {
            let value = constant(t.arg.as_deref()?)?;
            Some(Const::Bool(
                (value == Const::Null) == (t.nulltesttype == NullTestType::IsNull as i32),
            ))
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

fn binary(a: Const, op: &str, b: Const) -> Option<Const> {
    match op {
        "=" | "<>" | "<" | "<=" | ">" | ">=" => {
            if a == Const::Null || b == Const::Null {
                return Some(Const::Null);
            }
            let strings = matches!((&a, &b), (Const::Str(_), Const::Str(_)));
            let ordering = match compare(&a, &b) {
                Some(o) => o,
                // Unequal strings: known for = and <>, not for ordering.
                None if strings && matches!(op, "=" | "<>") => Ordering::Less,
                None => return None,
            };
            Some(Const::Bool(match op {
                "=" => ordering == Ordering::Equal,
                "<>" => ordering != Ordering::Equal,
                "<" => ordering == Ordering::Less,
                "<=" => ordering != Ordering::Greater,
                ">" => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            }))
        }
        "+" | "-" | "*" => match (a, b) {
            (Const::Null, _) | (_, Const::Null) => Some(Const::Null),
            (Const::Num(x), Const::Num(y)) => match op {
                "+" => x.add(y, false),
                "-" => x.add(y, true),
                _ => x.multiply(y),
            }
            .map(Const::Num),
            _ => None,
        },
        "||" => match (a, b) {
            (Const::Null, _) | (_, Const::Null) => Some(Const::Null),
            (Const::Str(x), Const::Str(y)) => Some(Const::Str(x + &y)),
            _ => None,
        },
        _ => None,
    }
}
