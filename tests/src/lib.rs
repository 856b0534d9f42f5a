//! Test harness for Palisade's end-to-end tests.
//!
//! The end-to-end suites exercise the real `palisade-sidecar` binary against a
//! real PostgreSQL server, so this crate owns the slow, fiddly parts once: a
//! throwaway PostgreSQL cluster per test binary ([`pg::PgCluster`]), a
//! throwaway CA for TLS ([`certs::TestCa`]) and a launcher for the sidecar
//! process ([`sidecar::Sidecar`]).

pub mod certs;
pub mod corpus;
pub mod pg;
pub mod sidecar;
pub mod wire;

use std::net::TcpListener;

/// A TCP port that was free a moment ago on 127.0.0.1.
///
/// The servers under test (PostgreSQL, the sidecar) take their port from a
/// config file rather than reporting an OS-assigned one, so the harness has
/// to pick a port up front. The kernel hands out ephemeral ports in a
/// rotating order, which makes an immediate reuse by another test unlikely,
/// though not impossible.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
        .port()
}

/// libpq-style `key=value` connection string, shared by the cluster and the
/// sidecar so that tests address both the same way.
pub(crate) fn conn_str(
    host: &str,
    port: u16,
    user: &str,
    password: Option<&str>,
    dbname: &str,
) -> String {
    let mut s = format!("host={host} port={port} user={}", conninfo_value(user));
    if let Some(password) = password {
        s.push_str(" password=");
        s.push_str(&conninfo_value(password));
    }
    s.push_str(" dbname=");
    s.push_str(&conninfo_value(dbname));
    s
}

/// Quoted only when it has to be, so that ordinary strings stay readable in
/// logs and failure messages.
fn conninfo_value(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\' || c == '=');
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_quoting() {
        assert_eq!(conninfo_value("abc"), "abc");
        assert_eq!(conninfo_value(""), "''");
        assert_eq!(conninfo_value("a b"), "'a b'");
        assert_eq!(conninfo_value(r"it's\x"), r"'it\'s\\x'");
        assert_eq!(
            conn_str("h", 5, "u", Some("p w"), "d"),
            "host=h port=5 user=u password='p w' dbname=d"
        );
    }
}
