//! The admission webhook server: sidecar injection into pods.
