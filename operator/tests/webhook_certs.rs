//! Webhook TLS without waiting a year: rotation decisions at chosen instants, the Secret
//! encoding, the caBundle patch, and cert-manager mode's file reload.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use palisade_operator::webhook::cabundle::{ca_bundle_patch, trusted_everywhere};
use palisade_operator::webhook::certdir::watch_cert_dir;
use palisade_operator::webhook::certs::{
    CA_LIFETIME, CertBundle, CertResolver, Change, DAY, LEAF_LIFETIME, LeafReason, PROPAGATION,
    Validity, new_ca, new_leaf, reconcile, service_dns_names,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn names() -> Vec<String> {
    service_dns_names("palisade-webhook", "palisade-system")
}

fn nobody_trusts(_: &palisade_operator::webhook::certs::Ca) -> Option<i64> {
    None
}

#[test]
fn renewal_is_due_at_two_thirds_of_the_lifetime() {
    let v = Validity {
        not_before: 0,
        not_after: 90 * DAY,
    };
    assert_eq!(v.renew_at(), 60 * DAY);
    assert!(!v.needs_renewal(60 * DAY - 1));
    assert!(v.needs_renewal(60 * DAY));
    assert!(!v.expired(90 * DAY - 1));
    assert!(v.expired(90 * DAY));
}

#[test]
fn first_pass_creates_a_ca_and_a_leaf_for_the_service_names() {
    let (bundle, changes) = reconcile(T0, None, &names(), &nobody_trusts).unwrap();
    assert_eq!(changes, [Change::Created]);
    assert_eq!(bundle.cas.len(), 1);
    assert_eq!(bundle.leaf_issuer(), Some(0));
    assert_eq!(
        bundle.leaf.dns_names,
        [
            "palisade-webhook.palisade-system.svc",
            "palisade-webhook.palisade-system.svc.cluster.local"
        ]
    );
    assert_eq!(bundle.cas[0].validity.not_after, T0 + CA_LIFETIME);
    assert_eq!(bundle.leaf.validity.not_after, T0 + LEAF_LIFETIME);
    // Backdated for API servers whose clocks run behind.
    assert!(bundle.leaf.validity.not_before < T0);
    // rustls accepts it as a server certificate and key.
    bundle.certified_key().unwrap();
}

#[test]
fn nothing_changes_before_renewal_time() {
    let (bundle, _) = reconcile(T0, None, &names(), &nobody_trusts).unwrap();
    let at = bundle.leaf.validity.renew_at() - 1;
    let (same, changes) = reconcile(at, Some(bundle.clone()), &names(), &nobody_trusts).unwrap();
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(same, bundle);
}

#[test]
fn the_leaf_is_renewed_at_two_thirds_by_the_same_ca() {
    let (bundle, _) = reconcile(T0, None, &names(), &nobody_trusts).unwrap();
    let at = bundle.leaf.validity.renew_at();
    let (renewed, changes) = reconcile(at, Some(bundle.clone()), &names(), &nobody_trusts).unwrap();
    assert_eq!(changes, [Change::LeafRenewed(LeafReason::Expiring)]);
    assert_eq!(renewed.cas, bundle.cas);
    assert_ne!(renewed.leaf, bundle.leaf);
    assert_eq!(renewed.leaf.validity.not_after, at + LEAF_LIFETIME);
}

#[test]
fn a_new_service_name_renews_the_leaf() {
    let (bundle, _) = reconcile(T0, None, &names(), &nobody_trusts).unwrap();
    let other = service_dns_names("palisade-webhook", "security");
    let (renewed, changes) = reconcile(T0 + DAY, Some(bundle), &other, &nobody_trusts).unwrap();
    assert_eq!(changes, [Change::LeafRenewed(LeafReason::NamesChanged)]);
    assert_eq!(renewed.leaf.dns_names, other);
}

/// The CA rotation timeline: new CA staged next to the old one, leaves switch only after the
/// new CA has been trusted everywhere for PROPAGATION, the old CA leaves when it expires.
#[test]
fn ca_rotation_overlaps_and_switches_only_once_trusted() {
    let (bundle, _) = reconcile(T0, None, &names(), &nobody_trusts).unwrap();
    let old_ca = bundle.cas[0].clone();
    let rotate_at = old_ca.validity.renew_at();

    // Just before: the CA stays (the leaf, long overdue in this jump, is renewed by it).
    let (before, changes) = reconcile(
        rotate_at - 1,
        Some(bundle.clone()),
        &names(),
        &nobody_trusts,
    )
    .unwrap();
    assert_eq!(changes, [Change::LeafRenewed(LeafReason::Expiring)]);
    assert_eq!(before.cas.len(), 1);

    // At 2/3 of the CA's life: a new CA joins, first in the bundle; the leaf stays with the
    // old CA because no API server trusts the new one yet.
    let (staged, changes) = reconcile(rotate_at, Some(before), &names(), &nobody_trusts).unwrap();
    assert_eq!(changes, [Change::CaAdded]);
    assert_eq!(staged.cas.len(), 2);
    assert_eq!(staged.cas[1], old_ca);
    assert_eq!(staged.leaf_issuer(), Some(1));
    let new_ca = staged.cas[0].clone();
    assert!(staged.ca_bundle_pem().starts_with(&new_ca.cert_pem));
    assert!(staged.ca_bundle_pem().ends_with(&old_ca.cert_pem));

    // Trusted since `published`, but not for long enough: no switch.
    let published = rotate_at + 60;
    let trusted =
        |ca: &palisade_operator::webhook::certs::Ca| (ca.der == new_ca.der).then_some(published);
    let (waiting, changes) = reconcile(
        published + PROPAGATION - 1,
        Some(staged.clone()),
        &names(),
        &trusted,
    )
    .unwrap();
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(waiting.leaf_issuer(), Some(1));

    // Long enough: the leaf is re-issued by the new CA; both CAs stay.
    let (switched, changes) =
        reconcile(published + PROPAGATION, Some(waiting), &names(), &trusted).unwrap();
    assert_eq!(changes, [Change::LeafRenewed(LeafReason::NewCa)]);
    assert_eq!(switched.leaf_issuer(), Some(0));
    assert_eq!(switched.cas.len(), 2);

    // The old CA leaves the bundle when it expires.
    let (pruned, changes) = reconcile(
        old_ca.validity.not_after,
        Some(switched),
        &names(),
        &trusted,
    )
    .unwrap();
    // (The leaf, which this jump in time made due too, is renewed by the CA that remains.)
    assert_eq!(changes[0], Change::CaDropped(1));
    assert_eq!(pruned.cas, [new_ca]);
    assert_eq!(pruned.leaf_issuer(), Some(0));
}

#[test]
fn a_leaf_never_outlives_its_ca() {
    let ca = new_ca(T0).unwrap();
    let late = ca.validity.not_after - 10 * DAY;
    let leaf = new_leaf(late, &ca, &names()).unwrap();
    assert_eq!(leaf.validity.not_after, ca.validity.not_after);
}

#[test]
fn a_leaf_whose_ca_left_the_bundle_is_reissued() {
    let (mut bundle, _) = reconcile(T0, None, &names(), &nobody_trusts).unwrap();
    bundle.cas = vec![new_ca(T0).unwrap()];
    let (fixed, changes) = reconcile(T0 + 1, Some(bundle), &names(), &nobody_trusts).unwrap();
    assert_eq!(changes, [Change::LeafRenewed(LeafReason::IssuerGone)]);
    assert_eq!(fixed.leaf_issuer(), Some(0));
}

#[test]
fn the_secret_round_trips_and_rejects_mismatched_keys() {
    let (bundle, _) = reconcile(T0, None, &names(), &nobody_trusts).unwrap();
    let ca2 = new_ca(T0 + 1).unwrap();
    let two = CertBundle {
        cas: vec![ca2.clone(), bundle.cas[0].clone()],
        leaf: bundle.leaf.clone(),
    };
    let data = two.to_secret_data();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    );
    assert_eq!(CertBundle::from_secret_data(&data).unwrap(), two);

    // Keys in the wrong order do not belong to their certificates.
    let mut swapped = data.clone();
    let keys = format!("{}{}", bundle.cas[0].key_pem, ca2.key_pem);
    swapped.insert("ca.key".into(), k8s_openapi::ByteString(keys.into_bytes()));
    let err = CertBundle::from_secret_data(&swapped)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not belong"), "{err}");

    let mut missing = data;
    missing.remove("tls.key");
    let err = CertBundle::from_secret_data(&missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls.key"), "{err}");
}

fn config(webhooks: serde_json::Value) -> MutatingWebhookConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "palisade"},
        "webhooks": webhooks,
    }))
    .unwrap()
}

fn webhook(name: &str, ca_bundle: Option<&[u8]>) -> serde_json::Value {
    let mut w = json!({
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {"service": {"name": "palisade-webhook", "namespace": "palisade-system", "path": "/inject", "port": 443}},
    });
    if let Some(b) = ca_bundle {
        w["clientConfig"]["caBundle"] =
            serde_json::to_value(k8s_openapi::ByteString(b.to_vec())).unwrap();
    }
    w
}

#[test]
fn ca_bundle_patch_sets_only_stale_webhooks_guarded_by_their_names() {
    use base64::Engine;
    let bundle = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let cfg = config(json!([
        webhook("inject.palisade.dev", Some(bundle)),
        webhook("approvals.palisade.dev", None),
        webhook("other.palisade.dev", Some(b"stale")),
    ]));
    let patch = ca_bundle_patch(&cfg, bundle).expect("two webhooks are stale");
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle);
    assert_eq!(
        serde_json::to_value(&patch).unwrap(),
        json!([
            {"op": "test", "path": "/webhooks/1/name", "value": "approvals.palisade.dev"},
            {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": encoded},
            {"op": "test", "path": "/webhooks/2/name", "value": "other.palisade.dev"},
            {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": encoded},
        ])
    );
    let mut doc = serde_json::to_value(&cfg).unwrap();
    json_patch::patch(&mut doc, &patch).unwrap();
    let patched: MutatingWebhookConfiguration = serde_json::from_value(doc.clone()).unwrap();
    assert!(ca_bundle_patch(&patched, bundle).is_none());

    // Reordered between read and patch (helm upgrade): the guard fails the whole patch.
    let mut reordered = serde_json::to_value(&cfg).unwrap();
    reordered["webhooks"].as_array_mut().unwrap().swap(1, 2);
    assert!(json_patch::patch(&mut reordered, &patch).is_err());
}

#[test]
fn a_ca_counts_as_trusted_only_when_every_webhook_has_it() {
    let (bundle, _) = reconcile(T0, None, &names(), &nobody_trusts).unwrap();
    let ca = &bundle.cas[0];
    let pem = bundle.ca_bundle_pem();
    let other = new_ca(T0).unwrap();
    let both = format!("{}{}", other.cert_pem, ca.cert_pem);
    assert!(trusted_everywhere(
        &config(json!([
            webhook("a", Some(pem.as_bytes())),
            webhook("b", Some(both.as_bytes()))
        ])),
        &ca.der
    ));
    assert!(!trusted_everywhere(
        &config(json!([
            webhook("a", Some(pem.as_bytes())),
            webhook("b", None)
        ])),
        &ca.der
    ));
    assert!(!trusted_everywhere(
        &config(json!([webhook("a", Some(other.cert_pem.as_bytes()))])),
        &ca.der
    ));
    assert!(!trusted_everywhere(&config(json!([])), &ca.der));
}

fn served(resolver: &CertResolver) -> Option<Vec<u8>> {
    resolver.current().map(|k| k.cert[0].as_ref().to_vec())
}

async fn wait_for(resolver: &CertResolver, want: &[u8]) {
    for _ in 0..200 {
        if served(resolver).as_deref() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the resolver did not pick up the new certificate");
}

fn leaf_der(leaf: &palisade_operator::webhook::certs::Leaf) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

/// Writes the files the way the kubelet updates a Secret volume: new files in a fresh
/// directory, then an atomic rename of the `..data` symlink the visible names point through.
fn kubelet_write(dir: &std::path::Path, generation: u32, cert: &str, key: &str) {
    let versioned = dir.join(format!("..v{generation}"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join("tls.crt"), cert).unwrap();
    std::fs::write(versioned.join("tls.key"), key).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..v{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
}

#[tokio::test]
async fn cert_manager_files_are_reloaded_when_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(T0).unwrap();
    let first = new_leaf(T0, &ca, &names()).unwrap();
    let second = new_leaf(T0 + 1, &ca, &names()).unwrap();

    let resolver = Arc::new(CertResolver::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(watch_cert_dir(
        dir.path().to_path_buf(),
        resolver.clone(),
        Duration::from_millis(20),
        shutdown.clone(),
    ));

    // Files not there yet (cert-manager has not issued): nothing served, no crash.
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(resolver.current().is_none());

    kubelet_write(dir.path(), 1, &first.cert_pem, &first.key_pem);
    wait_for(&resolver, &leaf_der(&first)).await;

    kubelet_write(dir.path(), 2, &second.cert_pem, &second.key_pem);
    wait_for(&resolver, &leaf_der(&second)).await;

    // A broken update keeps the last good certificate.
    kubelet_write(dir.path(), 3, "not a certificate", &second.key_pem);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(served(&resolver), Some(leaf_der(&second)));

    shutdown.cancel();
    task.await.unwrap();
}
