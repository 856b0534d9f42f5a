//! jsonwebtoken's signature checks on ring.
//!
//! jsonwebtoken leaves its cryptography to a process-wide `CryptoProvider`; its built-in ones
//! link aws-lc-rs or the RustCrypto crates. Palisade already links ring for rustls, so this
//! provider hands RS256 and ES256 verification to ring instead: one crypto library in the
//! binary, and ring's RSA verifier refuses keys under 2048 bits. It verifies only. Signing
//! is not something Palisade does with ID tokens, and every other algorithm — HMAC above
//! all, the root of the RS256/HS256 confusion attack — is refused before any key is used.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};

/// The provider: ring verifies RS256 and ES256; nothing signs.
pub static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(ErrorKind::InvalidKeyFormat.into()),
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidKeyFormat.into()),
        ec_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidKeyFormat.into()),
        ed_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidKeyFormat.into()),
        compute_digest,
    },
};

/// Makes ring jsonwebtoken's provider for this process. Idempotent. When another provider was
/// installed first (some other part of the process chose one), that one stays: it verifies
/// the same signatures, and the algorithm pinning is done before any provider is asked.
pub fn install() {
    let _ = RING_PROVIDER.install_default();
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Err(ErrorKind::Provider("this provider verifies tokens; it does not sign".into()).into())
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    match (alg, key.family(), key.kind()) {
        (Algorithm::RS256, AlgorithmFamily::Rsa, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            Ok(Box::new(Rs256 {
                n: n.clone(),
                e: e.clone(),
            }))
        }
        (Algorithm::ES256, AlgorithmFamily::Ec, DecodingKeyKind::SecretOrDer(point)) => {
            Ok(Box::new(Es256 {
                point: point.clone(),
            }))
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(ring::digest::digest(alg, data).as_ref().to_vec())
}

/// RSASSA-PKCS1-v1_5 with SHA-256, from a JWK's modulus and exponent.
struct Rs256 {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl Verifier<Vec<u8>> for Rs256 {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, msg, sig)
        .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Rs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

/// ECDSA on P-256 with SHA-256; JWS carries the signature as the fixed-width `r || s`.
struct Es256 {
    /// The uncompressed SEC1 point `04 || x || y`.
    point: Vec<u8>,
}

impl Verifier<Vec<u8>> for Es256 {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.point)
            .verify(msg, sig)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Es256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

/// Errors from jsonwebtoken surface only through [`super::oidc`], which maps each to a
/// [`super::TokenError`] of its own wording; this keeps the crate's type out of the API.
pub(crate) fn is_bad_signature(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::InvalidSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_exist_only_for_the_pinned_pairs() {
        let rsa = DecodingKey::from_rsa_raw_components(&[0xc5; 256], &[1, 0, 1]);
        let hmac = DecodingKey::from_secret(b"not a signing key of ours").unwrap();
        assert!(new_verifier(&Algorithm::RS256, &rsa).is_ok());
        for alg in [
            Algorithm::HS256,
            Algorithm::RS384,
            Algorithm::PS256,
            Algorithm::ES256,
        ] {
            assert!(new_verifier(&alg, &rsa).is_err(), "{alg:?} with an RSA key");
        }
        for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
            assert!(
                new_verifier(&alg, &hmac).is_err(),
                "{alg:?} with an HMAC key"
            );
        }
        assert!(no_signer(&Algorithm::RS256, &EncodingKey::from_secret(b"k").unwrap()).is_err());
    }

    #[test]
    fn rs256_refuses_a_garbage_signature() {
        let v = Rs256 {
            n: vec![0xc5; 256],
            e: vec![1, 0, 1],
        };
        assert!(v.verify(b"message", &vec![0u8; 256]).is_err());
        let v = Es256 { point: vec![4; 65] };
        assert!(v.verify(b"message", &vec![0u8; 64]).is_err());
    }
}
