//! How the session's server reads statement text: the lexer settings that change what a
//! string literal means, and whether the parser's grammar is the server's.
//!
//! The sidecar tracks these from the server's ParameterStatus messages and hands them to
//! the analysis with every statement, so a literal is read exactly as the server will read
//! it (`'C:\dir'` is four characters with `standard_conforming_strings = on` and an escape
//! with it off).

/// PostgreSQL's `backslash_quote` setting: whether `\'` may stand for a quote inside an
/// escape string literal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackslashQuote {
    On,
    Off,
    /// The server's default: allowed unless the client encoding could put a 0x5c byte
    /// inside a multibyte character (SJIS, BIG5, GBK, …).
    #[default]
    SafeEncoding,
}

impl BackslashQuote {
    /// Reads the setting as PostgreSQL accepts it (`on`, `off`, `safe_encoding`, and the
    /// boolean spellings `true`, `yes`, `1`, …). `None` for anything else.
    pub fn from_setting(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "safe_encoding" => Some(BackslashQuote::SafeEncoding),
            other => parse_bool(other).map(|on| {
                if on {
                    BackslashQuote::On
                } else {
                    BackslashQuote::Off
                }
            }),
        }
    }
}

/// PostgreSQL's boolean spellings (`on`/`off`, `true`/`false`, `yes`/`no`, `1`/`0`, and
/// unambiguous prefixes of them), as `parse_bool` in the server accepts them.
pub fn parse_bool(value: &str) -> Option<bool> {
    let v = value.trim().to_ascii_lowercase();
    let prefix_of = |word: &str| !v.is_empty() && word.starts_with(v.as_str());
    match v.as_str() {
        "1" => Some(true),
        "0" => Some(false),
        "on" => Some(true),
        "o" => None,
        "of" | "off" => Some(false),
        _ if prefix_of("true") || prefix_of("yes") => Some(true),
        _ if prefix_of("false") || prefix_of("no") => Some(false),
        _ => None,
    }
}

/// Everything about the session that changes how a statement's text is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SqlDialect {
    /// `standard_conforming_strings` (on since PostgreSQL 9.1): off makes `\` an escape
    /// character inside plain `'…'` literals.
    pub standard_conforming_strings: bool,
    pub backslash_quote: BackslashQuote,
    /// True when the client encoding may put 0x5c inside a multibyte character, which is
    /// what `backslash_quote = safe_encoding` looks at.
    pub client_encoding_unsafe_backslash: bool,
    /// The upstream server's major version (`server_version`), when known: it decides
    /// whether SQL the parser rejects is SQL the server rejects too (see
    /// [`crate::grammar::server_rejects_too`]), and so may be forwarded for the server's
    /// own error rather than going to `onParseError`.
    pub server_major: Option<u32>,
}

impl Default for SqlDialect {
    /// The server defaults, with the upstream's grammar not known to be covered (so
    /// unparseable SQL goes to `onParseError`): what `kubectl palisade check` and a
    /// session whose server version is not known yet use.
    fn default() -> Self {
        SqlDialect {
            standard_conforming_strings: true,
            backslash_quote: BackslashQuote::SafeEncoding,
            client_encoding_unsafe_backslash: false,
            server_major: None,
        }
    }
}

impl SqlDialect {
    /// Whether `\'` inside an escape string is a quote, as the server's lexer decides it.
    pub fn backslash_quote_allowed(&self) -> bool {
        match self.backslash_quote {
            BackslashQuote::On => true,
            BackslashQuote::Off => false,
            BackslashQuote::SafeEncoding => !self.client_encoding_unsafe_backslash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_the_server_spells_them() {
        for on in ["on", "ON", "true", "t", "tr", "yes", "y", "1"] {
            assert_eq!(parse_bool(on), Some(true), "{on}");
        }
        for off in ["off", "of", "false", "f", "no", "n", "0"] {
            assert_eq!(parse_bool(off), Some(false), "{off}");
        }
        for bad in ["", "o", "maybe", "2"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn backslash_quote_settings() {
        assert_eq!(
            BackslashQuote::from_setting("safe_encoding"),
            Some(BackslashQuote::SafeEncoding)
        );
        assert_eq!(BackslashQuote::from_setting("on"), Some(BackslashQuote::On));
        assert_eq!(
            BackslashQuote::from_setting("off"),
            Some(BackslashQuote::Off)
        );
        assert_eq!(BackslashQuote::from_setting("sometimes"), None);
        let sjis = SqlDialect {
            client_encoding_unsafe_backslash: true,
            ..SqlDialect::default()
        };
        assert!(!sjis.backslash_quote_allowed());
        assert!(SqlDialect::default().backslash_quote_allowed());
    }
}
