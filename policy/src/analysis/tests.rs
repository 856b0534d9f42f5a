//! Table-driven tests of the SQL analysis: statements and what each must be found to do.

use super::*;
use crate::model::Operation as Op;

/// What one statement must be found to do; `None` fields are not checked.
#[derive(Clone, Default)]
struct Expect {
    ops: Vec<Op>,
    read: Option<Vec<&'static str>>,
    written: Option<Vec<&'static str>>,
    /// `relation:column`, `?:column` when the relation is unknown.
    columns: Option<Vec<&'static str>>,
    functions: Option<Vec<&'static str>>,
    without_where: Option<bool>,
    search_path: Option<Option<SearchPathChange>>,
}

fn ops(ops: &[Op]) -> Expect {
    Expect {
        ops: ops.to_vec(),
        ..Expect::default()
    }
}

impl Expect {
    fn read(mut self, read: &[&'static str]) -> Self {
        self.read = Some(read.to_vec());
        self
    }
    fn written(mut self, written: &[&'static str]) -> Self {
        self.written = Some(written.to_vec());
        self
    }
    fn columns(mut self, columns: &[&'static str]) -> Self {
        self.columns = Some(columns.to_vec());
        self
    }
    fn functions(mut self, functions: &[&'static str]) -> Self {
        self.functions = Some(functions.to_vec());
        self
    }
    fn ww(mut self, without_where: bool) -> Self {
        self.without_where = Some(without_where);
        self
    }
    fn path(mut self, change: Option<SearchPathChange>) -> Self {
        self.search_path = Some(change);
        self
    }
}

fn set_path(schemas: &[&str], local: bool) -> Option<SearchPathChange> {
    Some(SearchPathChange::Set {
        schemas: schemas.iter().map(|s| s.to_string()).collect(),
        local,
    })
}

fn relation(r: &RelationName) -> String {
    match &r.schema {
        Some(schema) => format!("{schema}.{}", r.name),
        None => r.name.clone(),
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn owned(v: &[&str]) -> Vec<String> {
    sorted(v.iter().map(|s| s.to_string()).collect())
}

/// Mismatches between `info` and `expect`, described.
fn compare(sql: &str, index: usize, info: &StatementInfo, expect: &Expect) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |what: &str, got: Vec<String>, want: Vec<String>| {
        if got != want {
            problems.push(format!(
                "{sql:?} #{index}: {what}: got {got:?}, want {want:?}"
            ));
        }
    };
    let mut want_ops = expect.ops.clone();
    want_ops.sort();
    check(
        "operations",
        info.operations.iter().map(|o| format!("{o:?}")).collect(),
        want_ops.iter().map(|o| format!("{o:?}")).collect(),
    );
    if let Some(read) = &expect.read {
        check(
            "read",
            sorted(info.read.iter().map(relation).collect()),
            owned(read),
        );
    }
    if let Some(written) = &expect.written {
        check(
            "written",
            sorted(info.written.iter().map(relation).collect()),
            owned(written),
        );
    }
    if let Some(columns) = &expect.columns {
        let got = info
            .columns
            .iter()
            .map(|c| match &c.relation {
                Some(r) => format!("{}:{}", relation(r), c.column),
                None => format!("?:{}", c.column),
            })
            .collect();
        check("columns", sorted(got), owned(columns));
    }
    if let Some(functions) = &expect.functions {
        check(
            "functions",
            sorted(info.functions.iter().cloned().collect()),
            owned(functions),
        );
    }
    if let Some(ww) = expect.without_where {
        check(
            "without_where",
            vec![info.without_where.to_string()],
            vec![ww.to_string()],
        );
    }
    if let Some(path) = &expect.search_path {
        check(
            "search_path",
            vec![format!("{:?}", info.search_path)],
            vec![format!("{path:?}")],
        );
    }
    problems
}

/// Runs every case; fails listing every mismatch. Returns the number of statements.
fn run(cases: &[(&str, Vec<Expect>)]) -> usize {
    let mut problems = Vec::new();
    let mut statements = 0;
    for (sql, expected) in cases {
        statements += expected.len();
        match analyze(sql) {
            Ok(infos) if infos.len() == expected.len() => {
                for (i, (info, expect)) in infos.iter().zip(expected).enumerate() {
                    problems.extend(compare(sql, i, info, expect));
                }
            }
            Ok(infos) => problems.push(format!(
                "{sql:?}: {} statements, want {}: {infos:?}",
                infos.len(),
                expected.len()
            )),
            Err(e) => problems.push(format!("{sql:?}: failed: {}", e.message)),
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    statements
}

fn one(sql: &'static str, expect: Expect) -> (&'static str, Vec<Expect>) {
    (sql, vec![expect])
}

fn queries() -> Vec<(&'static str, Vec<Expect>)> {
    vec![
        one(
            "SELECT 1",
            ops(&[Op::Select]).read(&[]).written(&[]).columns(&[]),
        ),
        one(
            "select a, b from t where c = 1",
            ops(&[Op::Select])
                .read(&["t"])
                .written(&[])
                .columns(&["t:a", "t:b", "t:c"]),
        ),
        one(
            "SELECT * FROM customers",
            ops(&[Op::Select])
                .read(&["customers"])
                .columns(&["customers:*"]),
        ),
        one(
            "SELECT c FROM customers c",
            ops(&[Op::Select]).columns(&["customers:*"]),
        ),
        one(
            "SELECT row_to_json(c) FROM customers c",
            ops(&[Op::Select])
                .columns(&["customers:*"])
                .functions(&["row_to_json"]),
        ),
        one(
            "SELECT c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = $1",
            ops(&[Op::Select]).read(&["customers", "orders"]).columns(&[
                "customers:id",
                "customers:name",
                "orders:customer_id",
                "orders:total",
            ]),
        ),
        one(
            "SELECT name FROM customers JOIN orders USING (id)",
            ops(&[Op::Select])
                .read(&["customers", "orders"])
                .columns(&["?:id", "?:name"]),
        ),
        one(
            "SELECT t.* FROM public.t",
            ops(&[Op::Select])
                .read(&["public.t"])
                .columns(&["public.t:*"]),
        ),
        one(
            "SELECT public.t.a FROM public.t",
            ops(&[Op::Select]).columns(&["public.t:a"]),
        ),
        one("SELECT * FROM ONLY t", ops(&[Op::Select]).read(&["t"])),
        one("SELECT * FROM t *", ops(&[Op::Select]).read(&["t"])),
        one("SELECT * FROM db.s.t", ops(&[Op::Select]).read(&["s.t"])),
        one(
            "SELECT \"Customers\".* FROM \"Customers\"",
            ops(&[Op::Select])
                .read(&["Customers"])
                .columns(&["Customers:*"]),
        ),
        one("VALUES (1, 2), (3, 4)", ops(&[Op::Select]).read(&[])),
        one("TABLE t", ops(&[Op::Select]).read(&["t"]).columns(&["t:*"])),
        one("table S.T", ops(&[Op::Select]).read(&["s.t"])),
        one(
            "SELECT 1 UNION SELECT a FROM t EXCEPT SELECT b FROM u INTERSECT TABLE v",
            ops(&[Op::Select]).read(&["t", "u", "v"]),
        ),
        one(
            "WITH x AS (SELECT a FROM t) SELECT a FROM x",
            ops(&[Op::Select]).read(&["t"]).columns(&["t:a"]),
        ),
        one(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT n FROM r",
            ops(&[Op::Select]).read(&[]),
        ),
        // A CTE hides a table only inside the query that defines it.
        one(
            "SELECT * FROM (WITH customers AS (SELECT 1 AS a) SELECT a FROM customers) s JOIN customers c ON true",
            ops(&[Op::Select])
                .read(&["customers"])
                .columns(&["customers:*"]),
        ),
        one(
            "SELECT x FROM (SELECT a AS x FROM t) s",
            ops(&[Op::Select]).read(&["t"]).columns(&["t:a"]),
        ),
        one(
            "SELECT * FROM (SELECT name FROM customers) s",
            ops(&[Op::Select]).columns(&["customers:name"]),
        ),
        one(
            "SELECT s.ssn FROM (SELECT * FROM customers) s",
            ops(&[Op::Select]).columns(&["customers:*", "customers:ssn"]),
        ),
        // Column aliases hide which column is read.
        one(
            "SELECT x FROM customers AS c(x)",
            ops(&[Op::Select]).columns(&["customers:*"]),
        ),
        one(
            "SELECT * FROM t WHERE id IN (SELECT t_id FROM u WHERE u.ok)",
            ops(&[Op::Select])
                .read(&["t", "u"])
                .columns(&["t:*", "t:id", "u:ok", "u:t_id", "?:t_id"]),
        ),
        one(
            "SELECT EXISTS (SELECT 1 FROM secret)",
            ops(&[Op::Select]).read(&["secret"]),
        ),
        one(
            "SELECT (SELECT max(a) FROM t)",
            ops(&[Op::Select])
                .read(&["t"])
                .functions(&["max"])
                .columns(&["t:a"]),
        ),
        one(
            "SELECT a AS x FROM t ORDER BY x DESC LIMIT 10 OFFSET 5",
            ops(&[Op::Select]).columns(&["t:a"]),
        ),
        // ORDER BY may name an output column: `ssn` here is `name`.
        one(
            "SELECT name AS ssn FROM customers ORDER BY ssn",
            ops(&[Op::Select]).columns(&["customers:name"]),
        ),
        one(
            "SELECT count(*) FROM t",
            ops(&[Op::Select])
                .read(&["t"])
                .columns(&[])
                .functions(&["count"]),
        ),
        one(
            "SELECT * FROM t FOR UPDATE SKIP LOCKED",
            ops(&[Op::Select]).read(&["t"]),
        ),
        one(
            "SELECT n FROM (VALUES (1), (2)) AS v(n)",
            ops(&[Op::Select]).read(&[]).columns(&[]),
        ),
        one(
            "SELECT \"users\".\"id\", \"users\".\"email\", \"users\".\"created_at\" FROM \"users\" \
             INNER JOIN \"orgs\" ON \"orgs\".\"id\" = \"users\".\"org_id\" \
             WHERE \"users\".\"deleted_at\" IS NULL AND \"orgs\".\"slug\" = $1 \
             ORDER BY \"users\".\"created_at\" DESC LIMIT $2",
            ops(&[Op::Select]).read(&["orgs", "users"]).columns(&[
                "orgs:id",
                "orgs:slug",
                "users:created_at",
                "users:deleted_at",
                "users:email",
                "users:id",
                "users:org_id",
            ]),
        ),
        one(
            "SELECT * FROM generate_series(1, 10) g",
            ops(&[Op::Select])
                .read(&[])
                .columns(&[])
                .functions(&["generate_series"]),
        ),
        one(
            "SELECT * FROM pg_catalog.generate_series(1, 3) WITH ORDINALITY",
            ops(&[Op::Select])
                .read(&[])
                .functions(&["pg_catalog.generate_series"]),
        ),
        one(
            "SELECT * FROM t, LATERAL unnest(t.tags) AS tag",
            ops(&[Op::Select])
                .read(&["t"])
                .columns(&["t:*", "t:tags"])
                .functions(&["unnest"]),
        ),
        one(
            "SELECT DISTINCT ON (a) a, b FROM t GROUP BY a, b HAVING count(*) > 1 WINDOW w AS (PARTITION BY c)",
            ops(&[Op::Select]).columns(&["t:a", "t:b", "t:c"]),
        ),
        one(
            "SELECT SUBSTRING(name FROM 1 FOR 2), \"MyFunc\"(1), now() FROM t",
            // A quoted name keeps its case, as the server resolves it.
            ops(&[Op::Select]).functions(&["MyFunc", "now", "substring"]),
        ),
        one(
            "SELECT * FROM t WHERE a = ANY (ARRAY(SELECT b FROM u))",
            ops(&[Op::Select]).read(&["t", "u"]).functions(&[]),
        ),
        one(
            "SELECT (address).city FROM customers",
            ops(&[Op::Select]).columns(&["customers:address"]),
        ),
    ]
}

fn dml() -> Vec<(&'static str, Vec<Expect>)> {
    vec![
        one(
            "INSERT INTO t (a, b) VALUES (1, 2)",
            ops(&[Op::Insert])
                .read(&[])
                .written(&["t"])
                .columns(&["t:a", "t:b"]),
        ),
        one(
            "INSERT INTO t VALUES (DEFAULT, now())",
            ops(&[Op::Insert])
                .written(&["t"])
                .columns(&["t:*"])
                .functions(&["now"]),
        ),
        one(
            "INSERT INTO t SELECT * FROM s",
            ops(&[Op::Insert, Op::Select]).read(&["s"]).written(&["t"]),
        ),
        one(
            "INSERT INTO t DEFAULT VALUES",
            ops(&[Op::Insert]).written(&["t"]),
        ),
        one(
            "INSERT INTO s.t AS x (a) VALUES (1) RETURNING x.a, id",
            ops(&[Op::Insert])
                .written(&["s.t"])
                .columns(&["s.t:a", "s.t:id"]),
        ),
        one(
            "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO NOTHING",
            ops(&[Op::Insert]).written(&["t"]),
        ),
        one(
            "INSERT INTO t (a, b) VALUES (1, 2) ON CONFLICT (a) DO UPDATE SET b = excluded.b",
            ops(&[Op::Insert, Op::Update])
                .written(&["t"])
                .columns(&["t:a", "t:b"])
                .ww(false),
        ),
        one(
            "INSERT INTO t VALUES (nextval('s'), lower($1))",
            ops(&[Op::Insert]).functions(&["lower", "nextval"]),
        ),
        one(
            "WITH s AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM s",
            ops(&[Op::Insert, Op::Select]).read(&[]).written(&["t"]),
        ),
        one(
            "UPDATE t SET a = 1 WHERE id = 3",
            ops(&[Op::Update])
                .read(&[])
                .written(&["t"])
                .columns(&["t:a", "t:id"])
                .ww(false),
        ),
        one(
            "UPDATE t SET a = 1",
            ops(&[Op::Update]).written(&["t"]).ww(true),
        ),
        one(
            "UPDATE ONLY t SET a = 1 WHERE 1 = 1",
            ops(&[Op::Update]).ww(true),
        ),
        one(
            "UPDATE t SET a = s.b FROM s WHERE t.id = s.id",
            ops(&[Op::Update]).read(&["s"]).written(&["t"]).ww(false),
        ),
        one(
            "UPDATE t SET (a, b) = (1, 2) WHERE id IN (SELECT id FROM u)",
            ops(&[Op::Update, Op::Select])
                .read(&["u"])
                .written(&["t"])
                .ww(false),
        ),
        one(
            "UPDATE t SET a = lower(b) WHERE id = 1 RETURNING *",
            ops(&[Op::Update])
                .functions(&["lower"])
                .columns(&["t:*", "t:a", "t:b", "t:id"]),
        ),
        one(
            "UPDATE t SET a = 1 WHERE CURRENT OF c",
            ops(&[Op::Update]).ww(false),
        ),
        one(
            "DELETE FROM t",
            ops(&[Op::Delete]).read(&[]).written(&["t"]).ww(true),
        ),
        one("DELETE FROM t WHERE id = 1", ops(&[Op::Delete]).ww(false)),
        one(
            "DELETE FROM t USING s WHERE t.id = s.id",
            ops(&[Op::Delete]).read(&["s"]).written(&["t"]).ww(false),
        ),
        one(
            "DELETE FROM t WHERE CURRENT OF cur",
            ops(&[Op::Delete]).ww(false),
        ),
        one(
            "DELETE FROM ONLY s.t RETURNING *",
            ops(&[Op::Delete])
                .written(&["s.t"])
                .columns(&["s.t:*"])
                .ww(true),
        ),
        one(
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a \
             WHEN NOT MATCHED THEN INSERT (id, a) VALUES (s.id, s.a)",
            ops(&[Op::Merge, Op::Update, Op::Insert])
                .read(&["s"])
                .written(&["t"])
                .columns(&["s:a", "s:id", "t:a", "t:id"])
                .ww(false),
        ),
        one(
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.gone THEN DELETE",
            ops(&[Op::Merge, Op::Delete]).ww(false),
        ),
        one(
            "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
            ops(&[Op::Merge, Op::Delete]).ww(true),
        ),
        one(
            "COPY t TO STDOUT",
            ops(&[Op::Copy]).read(&["t"]).written(&[]).columns(&["t:*"]),
        ),
        one(
            "COPY t (a, b) FROM STDIN WITH (FORMAT csv)",
            ops(&[Op::Copy])
                .read(&[])
                .written(&["t"])
                .columns(&["t:a", "t:b"]),
        ),
        one(
            "COPY (SELECT a FROM t WHERE b) TO STDOUT",
            ops(&[Op::Copy, Op::Select]).read(&["t"]).written(&[]),
        ),
        one(
            // pgbench -i; `on`/`off` are PostgreSQL's boolean spellings in option lists.
            "copy pgbench_accounts from stdin with (freeze on)",
            ops(&[Op::Copy]).written(&["pgbench_accounts"]),
        ),
        one(
            "COPY (SELECT a FROM t JOIN u ON t.id = u.id) TO STDOUT (FORMAT csv, HEADER off)",
            ops(&[Op::Copy, Op::Select]).read(&["t", "u"]),
        ),
        one(
            "COPY t FROM '/tmp/data.csv'",
            ops(&[Op::Copy]).written(&["t"]),
        ),
        one(
            "COPY s.t TO PROGRAM 'gzip > /tmp/x'",
            ops(&[Op::Copy]).read(&["s.t"]),
        ),
        one(
            "COPY (DELETE FROM t RETURNING *) TO STDOUT",
            ops(&[Op::Copy, Op::Delete]).written(&["t"]).ww(true),
        ),
    ]
}

fn ctes_and_prepared() -> Vec<(&'static str, Vec<Expect>)> {
    vec![
        one(
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            ops(&[Op::Select, Op::Delete])
                .read(&[])
                .written(&["t"])
                .columns(&["t:*"])
                .ww(true),
        ),
        one(
            "WITH x AS (UPDATE t SET a = 1 RETURNING id) SELECT 1",
            ops(&[Op::Select, Op::Update]).written(&["t"]).ww(true),
        ),
        one(
            "SELECT * FROM (WITH d AS (DELETE FROM t WHERE id = 1 RETURNING id) SELECT * FROM d) s",
            ops(&[Op::Select, Op::Delete])
                .written(&["t"])
                .columns(&["t:id"])
                .ww(false),
        ),
        one(
            "WITH a AS (INSERT INTO t VALUES (1) RETURNING *) INSERT INTO u SELECT * FROM a",
            ops(&[Op::Insert, Op::Select])
                .read(&[])
                .written(&["t", "u"]),
        ),
        one(
            "with moved as (delete from queue where id = 7 returning *) insert into archive select * from moved",
            ops(&[Op::Insert, Op::Delete, Op::Select])
                .written(&["archive", "queue"])
                .ww(false),
        ),
        one(
            "PREPARE p(int) AS DELETE FROM t WHERE id = $1",
            ops(&[Op::Prepare, Op::Delete])
                .written(&["t"])
                .columns(&["t:id"])
                .ww(false),
        ),
        one(
            "PREPARE q AS SELECT * FROM secret",
            ops(&[Op::Prepare, Op::Select]).read(&["secret"]),
        ),
        one(
            "PREPARE wipe AS DELETE FROM t",
            ops(&[Op::Prepare, Op::Delete]).ww(true),
        ),
        one("EXECUTE p(1)", ops(&[Op::Execute]).read(&[]).written(&[])),
        one("EXECUTE wipe", ops(&[Op::Execute])),
        one("DEALLOCATE p", ops(&[Op::Other])),
        one("DEALLOCATE ALL", ops(&[Op::Other])),
        one(
            "EXPLAIN SELECT * FROM t",
            ops(&[Op::Explain, Op::Select]).read(&["t"]),
        ),
        one(
            "EXPLAIN ANALYZE DELETE FROM t",
            ops(&[Op::Explain, Op::Delete]).written(&["t"]).ww(true),
        ),
        one(
            "EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1 WHERE id = 2",
            ops(&[Op::Explain, Op::Update]).written(&["t"]).ww(false),
        ),
        one(
            "DECLARE c CURSOR WITH HOLD FOR SELECT a FROM t",
            ops(&[Op::Other, Op::Select]).read(&["t"]).columns(&["t:a"]),
        ),
        one("FETCH NEXT FROM c", ops(&[Op::Other])),
        one("FETCH ALL IN c", ops(&[Op::Other])),
        one("MOVE FORWARD 5 IN c", ops(&[Op::Other])),
        one("CLOSE c", ops(&[Op::Other])),
        one("CLOSE ALL", ops(&[Op::Other])),
    ]
}

fn ddl() -> Vec<(&'static str, Vec<Expect>)> {
    vec![
        one(
            "CREATE TABLE t (a int, b text)",
            ops(&[Op::Create]).read(&[]).written(&["t"]),
        ),
        one(
            "CREATE TEMP TABLE x (a int) ON COMMIT DROP",
            ops(&[Op::Create]).written(&["x"]),
        ),
        one(
            "CREATE TABLE t2 AS SELECT * FROM t",
            ops(&[Op::Create, Op::Select]).read(&["t"]).written(&["t2"]),
        ),
        one(
            "SELECT * INTO newt FROM t",
            ops(&[Op::Create, Op::Select])
                .read(&["t"])
                .written(&["newt"]),
        ),
        one(
            "CREATE TABLE o (id int PRIMARY KEY, c_id int REFERENCES customers (id), \
             FOREIGN KEY (id) REFERENCES s.other (id))",
            ops(&[Op::Create])
                .read(&["customers", "s.other"])
                .written(&["o"]),
        ),
        one(
            "CREATE TABLE t (LIKE s)",
            ops(&[Op::Create]).read(&["s"]).written(&["t"]),
        ),
        one(
            "CREATE TABLE p2 PARTITION OF t FOR VALUES IN (1)",
            ops(&[Op::Create]).written(&["p2", "t"]),
        ),
        one(
            "CREATE VIEW v AS SELECT a FROM t",
            ops(&[Op::Create, Op::Select]).read(&["t"]).written(&["v"]),
        ),
        one(
            "CREATE MATERIALIZED VIEW mv AS SELECT * FROM t",
            ops(&[Op::Create, Op::Select]).read(&["t"]).written(&["mv"]),
        ),
        one(
            "CREATE INDEX i ON s.t (a)",
            ops(&[Op::Create]).written(&["s.i", "s.t"]),
        ),
        one(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t USING btree (a)",
            ops(&[Op::Create]).written(&["i", "t"]),
        ),
        one("CREATE SCHEMA s", ops(&[Op::Create]).written(&[])),
        one(
            "CREATE SCHEMA IF NOT EXISTS s AUTHORIZATION bob",
            ops(&[Op::Create]),
        ),
        one(
            "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql",
            ops(&[Op::Create]).written(&[]),
        ),
        one(
            "CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE plpgsql AS $f$ BEGIN RETURN a; END $f$",
            ops(&[Op::Create]),
        ),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT 3",
            vec![ops(&[Op::Create, Op::Select]), ops(&[Op::Select])],
        ),
        one("CREATE ROLE r LOGIN PASSWORD 'x'", ops(&[Op::Create])),
        one("CREATE USER u", ops(&[Op::Create])),
        one(
            "CREATE EXTENSION IF NOT EXISTS pgcrypto",
            ops(&[Op::Create]),
        ),
        one("CREATE SEQUENCE s", ops(&[Op::Create]).written(&["s"])),
        one(
            "CREATE TYPE mood AS ENUM ('a', 'b')",
            ops(&[Op::Create]).written(&[]),
        ),
        one(
            "CREATE DOMAIN d AS int CHECK (VALUE > 0)",
            ops(&[Op::Create]),
        ),
        one(
            "CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
            ops(&[Op::Create]).written(&["t"]),
        ),
        one("CREATE DATABASE db", ops(&[Op::Create])),
        one(
            "CREATE POLICY p ON t USING (owner = current_user)",
            ops(&[Op::Create]).written(&["t"]),
        ),
        one(
            "CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING",
            ops(&[Op::Create]).written(&["t"]),
        ),
        one(
            "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw",
            ops(&[Op::Create]),
        ),
        one(
            "CREATE FOREIGN TABLE ft (a int) SERVER s",
            ops(&[Op::Create]).written(&["ft"]),
        ),
        one(
            "ALTER TABLE t ADD COLUMN c int",
            ops(&[Op::Alter]).written(&["t"]),
        ),
        one(
            "ALTER TABLE s.t RENAME TO u",
            ops(&[Op::Alter]).written(&["s.t", "s.u"]),
        ),
        one(
            "ALTER TABLE IF EXISTS ONLY t RENAME COLUMN a TO b",
            ops(&[Op::Alter]).written(&["t"]),
        ),
        one(
            "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id)",
            ops(&[Op::Alter]).read(&["u"]).written(&["t"]),
        ),
        one(
            "ALTER TABLE t ATTACH PARTITION p FOR VALUES FROM (1) TO (10)",
            ops(&[Op::Alter]).written(&["p", "t"]),
        ),
        one(
            "ALTER INDEX i RENAME TO j",
            ops(&[Op::Alter]).written(&["i", "j"]),
        ),
        one(
            "ALTER VIEW v RENAME TO w",
            ops(&[Op::Alter]).written(&["v", "w"]),
        ),
        one(
            "ALTER MATERIALIZED VIEW mv RENAME TO x",
            ops(&[Op::Alter]).written(&["mv", "x"]),
        ),
        one("ALTER SCHEMA s RENAME TO x", ops(&[Op::Alter])),
        one("ALTER FUNCTION f(int) OWNER TO bob", ops(&[Op::Alter])),
        one("ALTER ROLE r WITH SUPERUSER", ops(&[Op::Alter])),
        one("ALTER USER u WITH PASSWORD 'x'", ops(&[Op::Alter])),
        one("ALTER TYPE mood ADD VALUE 'c'", ops(&[Op::Alter])),
        one(
            "ALTER TRIGGER trg ON t RENAME TO x",
            ops(&[Op::Alter]).written(&["t"]),
        ),
        one(
            "ALTER POLICY p ON t RENAME TO x",
            ops(&[Op::Alter]).written(&["t"]),
        ),
        one(
            "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob",
            ops(&[Op::Alter, Op::Grant]),
        ),
        one(
            "DROP TABLE t, s.u CASCADE",
            ops(&[Op::Drop]).written(&["s.u", "t"]),
        ),
        one("DROP TABLE IF EXISTS a", ops(&[Op::Drop]).written(&["a"])),
        one("DROP FUNCTION f(int)", ops(&[Op::Drop]).written(&[])),
        one("DROP PROCEDURE p", ops(&[Op::Drop])),
        one("DROP EXTENSION e", ops(&[Op::Drop])),
        one("DROP VIEW v", ops(&[Op::Drop]).written(&["v"])),
        one(
            "DROP MATERIALIZED VIEW mv",
            ops(&[Op::Drop]).written(&["mv"]),
        ),
        one("DROP INDEX i", ops(&[Op::Drop]).written(&["i"])),
        one("DROP SEQUENCE s", ops(&[Op::Drop]).written(&["s"])),
        one(
            "DROP SCHEMA IF EXISTS s CASCADE",
            ops(&[Op::Drop]).written(&[]),
        ),
        one("DROP ROLE r", ops(&[Op::Drop])),
        one("DROP USER u", ops(&[Op::Drop])),
        one("DROP DATABASE db", ops(&[Op::Drop])),
        one("DROP TYPE mood", ops(&[Op::Drop])),
        one("DROP DOMAIN d", ops(&[Op::Drop])),
        one("DROP TRIGGER trg ON t", ops(&[Op::Drop]).written(&["t"])),
        one("DROP POLICY p ON t", ops(&[Op::Drop]).written(&["t"])),
        one("DROP RULE r ON t", ops(&[Op::Drop]).written(&["t"])),
        one("TRUNCATE t", ops(&[Op::Truncate]).written(&["t"])),
        one(
            "TRUNCATE TABLE ONLY t, s.u RESTART IDENTITY CASCADE",
            ops(&[Op::Truncate]).written(&["s.u", "t"]),
        ),
        one(
            "GRANT SELECT ON t TO bob",
            ops(&[Op::Grant]).written(&["t"]),
        ),
        one(
            "GRANT SELECT, INSERT ON TABLE t, s.u TO bob",
            ops(&[Op::Grant]).written(&["s.u", "t"]),
        ),
        one(
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO bob",
            ops(&[Op::Grant]),
        ),
        one("GRANT admin TO bob", ops(&[Op::Grant])),
        one("GRANT EXECUTE ON FUNCTION f(int) TO bob", ops(&[Op::Grant])),
        one(
            "REVOKE SELECT ON t FROM bob",
            ops(&[Op::Revoke]).written(&["t"]),
        ),
        one("REVOKE admin FROM bob", ops(&[Op::Revoke])),
        one(
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM bob",
            ops(&[Op::Revoke]),
        ),
        one(
            "COMMENT ON TABLE t IS 'x'",
            ops(&[Op::Other]).written(&["t"]),
        ),
        one(
            "COMMENT ON COLUMN s.t.a IS 'x'",
            ops(&[Op::Other]).written(&["s.t"]).columns(&["s.t:a"]),
        ),
        one(
            "REFRESH MATERIALIZED VIEW mv",
            ops(&[Op::Other]).written(&["mv"]),
        ),
        one(
            "REFRESH MATERIALIZED VIEW CONCURRENTLY s.mv WITH NO DATA",
            ops(&[Op::Other]).written(&["s.mv"]),
        ),
    ]
}

fn session() -> Vec<(&'static str, Vec<Expect>)> {
    let unknown = Some(SearchPathChange::Unknown);
    let reset = Some(SearchPathChange::Reset);
    vec![
        one(
            "SET search_path TO a, \"B\", '$user'",
            ops(&[Op::Set]).path(set_path(&["a", "B", "$user"], false)),
        ),
        one(
            "SET search_path TO \"$user\", public",
            ops(&[Op::Set]).path(set_path(&["$user", "public"], false)),
        ),
        one(
            "SET SESSION search_path = x",
            ops(&[Op::Set]).path(set_path(&["x"], false)),
        ),
        one(
            "SET LOCAL search_path TO y",
            ops(&[Op::Set]).path(set_path(&["y"], true)),
        ),
        one(
            "SET \"SEARCH_PATH\" = X",
            ops(&[Op::Set]).path(set_path(&["x"], false)),
        ),
        one(
            "SET search_path = 'MySchema'",
            ops(&[Op::Set]).path(set_path(&["MySchema"], false)),
        ),
        one(
            "SET search_path TO DEFAULT",
            ops(&[Op::Set]).path(reset.clone()),
        ),
        one(
            "set search_path = default",
            ops(&[Op::Set]).path(reset.clone()),
        ),
        one("RESET search_path", ops(&[Op::Set]).path(reset.clone())),
        one("RESET ALL", ops(&[Op::Set]).path(reset.clone())),
        one("DISCARD ALL", ops(&[Op::Other]).path(reset.clone())),
        one("DISCARD PLANS", ops(&[Op::Other]).path(None)),
        one(
            "SET SCHEMA 'x'",
            ops(&[Op::Set]).path(set_path(&["x"], false)),
        ),
        one(
            "SET LOCAL SCHEMA 'Y'",
            ops(&[Op::Set]).path(set_path(&["Y"], true)),
        ),
        one("SET statement_timeout = 0", ops(&[Op::Set]).path(None)),
        one(
            "SET LOCAL statement_timeout TO '5s'",
            ops(&[Op::Set]).path(None),
        ),
        one("SET TIME ZONE 'UTC'", ops(&[Op::Set]).path(None)),
        one("SET ROLE admin", ops(&[Op::Set]).path(unknown.clone())),
        one(
            "SET SESSION AUTHORIZATION bob",
            ops(&[Op::Set]).path(unknown.clone()),
        ),
        one("RESET ROLE", ops(&[Op::Set]).path(unknown.clone())),
        one(
            "SELECT set_config('search_path', 'evil', false)",
            ops(&[Op::Select])
                .functions(&["set_config"])
                .path(unknown.clone()),
        ),
        one(
            "SELECT pg_catalog.set_config('search_path', 'x', false)",
            ops(&[Op::Select])
                .functions(&["pg_catalog.set_config"])
                .path(unknown.clone()),
        ),
        one(
            "WITH x AS (SELECT set_config('search_path', 'x', true)) SELECT * FROM x",
            ops(&[Op::Select]).path(unknown.clone()),
        ),
        one(
            "CALL p(1, 'a')",
            ops(&[Op::Call]).functions(&["p"]).path(unknown.clone()),
        ),
        one(
            "CALL s.proc()",
            ops(&[Op::Call])
                .functions(&["s.proc"])
                .path(unknown.clone()),
        ),
        one(
            "DO $$ BEGIN PERFORM 1; END $$",
            ops(&[Op::Do]).path(unknown.clone()),
        ),
        one(
            "DO $tag$ BEGIN DELETE FROM t; END $tag$",
            // The block's statements are read with PL/pgSQL's parser and count.
            ops(&[Op::Do, Op::Delete])
                .written(&["t"])
                .ww(true)
                .path(unknown.clone()),
        ),
        one(
            "DO LANGUAGE plpgsql $$ BEGIN EXECUTE 'SET search_path = x'; END $$",
            ops(&[Op::Do]).path(unknown.clone()),
        ),
        one(
            "do 'BEGIN NULL; END' language plpgsql",
            ops(&[Op::Do]).path(unknown.clone()),
        ),
        one("SHOW search_path", ops(&[Op::Show])),
        one("SHOW ALL", ops(&[Op::Show])),
        one("SHOW TRANSACTION ISOLATION LEVEL", ops(&[Op::Show])),
        one("BEGIN", ops(&[Op::Transaction])),
        one("BEGIN WORK", ops(&[Op::Transaction])),
        one(
            "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
            ops(&[Op::Transaction]),
        ),
        one(
            "START TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            ops(&[Op::Transaction]),
        ),
        one("COMMIT", ops(&[Op::Transaction])),
        one("COMMIT AND CHAIN", ops(&[Op::Transaction])),
        one("END", ops(&[Op::Transaction])),
        one("ROLLBACK", ops(&[Op::Transaction])),
        one("ABORT", ops(&[Op::Transaction])),
        one("SAVEPOINT sp", ops(&[Op::Transaction])),
        one("RELEASE SAVEPOINT sp", ops(&[Op::Transaction])),
        one("ROLLBACK TO SAVEPOINT sp", ops(&[Op::Transaction])),
        one("PREPARE TRANSACTION 'gid'", ops(&[Op::Transaction])),
        one("COMMIT PREPARED 'gid'", ops(&[Op::Transaction])),
        one("ROLLBACK PREPARED 'gid'", ops(&[Op::Transaction])),
        one(
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            ops(&[Op::Transaction]),
        ),
        one(
            "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
            ops(&[Op::Lock]).read(&["t"]),
        ),
        one("LOCK s.t", ops(&[Op::Lock]).read(&["s.t"])),
        one("VACUUM", ops(&[Op::Vacuum]).written(&[])),
        one("VACUUM FULL t", ops(&[Op::Vacuum]).written(&["t"])),
        one(
            "VACUUM (VERBOSE, ANALYZE) t, s.u (a, b)",
            ops(&[Op::Vacuum])
                .written(&["s.u", "t"])
                .columns(&["s.u:a", "s.u:b"]),
        ),
        one(
            "VACUUM FULL VERBOSE ANALYZE t",
            ops(&[Op::Vacuum]).written(&["t"]),
        ),
        one("ANALYZE", ops(&[Op::Vacuum])),
        one(
            "ANALYZE t (a, b)",
            ops(&[Op::Vacuum]).read(&["t"]).columns(&["t:a", "t:b"]),
        ),
        one("ANALYZE VERBOSE t", ops(&[Op::Vacuum]).read(&["t"])),
        one("LISTEN ch", ops(&[Op::Listen])),
        one("UNLISTEN *", ops(&[Op::Listen])),
        one("NOTIFY ch, 'payload'", ops(&[Op::Listen])),
        one("CHECKPOINT", ops(&[Op::Other])),
        one("LOAD 'auto_explain'", ops(&[Op::Other])),
    ]
}

fn where_clauses() -> Vec<(&'static str, Vec<Expect>)> {
    let tautologies = [
        "DELETE FROM t WHERE 1=1",
        "DELETE FROM t WHERE 'a' = 'a'",
        "DELETE FROM t WHERE TRUE",
        "DELETE FROM t WHERE NOT false",
        "DELETE FROM t WHERE x = x",
        "DELETE FROM t WHERE t.x = x",
        "DELETE FROM t AS a WHERE a.x = t.x OR a.x = x",
        "DELETE FROM t WHERE x IS NOT NULL OR x IS NULL",
        "DELETE FROM t WHERE id = 5 OR true",
        "DELETE FROM t WHERE true AND 1 = 1",
        "DELETE FROM t WHERE ((1 = 1))",
        "DELETE FROM t WHERE true IS TRUE",
        "DELETE FROM t WHERE 1 IN (1)",
        "DELETE FROM t WHERE x BETWEEN x AND x",
        "DELETE FROM t WHERE 1 <> 2",
        "DELETE FROM t WHERE 't'",
        "DELETE FROM t WHERE 2 > 1",
        "DELETE FROM t WHERE 1 + 1 = 2",
        "DELETE FROM t WHERE 0.1 + 0.2 = 0.3",
        "DELETE FROM t WHERE name LIKE '%'",
        "DELETE FROM t WHERE NOT (1 = 2)",
        "DELETE FROM t WHERE 1::boolean",
        "DELETE FROM t WHERE EXISTS (SELECT 1)",
        "DELETE FROM t WHERE NULL IS NULL",
        "DELETE FROM t WHERE '1' = 1",
        "UPDATE t SET a = 1 WHERE a = a",
        "UPDATE t SET a = 1 WHERE 1 = 1 OR id = 3",
        "UPDATE t SET a = 1 WHERE x >= x",
        "UPDATE t SET a = 1 WHERE flag OR NOT flag",
        "UPDATE t SET a = 1 WHERE 'x' || 'y' = 'xy'",
        "UPDATE t SET a = 1 WHERE 0e999999999 = 0",
    ];
    let effective = [
        "DELETE FROM t WHERE id = 1",
        "DELETE FROM t WHERE id = 1 AND 1 = 1",
        "DELETE FROM t WHERE 1 = 1 AND id = 1",
        "DELETE FROM t WHERE x = y",
        "DELETE FROM t USING s WHERE t.x = s.x",
        "DELETE FROM t WHERE 1 = 2 OR id = 3",
        "DELETE FROM t WHERE NOT (a = 1)",
        "DELETE FROM t WHERE x IS NULL",
        "DELETE FROM t WHERE x LIKE 'a%'",
        "DELETE FROM t WHERE false",
        "DELETE FROM t WHERE 1 <> 1",
        "DELETE FROM t WHERE id = $1",
        "DELETE FROM t WHERE 1 IN (2)",
        "DELETE FROM t WHERE 'a' = 'b'",
        "DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
        "UPDATE t SET a = 1 WHERE id IN (1, 2, 3)",
        "UPDATE t SET a = 1 WHERE created < now() - interval '1 day'",
    ];
    let mut cases = Vec::new();
    let expect = |sql: &str, without_where: bool| {
        let op = if sql.starts_with("DELETE") {
            Op::Delete
        } else {
            Op::Update
        };
        // A subquery is a Select too.
        let ops_ = if sql.contains("SELECT") {
            vec![op, Op::Select]
        } else {
            vec![op]
        };
        ops(&ops_).ww(without_where)
    };
    for sql in tautologies {
        cases.push(one(sql, expect(sql, true)));
    }
    for sql in effective {
        cases.push(one(sql, expect(sql, false)));
    }
    cases
}

fn evasions() -> Vec<(&'static str, Vec<Expect>)> {
    vec![
        one("DrOp TaBlE t", ops(&[Op::Drop]).written(&["t"])),
        one("dElEtE fRoM T", ops(&[Op::Delete]).written(&["t"]).ww(true)),
        one(
            "/* x */ DROP /* y */ TABLE -- z\n t",
            ops(&[Op::Drop]).written(&["t"]),
        ),
        one(
            "/* /* */ DROP TABLE t */ SELECT 1",
            ops(&[Op::Select]).written(&[]),
        ),
        one("SELECT 1 /* ; DROP TABLE t; */", ops(&[Op::Select])),
        one("SELECT 1 -- ; DROP TABLE t", ops(&[Op::Select])),
        (
            "SELECT 1 --x\n; DROP TABLE t",
            vec![ops(&[Op::Select]), ops(&[Op::Drop]).written(&["t"])],
        ),
        (
            "SELECT 1 --x\r; DROP TABLE t",
            vec![ops(&[Op::Select]), ops(&[Op::Drop]).written(&["t"])],
        ),
        one(
            "\n\tDELETE\n\nFROM\r\n  t  \n",
            ops(&[Op::Delete]).written(&["t"]).ww(true),
        ),
        one(
            "SELECT * FROM \"Customers\"",
            ops(&[Op::Select]).read(&["Customers"]),
        ),
        one(
            "SELECT * FROM \"customers\"",
            ops(&[Op::Select]).read(&["customers"]),
        ),
        one(
            "SELECT * FROM CUSTOMERS",
            ops(&[Op::Select]).read(&["customers"]),
        ),
        one(
            "SELECT * FROM PUBLIC.Customers",
            ops(&[Op::Select]).read(&["public.customers"]),
        ),
        one(
            "DELETE FROM \"Public\".\"Customers\" WHERE id = 1",
            ops(&[Op::Delete]).written(&["Public.Customers"]),
        ),
        (
            "SELECT 1; DROP TABLE t",
            vec![ops(&[Op::Select]), ops(&[Op::Drop]).written(&["t"])],
        ),
        (
            "SELECT 1;;; DELETE FROM t;",
            vec![ops(&[Op::Select]), ops(&[Op::Delete]).ww(true)],
        ),
        (
            "select name from customers where id = 1;\n\n  TRUNCATE audit_log",
            vec![
                ops(&[Op::Select]),
                ops(&[Op::Truncate]).written(&["audit_log"]),
            ],
        ),
        one("SELECT ';DROP TABLE t'", ops(&[Op::Select])),
        one("SELECT 'x''; DROP TABLE t; --'", ops(&[Op::Select])),
        one("SELECT $$;DROP TABLE t$$", ops(&[Op::Select])),
        one("SELECT $x$ ; DROP TABLE t; $x$", ops(&[Op::Select])),
        one("SELECT E'\\';DROP TABLE t; --'", ops(&[Op::Select])),
        (
            "SELECT E'\\\\'; DROP TABLE t; --'",
            vec![ops(&[Op::Select]), ops(&[Op::Drop]).written(&["t"])],
        ),
        one(
            "SELECT \"a;b\" FROM t",
            ops(&[Op::Select]).columns(&["t:a;b"]),
        ),
        // `$` continues an identifier: the server sees `x$$`, then a second statement.
        (
            "SELECT 1 AS x$$; DROP TABLE t; --$$",
            vec![ops(&[Op::Select]), ops(&[Op::Drop]).written(&["t"])],
        ),
        // The server runs what follows COPY FROM STDIN; it is not inline data.
        (
            "COPY t FROM STDIN;\nDROP TABLE users;",
            vec![
                ops(&[Op::Copy]).written(&["t"]),
                ops(&[Op::Drop]).written(&["users"]),
            ],
        ),
        one("SELECT 'C:\\dir'", ops(&[Op::Select])),
        // Names longer than 63 bytes are cut, as the server does.
        one(
            "SELECT * FROM customers_with_a_name_that_is_much_longer_than_sixty_three_bytes_xyz",
            ops(&[Op::Select])
                .read(&["customers_with_a_name_that_is_much_longer_than_sixty_three_byte"]),
        ),
        one(
            "SELECT * FROM t WHERE id = (SELECT pg_read_file('/etc/passwd'))",
            ops(&[Op::Select]).functions(&["pg_read_file"]),
        ),
        one(
            "SELECT * FROM t WHERE EXISTS (SELECT 1 FROM (SELECT 1) x WHERE x IN (SELECT ssn FROM customers))",
            ops(&[Op::Select]).read(&["customers", "t"]),
        ),
        one(
            "SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM t WHERE ssn LIKE '1%')",
            ops(&[Op::Select]).columns(&["customers:*", "t:ssn", "?:ssn"]),
        ),
    ]
}

#[test]
fn analyses_statements() {
    let mut cases = queries();
    cases.extend(dml());
    cases.extend(ctes_and_prepared());
    cases.extend(ddl());
    cases.extend(session());
    cases.extend(where_clauses());
    cases.extend(evasions());
    let statements = run(&cases);
    assert!(statements >= 150, "only {statements} statements");
}

#[test]
fn empty_text_is_no_statements() {
    for sql in [
        "",
        "   \n\t ",
        "-- just a comment",
        ";;;",
        "/* */ ; /* */",
        "/* a /* nested */ one */",
    ] {
        assert_eq!(analyze(sql), Ok(Vec::new()), "{sql:?}");
    }
}

#[test]
fn rejects_what_is_not_postgresql() {
    let rejected = [
        // Other dialects.
        "SHOW CREATE TABLE t",
        "MSCK REPAIR TABLE t",
        "PRAGMA x",
        "USE db",
        "DESCRIBE t",
        "SELECT TOP 1 * FROM t",
        "DELETE FROM t LIMIT 1",
        "UPDATE t SET a = 1 LIMIT 1",
        "DELETE t FROM t",
        "REPLACE INTO t VALUES (1)",
        "INSERT IGNORE INTO t VALUES (1)",
        "LOCK TABLES t READ",
        "SELECT `a` FROM t",
        "KILL 1",
        "CACHE TABLE t",
        "SELECT a FROM t QUALIFY a > 1",
        "CREATE VIRTUAL TABLE t USING fts5(a)",
        "ATTACH DATABASE 'x' AS y",
        "LOAD json",
        // Garbage and broken text.
        "garbage here",
        "SELECT FROM WHERE",
        "SELECT (",
        "SELECT 1 +",
        "SELECT 1 2",
        "DROP",
        "'unterminated",
        "SELECT \"unterminated",
        "/* unterminated",
        "SELECT $$ unterminated",
        "SELECT 1; garbage",
        "garbage; SELECT 1",
        "DO 1",
        "DO",
        "COPY t FROM STDIN;\nrow data\n\\.",
    ];
    let accepted: Vec<_> = rejected
        .iter()
        .filter_map(|sql| {
            analyze(sql)
                .ok()
                .map(|infos| format!("{sql:?} -> {infos:?}"))
        })
        .collect();
    assert!(accepted.is_empty(), "accepted:\n{}", accepted.join("\n"));
}

/// Text the old parser refused that PostgreSQL reads, now read as the server reads it.
#[test]
fn reads_what_the_server_reads() {
    run(&[
        // `b"x"` is the column b with the alias x; `U&"ss\006e"` is ssn.
        one(
            "SELECT b\"x\" FROM t",
            ops(&[Op::Select]).read(&["t"]).columns(&["t:b"]),
        ),
        one(
            "SELECT U&\"ss\\006e\" FROM customers",
            ops(&[Op::Select])
                .read(&["customers"])
                .columns(&["customers:ssn"]),
        ),
        // With standard_conforming_strings on (the default), `'a\'` ends at its second
        // quote: the DROP is a statement of its own, and rules see it.
        (
            "SELECT 'a\\'; DROP TABLE t; --'",
            vec![ops(&[Op::Select]), ops(&[Op::Drop]).written(&["t"])],
        ),
        (
            "SELECT X'\\'; DROP TABLE t; --'",
            vec![ops(&[Op::Select]), ops(&[Op::Drop]).written(&["t"])],
        ),
        one(
            "CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$",
            ops(&[Op::Create]),
        ),
        one(
            "ALTER SEQUENCE s RESTART",
            ops(&[Op::Alter]).written(&["s"]),
        ),
        one("CLUSTER t", ops(&[Op::Vacuum]).written(&["t"])),
        one("REINDEX TABLE t", ops(&[Op::Vacuum]).written(&["t"])),
        one(
            "SELECT * FROM ROWS FROM (f(1), g(2))",
            ops(&[Op::Select]).functions(&["f", "g"]),
        ),
        one("SHOW DATABASES", ops(&[Op::Show])),
        // The grammar takes two code strings; the server then refuses the block
        // ("conflicting or redundant options"). Unreadable code stays an opaque Do.
        one(
            "DO $$ a $$ $$ b $$",
            ops(&[Op::Do]).path(Some(SearchPathChange::Unknown)),
        ),
        one(
            "CREATE STATISTICS s ON a, b FROM t",
            ops(&[Op::Create]).read(&["t"]),
        ),
        one(
            "UPDATE t SET a[1] = 2 WHERE id = 1",
            ops(&[Op::Update])
                .written(&["t"])
                .columns(&["t:a", "t:id"])
                .ww(false),
        ),
        one(
            "SELECT 'a' SIMILAR TO 'b'",
            // The server implements SIMILAR TO with this function.
            ops(&[Op::Select]).functions(&["pg_catalog.similar_to_escape"]),
        ),
        one(
            "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
            ops(&[Op::Transaction]),
        ),
        one(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) \
             SEARCH DEPTH FIRST BY n SET ord CYCLE n SET is_cycle USING path SELECT * FROM r",
            ops(&[Op::Select]).read(&[]),
        ),
        one(
            "ALTER INDEX parent_idx ATTACH PARTITION child_idx",
            ops(&[Op::Alter]).written(&["parent_idx", "child_idx"]),
        ),
        one(
            "COMMENT ON CONSTRAINT c ON public.t IS 'x'",
            ops(&[Op::Other]).written(&["public.t"]),
        ),
        one(
            "CREATE TABLE r (during tsrange, EXCLUDE USING gist (during WITH &&))",
            ops(&[Op::Create]).written(&["r"]),
        ),
        one(
            "DO $$ BEGIN DROP TABLE t; END $$",
            ops(&[Op::Do, Op::Drop])
                .written(&["t"])
                .path(Some(SearchPathChange::Unknown)),
        ),
        one(
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t WHERE id = 1; END $$",
            ops(&[Op::Create, Op::Delete]).written(&["t"]),
        ),
    ]);
}

#[test]
fn parse_failures_carry_the_parsers_message() {
    let error = analyze("SELECT * FROM").unwrap_err();
    assert_eq!(error.message, "syntax error at end of input");
    assert!(error.is_syntax_error());
    // Other dialects' statements are syntax errors to PostgreSQL's grammar.
    let error = analyze("MSCK REPAIR TABLE t").unwrap_err();
    assert_eq!(error.message, "syntax error at or near \"MSCK\"");
    assert!(error.is_syntax_error());
}

/// Runs `f` on a thread with the stack the sidecar gives its workers, where libpg_query
/// sizes its depth limit as the server does (a test thread's 2 MiB leaves it its minimum).
fn on_sidecar_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

/// Far beyond hand-written or generated SQL.
const DEEP: usize = 10_000;

#[test]
fn deep_expressions_are_answered_not_overflowed() {
    on_sidecar_stack(|| {
        // Past libpg_query's own depth limit: refused, but answered, and not as a syntax
        // error (a server with more stack may read it).
        for deep in [
            format!("SELECT 1{}", "+1".repeat(DEEP)),
            format!("SELECT {}1", "- ".repeat(DEEP)),
            format!("SELECT {}1{}", "(SELECT ".repeat(DEEP), ")".repeat(DEEP)),
        ] {
            if let Err(error) = analyze(&deep) {
                assert!(!error.is_syntax_error(), "{error:?}");
            }
        }
        let unions = format!("SELECT a FROM t{}", " UNION SELECT b FROM u".repeat(100));
        assert_eq!(analyze(&unions).unwrap()[0].read.len(), 2);
        let fine = format!("DELETE FROM t WHERE 1{} = 1", "+0".repeat(300));
        let info = analyze(&fine).unwrap();
        assert!(info[0].without_where);
        // Long flat lists are not deep.
        let list = format!(
            "SELECT * FROM t WHERE id IN ({})",
            vec!["1"; 50_000].join(", ")
        );
        assert!(analyze(&list).is_ok());
        let rows = format!(
            "INSERT INTO t VALUES {}",
            vec!["(1, 'a', now())"; 5_000].join(", ")
        );
        assert!(analyze(&rows).is_ok());
    });
}

#[test]
fn nested_statements_are_answered_not_overflowed() {
    on_sidecar_stack(|| {
        for n in [5, 45, 200] {
            for nested in [
                format!("{}SELECT 1", "EXPLAIN ".repeat(n)),
                format!("{}SELECT 1", "PREPARE p AS ".repeat(n)),
                format!(
                    "{}SELECT 1",
                    "CREATE RULE r AS ON INSERT TO t DO ".repeat(n)
                ),
                format!(
                    "{}SELECT 1",
                    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC ".repeat(n)
                ),
            ] {
                // Refused or not, but answered.
                let _ = analyze(&nested);
            }
        }
        // EXPLAIN takes no EXPLAIN: the grammar refuses it.
        assert!(analyze(&format!("{}SELECT 1", "EXPLAIN ".repeat(200))).is_err());
        let derived = format!(
            "SELECT * FROM {}t{}",
            "(SELECT * FROM ".repeat(45),
            ") x".repeat(45)
        );
        assert_eq!(analyze(&derived).unwrap()[0].read.len(), 1);
        let scalar = format!("{}1{}", "SELECT (".repeat(45), ")".repeat(45));
        assert!(analyze(&scalar).is_ok());
        // Past the parser's own limit: refused, but not as a syntax error (a server with more
        // stack might read it).
        let too_deep = format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000));
        let error = analyze(&too_deep).unwrap_err();
        assert!(!error.is_syntax_error(), "{error:?}");
    });
}

#[test]
fn literals_lex_as_the_session_lexes_them() {
    use crate::dialect::SqlDialect;
    let on = SqlDialect::default();
    let off = SqlDialect {
        standard_conforming_strings: false,
        ..on
    };
    // With standard_conforming_strings on, `\'` ends the literal; off, it continues it.
    let sql = "SELECT 'a\\'; DROP TABLE t; --'";
    let statements = analyze_with(sql, &on).unwrap();
    assert_eq!(statements.len(), 2);
    assert!(statements[1].operations.contains(&Op::Drop));
    let statements = analyze_with(sql, &off).unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0].operations, [Op::Select].into());
    // Unterminated under one setting, a syntax error the server reports as well.
    assert!(
        analyze_with("SELECT 'a\\'", &off)
            .unwrap_err()
            .is_syntax_error()
    );
    assert!(analyze_with("SELECT 'a\\'", &on).is_ok());
}
