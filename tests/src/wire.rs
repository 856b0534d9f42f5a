//! Frontend messages built by hand, for the raw wire clients of the suites and benchmarks
//! (what no driver sends, or what a driver would add cost to).

/// A protocol 3.0 StartupMessage for `user` and `database`.
pub fn startup_packet(user: &str, database: &str) -> Vec<u8> {
    startup_packet_with(user, database, &[])
}

/// A StartupMessage with run-time parameters besides (`client_encoding`, `options`, …).
pub fn startup_packet_with(user: &str, database: &str, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196608i32.to_be_bytes().to_vec();
    let all = [("user", user), ("database", database)];
    for &(k, v) in all.iter().chain(params) {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// A tagged message: tag, length, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}
