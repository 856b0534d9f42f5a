//! The command-line tools as a user runs them: `kubectl palisade check` and
//! `palisade-operator render`, on the shipped examples.

use std::process::{Command, Output};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap()
}

fn check(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_kubectl-palisade"), args)
}

#[test]
fn check_explains_a_denial_and_exits_1() {
    let out = check(&[
        "check",
        "-f",
        "examples/databasepolicy.yaml",
        "--sql",
        "DROP TABLE public.customers",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("policy:      ml/features-db"), "{text}");
    assert!(text.contains("decision:    Deny"), "{text}");
    assert!(
        text.contains("because:     rule \"no-destructive-ddl\""),
        "{text}"
    );
    assert!(
        text.contains("message:     destructive DDL is not allowed from workloads"),
        "{text}"
    );
    assert!(text.contains("writes:      public.customers"), "{text}");
}

#[test]
fn check_allows_and_exits_0_and_speaks_json() {
    let out = check(&[
        "check",
        "-f",
        "examples/databasepolicy.yaml",
        "--sql",
        "SELECT id FROM orders WHERE id = 1",
        "-o",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["policy"], "ml/features-db");
    assert_eq!(json[0]["decision"]["action"], "Allow");
    assert_eq!(json[0]["decision"]["reason"]["by"], "default");
    assert_eq!(json[0]["decision"]["read"][0], "public.orders");
}

#[test]
fn check_honours_subjects_and_cte_writes() {
    // The customer-export rule holds contractors' reads of customers for approval.
    let args = [
        "check",
        "-f",
        "examples/databasepolicy.yaml",
        "--sql",
        "SELECT * FROM customers",
    ];
    assert_eq!(check(&args).status.code(), Some(0));
    let mut as_contractor = args.to_vec();
    as_contractor.extend(["--group", "contractors"]);
    let out = check(&as_contractor);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("decision:    RequireApproval"));
    let out = check(&[
        "check",
        "-f",
        "examples/databasepolicy.yaml",
        "--sql",
        "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("writes-need-where") && text.contains("Select, Delete"),
        "{text}"
    );
}

#[test]
fn bad_input_gets_a_one_line_reason_and_exit_2() {
    let out = check(&["check", "-f", "no/such.yaml", "--sql", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no/such.yaml") && err.lines().count() == 1,
        "{err}"
    );
    let out = check(&["check", "--sql", "SELECT 1"]);
    assert!(!out.status.success());
    let out = check(&[
        "check",
        "-f",
        "examples/databasepolicy.yaml",
        "--sql",
        "SELECT 1",
        "--policy",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no DatabasePolicy named \"nope\""));
}

#[test]
fn render_prints_the_document_sidecars_enforce() {
    let out = run(
        env!("CARGO_BIN_EXE_palisade-operator"),
        &[
            "render",
            "-f",
            "examples/databasepolicy.yaml",
            "examples/maskingrule.yaml",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["format"], 1);
    assert_eq!(doc["name"], "features-db");
    assert_eq!(doc["maskingRules"][0]["name"], "customer-pii");
    assert!(doc["policyHash"].as_str().unwrap().starts_with("sha256:"));
    let bad = run(
        env!("CARGO_BIN_EXE_palisade-operator"),
        &["render", "-f", "examples/deployment.yaml"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no DatabasePolicy found"));
}

#[test]
fn check_shows_the_mask_plan_and_masking_denials() {
    let files = [
        "-f",
        "examples/databasepolicy.yaml",
        "-f",
        "examples/maskingrule.yaml",
    ];
    let mut args = vec!["check"];
    args.extend(files);
    args.extend([
        "--sql",
        "SELECT id, email, lower(ssn) AS s FROM customers",
        "-o",
        "json",
    ]);
    let out = check(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let columns = &json[0]["masking"]["columns"];
    assert_eq!(columns[0]["output"], "id");
    assert!(columns[0]["mask"].is_null());
    assert_eq!(columns[1]["mask"]["type"], "Email");
    assert_eq!(columns[1]["rules"][0], "customer-pii");
    assert_eq!(columns[2]["mask"]["type"], "Partial");
    assert_eq!(columns[2]["computed"], true);

    // The exempt group sees raw values.
    let mut exempt = args.clone();
    exempt.extend(["--group", "pii-readers"]);
    let json: serde_json::Value = serde_json::from_slice(&check(&exempt).stdout).unwrap();
    assert_eq!(json[0]["masking"]["active"], false);

    // A copy out of the proxy's reach is refused, and says by which rule.
    let mut leak = vec!["check"];
    leak.extend(files);
    leak.extend(["--sql", "CREATE TABLE t AS SELECT email FROM customers"]);
    let out = check(&leak);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("masking:     denied by masking rule \"customer-pii\""),
        "{text}"
    );
}
