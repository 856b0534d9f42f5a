//! The decision corpus (`tests/corpus/`): statements with the decision the corpus policy
//! must reach for them. Read by the policy crate's unit tests and by the end-to-end
//! suite that sends every statement through the live sidecar, so both judge the same list.

/// One statement of `decisions.tsv`.
#[derive(Clone, Debug)]
pub struct Case {
    /// The database user the statement runs as.
    pub db_user: &'static str,
    /// Whether the statement must be allowed.
    pub allow: bool,
    /// The rule that must decide it; `-` for the default action, `parse` for onParseError.
    pub rule: &'static str,
    pub sql: String,
}

/// The corpus policy with its placeholders filled in.
pub fn policy_yaml(listen_port: u16, pg_port: u16) -> String {
    include_str!("../corpus/policy.yaml")
        .replace("${LISTEN_PORT}", &listen_port.to_string())
        .replace("${PG_PORT}", &pg_port.to_string())
}

/// Every statement of the corpus. `\n` and `\t` in a line stand for a newline and a tab.
pub fn cases() -> Vec<Case> {
    include_str!("../corpus/decisions.tsv")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (db_user, line) = match line.strip_prefix("@analyst\t") {
                Some(rest) => ("analyst", rest),
                None => ("palisade", line),
            };
            let mut parts = line.splitn(3, '\t');
            let expect = parts.next().unwrap_or_default();
            let rule = parts.next().unwrap_or_default();
            let sql = parts
                .next()
                .unwrap_or_else(|| panic!("corpus line without SQL: {line:?}"))
                .replace("\\n", "\n")
                .replace("\\t", "\t");
            assert!(
                expect == "allow" || expect == "deny",
                "corpus line {line:?}"
            );
            Case {
                db_user,
                allow: expect == "allow",
                rule,
                sql,
            }
        })
        .collect()
}
