//! The data path once a session is established: both directions polled by one future, so
//! the session's state needs no locks and a pipelining client never deadlocks the proxy
//! (each direction keeps reading while its writes wait).
//!
//! Bytes move in batches: everything a read brought in is framed, and whatever can go out
//! unchanged goes out in one write. Only the messages the sidecar must look into are held
//! until complete; every other message streams through as it arrives, so a 16 MiB value
//! costs no 16 MiB buffer.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::conn::Conn;
use crate::metrics::SessionMetrics;
use crate::protocol::frame::{FrameError, MAX_MESSAGE_LEN, peek_header};
use crate::protocol::{backend, frontend};

/// Stop reading a side while this much is waiting to be written to the other.
const HIGH_WATER: usize = 256 * 1024;
/// Read buffers start this small; they grow only for messages that must be held whole.
const READ_CHUNK: usize = 16 * 1024;
/// A read buffer that grew past this for one large message is given back afterwards.
const SHRINK_ABOVE: usize = 1024 * 1024;

/// How a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    ClientClosed,
    ServerClosed,
    ClientIo(io::Error),
    ServerIo(io::Error),
    ClientProtocol(FrameError),
    ServerProtocol(FrameError),
}

/// One direction of the relay: bytes read from its source, bytes due to its destination.
pub struct Pump {
    inp: BytesMut,
    out: BytesMut,
    /// Bytes of the current message still to stream through unexamined.
    streaming: usize,
    /// Size of the message being held whole, once its header is known.
    holding: usize,
    eof: bool,
}

impl Pump {
    /// A pump whose source already delivered `leftover` (bytes read during startup).
    pub fn new(leftover: BytesMut) -> Self {
        Pump {
            inp: leftover,
            out: BytesMut::with_capacity(READ_CHUNK),
            streaming: 0,
            holding: 0,
            eof: false,
        }
    }
}

/// Session state the two directions share.
pub struct RelayState {
    /// When each request that will end in ReadyForQuery was sent, oldest first.
    in_flight: VecDeque<Instant>,
    /// Transaction status from the last ReadyForQuery: `I`, `T` or `E`.
    pub txn_status: u8,
    /// The client said goodbye (Terminate); whichever side closes first after that is normal.
    pub terminated: bool,
    pub metrics: SessionMetrics,
}

impl RelayState {
    pub fn new(metrics: SessionMetrics) -> Self {
        RelayState {
            in_flight: VecDeque::new(),
            txn_status: b'I',
            terminated: false,
            metrics,
        }
    }
}

/// The rules of one direction: which messages are held whole and what happens to them.
trait Side {
    const FROM_CLIENT: bool;
    /// Whether a message of this type must be complete before it is forwarded.
    fn hold(tag: u8) -> bool;
    /// Sees every message header as it passes.
    fn on_header(tag: u8, st: &mut RelayState);
    /// Sees every held message, whole.
    fn on_message(msg: &[u8], st: &mut RelayState);
}

struct FromClient;
struct FromServer;

impl Side for FromClient {
    const FROM_CLIENT: bool = true;

    fn hold(tag: u8) -> bool {
        // Statement text is what later stages decide on.
        matches!(tag, frontend::QUERY | frontend::PARSE)
    }

    fn on_header(tag: u8, st: &mut RelayState) {
        match tag {
            frontend::QUERY | frontend::EXECUTE => st.metrics.statement(),
            frontend::TERMINATE => st.terminated = true,
            _ => {}
        }
        // Each of these is answered by exactly one ReadyForQuery.
        if matches!(tag, frontend::QUERY | frontend::SYNC | frontend::FUNCTION_CALL) {
            st.in_flight.push_back(Instant::now());
        }
    }

    fn on_message(_msg: &[u8], _st: &mut RelayState) {}
}

impl Side for FromServer {
    const FROM_CLIENT: bool = false;

    fn hold(tag: u8) -> bool {
        tag == backend::READY_FOR_QUERY
    }

    fn on_header(_tag: u8, _st: &mut RelayState) {}

    fn on_message(msg: &[u8], st: &mut RelayState) {
        if msg[0] == backend::READY_FOR_QUERY {
            if let Some(&status) = msg.get(5) {
                st.txn_status = status;
            }
            if let Some(sent) = st.in_flight.pop_front() {
                st.metrics.latency(sent.elapsed());
            }
        }
    }
}

/// Frames what `pump.inp` holds and moves everything forwardable to `pump.out`.
fn frame<S: Side>(pump: &mut Pump, st: &mut RelayState) -> Result<(), FrameError> {
    let mut pos = 0;
    let len = pump.inp.len();
    pump.holding = 0;
    loop {
        if pump.streaming > 0 {
            let n = pump.streaming.min(len - pos);
            pos += n;
            pump.streaming -= n;
            if pump.streaming > 0 {
                break;
            }
        }
        let Some(header) = peek_header(&pump.inp[pos..], MAX_MESSAGE_LEN)? else {
            break;
        };
        if S::hold(header.tag) {
            if len - pos < header.total {
                pump.holding = header.total;
                break;
            }
            S::on_header(header.tag, st);
            S::on_message(&pump.inp[pos..pos + header.total], st);
            pos += header.total;
        } else {
            S::on_header(header.tag, st);
            let available = len - pos;
            if available >= header.total {
                pos += header.total;
            } else {
                pos = len;
                pump.streaming = header.total - available;
                break;
            }
        }
    }
    if pos > 0 {
        pump.out.extend_from_slice(&pump.inp[..pos]);
        pump.inp.advance(pos);
    }
    Ok(())
}

fn end<S: Side>(io_err: Option<io::Error>) -> RelayEnd {
    match (S::FROM_CLIENT, io_err) {
        (true, None) => RelayEnd::ClientClosed,
        (false, None) => RelayEnd::ServerClosed,
        (true, Some(e)) => RelayEnd::ClientIo(e),
        (false, Some(e)) => RelayEnd::ServerIo(e),
    }
}

/// Drives one direction as far as it can go without blocking.
fn pump<S: Side>(
    cx: &mut Context<'_>,
    src: &mut Conn,
    dst: &mut Conn,
    pump: &mut Pump,
    st: &mut RelayState,
) -> Poll<RelayEnd> {
    loop {
        // Write first, so that what we read next has room.
        let mut wrote = false;
        while !pump.out.is_empty() {
            match Pin::new(&mut *dst).poll_write(cx, &pump.out) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(match S::FROM_CLIENT {
                        true => RelayEnd::ServerClosed,
                        false => RelayEnd::ClientClosed,
                    });
                }
                Poll::Ready(Ok(n)) => {
                    pump.out.advance(n);
                    wrote = true;
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(match S::FROM_CLIENT {
                        true => RelayEnd::ServerIo(e),
                        false => RelayEnd::ClientIo(e),
                    });
                }
                Poll::Pending => break,
            }
        }
        if wrote && pump.out.is_empty() {
            // TLS streams buffer inside rustls; plain TCP returns at once.
            if let Poll::Ready(Err(e)) = Pin::new(&mut *dst).poll_flush(cx) {
                return Poll::Ready(match S::FROM_CLIENT {
                    true => RelayEnd::ServerIo(e),
                    false => RelayEnd::ClientIo(e),
                });
            }
        }
        if pump.eof {
            if pump.out.is_empty() {
                return Poll::Ready(end::<S>(None));
            }
            return Poll::Pending;
        }
        if pump.out.len() >= HIGH_WATER {
            return Poll::Pending;
        }
        // Read as much as is there.
        let want = pump.holding.saturating_sub(pump.inp.len()).max(READ_CHUNK);
        if pump.inp.capacity() - pump.inp.len() < READ_CHUNK {
            pump.inp.reserve(want);
        }
        let n = match tokio_util::io::poll_read_buf(Pin::new(&mut *src), cx, &mut pump.inp) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(end::<S>(Some(e))),
            Poll::Pending => return Poll::Pending,
        };
        if n == 0 {
            pump.eof = true;
            continue;
        }
        st.metrics.bytes(S::FROM_CLIENT, n);
        if let Err(e) = frame::<S>(pump, st) {
            return Poll::Ready(match S::FROM_CLIENT {
                true => RelayEnd::ClientProtocol(e),
                false => RelayEnd::ServerProtocol(e),
            });
        }
        if pump.inp.is_empty() && pump.inp.capacity() > SHRINK_ABOVE {
            pump.inp = BytesMut::with_capacity(READ_CHUNK);
        }
    }
}

/// Relays until either side ends, then delivers what is still due to each side.
pub async fn relay(
    client: &mut Conn,
    server: &mut Conn,
    mut to_server: Pump,
    mut to_client: Pump,
    st: &mut RelayState,
) -> (RelayEnd, BytesMut, BytesMut) {
    // Bytes handed over from startup may already hold complete messages.
    let pre = frame::<FromClient>(&mut to_server, st).and_then(|_| frame::<FromServer>(&mut to_client, st));
    if let Err(e) = pre {
        return (RelayEnd::ClientProtocol(e), to_server.out, to_client.out);
    }
    let end = poll_fn(|cx| {
        if let Poll::Ready(end) = pump::<FromClient>(cx, client, server, &mut to_server, st) {
            return Poll::Ready(end);
        }
        let end = ready!(pump::<FromServer>(cx, server, client, &mut to_client, st));
        Poll::Ready(end)
    })
    .await;
    (end, to_server.out, to_client.out)
}

/// Writes what is still due to a peer, bounded in time: a peer that stopped reading must
/// not keep the session alive.
pub async fn flush_remaining(conn: &mut Conn, pending: &[u8]) {
    let write = async {
        if !pending.is_empty() {
            conn.write_all(pending).await?;
        }
        conn.flush().await?;
        conn.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}
