//! The issuer's keys: a JWKS document (RFC 7517), as the IdP publishes it at its `jwks_uri`
//! and the user copies into the Secret `jwksSecretRef` names.
//!
//! Each key is judged on its own: keys for encryption, HMAC secrets, curves and algorithms
//! Palisade does not verify are skipped, with the reason kept for the error a token naming
//! them gets. Every usable key is pinned to one algorithm here, from the key itself (its
//! `kty`, `crv` and, where present, `alg`) — never from a token's header.

use jsonwebtoken::DecodingKey;
use jsonwebtoken::DecodingKeyKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use serde_json::Value;

use super::error::{JwksError, Shown, TokenError};

/// The algorithms a key can be pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Okta, Azure AD, Google, Keycloak's default).
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl KeyAlg {
    /// The JOSE name, as a token header writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Es256 => "ES256",
        }
    }

    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            KeyAlg::Rs256 => jsonwebtoken::Algorithm::RS256,
            KeyAlg::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

/// One key a token may be verified with.
#[derive(Clone)]
pub struct UsableKey {
    pub kid: Option<String>,
    pub alg: KeyAlg,
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for UsableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsableKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A parsed JWKS: the usable keys, and why the others were skipped.
#[derive(Clone, Debug)]
pub struct KeySet {
    keys: Vec<UsableKey>,
    /// (kid, reason) of each skipped key.
    skipped: Vec<(Option<String>, String)>,
}

/// RSA moduli ring verifies: 2048 to 8192 bits. Smaller keys are forgeable in practice.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

impl KeySet {
    /// Reads a JWKS document. Fails when it is not one, or holds no usable key.
    pub fn parse(bytes: &[u8]) -> Result<Self, JwksError> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| JwksError::NotJson {
            reason: e.to_string(),
        })?;
        let raw_keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeys)?;
        let mut set = KeySet {
            keys: Vec::new(),
            skipped: Vec::new(),
        };
        for (i, raw) in raw_keys.iter().enumerate() {
            let kid = raw.get("kid").and_then(Value::as_str).map(str::to_string);
            match usable(raw) {
                Ok((alg, key)) => {
                    if let Some(k) = &kid
                        && set.keys.iter().any(|u| u.kid.as_deref() == Some(k))
                    {
                        return Err(JwksError::DuplicateKeyId { kid: k.clone() });
                    }
                    set.keys.push(UsableKey { kid, alg, key });
                }
                Err(reason) => set.skipped.push((kid.or(Some(format!("#{i}"))), reason)),
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::NoUsableKeys {
                skipped: set
                    .skipped
                    .iter()
                    .map(|(kid, reason)| {
                        format!(
                            "key {}: {reason}",
                            Shown::new(kid.as_deref().unwrap_or("?"))
                        )
                    })
                    .collect(),
            });
        }
        Ok(set)
    }

    /// The usable keys, in the document's order.
    pub fn keys(&self) -> &[UsableKey] {
        &self.keys
    }

    /// The key a token's header names. A token without `kid` is verified only when there is
    /// exactly one usable key: guessing among several would let the token choose.
    pub fn find(&self, kid: Option<&str>) -> Result<&UsableKey, TokenError> {
        match kid {
            Some(kid) => {
                if let Some(key) = self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
                    return Ok(key);
                }
                match self.skipped.iter().find(|(k, _)| k.as_deref() == Some(kid)) {
                    Some((_, reason)) => Err(TokenError::UnusableKey {
                        kid: Shown::new(kid),
                        reason: reason.clone(),
                    }),
                    None => Err(TokenError::UnknownKeyId {
                        kid: Shown::new(kid),
                    }),
                }
            }
            None => match self.keys.as_slice() {
                [only] => Ok(only),
                keys => Err(TokenError::MissingKeyId { usable: keys.len() }),
            },
        }
    }
}

/// The algorithm and key of one JWK, or why it cannot verify ID tokens.
fn usable(raw: &Value) -> Result<(KeyAlg, DecodingKey), String> {
    let kty = raw.get("kty").and_then(Value::as_str).unwrap_or("");
    if let Some(use_) = raw.get("use")
        && use_.as_str() != Some("sig")
    {
        return Err(format!("its use is {use_}, not \"sig\""));
    }
    if let Some(ops) = raw.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
        if !verifies {
            return Err("its key_ops do not include \"verify\"".into());
        }
    }
    let jwk: Jwk =
        serde_json::from_value(raw.clone()).map_err(|e| format!("not a valid JWK ({e})"))?;
    let declared = jwk.common.key_algorithm;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(params) => {
            pinned(declared, KeyAlgorithm::RS256, "RSA")?;
            let key = DecodingKey::from_rsa_components(&params.n, &params.e)
                .map_err(|_| "its n or e is not base64url".to_string())?;
            if let DecodingKeyKind::RsaModulusExponent { n, .. } = key.kind() {
                let bits = modulus_bits(n);
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                    return Err(format!(
                        "its RSA modulus has {bits} bits; {RSA_MIN_BITS} to {RSA_MAX_BITS} are accepted"
                    ));
                }
            }
            Ok((KeyAlg::Rs256, key))
        }
        AlgorithmParameters::EllipticCurve(params) => {
            if params.curve != EllipticCurve::P256 {
                return Err(format!(
                    "EC keys on {:?} are not supported (P-256 is)",
                    params.curve
                ));
            }
            pinned(declared, KeyAlgorithm::ES256, "P-256")?;
            let key = DecodingKey::from_ec_components(&params.x, &params.y)
                .map_err(|_| "its x or y is not base64url".to_string())?;
            match key.kind() {
                DecodingKeyKind::SecretOrDer(point) if point.len() == 65 => Ok((KeyAlg::Es256, key)),
                _ => Err("its x and y are not 32 bytes each, as P-256 needs".into()),
            }
        }
        AlgorithmParameters::OctetKey(_) => Err(
            "symmetric (oct) keys are never accepted: a shared secret cannot show who issued a token"
                .into(),
        ),
        AlgorithmParameters::OctetKeyPair(_) => {
            Err("OKP (EdDSA) keys are not supported (RS256 and ES256 are)".into())
        }
        _ => Err(match kty {
            "RSA" => "an RSA key needs n and e".to_string(),
            "EC" => {
                let crv = raw.get("crv").and_then(Value::as_str).unwrap_or("?");
                format!("EC keys on {crv:?} are not supported (P-256 with x and y is)")
            }
            "" => "it has no kty".to_string(),
            other => format!("key type {other:?} is not supported (RSA and EC are)"),
        }),
    }
}

/// A key's `alg`, when it has one, must be the algorithm its type pins it to.
fn pinned(
    declared: Option<KeyAlgorithm>,
    expected: KeyAlgorithm,
    what: &str,
) -> Result<(), String> {
    match declared {
        None => Ok(()),
        Some(alg) if alg == expected => Ok(()),
        Some(alg) => Err(format!(
            "its alg is {alg:?}; {what} keys are verified as {expected:?} only"
        )),
    }
}

/// Bits of a big-endian unsigned integer.
fn modulus_bits(n: &[u8]) -> usize {
    let n = match n.iter().position(|b| *b != 0) {
        Some(first) => &n[first..],
        None => return 0,
    };
    n.len() * 8 - n[0].leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa(kid: &str, bytes: usize) -> Value {
        let mut n = vec![0xc5; bytes];
        n[0] = 0xd1;
        serde_json::json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": "AQAB"})
    }

    fn ec(kid: &str) -> Value {
        serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&[7; 32]), "y": b64(&[9; 32])})
    }

    fn parse(keys: Vec<Value>) -> Result<KeySet, JwksError> {
        KeySet::parse(serde_json::json!({ "keys": keys }).to_string().as_bytes())
    }

    #[test]
    fn keys_are_pinned_by_their_type() {
        let set = parse(vec![rsa("r", 256), ec("e")]).unwrap();
        let algs: Vec<_> = set
            .keys()
            .iter()
            .map(|k| (k.kid.as_deref(), k.alg))
            .collect();
        assert_eq!(
            algs,
            [(Some("r"), KeyAlg::Rs256), (Some("e"), KeyAlg::Es256)]
        );
    }

    #[test]
    fn unusable_keys_are_skipped_with_a_reason() {
        let mut enc = rsa("enc", 256);
        enc["use"] = "enc".into();
        let mut rs512 = rsa("rs512", 256);
        rs512["alg"] = "RS512".into();
        let mut es_alg_on_rsa = rsa("confused", 256);
        es_alg_on_rsa["alg"] = "ES256".into();
        let mut no_verify = rsa("ops", 256);
        no_verify["key_ops"] = serde_json::json!(["encrypt"]);
        let keys = vec![
            rsa("small", 128),
            enc,
            rs512,
            es_alg_on_rsa,
            no_verify,
            serde_json::json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            serde_json::json!({"kty": "EC", "crv": "P-384", "kid": "p384", "x": b64(&[1; 48]), "y": b64(&[2; 48])}),
            serde_json::json!({"kty": "EC", "crv": "secp256k1", "kid": "k1", "x": b64(&[1; 32]), "y": b64(&[2; 32])}),
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(&[1; 32])}),
            serde_json::json!({"kty": "RSA", "kid": "no-n", "e": "AQAB"}),
            rsa("good", 256),
        ];
        let set = parse(keys).unwrap();
        assert_eq!(set.keys().len(), 1);
        let reason = |kid: &str| set.find(Some(kid)).unwrap_err().to_string();
        assert!(reason("small").contains("1024 bits"), "{}", reason("small"));
        assert!(reason("enc").contains("not \"sig\""), "{}", reason("enc"));
        assert!(reason("rs512").contains("RS512"), "{}", reason("rs512"));
        assert!(
            reason("confused").contains("ES256"),
            "{}",
            reason("confused")
        );
        assert!(reason("ops").contains("verify"), "{}", reason("ops"));
        assert!(
            reason("hmac").contains("never accepted"),
            "{}",
            reason("hmac")
        );
        assert!(reason("p384").contains("P384"), "{}", reason("p384"));
        assert!(reason("k1").contains("secp256k1"), "{}", reason("k1"));
        assert!(reason("ed").contains("EdDSA"), "{}", reason("ed"));
        assert!(
            reason("no-n").contains("needs n and e"),
            "{}",
            reason("no-n")
        );
        assert!(
            reason("missing").contains("does not hold"),
            "{}",
            reason("missing")
        );
    }

    #[test]
    fn a_token_without_kid_needs_a_single_key() {
        let one = parse(vec![rsa("r", 256)]).unwrap();
        assert_eq!(one.find(None).unwrap().kid.as_deref(), Some("r"));
        let two = parse(vec![rsa("r", 256), ec("e")]).unwrap();
        assert_eq!(
            two.find(None).unwrap_err(),
            TokenError::MissingKeyId { usable: 2 }
        );
    }

    #[test]
    fn load_errors_say_what_is_wrong() {
        let msg = |bytes: &[u8]| KeySet::parse(bytes).unwrap_err().to_string();
        assert!(msg(b"not json").starts_with("the JWKS is not JSON: "));
        assert!(msg(b"{\"kty\": \"RSA\"}").contains("no \"keys\" array"));
        assert!(msg(b"{\"keys\": {}}").contains("no \"keys\" array"));
        let none = msg(b"{\"keys\": [{\"kty\": \"oct\", \"kid\": \"s\", \"k\": \"c2VjcmV0\"}]}");
        assert!(none.contains("no key usable"), "{none}");
        assert!(none.contains("key \"s\": symmetric"), "{none}");
        assert!(msg(b"{\"keys\": []}").contains("no key usable"));
        assert_eq!(
            parse(vec![rsa("r", 256), ec("r")]).unwrap_err(),
            JwksError::DuplicateKeyId { kid: "r".into() }
        );
    }

    #[test]
    fn modulus_bits_ignore_leading_zeros() {
        assert_eq!(modulus_bits(&[0, 0, 1]), 1);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        assert_eq!(modulus_bits(&[]), 0);
    }
}
