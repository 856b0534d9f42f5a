//! `palisade-operator crds` and `palisade-operator run` as the chart and a user run them.

use std::process::Command;

fn operator(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_palisade-operator"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

/// `crds` prints exactly what `crds/` holds: `palisade-operator crds` and `cat crds/*.yaml`
/// are byte for byte the same.
#[test]
fn crds_prints_what_crds_dir_holds() {
    let out = operator(&["crds"]);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let committed: String = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        printed == committed,
        "`palisade-operator crds` differs from crds/*.yaml; regenerate with: {}",
        palisade_policy::crd::REGENERATE
    );
    assert_eq!(printed.matches("kind: CustomResourceDefinition").count(), 3);
}

/// The flags the chart sets, with the names and environment variables of the contract.
#[test]
fn run_takes_the_contract_flags() {
    let out = operator(&["run", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--admin-address <ADMIN_ADDRESS>",
        "[env: PALISADE_ADMIN_ADDRESS=]",
        "[default: 0.0.0.0:8080]",
        "--namespace <NAMESPACE>",
        "[env: POD_NAMESPACE=]",
        "--lease-name <LEASE_NAME>",
        "[env: PALISADE_LEASE_NAME=]",
        "--log-level <LOG_LEVEL>",
        "[env: PALISADE_LOG_LEVEL=]",
        "--log-format <LOG_FORMAT>",
        "[env: PALISADE_LOG_FORMAT=]",
        "--webhook-address <WEBHOOK_ADDRESS>",
        "--sidecar-image <SIDECAR_IMAGE>",
        "--approval-retention <APPROVAL_RETENTION>",
        "[env: PALISADE_APPROVAL_RETENTION=]",
    ] {
        assert!(help.contains(flag), "missing {flag} in:\n{help}");
    }
}

/// Without a cluster `run` stops at once with a one-line reason, after binding the admin port.
#[test]
fn run_without_a_cluster_fails_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_palisade-operator"))
        .args([
            "run",
            "--admin-address",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("palisade-operator: connecting to the Kubernetes API server"),
        "{stderr}"
    );

    let out = operator(&[
        "run",
        "--admin-address",
        "127.0.0.1:0",
        "--log-level",
        "[bad",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--log-level \"[bad\""), "{stderr}");
}
