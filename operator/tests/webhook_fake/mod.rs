//! A small in-memory Kubernetes API server for the webhook's tests, behind a real
//! `kube::Client`: the version endpoint, Secrets of one namespace (get, create, replace with
//! resourceVersion checks), MutatingWebhookConfigurations (get, JSON patch, list, watch) and
//! DatabasePolicies/MaskingRules (list, watch). Watches stay open and carry events the test
//! pushes, so cache updates and `caBundle` repairs are tested as they happen in a cluster.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;

type Body = UnsyncBoxBody<Bytes, Infallible>;

const SECRETS: &str = "/api/v1/namespaces/palisade-system/secrets";
const CONFIGS: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
const POLICIES: &str = "/apis/palisade.dev/v1alpha1/databasepolicies";
const RULES: &str = "/apis/palisade.dev/v1alpha1/maskingrules";

#[derive(Default)]
pub struct State {
    pub minor_version: String,
    pub secrets: BTreeMap<String, Value>,
    pub config: Option<Value>,
    pub policies: Vec<Value>,
    pub masking_rules: Vec<Value>,
    /// Served instead of the first Secret create, which then fails with AlreadyExists: another
    /// replica winning the race.
    pub race_winner: Option<Value>,
    /// Lists of DatabasePolicies fail (an API server that cannot serve them).
    pub fail_policy_lists: bool,
    pub resource_version: u64,
    /// `METHOD path?query` of every request, in order.
    pub requests: Vec<String>,
    watchers: BTreeMap<&'static str, Vec<mpsc::UnboundedSender<Value>>>,
}

#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    pub fn new() -> Self {
        let api = FakeApi::default();
        api.state().minor_version = "31".into();
        api
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn client(&self) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.handle(req).await) }
        });
        kube::Client::new(service, "default")
    }

    /// Stores `object` (a DatabasePolicy or MaskingRule) and tells open watches.
    pub fn add_object(&self, object: Value) {
        let mut state = self.state();
        let object = stamp(&mut state, object);
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let path = if kind == "MaskingRule" {
            RULES
        } else {
            POLICIES
        };
        if kind == "MaskingRule" {
            state.masking_rules.push(object.clone());
        } else {
            state.policies.push(object.clone());
        }
        notify(&mut state, path, "ADDED", object);
    }

    /// Replaces the webhook configuration (as `kubectl apply` or `helm upgrade` would) and
    /// tells open watches.
    pub fn set_config(&self, config: Value) {
        let mut state = self.state();
        let config = stamp(&mut state, config);
        state.config = Some(config.clone());
        notify(&mut state, CONFIGS, "MODIFIED", config);
    }

    pub fn secret(&self, name: &str) -> Option<Value> {
        self.state().secrets.get(name).cloned()
    }

    /// A Secret data key, decoded.
    pub fn secret_data(&self, name: &str, key: &str) -> Option<Vec<u8>> {
        let secret = self.secret(name)?;
        let b: k8s_openapi::ByteString =
            serde_json::from_value(secret["data"][key].clone()).ok()?;
        Some(b.0)
    }

    /// The caBundle of webhook `index`, decoded.
    pub fn ca_bundle(&self, index: usize) -> Option<Vec<u8>> {
        let config = self.state().config.clone()?;
        let value = config["webhooks"][index]["clientConfig"]["caBundle"].clone();
        if value.is_null() {
            return None;
        }
        let b: k8s_openapi::ByteString = serde_json::from_value(value).ok()?;
        Some(b.0)
    }

    async fn handle(&self, req: Request<kube::client::Body>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let mut state = self.state();
        state.requests.push(format!("{method} {path}?{query}"));
        let watch = query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1");

        if method == Method::GET && path == "/version" {
            let minor = state.minor_version.clone();
            return json_response(
                StatusCode::OK,
                &json!({
                    "major": "1", "minor": minor, "gitVersion": format!("v1.{minor}.2"),
                    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                    "buildDate": "2026-01-15T00:00:00Z", "goVersion": "go1.24.1",
                    "compiler": "gc", "platform": "linux/amd64"
                }),
            );
        }
        for (collection, kind) in [(POLICIES, "DatabasePolicy"), (RULES, "MaskingRule")] {
            if method == Method::GET && path == collection {
                if watch {
                    return watch_response(&mut state, collection);
                }
                if kind == "DatabasePolicy" && state.fail_policy_lists {
                    return status(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalError",
                        "etcd is down",
                    );
                }
                let items = if kind == "DatabasePolicy" {
                    state.policies.clone()
                } else {
                    state.masking_rules.clone()
                };
                return list_response(
                    &state,
                    &format!("{kind}List"),
                    "palisade.dev/v1alpha1",
                    items,
                );
            }
        }
        if path == CONFIGS && method == Method::GET {
            if watch {
                return watch_response(&mut state, CONFIGS);
            }
            let items = state.config.iter().cloned().collect();
            return list_response(
                &state,
                "MutatingWebhookConfigurationList",
                "admissionregistration.k8s.io/v1",
                items,
            );
        }
        if let Some(name) = path.strip_prefix(&format!("{CONFIGS}/")) {
            let current = state
                .config
                .clone()
                .filter(|c| c["metadata"]["name"] == name);
            let Some(mut config) = current else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "mutatingwebhookconfigurations not found",
                );
            };
            if method == Method::GET {
                return json_response(StatusCode::OK, &config);
            }
            if method == Method::PATCH {
                let Ok(patch) = serde_json::from_slice::<json_patch::Patch>(&body) else {
                    return status(StatusCode::BAD_REQUEST, "BadRequest", "not a JSON patch");
                };
                if let Err(e) = json_patch::patch(&mut config, &patch) {
                    return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e.to_string());
                }
                let config = stamp(&mut state, config);
                state.config = Some(config.clone());
                notify(&mut state, CONFIGS, "MODIFIED", config.clone());
                return json_response(StatusCode::OK, &config);
            }
        }
        if path == SECRETS && method == Method::POST {
            let Ok(secret) = serde_json::from_slice::<Value>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON");
            };
            let name = secret["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(winner) = state.race_winner.take() {
                let winner = stamp(&mut state, winner);
                state.secrets.insert(name, winner);
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    "secrets already exists",
                );
            }
            if state.secrets.contains_key(&name) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    "secrets already exists",
                );
            }
            let secret = stamp(&mut state, secret);
            state.secrets.insert(name, secret.clone());
            return json_response(StatusCode::CREATED, &secret);
        }
        if let Some(name) = path.strip_prefix(&format!("{SECRETS}/")) {
            let name = name.to_string();
            let Some(current) = state.secrets.get(&name).cloned() else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("secrets \"{name}\" not found"),
                );
            };
            if method == Method::GET {
                return json_response(StatusCode::OK, &current);
            }
            if method == Method::PUT {
                let Ok(secret) = serde_json::from_slice::<Value>(&body) else {
                    return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON");
                };
                if secret["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                    return status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        "the object has been modified",
                    );
                }
                let secret = stamp(&mut state, secret);
                state.secrets.insert(name, secret.clone());
                return json_response(StatusCode::OK, &secret);
            }
        }
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{method} {path} is not faked"),
        )
    }
}

/// Sets a new resourceVersion (and a namespace-less object's uid) like etcd would.
fn stamp(state: &mut State, mut object: Value) -> Value {
    state.resource_version += 1;
    object["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
    if object["metadata"]["uid"].is_null() {
        object["metadata"]["uid"] = json!(format!(
            "00000000-0000-4000-8000-{:012}",
            state.resource_version
        ));
    }
    object
}

fn notify(state: &mut State, path: &'static str, kind: &str, object: Value) {
    if let Some(watchers) = state.watchers.get_mut(path) {
        let event = json!({"type": kind, "object": object});
        watchers.retain(|w| w.send(event.clone()).is_ok());
    }
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn list_response(
    state: &State,
    kind: &str,
    api_version: &str,
    items: Vec<Value>,
) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({"kind": kind, "apiVersion": api_version,
                "metadata": {"resourceVersion": state.resource_version.to_string()},
                "items": items}),
    )
}

/// A watch that stays open: one JSON event per line, pushed by [`notify`].
fn watch_response(state: &mut State, path: &'static str) -> Response<Body> {
    let (tx, rx) = mpsc::unbounded_channel::<Value>();
    state.watchers.entry(path).or_default().push(tx);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(line))), rx))
    });
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream.boxed())));
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
