//! A throwaway OpenID Connect issuer for the tests and the quickstart: one P-256 key, the
//! JWKS a policy's `spec.identity.oidc.jwksSecretRef` holds, and ID tokens signed with it
//! (ES256) in the shape identity providers issue them. It stands in for Okta or Dex where
//! only the tokens matter; the sidecar verifies them exactly as it verifies theirs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// The audience the tests' policies accept.
pub const AUDIENCE: &str = "palisade";

pub struct Issuer {
    url: String,
    kid: String,
    pkcs8: Vec<u8>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Issuer {
    /// A new issuer at `url` with a fresh key.
    pub fn generate(url: &str) -> Result<Issuer> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow!("generating a P-256 key failed"))?;
        Issuer::from_pkcs8(url, pkcs8.as_ref())
    }

    /// The issuer at `url` whose key is `pkcs8` (as [`Issuer::pkcs8`] gave it).
    pub fn from_pkcs8(url: &str, pkcs8: &[u8]) -> Result<Issuer> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|e| anyhow!("not a P-256 PKCS#8 key: {e}"))?;
        let kid = URL_SAFE_NO_PAD.encode(
            &ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref()).as_ref()[..8],
        );
        Ok(Issuer {
            url: url.to_string(),
            kid,
            pkcs8: pkcs8.to_vec(),
            key,
            rng,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The private key, PKCS#8 DER.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The issuer's JSON Web Key Set (its public key).
    pub fn jwks(&self) -> String {
        let point = self.key.public_key().as_ref();
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }]})
        .to_string()
    }

    /// The claims of an ID token for `email` in `groups`, for [`AUDIENCE`], valid for an hour.
    pub fn id_token_claims(&self, email: &str, groups: &[&str]) -> Value {
        let now = unix(SystemTime::now());
        json!({
            "iss": self.url, "sub": format!("user-{email}"), "aud": AUDIENCE,
            "email": email, "email_verified": true, "groups": groups,
            "iat": now, "nbf": now, "exp": now + 3600,
        })
    }

    /// An ID token for `email` in `groups` (tests: a key that loaded signs).
    pub fn id_token(&self, email: &str, groups: &[&str]) -> String {
        self.sign(self.id_token_claims(email, groups))
            .unwrap_or_else(|e| panic!("signing a test token: {e}"))
    }

    /// A token with exactly these claims.
    pub fn sign(&self, claims: Value) -> Result<String> {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow!("signing failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Reads an issuer saved by `dev-issuer init`.
pub fn load(dir: &std::path::Path) -> Result<Issuer> {
    let url = std::fs::read_to_string(dir.join("issuer"))
        .with_context(|| format!("{}/issuer", dir.display()))?;
    let key =
        std::fs::read(dir.join("key.pk8")).with_context(|| format!("{}/key.pk8", dir.display()))?;
    Issuer::from_pkcs8(url.trim(), &key)
}
