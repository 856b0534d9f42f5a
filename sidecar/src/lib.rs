//! The Palisade sidecar: a PostgreSQL wire proxy that sits beside an app, speaks the
//! protocol to it on loopback and to the real database over verified TLS.

pub mod admin;
pub mod approvals;
pub mod cancel;
pub mod config;
pub mod conn;
pub mod govern;
pub mod masking;
pub mod metrics;
pub mod oidc;
pub mod protocol;
pub mod relay;
pub mod server;
pub mod session;
pub mod syntax;
pub mod tls;
pub mod upstream;
pub mod verdict;
