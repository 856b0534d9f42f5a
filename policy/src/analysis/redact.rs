//! The statement text that may be kept (audit events, approval requests) and the
//! fingerprint that names a statement across its literal values.

use sha2::{Digest, Sha256};

/// A statement's text with every literal replaced by `$n`, as PostgreSQL's parser
/// normalizes it: what audit events and approval requests record in place of the text
/// (`audit.statementText: Redacted`), so no value a client sent is kept. `None` for text
/// the parser cannot read.
pub fn normalize(sql: &str) -> Option<String> {
    pg_query::normalize(sql).ok()
}

/// The statement fingerprint approvals and audit events use: `sha256:` over the
/// normalized text. Not libpg_query's own fingerprint, a 64-bit non-cryptographic hash
/// that a crafted statement could collide with to reuse another's approval.
pub fn fingerprint(normalized: &str) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(normalized.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_text_and_fingerprint() {
        let a = normalize("SELECT * FROM t WHERE id = 42 AND name = 'x'").unwrap();
        assert_eq!(a, "SELECT * FROM t WHERE id = $1 AND name = $2");
        let b = normalize("SELECT * FROM t WHERE id = 7 AND name = 'secret'").unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint("SELECT * FROM u WHERE id = $1 AND name = $2")
        );
        assert!(fingerprint(&a).starts_with("sha256:"));
        assert_eq!(fingerprint(&a).len(), "sha256:".len() + 64);
        assert_eq!(normalize("SELEC 1"), None);
    }
}
