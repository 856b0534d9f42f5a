//! `helm install`, `upgrade` and `uninstall` of charts/palisade with the real helm CLI against
//! a real API server (its own control plane: this binary owns the cluster-wide objects the
//! chart creates). No kubelet runs the operator's pods, so this checks what the API server
//! accepts and keeps, and that uninstalling leaves exactly what the chart's README says.

use std::collections::BTreeSet;

use palisade_tests::controlplane::operator::yaml_to_json;
use palisade_tests::controlplane::{ControlPlane, Who};

const NS: &str = "palisade-system";

fn chart() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/palisade")
        .display()
        .to_string()
}

fn helm_ok(cp: &ControlPlane, args: &[&str]) -> String {
    let out = cp.helm(args);
    assert!(
        out.status.success(),
        "helm {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kind/namespace/name` of every object in a manifest.
fn objects(cp: &ControlPlane, manifest: &str) -> BTreeSet<(String, String, String)> {
    yaml_to_json(cp, manifest)
        .unwrap()
        .into_iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_string(),
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn exists(cp: &ControlPlane, (kind, ns, name): &(String, String, String)) -> bool {
    let mut args = vec!["get", kind.as_str(), name.as_str()];
    if !ns.is_empty() {
        args.extend(["-n", ns.as_str()]);
    }
    let out = cp.kubectl(Who::Admin, &args);
    if out.status.success() {
        return true;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NotFound") || stderr.contains("not found"),
        "{stderr}"
    );
    false
}

#[test]
fn the_chart_installs_upgrades_and_uninstalls_leaving_what_its_readme_says() {
    let Some(cp) = ControlPlane::shared() else {
        return;
    };
    let chart = chart();
    let install = helm_ok(
        cp,
        &[
            "install",
            "palisade",
            &chart,
            "-n",
            NS,
            "--create-namespace",
        ],
    );
    // The NOTES are printed, with this release's namespace.
    assert!(install.contains("STATUS: deployed"), "{install}");
    assert!(
        install.contains(&format!(
            "kubectl -n {NS} rollout status deployment/palisade-operator"
        )),
        "{install}"
    );
    let manifest = helm_ok(cp, &["get", "manifest", "palisade", "-n", NS]);
    let installed = objects(cp, &manifest);
    for object in &installed {
        assert!(exists(cp, object), "{object:?} not stored after install");
    }
    let kinds: BTreeSet<&str> = installed.iter().map(|(k, _, _)| k.as_str()).collect();
    for kind in [
        "CustomResourceDefinition",
        "Deployment",
        "MutatingWebhookConfiguration",
        "ClusterRole",
        "ServiceAccount",
        "Service",
    ] {
        assert!(
            kinds.contains(kind),
            "the chart installed no {kind}: {kinds:?}"
        );
    }
    // The CRDs come from the chart's templates and are served.
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/databasepolicies.palisade.dev",
    ]);
    cp.namespace("ml");
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    cp.kubectl_ok(&[
        "apply",
        "-f",
        examples.join("databasepolicy.yaml").to_str().unwrap(),
    ]);

    // Upgrade with a changed value: the Deployment follows, the release moves to revision 2.
    let upgrade = helm_ok(
        cp,
        &[
            "upgrade",
            "palisade",
            &chart,
            "-n",
            NS,
            "--set",
            "logLevel=debug",
            "--set",
            "replicaCount=3",
        ],
    );
    assert!(upgrade.contains("REVISION: 2"), "{upgrade}");
    let deployment = cp
        .get_json(&["-n", NS, "deployment", "palisade-operator"])
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert!(
        deployment["spec"]["template"].to_string().contains("debug"),
        "logLevel not passed: {}",
        deployment["spec"]["template"]
    );

    helm_ok(cp, &["uninstall", "palisade", "-n", NS]);
    // What is left is what the README says: the CRDs (helm.sh/resource-policy: keep), and so
    // the policies; nothing else of the release.
    let mut left = Vec::new();
    for object in &installed {
        if exists(cp, object) {
            left.push(object.clone());
        }
    }
    let left_kinds: BTreeSet<&str> = left.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        left_kinds,
        BTreeSet::from(["CustomResourceDefinition"]),
        "left after uninstall: {left:?}"
    );
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        cp.get_json(&["-n", "ml", "dbpolicy", "features-db"])
            .is_some(),
        "the policy went with the release"
    );
    // And the README's way to remove them works.
    cp.kubectl_ok(&[
        "delete",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=palisade",
        "--wait=true",
    ]);
    for object in &left {
        assert!(
            !exists(cp, object),
            "{object:?} survived the README's delete"
        );
    }
}
