//! The `caBundle` of the operator's MutatingWebhookConfiguration, self-managed mode: what the
//! API server trusts when it calls the webhook. Pure functions; `selfmanaged.rs` does the I/O.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, TestOperation};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

/// The JSON patch that sets `caBundle` to `bundle_pem` on every webhook whose value differs,
/// or `None` when all are current. Each change is guarded by a `test` of the webhook's name,
/// so a configuration reordered between our read and our patch (e.g. by `helm upgrade`) makes
/// the patch fail instead of writing the bundle into the wrong webhook; the next pass re-reads.
pub fn ca_bundle_patch(config: &MutatingWebhookConfiguration, bundle_pem: &[u8]) -> Option<Patch> {
    let mut ops = Vec::new();
    for (i, webhook) in config.webhooks.iter().flatten().enumerate() {
        let current = webhook
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice());
        if current == Some(bundle_pem) {
            continue;
        }
        let index = i.to_string();
        ops.push(PatchOperation::Test(TestOperation {
            path: PointerBuf::from_tokens(["webhooks", index.as_str(), "name"]),
            value: Value::String(webhook.name.clone()),
        }));
        // `add` sets the member whether or not it exists; `clientConfig` itself is required.
        ops.push(PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["webhooks", index.as_str(), "clientConfig", "caBundle"]),
            // ByteString serialises as base64, the wire form of `[]byte` fields.
            value: serde_json::to_value(ByteString(bundle_pem.to_vec())).unwrap_or(Value::Null),
        }));
    }
    (!ops.is_empty()).then_some(Patch(ops))
}

/// Whether every webhook of the configuration trusts the CA with certificate `ca_der`. A
/// configuration without webhooks trusts nothing.
pub fn trusted_everywhere(config: &MutatingWebhookConfiguration, ca_der: &[u8]) -> bool {
    let webhooks = config.webhooks.as_deref().unwrap_or_default();
    !webhooks.is_empty()
        && webhooks.iter().all(|w| {
            w.client_config.ca_bundle.as_ref().is_some_and(|b| {
                CertificateDer::pem_slice_iter(&b.0)
                    .filter_map(Result::ok)
                    .any(|c| c.as_ref() == ca_der)
            })
        })
}
