//! Authentication messages: the request codes a server sends, and the one rewrite a relay
//! must make — taking SCRAM channel binding out of the offer, because the client's TLS
//! channel (if any) is not the one the server sees.

use bytes::{BufMut, Bytes, BytesMut};

use super::backend;
use super::frame::{message, read_cstr};

pub const AUTH_OK: i32 = 0;
pub const AUTH_KERBEROS_V5: i32 = 2;
pub const AUTH_CLEARTEXT: i32 = 3;
pub const AUTH_MD5: i32 = 5;
pub const AUTH_GSS: i32 = 7;
pub const AUTH_GSS_CONTINUE: i32 = 8;
pub const AUTH_SSPI: i32 = 9;
pub const AUTH_SASL: i32 = 10;
pub const AUTH_SASL_CONTINUE: i32 = 11;
pub const AUTH_SASL_FINAL: i32 = 12;

/// The request code of an Authentication message body.
pub fn auth_code(body: &[u8]) -> Option<i32> {
    super::frame::be_i32(body)
}

/// The salt of an AuthenticationMD5Password body.
pub fn md5_salt(body: &[u8]) -> Option<[u8; 4]> {
    body.get(4..8)?.try_into().ok()
}

/// The SASL mechanisms an AuthenticationSASL body offers.
pub fn sasl_mechanisms(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body.get(4..).unwrap_or_default();
    while let Some((name, after)) = read_cstr(rest) {
        if name.is_empty() {
            break;
        }
        out.push(String::from_utf8_lossy(name).into_owned());
        rest = after;
    }
    out
}

/// AuthenticationSASL offering `mechanisms`.
pub fn sasl_offer(mechanisms: &[String]) -> Bytes {
    let mut body = BytesMut::new();
    body.put_i32(AUTH_SASL);
    for m in mechanisms {
        body.put_slice(m.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    message(backend::AUTHENTICATION, &body)
}

/// The offer without `-PLUS` (channel-binding) mechanisms. `None` if nothing is left.
pub fn without_channel_binding(mechanisms: &[String]) -> Option<Vec<String>> {
    let kept: Vec<String> = mechanisms
        .iter()
        .filter(|m| !m.ends_with("-PLUS"))
        .cloned()
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// AuthenticationOk.
pub fn auth_ok() -> Bytes {
    message(backend::AUTHENTICATION, &AUTH_OK.to_be_bytes())
}

/// AuthenticationCleartextPassword: the sidecar asks the client for its password (an ID
/// token, for policies with `identity.oidc`).
pub fn cleartext_request() -> Bytes {
    message(backend::AUTHENTICATION, &AUTH_CLEARTEXT.to_be_bytes())
}

/// The password of a PasswordMessage body (a NUL-terminated string). `None` if the body
/// is not one.
pub fn password(body: &[u8]) -> Option<&[u8]> {
    let (password, rest) = read_cstr(body)?;
    rest.is_empty().then_some(password)
}

/// A human name for an authentication request code, for errors.
pub fn method_name(code: i32) -> &'static str {
    match code {
        AUTH_KERBEROS_V5 => "Kerberos V5",
        AUTH_CLEARTEXT => "password",
        AUTH_MD5 => "md5",
        AUTH_GSS | AUTH_GSS_CONTINUE => "GSSAPI",
        AUTH_SSPI => "SSPI",
        AUTH_SASL | AUTH_SASL_CONTINUE | AUTH_SASL_FINAL => "SASL",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_binding_is_taken_out_of_the_offer() {
        let offer = sasl_offer(&["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()]);
        let mechs = sasl_mechanisms(&offer[5..]);
        assert_eq!(mechs, vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
        assert_eq!(
            without_channel_binding(&mechs),
            Some(vec!["SCRAM-SHA-256".to_string()])
        );
        assert_eq!(
            without_channel_binding(&["SCRAM-SHA-256-PLUS".into()]),
            None
        );
    }

    #[test]
    fn password_messages_are_read() {
        assert_eq!(password(b"secret\0"), Some(&b"secret"[..]));
        assert_eq!(password(b"\0"), Some(&b""[..]));
        assert_eq!(password(b"no terminator"), None);
        assert_eq!(password(b"two\0parts\0"), None);
        let request = cleartext_request();
        assert_eq!(auth_code(&request[5..]), Some(AUTH_CLEARTEXT));
    }

    #[test]
    fn md5_salt_is_read() {
        let mut body = AUTH_MD5.to_be_bytes().to_vec();
        body.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(auth_code(&body), Some(AUTH_MD5));
        assert_eq!(md5_salt(&body), Some([1, 2, 3, 4]));
    }
}
