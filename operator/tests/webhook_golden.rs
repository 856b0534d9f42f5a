//! Golden files for sidecar injection: each case is a pod as the API server hands it to the
//! webhook (`tests/golden/pods/<case>.yaml`), matched against the policies in
//! `tests/golden/policies.yaml`, and the expected outcome with its JSON patch
//! (`tests/golden/patches/<case>.json`).
//!
//! Every case also applies the patch to the pod, checks the result is a pod the API server
//! would accept as far as we can tell offline (parses as a k8s-openapi Pod, every mount names
//! a volume, unique names, volume names are DNS labels), and that injecting again changes
//! nothing.
//!
//! `UPDATE_GOLDEN=1 cargo test -p palisade-operator --test webhook_golden` rewrites the
//! expected files; review the diff before committing them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use palisade_operator::webhook::inject::{
    InjectConfig, InjectOutcome, SIDECAR_NAME, inject, matching_policies,
};
use palisade_policy::{parse_manifests, render_all};
use serde_json::{Value, json};

#[derive(Clone, Copy)]
enum Mode {
    Native,
    Regular,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn config(mode: Mode) -> InjectConfig {
    let resources: ResourceRequirements =
        serde_json::from_str(palisade_operator::webhook::DEFAULT_SIDECAR_RESOURCES)
            .expect("default resources parse");
    InjectConfig {
        // Fixed, so the golden files do not change with every release.
        version: "0.1.0".into(),
        image: "ghcr.io/palisade-dev/palisade-sidecar:0.1.0".into(),
        image_pull_policy: "IfNotPresent".into(),
        resources,
        log_level: "info".into(),
        native_sidecars: matches!(mode, Mode::Native),
    }
}

fn run_inject(pod_json: &Value, mode: Mode) -> InjectOutcome {
    let pod: Pod = serde_json::from_value(pod_json.clone()).expect("pod parses");
    let text = std::fs::read_to_string(golden_dir().join("policies.yaml")).expect("policies.yaml");
    let manifests = parse_manifests("policies.yaml", &text).expect("policies parse");
    let rendered = render_all("policies.yaml", &manifests).expect("policies render");
    // Pods created by controllers carry no namespace; the request names it (`shop` here).
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "shop".into());
    let labels: BTreeMap<String, String> = pod.metadata.labels.clone().unwrap_or_default();
    let policies = matching_policies(&namespace, &labels, &rendered);
    let workload = palisade_operator::webhook::workload::direct(&pod);
    inject(&pod, &policies, &config(mode), workload.as_deref())
}

fn record(outcome: &InjectOutcome, mode: Mode) -> Value {
    let native = matches!(mode, Mode::Native);
    match outcome {
        InjectOutcome::Patch { patch, warnings } => json!({
            "nativeSidecars": native,
            "outcome": "Patch",
            "warnings": warnings,
            "patch": patch,
        }),
        InjectOutcome::Skip { reason, patch } => json!({
            "nativeSidecars": native,
            "outcome": "Skip",
            "reason": reason.to_string(),
            "patch": patch,
        }),
    }
}

fn check_case(case: &str, mode: Mode) {
    let dir = golden_dir();
    let pod_yaml = std::fs::read_to_string(dir.join("pods").join(format!("{case}.yaml")))
        .unwrap_or_else(|e| panic!("{case}.yaml: {e}"));
    let pod_json: Value = serde_yaml::from_str(&pod_yaml).expect("pod YAML");
    let outcome = run_inject(&pod_json, mode);
    let actual = serde_json::to_string_pretty(&record(&outcome, mode)).expect("json") + "\n";

    let expected_path = dir.join("patches").join(format!("{case}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(dir.join("patches")).expect("mkdir");
        std::fs::write(&expected_path, &actual).expect("write golden");
    } else {
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}\nrun UPDATE_GOLDEN=1 cargo test -p palisade-operator --test webhook_golden to create it",
                expected_path.display()
            )
        });
        if expected != actual {
            panic!(
                "{case}: injection differs from {} (- expected, + actual):\n{}\nIf the change is intended: UPDATE_GOLDEN=1 cargo test -p palisade-operator --test webhook_golden",
                expected_path.display(),
                line_diff(&expected, &actual)
            );
        }
    }

    // The patch applies to the pod as the API server would apply it.
    let mut patched = pod_json.clone();
    json_patch::patch(&mut patched, outcome.patch()).unwrap_or_else(|e| panic!("{case}: {e}"));
    let pod: Pod = serde_json::from_value(patched.clone())
        .unwrap_or_else(|e| panic!("{case}: patched pod does not parse: {e}"));
    check_pod_shape(case, &pod);
    if let InjectOutcome::Patch { .. } = outcome {
        let spec = pod.spec.as_ref().expect("spec");
        let sidecar = match mode {
            Mode::Native => spec.init_containers.iter().flatten().next(),
            Mode::Regular => spec.containers.first(),
        };
        assert_eq!(
            sidecar.map(|c| c.name.as_str()),
            Some(SIDECAR_NAME),
            "{case}: sidecar is not first"
        );
    }

    // Injecting the injected pod again changes nothing.
    let again = run_inject(&patched, mode);
    let mut twice = patched.clone();
    json_patch::patch(&mut twice, again.patch()).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(twice, patched, "{case}: a second injection changed the pod");
    if let InjectOutcome::Patch { .. } = outcome {
        assert!(
            matches!(again, InjectOutcome::Skip { .. }),
            "{case}: the injected pod was injected again"
        );
    }
}

/// What the API server's validation would reject and we can check offline.
fn check_pod_shape(case: &str, pod: &Pod) {
    let spec = pod.spec.as_ref().expect("spec");
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let unique: BTreeSet<&str> = volumes.iter().copied().collect();
    assert_eq!(
        unique.len(),
        volumes.len(),
        "{case}: duplicate volume names"
    );
    for v in &volumes {
        assert!(
            v.len() <= 63
                && v.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !v.starts_with('-')
                && !v.ends_with('-'),
            "{case}: volume name {v} is not a DNS label"
        );
    }
    let containers: Vec<_> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect();
    let names: BTreeSet<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names.len(),
        containers.len(),
        "{case}: duplicate container names"
    );
    for c in &containers {
        for m in c.volume_mounts.iter().flatten() {
            assert!(
                unique.contains(m.name.as_str()),
                "{case}: container {} mounts unknown volume {}",
                c.name,
                m.name
            );
        }
    }
    // Only init containers may carry a restartPolicy.
    for c in &spec.containers {
        assert!(
            c.restart_policy.is_none(),
            "{case}: {} has restartPolicy",
            c.name
        );
    }
}

/// A small line diff (longest common subsequence) showing changed lines with three lines of
/// context, enough for golden files.
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut lines: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', a[i]));
            i += 1;
        } else {
            lines.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].0 != ' ').collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= 3);
    let mut out = String::new();
    let mut skipped = false;
    for (k, (tag, line)) in lines.iter().enumerate() {
        if near(k) {
            if skipped {
                out.push_str("  ...\n");
                skipped = false;
            }
            out.push_str(&format!("{tag} {line}\n"));
        } else {
            skipped = true;
        }
    }
    out
}

macro_rules! golden {
    ($($test:ident: $case:literal, $mode:ident;)*) => {
        $(
            #[test]
            fn $test() {
                check_case($case, Mode::$mode);
            }
        )*

        /// Every pod file has a case, so a new file cannot be silently ignored.
        #[test]
        fn every_pod_file_has_a_case() {
            let cases: BTreeSet<&str> = [$($case),*].into_iter().collect();
            let files: BTreeSet<String> = std::fs::read_dir(golden_dir().join("pods"))
                .expect("pods dir")
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".yaml").map(String::from))
                .collect();
            let files: BTreeSet<&str> = files.iter().map(String::as_str).collect();
            assert_eq!(cases, files);
        }
    };
}

golden! {
    golden_no_volumes: "no-volumes", Native;
    golden_existing_volumes_and_annotations: "existing-volumes-and-annotations", Native;
    golden_existing_init_containers: "existing-init-containers", Native;
    golden_regular_sidecar: "regular-sidecar", Regular;
    golden_job_regular_sidecar: "job-regular-sidecar", Regular;
    golden_already_injected: "already-injected", Native;
    golden_host_network: "host-network", Native;
    golden_two_matching_policies: "two-matching-policies", Native;
    golden_same_listen_port: "same-listen-port", Native;
    golden_no_matching_policy: "no-matching-policy", Native;
    golden_port_in_use: "port-in-use", Native;
    golden_policy_with_secrets: "policy-with-secrets", Native;
    golden_generate_name: "generate-name", Native;
    golden_not_opted_in: "not-opted-in", Native;
    golden_long_policy_name: "long-policy-name", Native;
}
