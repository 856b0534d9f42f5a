//! Against a real API server (`kubectl` context from KUBECONFIG): the CRDs install — the
//! server accepts their schemas and estimates every CEL rule within its cost budget — and
//! the server itself rejects invalid objects with the rules' messages. Run on kind by
//! `tests/kind/run.sh`, or by hand: `cargo test -p palisade-operator --test cluster_crds -- --ignored`.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use palisade_policy::{DatabasePolicy, MaskingRule};

async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("palisade-operator-test").force();
    for crd in palisade_policy::crds().unwrap() {
        crds.patch(&crd.name_any(), &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("the API server refused CRD {}: {e}", crd.name_any()));
    }
    // Wait until the API server serves them.
    for _ in 0..60 {
        let served: Api<DatabasePolicy> = Api::all(client.clone());
        if served.list(&Default::default()).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("CRDs not served after 30s");
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn the_api_server_accepts_the_crds_and_enforces_their_rules() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await.unwrap();
    install_crds(&client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = "palisade-crd-test";
    let _ = namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await;

    let policies: Api<DatabasePolicy> = Api::namespaced(client.clone(), ns);
    let bad: DatabasePolicy = serde_yaml::from_str(&format!(
        "apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {{name: bad, namespace: {ns}}}\nspec:\n  database: {{host: db}}\n  rules:\n  - {{name: a, action: RequireApproval}}\n"
    ))
    .unwrap();
    let err = policies
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("approval is required when action is RequireApproval"),
        "{err}"
    );

    let rules: Api<MaskingRule> = Api::namespaced(client.clone(), ns);
    let bad: MaskingRule = serde_yaml::from_str(&format!(
        "apiVersion: palisade.dev/v1alpha1\nkind: MaskingRule\nmetadata: {{name: bad, namespace: {ns}}}\nspec:\n  columns:\n  - {{table: t, column: c, mask: {{type: Partial, keepFirst: 0}}}}\n"
    ))
    .unwrap();
    let err = rules
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Partial masks keep at least one character"),
        "{err}"
    );

    // The shipped examples are accepted as written (including `type: Null` unquoted).
    for file in ["databasepolicy.yaml", "maskingrule.yaml"] {
        let text =
            std::fs::read_to_string(format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        let mut object: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        object["metadata"]["namespace"] = ns.into();
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            client.clone(),
            ns,
            &if file.starts_with("database") {
                kube::api::ApiResource::erase::<DatabasePolicy>(&())
            } else {
                kube::api::ApiResource::erase::<MaskingRule>(&())
            },
        );
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        api.patch(
            &name,
            &PatchParams::apply("palisade-operator-test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("{file} refused: {e}"));
    }
    let _ = namespaces.delete(ns, &DeleteParams::default()).await;
}
