//! What the session's server makes of statement bytes, tracked from its ParameterStatus
//! messages: the client and database encodings (how bytes become characters), whether
//! `standard_conforming_strings` is on (what a backslash in a literal means) and the
//! server's version (whether the parser's grammar is the server's).

use std::borrow::Cow;

use palisade_policy::dialect::{BackslashQuote, SqlDialect, parse_bool};
use palisade_policy::encoding::{DecodeError, PgEncoding};
use palisade_policy::grammar;

#[derive(Clone, Debug)]
pub struct SessionSyntax {
    client_encoding: Encoding,
    server_encoding: Encoding,
    standard_conforming_strings: bool,
    server_major: Option<u32>,
}

/// An encoding the server named, known or not.
#[derive(Clone, Debug)]
enum Encoding {
    Known(PgEncoding),
    /// A name this build does not know (a newer server's): only ASCII is read.
    Unknown(String),
}

impl Default for SessionSyntax {
    /// What the server reports when nothing says otherwise.
    fn default() -> Self {
        SessionSyntax {
            client_encoding: Encoding::Known(PgEncoding::UTF8),
            server_encoding: Encoding::Known(PgEncoding::UTF8),
            standard_conforming_strings: true,
            server_major: None,
        }
    }
}

impl SessionSyntax {
    /// Takes in a ParameterStatus; the parameters that change how text is read are kept.
    pub fn observe(&mut self, name: &[u8], value: &[u8]) {
        let value = String::from_utf8_lossy(value);
        let encoding = || match PgEncoding::by_name(&value) {
            Some(e) => Encoding::Known(e),
            None => Encoding::Unknown(value.clone().into_owned()),
        };
        match name {
            b"client_encoding" => self.client_encoding = encoding(),
            b"server_encoding" => self.server_encoding = encoding(),
            b"standard_conforming_strings" => {
                // The server only ever reports on or off; anything else reads as the
                // setting that makes a backslash special, the reading with more
                // statements in it.
                self.standard_conforming_strings = parse_bool(&value).unwrap_or(false);
            }
            b"server_version" => self.server_major = grammar::server_major(&value),
            _ => {}
        }
    }

    /// The statement text the server's parser will read.
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, str>, DecodeError> {
        match (&self.client_encoding, &self.server_encoding) {
            (Encoding::Known(client), Encoding::Known(server)) => client.decode_for(*server, bytes),
            (Encoding::Unknown(_), _) | (_, Encoding::Unknown(_)) if bytes.is_ascii() => {
                // Every PostgreSQL encoding reads ASCII as ASCII.
                Ok(String::from_utf8_lossy(bytes))
            }
            (Encoding::Unknown(name), _) | (_, Encoding::Unknown(name)) => {
                Err(DecodeError::Unsupported {
                    encoding: name.clone(),
                })
            }
        }
    }

    /// The lexer settings the analysis reads the text with.
    ///
    /// `backslash_quote` is not reported by the server, so it is taken as `on`: the
    /// setting only decides whether `\'` inside an escape string is accepted or an error,
    /// never where a literal ends, so the reading that accepts is the one that sees every
    /// statement the server could run.
    pub fn dialect(&self) -> SqlDialect {
        SqlDialect {
            standard_conforming_strings: self.standard_conforming_strings,
            backslash_quote: BackslashQuote::On,
            client_encoding_unsafe_backslash: match &self.client_encoding {
                Encoding::Known(e) => e.backslash_unsafe(),
                Encoding::Unknown(_) => true,
            },
            server_major: self.server_major,
        }
    }

    /// The same reading with `standard_conforming_strings` the other way: for text read
    /// while an earlier statement that may change it is still running.
    pub fn dialect_flipped(&self) -> SqlDialect {
        SqlDialect {
            standard_conforming_strings: !self.standard_conforming_strings,
            ..self.dialect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_what_the_server_reports() {
        let mut s = SessionSyntax::default();
        assert!(s.dialect().standard_conforming_strings);
        assert_eq!(s.dialect().server_major, None, "version not known yet");
        s.observe(b"server_version", b"15.20 (Debian 15.20-0+deb12u1)");
        assert!(s.dialect().server_major.is_some_and(grammar::covers));
        s.observe(b"standard_conforming_strings", b"off");
        assert!(!s.dialect().standard_conforming_strings);
        assert!(s.dialect_flipped().standard_conforming_strings);
        s.observe(b"client_encoding", b"SJIS");
        assert!(s.dialect().client_encoding_unsafe_backslash);
        assert_eq!(s.decode(b"'\x95\x5c'").unwrap(), "'\u{8868}'");
        s.observe(b"client_encoding", b"LATIN9");
        assert_eq!(s.decode(b"'\xa4'").unwrap(), "'\u{20ac}'");
        s.observe(b"server_version", b"19devel");
        assert!(
            !s.dialect().server_major.is_some_and(grammar::covers),
            "newer than the parser"
        );
    }

    #[test]
    fn an_unknown_encoding_reads_ascii_only() {
        let mut s = SessionSyntax::default();
        s.observe(b"client_encoding", b"KLINGON");
        assert_eq!(s.decode(b"SELECT 1").unwrap(), "SELECT 1");
        assert!(s.decode(b"SELECT '\xe9'").is_err());
    }
}
