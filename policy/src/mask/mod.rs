//! Masking values as they stream: type-true masks for one field, and content detectors.
