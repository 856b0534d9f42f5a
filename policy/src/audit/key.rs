//! The checkpoint signing key (Ed25519) and its public half.
//!
//! **The Secret** (`audit.signingKeySecretRef`) holds the private key in one of two forms:
//! - a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as `openssl genpkey -algorithm ed25519`
//!   writes it — the recommended form, because standard tools make and inspect it;
//! - exactly 32 raw bytes: the Ed25519 seed.
//!
//! Anything else is refused with a message saying which forms are accepted (a 33-byte
//! seed with a trailing newline is a mistake worth a clear error, not a guess).
//!
//! **The public key** is published as a standard PEM SubjectPublicKeyInfo
//! (`-----BEGIN PUBLIC KEY-----`, what `openssl pkey -pubout` prints), so a verifier needs
//! nothing from Palisade to read it. **The key id** is `sha256:` + hex SHA-256 of that key's
//! DER encoding (as Certificate Transparency names a log's key, RFC 6962 §3.2), so anyone
//! can recompute it: `openssl pkey -pubin -in key.pub -outform DER | sha256sum`.
//!
//! Signing and verifying run on ring, the crypto library the rest of Palisade already links.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

/// The DER SubjectPublicKeyInfo of an Ed25519 key is these 12 bytes and the 32-byte key
/// (RFC 8410 §4: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }), so it is built
/// and read by hand rather than through an ASN.1 library.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "not an Ed25519 signing key: expected a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----, from `openssl genpkey -algorithm ed25519`) or exactly 32 raw seed bytes, got {0}"
    )]
    SigningForm(String),
    #[error("not an Ed25519 public key: {0}")]
    PublicForm(String),
}

/// The private key that signs checkpoints.
pub struct SigningKey {
    key: Ed25519KeyPair,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.public.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads the key from a Secret's bytes (see the module documentation for the forms).
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<SigningKey, KeyError> {
        let key = if bytes.len() == 32 {
            // ring calls a bare seed "unchecked" because there is no public key beside it
            // to compare with; there is nothing else to check.
            Ed25519KeyPair::from_seed_unchecked(bytes)
                .map_err(|e| KeyError::SigningForm(format!("a seed ring refuses ({e})")))?
        } else {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| KeyError::SigningForm(format!("{} bytes of binary", bytes.len())))?
                .trim();
            if text.contains("-----BEGIN PUBLIC KEY-----") {
                return Err(KeyError::SigningForm(
                    "a public key (the signer needs the private key)".into(),
                ));
            }
            if !text.starts_with("-----BEGIN PRIVATE KEY-----") {
                return Err(KeyError::SigningForm(format!(
                    "{} bytes that are neither",
                    bytes.len()
                )));
            }
            let der = pem_body(text, "PRIVATE KEY").map_err(|e| {
                KeyError::SigningForm(format!("a PEM private key that does not decode ({e})"))
            })?;
            // "maybe unchecked": OpenSSL writes PKCS#8 v1, which has no public key to check
            // against; a v2 document's public key is checked.
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| {
                KeyError::SigningForm(format!("a PEM private key that is not Ed25519 ({e})"))
            })?
        };
        let mut raw = [0u8; 32];
        raw.copy_from_slice(key.public_key().as_ref());
        let public = PublicKey::new(raw);
        Ok(SigningKey { key, public })
    }

    /// A key from a 32-byte seed (tests and tools).
    pub fn from_seed(seed: &[u8; 32]) -> Result<SigningKey, KeyError> {
        SigningKey::from_secret_bytes(seed)
    }

    /// The public half, to publish.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key id written into each signed checkpoint.
    pub fn key_id(&self) -> &str {
        &self.public.key_id
    }

    /// Signs a message; hex of the 64-byte signature.
    pub fn sign_hex(&self, message: &[u8]) -> String {
        hex::encode(self.key.sign(message).as_ref())
    }
}

/// A public key a verifier trusts.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    raw: [u8; 32],
    key_id: String,
    pem: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl PublicKey {
    fn new(raw: [u8; 32]) -> PublicKey {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&raw);
        let key_id = format!("sha256:{}", hex::encode(Sha256::digest(&der)));
        // 44 bytes are 60 base64 characters: one line, as OpenSSL writes it.
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&der)
        );
        PublicKey { raw, key_id, pem }
    }

    /// Reads a published public key: a PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| KeyError::PublicForm("the file is not text (expected a PEM)".into()))?
            .trim();
        if text.contains("PRIVATE KEY-----") {
            return Err(KeyError::PublicForm(
                "this is a private key; give its public half (`openssl pkey -in KEY -pubout`)"
                    .into(),
            ));
        }
        if !text.starts_with("-----BEGIN PUBLIC KEY-----") {
            return Err(KeyError::PublicForm(
                "expected a PEM starting with -----BEGIN PUBLIC KEY-----".into(),
            ));
        }
        let der = pem_body(text, "PUBLIC KEY").map_err(KeyError::PublicForm)?;
        let raw = der
            .strip_prefix(&SPKI_PREFIX[..])
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| {
                KeyError::PublicForm("the PEM holds a key of another algorithm or shape".into())
            })?;
        Ok(PublicKey::new(raw))
    }

    /// `sha256:` + hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The file a verifier reads (`--public-key`): the PEM SubjectPublicKeyInfo.
    pub fn to_pem(&self) -> &str {
        &self.pem
    }

    /// Whether `signature_hex` is this key's signature over `message` (RFC 8032, as ring
    /// checks it: a non-canonical signature is refused).
    pub fn verify_hex(&self, message: &[u8], signature_hex: &str) -> bool {
        let Ok(signature) = hex::decode(signature_hex) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(message, &signature)
            .is_ok()
    }
}

/// The bytes between a PEM's `-----BEGIN <label>-----` and `-----END <label>-----` lines.
fn pem_body(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .map(|i| i + begin.len())
        .ok_or_else(|| format!("no {begin} line"))?;
    let stop = text[start..]
        .find(&end)
        .map(|i| i + start)
        .ok_or_else(|| format!("no {end} line"))?;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(body)
        .map_err(|e| format!("its base64 does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`; the
    // id with `openssl pkey -pubin -outform DER | sha256sum`.
    const PKCS8: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEICG2w+O+wbfelXVWxfytfnk/LR/cP2C6VPlPEOfubqN6\n-----END PRIVATE KEY-----\n";
    const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAxf3NprAYn1kpY4+srBq1vSm3z/tn2icXnaKTF5Y0740=\n-----END PUBLIC KEY-----\n";
    const KEY_ID: &str = "sha256:0e1f272ff0067c636aaa96c73c213f2537b8d69cbe8de1c55b809d2fd6753645";

    #[test]
    fn reads_a_raw_seed_and_a_pkcs8_pem() {
        let raw = SigningKey::from_secret_bytes(&[7u8; 32]).unwrap();
        assert!(raw.key_id().starts_with("sha256:"));
        assert_eq!(raw.key_id().len(), 71);
        let pem = SigningKey::from_secret_bytes(PKCS8.as_bytes()).unwrap();
        assert_ne!(pem.key_id(), raw.key_id());
        // The published PEM reads back as the same key, with the same id.
        let published = pem.public_key().to_pem().to_string();
        // What openssl prints for the same key, and the id its DER hashes to.
        assert_eq!(published, PUBLIC);
        assert_eq!(pem.key_id(), KEY_ID);
        let back = PublicKey::from_pem(published.as_bytes()).unwrap();
        assert_eq!(back.key_id(), pem.key_id());
        let sig = pem.sign_hex(b"message");
        assert!(back.verify_hex(b"message", &sig));
        assert!(!back.verify_hex(b"messagf", &sig));
        assert!(!back.verify_hex(b"message", "00"));
        assert!(!raw.public_key().verify_hex(b"message", &sig));
    }

    #[test]
    fn refuses_other_forms_with_a_reason() {
        let err = |b: &[u8]| SigningKey::from_secret_bytes(b).unwrap_err().to_string();
        assert!(
            err(&[7u8; 33]).contains("32 raw seed bytes"),
            "{}",
            err(&[7u8; 33])
        );
        assert!(err(b"hello").contains("5 bytes that are neither"));
        let public = SigningKey::from_seed(&[1; 32])
            .unwrap()
            .public_key()
            .to_pem()
            .to_string();
        assert!(err(public.as_bytes()).contains("a public key"));
        assert!(
            err(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .contains("not Ed25519")
        );
        assert!(
            err(b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n")
                .contains("does not decode")
        );
        // A P-256 key's SubjectPublicKeyInfo (`openssl ecparam -genkey -name prime256v1`).
        let ec = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE6b08x09lfZ3EVC6gk3/DYzOVbQyc\n1kHJbOHGqScvMdme4tlBwUM4golnzyjT3RKDGGwnGu1dkrhvC0QLbYSE4g==\n-----END PUBLIC KEY-----\n";
        let perr = PublicKey::from_pem(ec.as_bytes()).unwrap_err().to_string();
        assert!(perr.contains("another algorithm"), "{perr}");
        let perr = PublicKey::from_pem(PKCS8.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(perr.contains("private key"), "{perr}");
        assert!(PublicKey::from_pem(b"{}").is_err());
        assert!(PublicKey::from_pem(&[0xff, 0xfe]).is_err());
    }
}
