//! Provenance for masking: what each result column is read or computed from, which
//! columns sit in predicates, and which values a statement copies out of the proxy's reach.

use super::*;

fn one(sql: &str) -> StatementInfo {
    let mut all = analyze(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(all.len(), 1, "{sql}");
    all.remove(0)
}

fn col(relation: Option<&str>, column: &str) -> ColumnName {
    ColumnName {
        relation: relation.map(|r| match r.split_once('.') {
            Some((s, n)) => RelationName {
                schema: Some(s.into()),
                name: n.into(),
            },
            None => RelationName {
                schema: None,
                name: r.into(),
            },
        }),
        column: column.into(),
    }
}

/// (computed, sources) of each output, sources as `relation.column` strings, sorted.
fn outputs(sql: &str) -> Vec<(bool, Vec<String>)> {
    one(sql)
        .outputs
        .iter()
        .map(|o| {
            let mut sources: Vec<String> = o
                .sources
                .iter()
                .map(|c| match &c.relation {
                    Some(r) => format!("{}.{}", r.name, c.column),
                    None => format!("?.{}", c.column),
                })
                .collect();
            sources.sort();
            sources.dedup();
            (o.computed, sources)
        })
        .collect()
}

fn s(items: &[&str]) -> Vec<String> {
    items.iter().map(|i| i.to_string()).collect()
}

#[test]
fn plain_and_computed_columns() {
    assert_eq!(
        outputs("SELECT email, lower(name) AS n, id::text FROM customers"),
        vec![
            (false, s(&["customers.email"])),
            (true, s(&["customers.name"])),
            (true, s(&["customers.id"])),
        ]
    );
    assert_eq!(
        outputs("SELECT count(*), max(ssn) FROM customers"),
        vec![(true, s(&[])), (true, s(&["customers.ssn"]))]
    );
}

#[test]
fn through_subqueries_ctes_and_aliases() {
    assert_eq!(
        outputs("SELECT x FROM (SELECT lower(email) AS x FROM customers) s"),
        vec![(true, s(&["customers.email"]))]
    );
    assert_eq!(
        outputs("WITH c AS (SELECT email AS e FROM customers) SELECT e FROM c"),
        vec![(false, s(&["customers.email"]))]
    );
    assert_eq!(
        outputs("WITH c AS (SELECT email || '' AS e FROM customers) SELECT * FROM c"),
        vec![(true, s(&["customers.email"]))]
    );
    assert_eq!(
        outputs("SELECT (SELECT email FROM customers LIMIT 1) AS e"),
        vec![(true, s(&["customers.email"]))]
    );
}

#[test]
fn whole_rows_and_json() {
    assert_eq!(
        outputs("SELECT c FROM customers c"),
        vec![(true, s(&["customers.*"]))]
    );
    assert_eq!(
        outputs("SELECT row_to_json(c) FROM customers c"),
        vec![(true, s(&["customers.*"]))]
    );
    assert_eq!(
        outputs("SELECT json_agg(c.*) FROM customers c"),
        vec![(true, s(&["customers.*"]))]
    );
    let star = one("SELECT * FROM customers");
    assert_eq!(star.outputs.len(), 1);
    assert!(star.outputs[0].star.is_some());
}

#[test]
fn set_operations_merge_by_position() {
    assert_eq!(
        outputs("SELECT email, id FROM customers UNION ALL SELECT name, id FROM staff"),
        vec![
            (true, s(&["customers.email", "staff.name"])),
            (true, s(&["customers.id", "staff.id"])),
        ]
    );
}

#[test]
fn window_and_case_expressions_are_computed() {
    assert_eq!(
        outputs(
            "SELECT row_number() OVER (ORDER BY ssn), CASE WHEN ssn LIKE '1%' THEN 1 END FROM customers"
        ),
        vec![(true, s(&["customers.ssn"])), (true, s(&["customers.ssn"]))]
    );
}

#[test]
fn predicates_are_reported_apart() {
    let info = one(
        "SELECT c.id FROM customers c JOIN orders o ON o.cust = c.id WHERE c.ssn LIKE '1%' GROUP BY c.id HAVING max(c.email) > 'a' ORDER BY c.phone",
    );
    for column in ["ssn", "email", "phone", "cust"] {
        assert!(
            info.predicate_columns.iter().any(|c| c.column == column),
            "{column}: {:?}",
            info.predicate_columns
        );
    }
    assert_eq!(info.outputs.len(), 1);
    assert!(!info.outputs[0].computed);
    let update = one("UPDATE customers SET plan = 'x' WHERE email = 'a@b'");
    assert!(
        update
            .predicate_columns
            .contains(&col(Some("customers"), "email"))
    );
    assert!(update.copied_columns.is_empty());
}

#[test]
fn copies_out_of_reach() {
    for sql in [
        "INSERT INTO t SELECT email FROM customers",
        "CREATE TABLE t AS SELECT email FROM customers",
        "SELECT email INTO t FROM customers",
        "UPDATE t SET a = (SELECT email FROM customers LIMIT 1)",
        "COPY (SELECT email FROM customers) TO '/tmp/x'",
        "COPY customers (email) TO PROGRAM 'cat'",
    ] {
        let info = one(sql);
        assert!(
            info.copied_columns
                .contains(&col(Some("customers"), "email")),
            "{sql}: {:?}",
            info.copied_columns
        );
    }
    let info = one("INSERT INTO t (a) VALUES (1)");
    assert!(info.copied_columns.is_empty());
}

#[test]
fn copy_to_stdout_is_reported() {
    let info = one("COPY customers TO STDOUT");
    assert_eq!(
        info.copy_out,
        Some(CopyOut {
            columns: vec![col(Some("customers"), "*")],
            from_query: false
        })
    );
    let info = one("COPY (SELECT email FROM customers) TO STDOUT WITH (FORMAT csv)");
    assert!(info.copy_out.as_ref().is_some_and(|c| c.from_query));
    assert!(info.copied_columns.is_empty());
}

#[test]
fn cursors_and_prepared_statements() {
    let info = one("DECLARE c CURSOR FOR SELECT lower(email) FROM customers");
    assert_eq!(info.defines, Some(Named::Cursor("c".into())));
    assert_eq!(info.outputs.len(), 1);
    assert!(info.outputs[0].computed);
    assert_eq!(one("FETCH 10 FROM c").uses, Some(Named::Cursor("c".into())));
    let info = one("PREPARE p AS SELECT upper(email) FROM customers");
    assert_eq!(info.defines, Some(Named::Prepared("p".into())));
    assert!(info.outputs[0].computed);
    assert_eq!(one("EXECUTE p").uses, Some(Named::Prepared("p".into())));
}

#[test]
fn returning_is_an_output() {
    assert_eq!(
        outputs("UPDATE customers SET plan = 'x' WHERE id = 1 RETURNING email"),
        vec![(false, s(&["customers.email"]))]
    );
}
