//! Test harness for Palisade's end-to-end tests.
//!
//! The end-to-end suites exercise the real `palisade-sidecar` binary against a
//! real PostgreSQL server, so this crate owns the slow, fiddly parts once: a
//! throwaway PostgreSQL cluster per test binary ([`pg::PgCluster`]), a
//! throwaway CA for TLS ([`certs::TestCa`]) and a launcher for the sidecar
//! process ([`sidecar::Sidecar`]).

pub mod certs;
pub mod controlplane;
pub mod corpus;
pub mod issuer;
pub mod pg;
pub mod sidecar;
pub mod wire;

use std::net::TcpListener;

/// A TCP port that was free a moment ago on 127.0.0.1.
///
/// The servers under test (PostgreSQL, the sidecar) take their port from a
/// config file rather than reporting an OS-assigned one, so the harness has
/// to pick a port up front. It picks one *below* the kernel's ephemeral range
/// (`ip_local_port_range`): a port from that range can be taken by any
/// outgoing connection of a parallel test between the pick and the server's
/// bind, which made "Address already in use" flakes. Ports are spread by a
/// per-process counter and checked by binding; if none is found, the kernel's
/// choice is the fallback.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let low = 10_000u32;
    if ephemeral_low > low + 1000 {
        let span = ephemeral_low - low;
        // Different test binaries run one after another and each starts at its own
        // offset (its pid), so they rarely walk the same ports.
        let base = std::process::id().wrapping_mul(7919);
        for _ in 0..200 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = low + (base.wrapping_add(n.wrapping_mul(104_729)) % span);
            if let Ok(port) = u16::try_from(port)
                && TcpListener::bind(("127.0.0.1", port)).is_ok()
            {
                return port;
            }
        }
    }
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
