//! Which upstream servers read SQL with the parser's own grammar.
//!
//! Text the parser rejects may be forwarded for the server's own error (SQLSTATE, message,
//! position) only when the server surely rejects it too: nothing PostgreSQL cannot parse
//! can run. That holds when the server's grammar accepts nothing the parser's rejects:
//!
//! - not for a server newer than the parser (its new syntax is unknown here);
//! - not before PostgreSQL 15: 15 made a number followed directly by a letter an error
//!   (`SELECT 1FROM t` was `SELECT 1 FROM t` before), and 14 removed postfix operators
//!   (`SELECT 5 !`); older servers run text this parser rejects;
//! - from 15 to 17, only where the text does not use a keyword that became less
//!   available since (as a function, type or column name): `system_user` became reserved
//!   in 16; `json` and the SQL/JSON constructor and query functions became column-name
//!   keywords in 16 and 17 (`CREATE FUNCTION json_value(…)` is valid on 15 and a syntax
//!   error to the parser), and `merge_action` in 17. Such text goes to `onParseError`.

/// The PostgreSQL major version whose grammar the parser compiles in.
pub const PARSER_MAJOR: u32 = 18;
/// The oldest server whose accepted syntax the parser accepts too.
pub const OLDEST_COVERED: u32 = 15;

/// Keywords of the parser's grammar that are more restricted than in an older server's,
/// with the major version that restricted them.
const RESTRICTED_SINCE: &[(&str, u32)] = &[
    ("system_user", 16),
    ("json", 16),
    ("json_array", 16),
    ("json_arrayagg", 16),
    ("json_object", 16),
    ("json_objectagg", 16),
    ("json_exists", 17),
    ("json_query", 17),
    ("json_scalar", 17),
    ("json_serialize", 17),
    ("json_table", 17),
    ("json_value", 17),
    ("merge_action", 17),
];

/// The major version in a `server_version` ParameterStatus: `15.20 (Debian …)` is 15,
/// `18beta1` 18, `9.6.24` 9.
pub fn server_major(version: &str) -> Option<u32> {
    let digits: String = version
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Whether the parser's grammar covers a server of this major version.
pub fn covers(server_major: u32) -> bool {
    (OLDEST_COVERED..=PARSER_MAJOR).contains(&server_major)
}

/// Whether text the parser rejects is surely rejected by a server of `server_major`:
/// the grammar covers it and the text names no keyword restricted since. The keyword
/// check reads words anywhere in the text, literals and comments too, which only ever
/// sends more text to `onParseError`.
pub fn server_rejects_too(server_major: u32, sql: &str) -> bool {
    if !covers(server_major) {
        return false;
    }
    let restricted: Vec<&str> = RESTRICTED_SINCE
        .iter()
        .filter(|(_, since)| *since > server_major)
        .map(|(word, _)| *word)
        .collect();
    if restricted.is_empty() {
        return true;
    }
    !sql.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .any(|word| restricted.iter().any(|r| word.eq_ignore_ascii_case(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_as_servers_report_them() {
        assert_eq!(server_major("15.20 (Debian 15.20-0+deb12u1)"), Some(15));
        assert_eq!(server_major("18beta1"), Some(18));
        assert_eq!(server_major("9.6.24"), Some(9));
        assert_eq!(server_major("19devel"), Some(19));
        assert_eq!(server_major("unknown"), None);
    }

    #[test]
    fn covered_versions() {
        assert!(!covers(14));
        assert!(covers(15) && covers(16) && covers(17) && covers(18));
        assert!(!covers(19));
    }

    #[test]
    fn keywords_restricted_since_the_server() {
        assert!(server_rejects_too(15, "wat"));
        assert!(!server_rejects_too(
            15,
            "CREATE FUNCTION JSON_VALUE(x int) RETURNS int"
        ));
        assert!(!server_rejects_too(
            16,
            "create table t (a int, json_table int"
        ));
        assert!(server_rejects_too(
            17,
            "create table t (a int, json_table int"
        ));
        assert!(!server_rejects_too(15, "CREATE TABLE t (system_user int"));
        assert!(server_rejects_too(16, "CREATE TABLE t (system_user int"));
        // A word that merely contains a keyword is not one.
        assert!(server_rejects_too(15, "SELECT jsonb_build(1"));
        assert!(server_rejects_too(18, "CREATE FUNCTION json_value("));
        assert!(!server_rejects_too(14, "wat"));
        assert!(!server_rejects_too(19, "wat"));
    }
}
