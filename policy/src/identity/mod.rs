//! Who a client is, verified: OIDC ID tokens sent as the password, checked offline against
//! the issuer's JWKS (SPEC §2.1 `identity.oidc`).
//!
//! - [`looks_like_jwt`] tells a token from a database password;
//! - [`TokenVerifier`] verifies one and yields a [`VerifiedToken`] (user, groups, expiry),
//!   which [`VerifiedToken::apply_to`] puts on a session's [`crate::decision::Identity`];
//! - [`TokenError`] and [`JwksError`] say what was wrong, never echoing the token.

mod claims;
mod error;
mod jwks;
mod oidc;
mod ring_provider;
mod token;

pub use claims::CLOCK_SKEW;
pub use error::{JwksError, Shown, TokenError};
pub use jwks::{KeyAlg, KeySet, UsableKey};
pub use oidc::{TokenVerifier, VerifiedToken};
pub use token::{MAX_TOKEN_BYTES, looks_like_jwt};
