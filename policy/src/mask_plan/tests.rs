use super::*;
use crate::analysis::analyze;
use crate::manifest::parse_manifests;
use crate::render::render_all;

const POLICY: &str = r#"
apiVersion: palisade.dev/v1alpha1
kind: DatabasePolicy
metadata: {name: p, namespace: ml}
spec:
  database: {host: db}
---
apiVersion: palisade.dev/v1alpha1
kind: MaskingRule
metadata: {name: pii, namespace: ml}
spec:
  columns:
    - {table: public.customers, column: email, mask: {type: Email}}
    - {table: public.customers, column: ssn, mask: {type: Partial, keepLast: 4}}
    - {table: public.customers, column: phone, mask: {type: Hash, keySecretRef: {name: k, key: hmac}}}
    - {table: "*", column: "*password*", mask: {type: Null}}
  exempt: {groups: [pii-readers]}
"#;

fn policy(extra: &str) -> RenderedPolicy {
    let text = format!("{POLICY}{extra}");
    render_all("t", &parse_manifests("t", &text).unwrap())
        .unwrap()
        .remove(0)
}

fn key(_: &SecretKeyRef) -> Result<Arc<[u8]>, String> {
    Ok(Arc::from(&b"secret"[..]))
}

fn rules_for(policy: &RenderedPolicy, groups: &[&str]) -> MaskRules {
    let identity = Identity {
        db_user: "app".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..Identity::default()
    };
    MaskRules::for_identity(policy, &identity, &key).unwrap()
}

fn plan(rules: &MaskRules, catalog: &Catalog, sql: &str) -> Result<StatementPlan, MaskDenial> {
    let info = analyze(sql).unwrap().remove(0);
    rules.plan(&info, &SearchPath::default(), catalog)
}

fn masks(rules: &MaskRules, sql: &str) -> Vec<Option<Mask>> {
    plan(rules, &Catalog::default(), sql)
        .unwrap()
        .outputs
        .into_iter()
        .map(|o| o.mask.map(|m| m.mask))
        .collect()
}

fn customers_catalog() -> Catalog {
    let mut catalog = Catalog::default();
    let columns = ["id", "name", "email", "ssn", "phone"]
        .iter()
        .enumerate()
        .map(|(i, n)| CatalogColumn {
            attnum: i as i16 + 1,
            name: n.to_string(),
            type_oid: 25,
        })
        .collect();
    catalog.insert(CatalogRelation {
        oid: 100,
        schema: "public".into(),
        name: "customers".into(),
        columns,
        ..CatalogRelation::default()
    });
    // CREATE VIEW public.contacts AS SELECT name, email AS e FROM customers
    let def = analyze("SELECT customers.name, customers.email AS e FROM customers")
        .unwrap()
        .remove(0);
    catalog.insert(CatalogRelation {
        oid: 200,
        schema: "public".into(),
        name: "contacts".into(),
        columns: vec![
            CatalogColumn {
                attnum: 1,
                name: "name".into(),
                type_oid: 25,
            },
            CatalogColumn {
                attnum: 2,
                name: "e".into(),
                type_oid: 25,
            },
        ],
        view: Some(def.outputs),
        view_reads: def.read,
        opaque: false,
    });
    catalog.insert(CatalogRelation {
        oid: 300,
        schema: "public".into(),
        name: "orders".into(),
        columns: vec![CatalogColumn {
            attnum: 1,
            name: "amount".into(),
            type_oid: 1700,
        }],
        ..CatalogRelation::default()
    });
    catalog.add_user_function("leak");
    catalog
}

#[test]
fn plain_and_computed_columns_get_their_source_mask() {
    let rules = rules_for(&policy(""), &[]);
    assert_eq!(
        masks(
            &rules,
            "SELECT email, name, lower(email) AS l FROM customers"
        ),
        vec![Some(Mask::Email), None, Some(Mask::Email)]
    );
    assert_eq!(
        masks(&rules, "SELECT user_password FROM accounts"),
        vec![Some(Mask::Null)]
    );
    // Two different masks on one value: Null, which hides every value of every type.
    assert_eq!(
        masks(&rules, "SELECT email || ssn FROM customers"),
        vec![Some(Mask::Null)]
    );
    assert_eq!(
        masks(&rules, "SELECT c FROM customers c"),
        vec![Some(Mask::Null)]
    );
    assert_eq!(masks(&rules, "SELECT count(*) FROM customers"), vec![None]);
}

#[test]
fn exempt_subjects_see_raw_values() {
    let rules = rules_for(&policy(""), &["pii-readers"]);
    assert!(!rules.is_active());
    let p = plan(&rules, &Catalog::default(), "SELECT email FROM customers").unwrap();
    assert!(p.outputs.iter().all(|o| o.mask.is_none()));
}

#[test]
fn hash_keys_come_from_the_secret_and_a_missing_one_fails() {
    let rules = rules_for(&policy(""), &[]);
    let plan = plan(&rules, &Catalog::default(), "SELECT phone FROM customers").unwrap();
    let mask = plan.outputs[0].mask.as_ref().unwrap();
    assert_eq!(mask.key.as_deref(), Some(&b"secret"[..]));
    let missing = |_: &SecretKeyRef| -> Result<Arc<[u8]>, String> { Err("no k".into()) };
    let err = MaskRules::for_identity(&policy(""), &Identity::default(), &missing).unwrap_err();
    assert!(err.contains("no k"));
}

#[test]
fn leak_paths_are_denied() {
    let rules = rules_for(&policy(""), &[]);
    let catalog = customers_catalog();
    for sql in [
        "INSERT INTO t SELECT email FROM customers",
        "CREATE TABLE t AS SELECT * FROM customers",
        "SELECT ssn INTO t FROM customers",
        "COPY customers TO STDOUT",
        "COPY (SELECT email FROM customers) TO '/tmp/x'",
        "SELECT query_to_xml('select email from customers', true, true, '')",
        "SELECT leak(1)",
        "SELECT public.leak(1)",
        "SELECT most_common_vals FROM pg_stats WHERE attname = 'ssn'",
    ] {
        let err = plan(&rules, &catalog, sql).expect_err(sql);
        assert_eq!(err.rule, "pii", "{sql}");
    }
    for sql in [
        "COPY orders TO STDOUT",
        "INSERT INTO t SELECT name FROM customers",
        "SELECT id FROM customers WHERE ssn = '1'",
        "SELECT lower(name) FROM customers",
    ] {
        plan(&rules, &catalog, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[test]
fn predicates_and_derived_columns_can_be_denied() {
    let extra = "  predicates: Deny\n  derivedColumns: Deny\n";
    let text = POLICY.replace("  exempt:", &format!("{extra}  exempt:"));
    let p = render_all("t", &parse_manifests("t", &text).unwrap())
        .unwrap()
        .remove(0);
    let rules = rules_for(&p, &[]);
    let catalog = Catalog::default();
    let err = plan(
        &rules,
        &catalog,
        "SELECT id FROM customers WHERE ssn LIKE '1%'",
    )
    .unwrap_err();
    assert!(err.message.contains("predicates"), "{err}");
    let err = plan(&rules, &catalog, "SELECT lower(email) FROM customers").unwrap_err();
    assert!(err.message.contains("derivedColumns"), "{err}");
    plan(&rules, &catalog, "SELECT email FROM customers WHERE id = 1").unwrap();
}

#[test]
fn views_are_followed_to_their_tables() {
    let rules = rules_for(&policy(""), &[]);
    let catalog = customers_catalog();
    assert_eq!(
        rules.stored(&catalog, 200, 2),
        Stored::Known(Some(ResolvedMask {
            mask: Mask::Email,
            key: None,
            columns: ["public.customers.email".to_string()].into(),
            rules: ["pii".to_string()].into(),
        }))
    );
    assert_eq!(rules.stored(&catalog, 200, 1), Stored::Known(None));
    assert_eq!(rules.stored(&catalog, 999, 1), Stored::Unknown);
    let p = plan(&rules, &catalog, "SELECT upper(e) FROM contacts").unwrap();
    assert_eq!(
        p.outputs[0].mask.as_ref().map(|m| &m.mask),
        Some(&Mask::Email)
    );
}

#[test]
fn computed_fields_line_up_with_outputs_or_fall_back() {
    let rules = rules_for(&policy(""), &[]);
    let catalog = customers_catalog();
    let p = plan(&rules, &catalog, "SELECT *, lower(email) FROM customers").unwrap();
    let fields = p.for_fields(6);
    assert_eq!(fields[5].as_ref().map(|m| &m.mask), Some(&Mask::Email));
    // Unknown width: every computed field gets the fallback.
    let p = plan(
        &rules,
        &Catalog::default(),
        "SELECT *, lower(name) FROM customers",
    )
    .unwrap();
    assert!(p.for_fields(6).iter().all(|m| m.is_some()));
}

#[test]
fn side_channels_and_code_out_of_sight_are_denied() {
    let rules = rules_for(&policy(""), &[]);
    let catalog = customers_catalog();
    for sql in [
        // Values sent to other sessions, settings, sequences, large objects.
        "SELECT pg_notify('c', email) FROM customers",
        "SELECT pg_catalog.pg_notify('c', x) FROM (SELECT ssn AS x FROM customers) s",
        "SELECT set_config('application_name', e, false) FROM contacts",
        "SELECT setval('s', length(ssn)) FROM customers",
        "SELECT lo_from_bytea(0, convert_to(email, 'UTF8')) FROM customers",
        // Code that reads masked columns, or code that cannot be read at all.
        "DO $$ DECLARE v text; BEGIN SELECT email INTO v FROM customers; RAISE NOTICE '%', v; END $$",
        "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$",
        "DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT 1' LOOP END LOOP; END $$",
        "DO $$ DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE 'SELECT 1'; END $$",
        "CREATE FUNCTION f() RETURNS SETOF int LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY EXECUTE 'SELECT 1'; END $$",
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS 'SELECT ssn FROM customers'",
        "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('c', (SELECT email FROM customers LIMIT 1)); RETURN NEW; END $$",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpython3u AS 'return 1'",
        "CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'lib', 'sym'",
        // Code attached to a masked table, or to a view over one, that runs later.
        "CREATE TRIGGER t AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION g()",
        "CREATE RULE r AS ON UPDATE TO customers DO ALSO NOTIFY c",
        "CREATE RULE r AS ON INSERT TO contacts DO INSTEAD NOTHING",
        "CREATE POLICY p ON customers USING (true)",
        "ALTER POLICY p ON customers USING (true)",
        "DO $$ BEGIN CREATE TRIGGER t AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION g(); END $$",
    ] {
        let denial = plan(&rules, &catalog, sql).expect_err(sql);
        let expected = if sql.contains("EXECUTE '") {
            "dynamic SQL"
        } else if sql.contains("plpython3u") || sql.contains("LANGUAGE c ") {
            "cannot be read"
        } else if sql.contains(" ON customers") || sql.contains(" TO c") {
            "triggers, rules and policies"
        } else if sql.starts_with("SELECT") {
            "sends values where the proxy cannot mask them"
        } else {
            "masked column"
        };
        // libpg_query 18.1 hands over no tree for trigger functions: unreadable, refused.
        let unreadable = sql.contains("RETURNS trigger") && denial.message.contains("cannot read");
        assert!(
            denial.message.contains(expected) || unreadable,
            "{sql}: {denial}"
        );
    }
    for sql in [
        "SELECT pg_notify('c', name) FROM customers",
        "SELECT set_config('application_name', 'x', false)",
        "DO $$ BEGIN RAISE NOTICE 'hello'; END $$",
        "DO $$ BEGIN PERFORM pg_notify('c', (SELECT name FROM customers LIMIT 1)); END $$",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE TRIGGER t AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION g()",
        "CREATE POLICY p ON orders USING (true)",
    ] {
        assert!(plan(&rules, &catalog, sql).is_ok(), "{sql}");
    }
    // An exempt subject may do all of it.
    let exempt = rules_for(&policy(""), &["pii-readers"]);
    assert!(plan(&exempt, &catalog, "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$").is_ok());
}

#[test]
fn statements_touching_masked_relations_are_in_play() {
    let rules = rules_for(&policy(""), &[]);
    let catalog = customers_catalog();
    for (sql, in_play) in [
        ("SELECT name FROM customers", true),
        ("SELECT name FROM contacts", true),
        ("UPDATE customers SET name = 'x' WHERE id = 1", true),
        ("SELECT 1", false),
        ("SELECT * FROM orders", false),
        ("INSERT INTO orders VALUES (1)", false),
    ] {
        assert_eq!(
            plan(&rules, &catalog, sql).unwrap().in_play,
            in_play,
            "{sql}"
        );
    }
    assert!(rules.column_masked(
        &RelationName {
            schema: Some("public".into()),
            name: "customers".into()
        },
        "ssn",
        &SearchPath::default(),
        &catalog
    ));
    assert!(!rules.column_masked(
        &RelationName {
            schema: Some("public".into()),
            name: "customers".into()
        },
        "name",
        &SearchPath::default(),
        &catalog
    ));
    assert!(rules.any_column_named("user_password"));
    assert!(!rules.any_column_named("name"));
}

/// A temporary `customers(email)` in `schema`, as a session that created it reads it.
fn temp_customers(schema: &str, oid: u32) -> Catalog {
    let mut catalog = Catalog::default();
    catalog.insert(CatalogRelation {
        oid,
        schema: schema.into(),
        name: "customers".into(),
        columns: vec![CatalogColumn {
            attnum: 1,
            name: "email".into(),
            type_oid: 25,
        }],
        ..CatalogRelation::default()
    });
    catalog
}

fn first_mask(rules: &MaskRules, catalog: &Catalog, path: &SearchPath, sql: &str) -> Option<Mask> {
    let info = analyze(sql).unwrap().remove(0);
    let plan = rules.plan(&info, path, catalog).unwrap();
    plan.outputs[0].mask.as_ref().map(|m| m.mask.clone())
}

#[test]
fn a_session_layer_resolves_its_own_temporary_relations_over_the_shared_base() {
    let rules = rules_for(&policy(""), &[]);
    let shared = Arc::new(customers_catalog());
    let session = temp_customers("pg_temp_3", 900).over(shared.clone());
    let path = SearchPath::default();
    // The session's own temporary table shadows public.customers, as in PostgreSQL.
    let sql = "SELECT lower(email) FROM customers";
    assert_eq!(first_mask(&rules, &session, &path, sql), None);
    let sql = "SELECT lower(email) FROM pg_temp.customers";
    assert_eq!(first_mask(&rules, &session, &path, sql), None);
    // The shared base is still there underneath: qualified names, views, OIDs, functions.
    let sql = "SELECT lower(email) FROM public.customers";
    assert_eq!(first_mask(&rules, &session, &path, sql), Some(Mask::Email));
    // A shared view's unqualified `customers` is public.customers, not the session's.
    let sql = "SELECT upper(e) FROM contacts";
    assert_eq!(first_mask(&rules, &session, &path, sql), Some(Mask::Email));
    assert!(matches!(
        rules.stored(&session, 100, 3),
        Stored::Known(Some(_))
    ));
    assert_eq!(rules.stored(&session, 900, 1), Stored::Known(None));
    assert!(session.knows_function("leak"));
    assert!(plan(&rules, &session, "SELECT leak(1)").is_err());
    let pg_temp = RelationName {
        schema: Some("pg_temp".into()),
        name: "customers".into(),
    };
    assert!(session.knows_relation(&pg_temp, &path));
    // The base was shared, not copied, and does not see the session's layer.
    assert_eq!(Arc::strong_count(&shared), 2);
    assert!(shared.relation(900).is_none());
    assert!(!shared.knows_relation(&pg_temp, &path));
}

#[test]
fn temporary_relations_below_the_top_layer_never_resolve_a_name() {
    let rules = rules_for(&policy(""), &[]);
    // Another session's temporary `customers` (raw values) must not stand in for
    // public.customers in this session, whether it sits in the base or not at all.
    let mut shared = customers_catalog();
    shared.insert(
        temp_customers("pg_temp_7", 901)
            .relation(901)
            .unwrap()
            .clone(),
    );
    let session = Catalog::default().over(Arc::new(shared));
    let path = SearchPath::default();
    let sql = "SELECT lower(email) FROM customers";
    assert_eq!(first_mask(&rules, &session, &path, sql), Some(Mask::Email));
}

#[test]
fn an_explicit_pg_temp_in_the_search_path_is_searched_in_its_place() {
    let rules = rules_for(&policy(""), &[]);
    let session = temp_customers("pg_temp_3", 900).over(Arc::new(customers_catalog()));
    let sql = "SELECT lower(email) FROM customers";
    let last = SearchPath {
        schemas: vec![Some("public".into()), Some("pg_temp".into())],
    };
    assert_eq!(first_mask(&rules, &session, &last, sql), Some(Mask::Email));
    let first = SearchPath {
        schemas: vec![Some("pg_temp".into()), Some("public".into())],
    };
    assert_eq!(first_mask(&rules, &session, &first, sql), None);
}
