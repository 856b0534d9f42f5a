//! ErrorResponse messages the sidecar writes itself. Every one carries a SQLSTATE, a message
//! that names the cause, and where it helps, a hint: clients show these to people.

use bytes::{BufMut, Bytes, BytesMut};

use super::backend;
use super::frame::message;

/// SQLSTATE codes the sidecar uses.
pub mod sqlstate {
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const UNABLE_TO_CONNECT: &str = "08001";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const QUERY_CANCELED: &str = "57014";
    pub const SUCCESSFUL_COMPLETION: &str = "00000";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Notice,
    Error,
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Notice => "NOTICE",
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// An error the sidecar reports to a client in PostgreSQL's own format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgError {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl PgError {
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        PgError {
            severity: Severity::Fatal,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        PgError {
            severity: Severity::Error,
            ..Self::fatal(code, message)
        }
    }

    /// A NoticeResponse: information the client shows while the session goes on.
    pub fn notice(message: impl Into<String>) -> Self {
        PgError {
            severity: Severity::Notice,
            ..Self::fatal(sqlstate::SUCCESSFUL_COMPLETION, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The ErrorResponse (NoticeResponse, for a notice) message on the wire.
    pub fn to_message(&self) -> Bytes {
        let mut body = BytesMut::with_capacity(64 + self.message.len());
        let mut field = |tag: u8, value: &str| {
            body.put_u8(tag);
            // A NUL inside a field would end it early and desynchronise the client's parser.
            body.put_slice(value.replace('\0', " ").as_bytes());
            body.put_u8(0);
        };
        field(b'S', self.severity.as_str());
        field(b'V', self.severity.as_str());
        field(b'C', self.code);
        field(b'M', &self.message);
        if let Some(d) = &self.detail {
            field(b'D', d);
        }
        if let Some(h) = &self.hint {
            field(b'H', h);
        }
        body.put_u8(0);
        let tag = match self.severity {
            Severity::Notice => backend::NOTICE_RESPONSE,
            Severity::Error | Severity::Fatal => backend::ERROR_RESPONSE,
        };
        message(tag, &body)
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.severity.as_str(),
            self.code,
            self.message
        )
    }
}

/// Reads the `M` (message) field of an ErrorResponse/NoticeResponse body, for logs.
pub fn error_message_field(body: &[u8]) -> Option<String> {
    error_field(body, b'M')
}

/// Reads one field of an ErrorResponse/NoticeResponse body.
pub fn error_field(mut body: &[u8], wanted: u8) -> Option<String> {
    while let Some((&tag, rest)) = body.split_first() {
        if tag == 0 {
            break;
        }
        let (value, rest) = super::frame::read_cstr(rest)?;
        if tag == wanted {
            return Some(String::from_utf8_lossy(value).into_owned());
        }
        body = rest;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_has_all_fields_and_parses_back() {
        let msg = PgError::fatal(sqlstate::UNABLE_TO_CONNECT, "no route")
            .with_hint("check spec.database.host")
            .to_message();
        assert_eq!(msg[0], b'E');
        let len = i32::from_be_bytes([msg[1], msg[2], msg[3], msg[4]]) as usize;
        assert_eq!(len + 1, msg.len());
        let body = &msg[5..];
        assert_eq!(error_field(body, b'S').as_deref(), Some("FATAL"));
        assert_eq!(error_field(body, b'C').as_deref(), Some("08001"));
        assert_eq!(error_message_field(body).as_deref(), Some("no route"));
        assert_eq!(
            error_field(body, b'H').as_deref(),
            Some("check spec.database.host")
        );
        assert_eq!(error_field(body, b'D'), None);
    }
}
