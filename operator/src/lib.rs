//! Palisade's Kubernetes operator: reconciles DatabasePolicy and MaskingRule resources into
//! rendered-policy ConfigMaps and injects the sidecar into pods that opt in.

pub mod webhook;
