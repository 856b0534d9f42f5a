//! Verifying an OIDC ID token offline: the policy's `identity.oidc` settings and the issuer's
//! JWKS in, a verified user and groups out.
//!
//! The order matters. The header is read only to find the key; the key decides the
//! algorithm, and a header that asks for another (`none`, `HS256` with the RSA key's bytes as
//! the secret, `ES256` against an RSA key) is refused before any signature check. Claims are
//! trusted only once the signature has verified.

use std::time::SystemTime;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode};
use serde_json::{Map, Value};

use super::claims::{self, Expected};
use super::error::{JwksError, Shown, TokenError};
use super::jwks::KeySet;
use super::ring_provider;
use super::token::read_header;
use crate::decision::Identity;
use crate::model::Oidc;

/// Verifies ID tokens from one issuer. Build a new one when the JWKS Secret changes.
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    issuer: String,
    audiences: Vec<String>,
    username_claim: String,
    groups_claim: String,
    keys: KeySet,
}

/// Who a verified token says the user is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// From the policy's `usernameClaim`.
    pub user: String,
    /// From the policy's `groupsClaim`; empty when the token lists none.
    pub groups: Vec<String>,
    /// The token's `exp`: the identity is not to be trusted past it.
    pub expires_at: SystemTime,
    /// The token's `sub`, when it has one (stable per user at the issuer; for audit).
    pub subject: Option<String>,
}

impl VerifiedToken {
    /// Puts the verified user and groups on a session's identity (rule `subjects`, approvals
    /// and audit read them there).
    pub fn apply_to(&self, identity: &mut Identity) {
        identity.user = Some(self.user.clone());
        identity.groups = self.groups.clone();
    }
}

impl TokenVerifier {
    /// A verifier for `oidc`, with the issuer's keys from `jwks` (the bytes of the Secret key
    /// `jwksSecretRef` names).
    pub fn new(oidc: &Oidc, jwks: &[u8]) -> Result<Self, JwksError> {
        ring_provider::install();
        Ok(TokenVerifier {
            issuer: oidc.issuer.clone(),
            audiences: oidc.audiences.clone(),
            username_claim: oidc.username_claim.clone(),
            groups_claim: oidc.groups_claim.clone(),
            keys: KeySet::parse(jwks)?,
        })
    }

    /// The issuer's usable keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Verifies `token` now.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        self.verify_at(token, SystemTime::now())
    }

    /// Verifies `token` as of `now`.
    pub fn verify_at(&self, token: &str, now: SystemTime) -> Result<VerifiedToken, TokenError> {
        let header = read_header(token)?;
        check_algorithm(&header.alg)?;
        let key = self.keys.find(header.kid.as_deref())?;
        // Named in refusals by the key's own kid: the token's may be absent.
        let kid = Shown::new(key.kid.as_deref().unwrap_or("(unnamed)"));
        if header.alg != key.alg.as_str() {
            return Err(TokenError::AlgorithmMismatch {
                alg: Shown::new(&header.alg),
                kid,
                key_alg: key.alg.as_str(),
            });
        }
        // jsonwebtoken checks the signature with exactly the key's algorithm; the claims are
        // checked below, with messages of our own and the caller's clock.
        let mut validation = Validation::new(key.alg.jwt());
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = decode::<Map<String, Value>>(token, &key.key, &validation).map_err(|e| {
            if ring_provider::is_bad_signature(&e) {
                return TokenError::BadSignature { kid: kid.clone() };
            }
            TokenError::Malformed {
                reason: match e.kind() {
                    ErrorKind::Base64(_) => "its payload or signature is not base64url",
                    ErrorKind::Json(_) | ErrorKind::Utf8(_) => "its payload is not a JSON object",
                    ErrorKind::InvalidToken => {
                        "its header asks for something not supported (crit or b64)"
                    }
                    _ => "it could not be decoded",
                },
            }
        })?;
        let checked = claims::check(
            &data.claims,
            &Expected {
                issuer: &self.issuer,
                audiences: &self.audiences,
                username_claim: &self.username_claim,
                groups_claim: &self.groups_claim,
            },
            now,
        )?;
        Ok(VerifiedToken {
            user: checked.user,
            groups: checked.groups,
            expires_at: checked.expires_at,
            subject: checked.subject,
        })
    }
}

/// Only asymmetric signatures by the issuer prove who issued a token. `none` proves nothing,
/// and an HMAC "signature" made with the issuer's public key as the secret is the classic
/// RS256/HS256 confusion: both are refused outright, not merely failed against a key.
fn check_algorithm(alg: &str) -> Result<(), TokenError> {
    match alg {
        "RS256" | "ES256" => Ok(()),
        a if a.eq_ignore_ascii_case("none") || a.to_ascii_uppercase().starts_with("HS") => {
            Err(TokenError::ForbiddenAlgorithm { alg: Shown::new(a) })
        }
        a => Err(TokenError::UnsupportedAlgorithm { alg: Shown::new(a) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_are_sorted_into_refusals() {
        assert!(check_algorithm("RS256").is_ok());
        assert!(check_algorithm("ES256").is_ok());
        for forbidden in ["none", "None", "NONE", "HS256", "HS512", "hs256"] {
            assert!(
                matches!(
                    check_algorithm(forbidden),
                    Err(TokenError::ForbiddenAlgorithm { .. })
                ),
                "{forbidden}"
            );
        }
        for unsupported in ["RS512", "PS256", "EdDSA", "ES384", "rs256", ""] {
            assert!(
                matches!(
                    check_algorithm(unsupported),
                    Err(TokenError::UnsupportedAlgorithm { .. })
                ),
                "{unsupported}"
            );
        }
    }

    #[test]
    fn a_verified_token_sets_user_and_groups() {
        let mut id = Identity {
            db_user: "analyst".into(),
            service_account: Some("ml/notebook".into()),
            ..Identity::default()
        };
        VerifiedToken {
            user: "alice@example.com".into(),
            groups: vec!["contractors".into()],
            expires_at: SystemTime::UNIX_EPOCH,
            subject: None,
        }
        .apply_to(&mut id);
        assert_eq!(id.user.as_deref(), Some("alice@example.com"));
        assert_eq!(id.groups, ["contractors"]);
        assert_eq!(id.db_user, "analyst");
        assert_eq!(id.service_account.as_deref(), Some("ml/notebook"));
    }
}
