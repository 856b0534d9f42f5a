//! The shape of a compact JWS (`header.payload.signature`, each base64url): telling a token
//! from a database password, and reading the header fields that choose the key before
//! anything is trusted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::error::TokenError;

/// The longest token accepted, in bytes. Azure AD puts up to 200 groups in a token before it
/// switches to the overage claim, which stays well under this; anything longer is not an ID
/// token, and bounding it bounds the work a hostile client can ask for.
pub const MAX_TOKEN_BYTES: usize = 32 * 1024;

/// Whether a password the client sent is shaped like a JWT, so the sidecar verifies it as
/// one instead of handing it to the database. Cheap: three base64url segments whose first
/// decodes to a JSON object. A token that is shaped right but fails verification is refused
/// as a token — never retried as a password, which would send an ID token to the database.
pub fn looks_like_jwt(password: &str) -> bool {
    if password.len() > MAX_TOKEN_BYTES {
        return false;
    }
    let mut parts = password.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    // The signature may be empty (`alg: none`): such a token is still a token, and refused
    // as one with a message that says why.
    if header.is_empty()
        || payload.is_empty()
        || ![header, payload, signature].iter().all(|s| base64url(s))
    {
        return false;
    }
    URL_SAFE_NO_PAD
        .decode(header)
        .is_ok_and(|json| json.trim_ascii_start().first() == Some(&b'{'))
}

/// The header fields read before the signature is checked: they only choose a key, and the
/// key — not these — decides the algorithm.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub alg: String,
    pub kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<serde_json::Value>,
    kid: Option<serde_json::Value>,
}

/// Splits a compact JWS and reads its header.
pub(crate) fn read_header(token: &str) -> Result<Header, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong {
            bytes: token.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    let malformed = |reason| TokenError::Malformed { reason };
    let parts: Vec<&str> = token.split('.').collect();
    match parts.len() {
        3 => {}
        5 => {
            return Err(malformed(
                "it is an encrypted token (JWE); send the signed ID token",
            ));
        }
        _ => return Err(malformed("a JWT has three dot-separated parts")),
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|_| malformed("its header is not base64url"))?;
    let raw: RawHeader =
        serde_json::from_slice(&bytes).map_err(|_| malformed("its header is not a JSON object"))?;
    let alg = match raw.alg {
        Some(serde_json::Value::String(alg)) => alg,
        Some(_) => return Err(malformed("its header's alg is not a string")),
        None => return Err(malformed("its header has no alg")),
    };
    let kid = match raw.kid {
        Some(serde_json::Value::String(kid)) => Some(kid),
        Some(_) => return Err(malformed("its header's kid is not a string")),
        None => None,
    };
    Ok(Header { alg, kid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn tokens_and_passwords_are_told_apart() {
        let token = format!(
            "{}.{}.c2ln",
            enc(r#"{"alg":"RS256"}"#),
            enc(r#"{"sub":"a"}"#)
        );
        assert!(looks_like_jwt(&token));
        let unsigned = format!("{}.{}.", enc(r#"{"alg":"none"}"#), enc("{}"));
        assert!(looks_like_jwt(&unsigned));
        for password in [
            "hunter2",
            "correct.horse.battery",
            "a.b.c.d",
            "..",
            "eyJ.eyJ.x y",
            &format!("{}.{}.sig", enc("[1]"), enc("{}")),
            &format!("{}..sig", enc("{}")),
            &"a".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert!(!looks_like_jwt(password), "{password:?}");
        }
    }

    #[test]
    fn headers_are_read_strictly() {
        let token = |h: &str| format!("{}.{}.sig", enc(h), enc("{}"));
        assert_eq!(
            read_header(&token(r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#)),
            Ok(Header {
                alg: "ES256".into(),
                kid: Some("k1".into())
            })
        );
        let err = |t: &str| read_header(t).unwrap_err().to_string();
        assert!(err(&token(r#"{"kid":"k"}"#)).contains("no alg"));
        assert!(err(&token(r#"{"alg":1}"#)).contains("alg is not a string"));
        assert!(err(&token(r#"{"alg":"RS256","kid":7}"#)).contains("kid is not a string"));
        assert!(err(&token("[]")).contains("not a JSON object"));
        assert!(err("a.b").contains("three dot-separated parts"));
        assert!(err("a.b.c.d.e").contains("encrypted token"));
        assert!(err("!!.e30.sig").contains("not base64url"));
        assert!(matches!(
            read_header(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(TokenError::TooLong { .. })
        ));
    }
}
