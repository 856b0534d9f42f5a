//! Statement text as the server reads it: bytes in the session's `client_encoding`, turned
//! into the characters PostgreSQL's lexer sees.
//!
//! PostgreSQL converts every message from the client encoding to the database encoding
//! before parsing, so the parser only ever sees an ASCII-safe encoding (the client-only
//! ones — SJIS, BIG5, GBK, UHC, GB18030, JOHAB, SHIFT_JIS_2004 — may put a 0x5c byte, a
//! backslash, inside a two-byte character; no database encoding may). Decoding to Unicode
//! first and then parsing is therefore what the server does, as long as the decoder reads
//! every byte sequence the server accepts into the same characters. Decoders here are
//! strict: a sequence they cannot map is an error, never a replacement character, so the
//! analysis never reads a text whose quotes and backslashes might sit elsewhere for the
//! server.

use std::borrow::Cow;

/// A PostgreSQL encoding, by the name the server reports it under (`client_encoding`,
/// `server_encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PgEncoding {
    name: &'static str,
    decoder: Decoder,
    /// Only valid as a client encoding (PostgreSQL's `PG_ENCODING_IS_CLIENT_ONLY`): its
    /// multibyte characters may contain bytes below 0x80.
    client_only: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Decoder {
    Utf8,
    /// Each byte is the character of the same number: ISO 8859-1 exactly (the Encoding
    /// Standard reads the label as windows-1252, which differs in 0x80–0x9f).
    Latin1,
    /// ISO 8859-9, which the Encoding Standard reads as windows-1254: the same except for
    /// 0x80–0x9f, the C1 controls in 8859-9.
    Latin5,
    Whatwg(&'static encoding_rs::Encoding),
    /// No maintained decoder reads this encoding's multibyte characters into the
    /// characters PostgreSQL's conversion tables give: only ASCII text is read.
    AsciiOnly,
    /// `SQL_ASCII`: no conversion at all.
    SqlAscii,
}

/// Why statement text could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("statement text is not valid {encoding}")]
    Invalid { encoding: &'static str },
    #[error(
        "statement text has non-ASCII characters in client_encoding {encoding}, which Palisade cannot read"
    )]
    Unsupported { encoding: String },
}

macro_rules! encodings {
    ($($name:literal => $decoder:expr, $client_only:expr;)*) => {
        const ENCODINGS: &[PgEncoding] = &[
            $(PgEncoding { name: $name, decoder: $decoder, client_only: $client_only },)*
        ];
    };
}

use encoding_rs as e;
encodings! {
    "SQL_ASCII" => Decoder::SqlAscii, false;
    "UTF8" => Decoder::Utf8, false;
    "LATIN1" => Decoder::Latin1, false;
    "LATIN2" => Decoder::Whatwg(e::ISO_8859_2), false;
    "LATIN3" => Decoder::Whatwg(e::ISO_8859_3), false;
    "LATIN4" => Decoder::Whatwg(e::ISO_8859_4), false;
    "LATIN5" => Decoder::Latin5, false;
    "LATIN6" => Decoder::Whatwg(e::ISO_8859_10), false;
    "LATIN7" => Decoder::Whatwg(e::ISO_8859_13), false;
    "LATIN8" => Decoder::Whatwg(e::ISO_8859_14), false;
    "LATIN9" => Decoder::Whatwg(e::ISO_8859_15), false;
    "LATIN10" => Decoder::Whatwg(e::ISO_8859_16), false;
    "ISO_8859_5" => Decoder::Whatwg(e::ISO_8859_5), false;
    "ISO_8859_6" => Decoder::Whatwg(e::ISO_8859_6), false;
    "ISO_8859_7" => Decoder::Whatwg(e::ISO_8859_7), false;
    "ISO_8859_8" => Decoder::Whatwg(e::ISO_8859_8), false;
    "WIN866" => Decoder::Whatwg(e::IBM866), false;
    "WIN874" => Decoder::Whatwg(e::WINDOWS_874), false;
    "WIN1250" => Decoder::Whatwg(e::WINDOWS_1250), false;
    "WIN1251" => Decoder::Whatwg(e::WINDOWS_1251), false;
    "WIN1252" => Decoder::Whatwg(e::WINDOWS_1252), false;
    "WIN1253" => Decoder::Whatwg(e::WINDOWS_1253), false;
    "WIN1254" => Decoder::Whatwg(e::WINDOWS_1254), false;
    "WIN1255" => Decoder::Whatwg(e::WINDOWS_1255), false;
    "WIN1256" => Decoder::Whatwg(e::WINDOWS_1256), false;
    "WIN1257" => Decoder::Whatwg(e::WINDOWS_1257), false;
    "WIN1258" => Decoder::Whatwg(e::WINDOWS_1258), false;
    "KOI8R" => Decoder::Whatwg(e::KOI8_R), false;
    "KOI8U" => Decoder::Whatwg(e::KOI8_U), false;
    "EUC_JP" => Decoder::Whatwg(e::EUC_JP), false;
    // GBK is a superset of GB 2312, which EUC_CN encodes.
    "EUC_CN" => Decoder::Whatwg(e::GBK), false;
    "EUC_KR" => Decoder::Whatwg(e::EUC_KR), false;
    "EUC_TW" => Decoder::AsciiOnly, false;
    "EUC_JIS_2004" => Decoder::AsciiOnly, false;
    "MULE_INTERNAL" => Decoder::AsciiOnly, false;
    // PostgreSQL's SJIS is Microsoft's code page 932, which the Encoding Standard's
    // Shift_JIS is too.
    "SJIS" => Decoder::Whatwg(e::SHIFT_JIS), true;
    "BIG5" => Decoder::Whatwg(e::BIG5), true;
    "GBK" => Decoder::Whatwg(e::GBK), true;
    // The Encoding Standard's EUC-KR is code page 949, which is UHC.
    "UHC" => Decoder::Whatwg(e::EUC_KR), true;
    "GB18030" => Decoder::Whatwg(e::GB18030), true;
    // JIS X 0213 maps some two-byte characters to ASCII (0x815f is a backslash), which no
    // Shift_JIS decoder here reads so: only ASCII text is read.
    "SHIFT_JIS_2004" => Decoder::AsciiOnly, true;
    "JOHAB" => Decoder::AsciiOnly, true;
}

/// Spellings PostgreSQL accepts besides the canonical names (its `encnames.c`), already
/// reduced as [`PgEncoding::by_name`] reduces names.
const ALIASES: &[(&str, &str)] = &[
    ("unicode", "UTF8"),
    ("iso88591", "LATIN1"),
    ("iso88592", "LATIN2"),
    ("iso88593", "LATIN3"),
    ("iso88594", "LATIN4"),
    ("iso88599", "LATIN5"),
    ("iso885910", "LATIN6"),
    ("iso885913", "LATIN7"),
    ("iso885914", "LATIN8"),
    ("iso885915", "LATIN9"),
    ("iso885916", "LATIN10"),
    ("alt", "WIN866"),
    ("win", "WIN1251"),
    ("koi8", "KOI8R"),
    ("mskanji", "SJIS"),
    ("shiftjis", "SJIS"),
    ("windows932", "SJIS"),
    ("windows936", "GBK"),
    ("windows949", "UHC"),
    ("windows950", "BIG5"),
    ("abc", "WIN1258"),
    ("tcvn", "WIN1258"),
    ("tcvn5712", "WIN1258"),
    ("vscii", "WIN1258"),
    ("cp866", "WIN866"),
    ("cp936", "GBK"),
    ("cp949", "UHC"),
];

impl PgEncoding {
    pub const UTF8: PgEncoding = PgEncoding {
        name: "UTF8",
        decoder: Decoder::Utf8,
        client_only: false,
    };

    /// The encoding PostgreSQL would take `name` for: case and punctuation are ignored
    /// (`utf-8`, `Latin-9`, `shift_jis`), as the server's `pg_char_to_encoding` does.
    pub fn by_name(name: &str) -> Option<PgEncoding> {
        let reduced: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let reduce = |n: &str| n.replace('_', "").to_ascii_lowercase();
        let canonical = ALIASES
            .iter()
            .find(|(alias, _)| *alias == reduced)
            .map(|(_, canonical)| *canonical);
        ENCODINGS.iter().copied().find(|e| match canonical {
            Some(c) => e.name == c,
            None => reduce(e.name) == reduced,
        })
    }

    /// The canonical name, as the server reports it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// True when a multibyte character may contain 0x5c, a backslash in ASCII: what
    /// `backslash_quote = safe_encoding` guards against.
    pub fn backslash_unsafe(&self) -> bool {
        self.client_only
    }

    /// Statement text sent by a client in this encoding, as the server's parser reads it
    /// in a database of encoding `server`.
    pub fn decode_for<'a>(
        &self,
        server: PgEncoding,
        bytes: &'a [u8],
    ) -> Result<Cow<'a, str>, DecodeError> {
        if server.decoder == Decoder::SqlAscii {
            // A SQL_ASCII database converts nothing: the lexer reads the client's bytes
            // themselves, and the server refuses non-ASCII bytes from an encoding that is
            // not ASCII-safe.
            return if self.client_only {
                ascii_only(self.name, bytes)
            } else {
                Ok(bytes_as_chars(bytes))
            };
        }
        if self.decoder == Decoder::SqlAscii || *self == server {
            // No conversion, only validation in the database encoding.
            return server.decode(bytes);
        }
        self.decode(bytes)
    }

    fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, str>, DecodeError> {
        if bytes.is_ascii() {
            // Every encoding PostgreSQL supports reads ASCII-only text as ASCII.
            return Ok(ascii(bytes));
        }
        let invalid = DecodeError::Invalid {
            encoding: self.name,
        };
        match self.decoder {
            Decoder::Utf8 => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|_| invalid),
            Decoder::Latin1 | Decoder::SqlAscii => Ok(bytes_as_chars(bytes)),
            Decoder::Latin5 => bytes
                .iter()
                .map(|&b| match b {
                    0x80..=0x9f => Some(char::from(b)),
                    _ => e::WINDOWS_1254
                        .decode_without_bom_handling_and_without_replacement(&[b])
                        .and_then(|s| s.chars().next()),
                })
                .collect::<Option<String>>()
                .map(Cow::Owned)
                .ok_or(invalid),
            Decoder::Whatwg(encoding) => encoding
                .decode_without_bom_handling_and_without_replacement(bytes)
                .map(|s| Cow::Owned(s.into_owned()))
                .ok_or(invalid),
            Decoder::AsciiOnly => ascii_only(self.name, bytes),
        }
    }
}

fn ascii(bytes: &[u8]) -> Cow<'_, str> {
    // ASCII is UTF-8: this never takes the error branch.
    std::str::from_utf8(bytes)
        .map(Cow::Borrowed)
        .unwrap_or_else(|_| bytes_as_chars(bytes))
}

fn ascii_only<'a>(encoding: &'static str, bytes: &'a [u8]) -> Result<Cow<'a, str>, DecodeError> {
    if bytes.is_ascii() {
        Ok(ascii(bytes))
    } else {
        Err(DecodeError::Unsupported {
            encoding: encoding.to_owned(),
        })
    }
}

/// Each byte as the character of the same number: the structure (quotes, backslashes,
/// separators, all ASCII) exactly as a byte-reading lexer sees it.
fn bytes_as_chars(bytes: &[u8]) -> Cow<'_, str> {
    Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(name: &str) -> PgEncoding {
        PgEncoding::by_name(name).unwrap_or_else(|| panic!("{name} unknown"))
    }

    fn decode(client: &str, bytes: &[u8]) -> Result<String, DecodeError> {
        enc(client)
            .decode_for(PgEncoding::UTF8, bytes)
            .map(Cow::into_owned)
    }

    #[test]
    fn names_as_postgres_reads_them() {
        assert_eq!(enc("utf-8").name(), "UTF8");
        assert_eq!(enc("Unicode").name(), "UTF8");
        assert_eq!(enc("latin-9").name(), "LATIN9");
        assert_eq!(enc("ISO-8859-15").name(), "LATIN9");
        assert_eq!(enc("shift_jis").name(), "SJIS");
        assert_eq!(enc("Shift_JIS_2004").name(), "SHIFT_JIS_2004");
        assert_eq!(enc("EUC_JIS_2004").name(), "EUC_JIS_2004");
        assert_eq!(enc("win1252").name(), "WIN1252");
        assert_eq!(enc("SQL_ASCII").name(), "SQL_ASCII");
        assert!(PgEncoding::by_name("EBCDIC").is_none());
        assert!(PgEncoding::by_name("").is_none());
    }

    #[test]
    fn every_server_encoding_name_is_known() {
        // pg_enc2name_tbl, PostgreSQL 15–18.
        for name in [
            "SQL_ASCII",
            "EUC_JP",
            "EUC_CN",
            "EUC_KR",
            "EUC_TW",
            "EUC_JIS_2004",
            "UTF8",
            "MULE_INTERNAL",
            "LATIN1",
            "LATIN2",
            "LATIN3",
            "LATIN4",
            "LATIN5",
            "LATIN6",
            "LATIN7",
            "LATIN8",
            "LATIN9",
            "LATIN10",
            "WIN1256",
            "WIN1258",
            "WIN866",
            "WIN874",
            "KOI8R",
            "WIN1251",
            "WIN1252",
            "ISO_8859_5",
            "ISO_8859_6",
            "ISO_8859_7",
            "ISO_8859_8",
            "WIN1250",
            "WIN1253",
            "WIN1254",
            "WIN1255",
            "WIN1257",
            "KOI8U",
            "SJIS",
            "BIG5",
            "GBK",
            "UHC",
            "GB18030",
            "JOHAB",
            "SHIFT_JIS_2004",
        ] {
            assert_eq!(enc(name).name(), name);
        }
    }

    #[test]
    fn single_byte_encodings() {
        assert_eq!(decode("LATIN9", b"SELECT '\xa4'").unwrap(), "SELECT '€'");
        assert_eq!(decode("LATIN1", b"SELECT '\xa4'").unwrap(), "SELECT '¤'");
        // 8859-1, not windows-1252: 0x80 is a C1 control.
        assert_eq!(decode("LATIN1", b"\x80").unwrap(), "\u{80}");
        assert_eq!(decode("WIN1252", b"\x80").unwrap(), "€");
        assert_eq!(decode("LATIN5", b"\x80\xdd").unwrap(), "\u{80}İ");
        assert_eq!(decode("KOI8R", b"\xc1").unwrap(), "а");
    }

    #[test]
    fn a_backslash_byte_inside_a_character_is_not_a_backslash() {
        // 0x95 0x5c is 表 in SJIS; the trail byte is the ASCII code of a backslash.
        let text = decode("SJIS", b"SELECT '\x95\x5c'").unwrap();
        assert_eq!(text, "SELECT '表'");
        assert!(!text.contains('\\'));
        // 0xa5 0x5c is 功 in BIG5, 0x81 0x5c 乗 in GBK.
        assert_eq!(decode("BIG5", b"'\xa5\x5c'").unwrap(), "'功'");
        assert_eq!(decode("GBK", b"'\x81\x5c'").unwrap(), "'乗'");
        assert!(enc("SJIS").backslash_unsafe());
        assert!(!enc("LATIN9").backslash_unsafe());
        assert!(!enc("UTF8").backslash_unsafe());
    }

    #[test]
    fn invalid_and_unreadable_text_is_an_error() {
        assert_eq!(
            decode("UTF8", b"SELECT '\xff'"),
            Err(DecodeError::Invalid { encoding: "UTF8" })
        );
        // A lead byte before a byte that cannot trail it.
        assert!(decode("SJIS", b"SELECT '\x95'").is_err());
        // ISO 8859-3 leaves 0xa5 unassigned.
        assert!(decode("LATIN3", b"\xa5").is_err());
        assert_eq!(
            decode("SHIFT_JIS_2004", b"'\x81\x5f'"),
            Err(DecodeError::Unsupported {
                encoding: "SHIFT_JIS_2004".into()
            })
        );
        // ASCII is read in every encoding.
        assert_eq!(decode("JOHAB", b"SELECT 1").unwrap(), "SELECT 1");
    }

    #[test]
    fn conversion_follows_the_database_encoding() {
        let latin9 = enc("LATIN9");
        let sql_ascii = enc("SQL_ASCII");
        // A SQL_ASCII client is validated in the database encoding, not converted.
        assert_eq!(sql_ascii.decode_for(latin9, b"'\xa4'").unwrap(), "'€'");
        assert!(sql_ascii.decode_for(PgEncoding::UTF8, b"'\xa4'").is_err());
        // A SQL_ASCII database converts nothing: bytes are read as they are, and an
        // encoding that is not ASCII-safe may send ASCII only.
        assert_eq!(latin9.decode_for(sql_ascii, b"'\xa4'").unwrap(), "'\u{a4}'");
        assert!(enc("SJIS").decode_for(sql_ascii, b"'\x95\x5c'").is_err());
    }
}
