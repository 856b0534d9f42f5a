//! The planner's estimate of the rows a held `UPDATE`, `DELETE` or `MERGE` touches, for the
//! approvers to see (SPEC §2.3 `estimate`): from a plain `EXPLAIN` — never `ANALYZE`, which
//! would run the statement before anyone approved it.

use pg_query::NodeEnum;
use pg_query::protobuf::ParseResult;
use serde_json::Value;

use crate::analysis::with_tree;
use crate::dialect::SqlDialect;

/// The `EXPLAIN` that estimates `sql`, when it is exactly one `UPDATE`, `DELETE` or
/// `MERGE`: `EXPLAIN (FORMAT JSON) <sql>`, or with
/// `GENERIC_PLAN` for a statement with `$n` parameters (PostgreSQL 16 and later; `None`
/// before). `None` for anything else: an `EXPLAIN` of several statements would run all but
/// the first.
pub fn explain_statement(sql: &str, dialect: &SqlDialect, generic_plan: bool) -> Option<String> {
    let statement = with_tree(sql, dialect, |tree| Ok(single_write(tree, sql)))
        .ok()
        .flatten()?;
    // A `$` in a literal or a dollar quote counts too: the generic plan, where there is
    // one, estimates those as well, and where there is none only the estimate is lost.
    match (statement.contains('$'), generic_plan) {
        (false, _) => Some(format!("EXPLAIN (FORMAT JSON) {statement}")),
        (true, true) => Some(format!("EXPLAIN (FORMAT JSON, GENERIC_PLAN) {statement}")),
        (true, false) => None,
    }
}

/// The text of the one statement in `tree`, when it writes rows.
fn single_write(tree: &ParseResult, sql: &str) -> Option<String> {
    let [raw] = tree.stmts.as_slice() else {
        return None;
    };
    let node = raw.stmt.as_ref()?.node.as_ref()?;
    if !matches!(
        node,
        NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_) | NodeEnum::MergeStmt(_)
    ) {
        return None;
    }
    let start = usize::try_from(raw.stmt_location).ok()?;
    let text = match usize::try_from(raw.stmt_len).ok()? {
        0 => sql.get(start..)?,
        len => sql.get(start..start + len)?,
    };
    let text = text.trim().trim_end_matches(';').trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Rows touched, read from `EXPLAIN (FORMAT JSON)` output: the rows each data-modifying
/// node (`ModifyTable`) is fed by its input, summed. `None` when the plan has none or the
/// text is not such a plan.
pub fn rows_touched(explain_json: &str) -> Option<u64> {
    let plans: Value = serde_json::from_str(explain_json).ok()?;
    let plan = plans.get(0)?.get("Plan")?;
    let mut total = None;
    visit(plan, &mut total);
    total
}

fn visit(node: &Value, total: &mut Option<u64>) {
    if node["Node Type"] == "ModifyTable" {
        let fed = node["Plans"]
            .as_array()
            .and_then(|inputs| inputs.first())
            .and_then(|input| input["Plan Rows"].as_f64())
            .unwrap_or(0.0);
        // Estimates are whole rows; the planner's floats never go negative.
        *total = Some(total.unwrap_or(0) + fed.max(0.0).round() as u64);
    }
    if let Some(children) = node["Plans"].as_array() {
        for child in children {
            visit(child, total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explain(sql: &str) -> Option<String> {
        explain_statement(sql, &SqlDialect::default(), false)
    }

    #[test]
    fn only_one_writing_statement_is_explained() {
        assert_eq!(
            explain("DELETE FROM t WHERE id = 1;").as_deref(),
            Some("EXPLAIN (FORMAT JSON) DELETE FROM t WHERE id = 1")
        );
        assert!(explain("  UPDATE t SET a = 1 WHERE b > 2").is_some());
        assert!(explain("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE").is_some());
        assert!(explain("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d").is_none());
        for other in [
            "DELETE FROM t WHERE id = 1; DROP TABLE t",
            "SELECT 1",
            "EXPLAIN ANALYZE DELETE FROM t",
            "not sql",
        ] {
            assert_eq!(explain(other), None, "{other}");
        }
        // Parameters need a generic plan, which PostgreSQL 16 added.
        assert_eq!(explain("DELETE FROM t WHERE id = $1"), None);
        assert_eq!(
            explain_statement("DELETE FROM t WHERE id = $1", &SqlDialect::default(), true)
                .as_deref(),
            Some("EXPLAIN (FORMAT JSON, GENERIC_PLAN) DELETE FROM t WHERE id = $1")
        );
    }

    #[test]
    fn rows_are_what_feeds_the_modify_node() {
        // EXPLAIN (FORMAT JSON) DELETE FROM orders WHERE amount > 100, PostgreSQL 15.
        let plan = r#"[{"Plan": {"Node Type": "ModifyTable", "Operation": "Delete",
            "Plan Rows": 0, "Plans": [{"Node Type": "Seq Scan", "Plan Rows": 1840.0}]}}]"#;
        assert_eq!(rows_touched(plan), Some(1840));
        // A ModifyTable under a CTE scan.
        let nested = r#"[{"Plan": {"Node Type": "CTE Scan", "Plan Rows": 3, "Plans": [
            {"Node Type": "ModifyTable", "Plan Rows": 3, "Plans": [{"Node Type": "Index Scan", "Plan Rows": 2.6}]}]}}]"#;
        assert_eq!(rows_touched(nested), Some(3));
        assert_eq!(
            rows_touched(r#"[{"Plan": {"Node Type": "Result", "Plan Rows": 1}}]"#),
            None
        );
        assert_eq!(rows_touched("QUERY PLAN"), None);
    }
}
