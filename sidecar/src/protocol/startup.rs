//! The untagged packets a connection opens with: SSLRequest, GSSENCRequest, CancelRequest
//! and the StartupMessage itself.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{be_i32, read_cstr};

/// PostgreSQL refuses startup packets longer than this (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_LEN: usize = 10_000;

pub const SSL_REQUEST_CODE: i32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
pub const PROTOCOL_3_0: i32 = 196_608;

/// What the first packet of a connection asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel(CancelKey),
    Startup(StartupMessage),
}

/// The key a client presents to cancel a running query (from BackendKeyData).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CancelKey {
    pub pid: i32,
    pub secret: i32,
}

impl CancelKey {
    /// The CancelRequest packet carrying this key.
    pub fn cancel_request(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(16);
        out.put_i32(16);
        out.put_i32(CANCEL_REQUEST_CODE);
        out.put_i32(self.pid);
        out.put_i32(self.secret);
        out.freeze()
    }

    /// The BackendKeyData message announcing this key.
    pub fn backend_key_data(&self) -> Bytes {
        let mut body = [0u8; 8];
        body[..4].copy_from_slice(&self.pid.to_be_bytes());
        body[4..].copy_from_slice(&self.secret.to_be_bytes());
        super::frame::message(super::backend::BACKEND_KEY_DATA, &body)
    }

    /// Parses a BackendKeyData body (protocol 3.0: two int32).
    pub fn from_backend_key_data(body: &[u8]) -> Option<Self> {
        if body.len() != 8 {
            return None;
        }
        Some(CancelKey {
            pid: be_i32(body)?,
            secret: be_i32(&body[4..])?,
        })
    }
}

/// A StartupMessage: the protocol version and the connection parameters, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartupMessage {
    pub version: i32,
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, key: &str, value: &str) {
        match self.params.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_string(),
            None => self.params.push((key.to_string(), value.to_string())),
        }
    }

    /// The packet as sent upstream: always protocol 3.0, since the sidecar relays 3.0 only.
    pub fn to_packet(&self) -> Bytes {
        let mut body = BytesMut::with_capacity(128);
        body.put_i32(PROTOCOL_3_0);
        for (k, v) in &self.params {
            body.put_slice(k.as_bytes());
            body.put_u8(0);
            body.put_slice(v.as_bytes());
            body.put_u8(0);
        }
        body.put_u8(0);
        let mut out = BytesMut::with_capacity(body.len() + 4);
        out.put_i32(body.len() as i32 + 4);
        out.put_slice(&body);
        out.freeze()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StartupError {
    #[error("invalid length of startup packet ({0} bytes)")]
    BadLength(i64),
    #[error("unsupported frontend protocol {}.{}: the sidecar speaks 3.x", .0 >> 16, .0 & 0xffff)]
    UnsupportedVersion(i32),
    #[error("malformed startup packet: {0}")]
    Malformed(&'static str),
}

/// Validates the length word of an initial packet; returns the total packet length.
pub fn packet_len(buf: &[u8]) -> Result<usize, StartupError> {
    let len = be_i32(buf).ok_or(StartupError::Malformed("short"))?;
    if !(8..=MAX_STARTUP_LEN as i32).contains(&len) {
        return Err(StartupError::BadLength(len as i64));
    }
    Ok(len as usize)
}

/// Parses an initial packet without its length word.
pub fn parse_packet(body: &[u8]) -> Result<StartupPacket, StartupError> {
    let code = be_i32(body).ok_or(StartupError::Malformed("short"))?;
    let rest = &body[4..];
    match code {
        SSL_REQUEST_CODE => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            if rest.len() != 8 {
                return Err(StartupError::Malformed("cancel request length"));
            }
            Ok(StartupPacket::Cancel(CancelKey {
                pid: be_i32(rest).ok_or(StartupError::Malformed("cancel request length"))?,
                secret: be_i32(&rest[4..])
                    .ok_or(StartupError::Malformed("cancel request length"))?,
            }))
        }
        v if v >> 16 == 3 => {
            let mut params = Vec::new();
            let mut rest = rest;
            loop {
                let (key, after) =
                    read_cstr(rest).ok_or(StartupError::Malformed("unterminated"))?;
                if key.is_empty() {
                    break;
                }
                let (value, after) =
                    read_cstr(after).ok_or(StartupError::Malformed("parameter without value"))?;
                let key = std::str::from_utf8(key)
                    .map_err(|_| StartupError::Malformed("non-UTF-8 name"))?;
                let value = String::from_utf8_lossy(value).into_owned();
                params.push((key.to_string(), value));
                rest = after;
            }
            Ok(StartupPacket::Startup(StartupMessage {
                version: v,
                params,
            }))
        }
        v => Err(StartupError::UnsupportedVersion(v)),
    }
}

/// NegotiateProtocolVersion: the sidecar speaks 3.0 and none of the `_pq_.` options.
pub fn negotiate_protocol_version(unrecognized: &[String]) -> Bytes {
    let mut body = BytesMut::new();
    body.put_i32(PROTOCOL_3_0);
    body.put_i32(unrecognized.len() as i32);
    for opt in unrecognized {
        body.put_slice(opt.as_bytes());
        body.put_u8(0);
    }
    super::frame::message(super::backend::NEGOTIATE_PROTOCOL_VERSION, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_round_trips() {
        let msg = StartupMessage {
            version: PROTOCOL_3_0,
            params: vec![
                ("user".into(), "alice".into()),
                ("database".into(), "db".into()),
            ],
        };
        let packet = msg.to_packet();
        let len = packet_len(&packet).unwrap();
        assert_eq!(len, packet.len());
        assert_eq!(
            parse_packet(&packet[4..]).unwrap(),
            StartupPacket::Startup(msg)
        );
    }

    #[test]
    fn special_requests_are_recognised() {
        assert_eq!(
            parse_packet(&SSL_REQUEST_CODE.to_be_bytes()).unwrap(),
            StartupPacket::SslRequest
        );
        let key = CancelKey { pid: 7, secret: -9 };
        let req = key.cancel_request();
        assert_eq!(parse_packet(&req[4..]).unwrap(), StartupPacket::Cancel(key));
        assert_eq!(
            CancelKey::from_backend_key_data(&key.backend_key_data()[5..]),
            Some(key)
        );
    }

    #[test]
    fn bad_packets_are_refused() {
        assert!(packet_len(&0x8000_0000u32.to_be_bytes()).is_err());
        assert!(packet_len(&20_000u32.to_be_bytes()).is_err());
        assert!(matches!(
            parse_packet(&[0, 2, 0, 0]),
            Err(StartupError::UnsupportedVersion(_))
        ));
        assert!(parse_packet(&[0, 3, 0, 0, b'u', b's']).is_err());
        // Short input is an error, never a panic.
        assert!(parse_packet(&[0, 3]).is_err());
        assert!(parse_packet(&CANCEL_REQUEST_CODE.to_be_bytes()).is_err());
        assert!(packet_len(&[0, 0]).is_err());
    }
}
