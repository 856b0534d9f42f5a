//! The data path once a session is established: both directions polled by one future, so
//! the session's state needs no locks and a pipelining client never deadlocks the proxy
//! (each direction keeps reading while its writes wait).
//!
//! Bytes move in batches: everything a read brought in is framed, and whatever can go out
//! unchanged goes out in one write. Only the messages the sidecar must look into are held
//! until complete; every other message streams through as it arrives, so a 16 MiB value
//! costs no 16 MiB buffer. A message can be forwarded, replaced, or discarded.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::conn::Conn;
use crate::govern::Governance;
use crate::metrics::SessionMetrics;
use crate::protocol::frame::{FrameError, Header, MAX_MESSAGE_LEN, peek_header};
use crate::protocol::{backend, frontend};
use crate::verdict::Verdict;

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
    /// Bytes of the current message still to drop.
    discarding: usize,
    /// Size of the message being held whole, once its header is known.
    holding: usize,
    /// A message was deferred: framing waits until the session lets it go on, and the
    /// message's header has already been seen.
    deferred: bool,
    eof: bool,
}

impl Pump {
    /// A pump whose source already delivered `leftover` (bytes read during startup).
    pub fn new(leftover: BytesMut) -> Self {
        Pump {
            inp: leftover,
            out: BytesMut::with_capacity(READ_CHUNK),
            streaming: 0,
            discarding: 0,
            holding: 0,
            deferred: false,
            eof: false,
        }
    }
}

/// Session state the two directions share.
pub struct RelayState {
    /// When each request that will end in ReadyForQuery was sent, oldest first.
    pub in_flight: VecDeque<Instant>,
    /// Transaction status from the last ReadyForQuery: `I`, `T` or `E`.
    pub txn_status: u8,
    /// The client said goodbye (Terminate); whichever side closes first after that is normal.
    pub terminated: bool,
    /// An Execute or FunctionCall was sent since the last Sync: it may still be running
    /// (and changing settings) though no ReadyForQuery is awaited for it yet.
    pub unsynced_execute: bool,
    pub metrics: SessionMetrics,
    pub governance: Governance,
    /// Messages the session itself sends the client (the notice of a held statement),
    /// slipped in between the server's messages.
    pub to_client: BytesMut,
}

impl RelayState {
    pub fn new(metrics: SessionMetrics, governance: Governance) -> Self {
        RelayState {
            in_flight: VecDeque::new(),
            txn_status: b'I',
            terminated: false,
            unsynced_execute: false,
            metrics,
            governance,
            to_client: BytesMut::new(),
        }
    }
}

/// The rules of one direction: which messages are held whole and what happens to them.
trait Side {
    const FROM_CLIENT: bool;
    /// Whether a message of this type must be complete before it is forwarded, and the
    /// largest size that may be held; a larger one goes to `oversize`.
    fn hold(tag: u8, st: &mut RelayState) -> Option<usize>;
    /// Sees every message header as it passes; may discard the message (held or streamed).
    fn on_header(header: Header, st: &mut RelayState) -> Verdict;
    /// Sees every held message, whole.
    fn on_message(msg: &[u8], st: &mut RelayState) -> Verdict;
    /// A held message over the size limit: its replacement (its body is discarded).
    fn oversize(header: Header, st: &mut RelayState) -> Bytes;
}

struct FromClient;
struct FromServer;

impl Side for FromClient {
    const FROM_CLIENT: bool = true;

    fn hold(tag: u8, st: &mut RelayState) -> Option<usize> {
        // Statement text is what decisions are made on.
        if matches!(tag, frontend::QUERY | frontend::PARSE) {
            return Some(st.governance.max_message_len());
        }
        st.governance.holds_client(tag).then_some(MAX_MESSAGE_LEN)
    }

    fn on_header(header: Header, st: &mut RelayState) -> Verdict {
        match header.tag {
            frontend::QUERY | frontend::EXECUTE => st.metrics.statement(),
            frontend::TERMINATE => st.terminated = true,
            _ => {}
        }
        // Each of these is answered by exactly one ReadyForQuery.
        if matches!(
            header.tag,
            frontend::QUERY | frontend::SYNC | frontend::FUNCTION_CALL
        ) {
            st.in_flight.push_back(Instant::now());
        }
        match header.tag {
            frontend::SYNC => {
                st.unsynced_execute = false;
                st.governance.on_sync();
            }
            frontend::EXECUTE | frontend::FUNCTION_CALL => st.unsynced_execute = true,
            _ => {}
        }
        Verdict::Forward
    }

    fn on_message(msg: &[u8], st: &mut RelayState) -> Verdict {
        let replay_safe = st.txn_status == b'I' && st.in_flight.len() <= 1;
        // Nothing else awaits an answer, and the transaction can still run a query.
        let awaited = st.in_flight.len() <= usize::from(msg[0] == frontend::QUERY);
        let idle = st.txn_status != b'E' && awaited;
        // Nothing sent before may still change how the server reads this text.
        let settled = awaited && !st.unsynced_execute;
        match msg[0] {
            frontend::QUERY => st.governance.on_query(msg, replay_safe, idle, settled),
            frontend::PARSE => st.governance.on_parse(msg, idle, settled),
            frontend::FUNCTION_CALL => st.governance.on_function_call(),
            _ => {
                st.governance.on_client_message(msg);
                Verdict::Forward
            }
        }
    }

    fn oversize(header: Header, st: &mut RelayState) -> Bytes {
        st.governance.oversize(header)
    }
}

impl Side for FromServer {
    const FROM_CLIENT: bool = false;

    fn hold(tag: u8, st: &mut RelayState) -> Option<usize> {
        if st.governance.masking_holds(tag) {
            return Some(MAX_MESSAGE_LEN);
        }
        let hold = match tag {
            // Changes how the next statements' text is read (encoding, literals).
            backend::READY_FOR_QUERY | backend::PARAMETER_STATUS => true,
            // Only while a denial is outstanding: its error is rewritten on the way back.
            backend::ERROR_RESPONSE => st.governance.awaiting_errors(),
            backend::COMMAND_COMPLETE => st.governance.rows_limited(),
            _ => false,
        };
        hold.then_some(MAX_MESSAGE_LEN)
    }

    fn on_header(header: Header, st: &mut RelayState) -> Verdict {
        if st.governance.refreshing() {
            // The sidecar's own catalog query: none of it is the client's.
            return Verdict::Forward;
        }
        st.governance.on_backend_header(header.tag)
    }

    fn on_message(msg: &[u8], st: &mut RelayState) -> Verdict {
        if st.governance.refreshing() {
            return st.governance.on_refresh_message(msg);
        }
        match msg[0] {
            backend::READY_FOR_QUERY => {
                if let Some(&status) = msg.get(5) {
                    st.txn_status = status;
                    st.governance.on_transaction_status(status);
                }
                if let Some(sent) = st.in_flight.pop_front() {
                    st.metrics.latency(sent.elapsed());
                }
                st.governance.on_ready_for_query(st.in_flight.is_empty());
                Verdict::Forward
            }
            backend::ERROR_RESPONSE => st.governance.on_error_response(msg),
            backend::COMMAND_COMPLETE => st.governance.on_command_complete(),
            _ => st.governance.on_backend_message(msg),
        }
    }

    fn oversize(_header: Header, _st: &mut RelayState) -> Bytes {
        // Not reached: backend messages are held up to the protocol maximum, which
        // peek_header enforces first. Dropping the message is the safe answer anyway.
        Bytes::new()
    }
}

/// Frames what `pump.inp` holds and moves everything due to the other side to `pump.out`.
fn frame<S: Side>(pump: &mut Pump, st: &mut RelayState) -> Result<(), FrameError> {
    let len = pump.inp.len();
    // inp[run..pos] is forwardable unchanged; it is copied out in one go when a message
    // is replaced or dropped, and at the end.
    let mut run = 0;
    let mut pos = 0;
    pump.holding = 0;
    // A deferred message was already seen by on_header; only its body is looked at again.
    let mut resumed = std::mem::take(&mut pump.deferred);
    loop {
        if pump.streaming > 0 {
            let n = pump.streaming.min(len - pos);
            pos += n;
            pump.streaming -= n;
            if pump.streaming > 0 {
                break;
            }
        }
        if pump.discarding > 0 {
            pump.out.extend_from_slice(&pump.inp[run..pos]);
            let n = pump.discarding.min(len - pos);
            pos += n;
            run = pos;
            pump.discarding -= n;
            if pump.discarding > 0 {
                break;
            }
        }
        let Some(header) = peek_header(&pump.inp[pos..], MAX_MESSAGE_LEN)? else {
            break;
        };
        match S::hold(header.tag, st) {
            Some(limit) if header.total > limit => {
                // Too big to hold: answer in its place and drop it as it arrives.
                S::on_header(header, st);
                let replacement = S::oversize(header, st);
                pump.out.extend_from_slice(&pump.inp[run..pos]);
                pump.out.extend_from_slice(&replacement);
                run = pos;
                pump.discarding = header.total;
            }
            Some(_) => {
                if len - pos < header.total {
                    pump.holding = header.total;
                    break;
                }
                let end = pos + header.total;
                // A held message whose header is already refused (a row over the limit)
                // is dropped unread, like a streamed one.
                let refused = !std::mem::take(&mut resumed)
                    && matches!(S::on_header(header, st), Verdict::Discard);
                let verdict = if refused {
                    Verdict::Discard
                } else {
                    S::on_message(&pump.inp[pos..end], st)
                };
                match verdict {
                    Verdict::Defer(bytes) => {
                        pump.out.extend_from_slice(&pump.inp[run..pos]);
                        pump.out.extend_from_slice(&bytes);
                        run = pos;
                        pump.deferred = true;
                        break;
                    }
                    Verdict::Hold(bytes) => {
                        pump.out.extend_from_slice(&pump.inp[run..pos]);
                        st.to_client.extend_from_slice(&bytes);
                        run = pos;
                        pump.deferred = true;
                        break;
                    }
                    Verdict::Forward => {}
                    Verdict::Replace(bytes) => {
                        pump.out.extend_from_slice(&pump.inp[run..pos]);
                        pump.out.extend_from_slice(&bytes);
                        run = end;
                    }
                    Verdict::Discard => {
                        pump.out.extend_from_slice(&pump.inp[run..pos]);
                        run = end;
                    }
                }
                pos = end;
            }
            None => match S::on_header(header, st) {
                Verdict::Discard | Verdict::Defer(_) | Verdict::Hold(_) => {
                    pump.out.extend_from_slice(&pump.inp[run..pos]);
                    run = pos;
                    pump.discarding = header.total;
                }
                _ => {
                    let available = len - pos;
                    if available >= header.total {
                        pos += header.total;
                    } else {
                        pos = len;
                        pump.streaming = header.total - available;
                        break;
                    }
                }
            },
        }
    }
    pump.out.extend_from_slice(&pump.inp[run..pos]);
    pump.inp.advance(pos);
    Ok(())
}

fn protocol_end<S: Side>(e: FrameError) -> RelayEnd {
    match S::FROM_CLIENT {
        true => RelayEnd::ClientProtocol(e),
        false => RelayEnd::ServerProtocol(e),
    }
}

fn end<S: Side>(io_err: Option<io::Error>) -> RelayEnd {
    match (S::FROM_CLIENT, io_err) {
        (true, None) => RelayEnd::ClientClosed,
        (false, None) => RelayEnd::ServerClosed,
        (true, Some(e)) => RelayEnd::ClientIo(e),
        (false, Some(e)) => RelayEnd::ServerIo(e),
    }
}

/// The end for a failure writing to this direction's destination.
fn write_end<S: Side>(e: Option<io::Error>) -> RelayEnd {
    match (S::FROM_CLIENT, e) {
        (true, None) => RelayEnd::ServerClosed,
        (false, None) => RelayEnd::ClientClosed,
        (true, Some(e)) => RelayEnd::ServerIo(e),
        (false, Some(e)) => RelayEnd::ClientIo(e),
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
                Poll::Ready(Ok(0)) => return Poll::Ready(write_end::<S>(None)),
                Poll::Ready(Ok(n)) => {
                    pump.out.advance(n);
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(write_end::<S>(Some(e))),
                Poll::Pending => break,
            }
        }
        if wrote
            && pump.out.is_empty()
            && let Poll::Ready(Err(e)) = Pin::new(&mut *dst).poll_flush(cx)
        {
            // TLS streams buffer inside rustls; plain TCP returns at once.
            return Poll::Ready(write_end::<S>(Some(e)));
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
        if pump.deferred {
            match st.governance.poll_release(cx) {
                Poll::Ready(()) => {
                    if let Err(e) = frame::<S>(pump, st) {
                        return Poll::Ready(protocol_end::<S>(e));
                    }
                    continue;
                }
                // A catalog refresh is short: wait for it (the relay wakes this side
                // once the other direction ends it).
                Poll::Pending if st.governance.refreshing() => return Poll::Pending,
                // A statement held for approval may wait minutes. Keep reading, within
                // bounds, so that a client going away is noticed and withdraws it.
                Poll::Pending if pump.inp.len() >= HIGH_WATER => return Poll::Pending,
                Poll::Pending => {}
            }
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
        if pump.deferred {
            // Framing resumes at the deferred message once the refresh is done.
            continue;
        }
        if let Err(e) = frame::<S>(pump, st) {
            return Poll::Ready(protocol_end::<S>(e));
        }
        if pump.inp.is_empty() && pump.inp.capacity() > SHRINK_ABOVE {
            pump.inp = BytesMut::with_capacity(READ_CHUNK);
        }
    }
}

/// Relays until either side ends, then hands back what is still due to each side.
pub async fn relay(
    client: &mut Conn,
    server: &mut Conn,
    mut to_server: Pump,
    mut to_client: Pump,
    st: &mut RelayState,
) -> (RelayEnd, BytesMut, BytesMut) {
    // Bytes handed over from startup may already hold complete messages.
    let pre = frame::<FromClient>(&mut to_server, st)
        .and_then(|_| frame::<FromServer>(&mut to_client, st));
    if let Err(e) = pre {
        return (RelayEnd::ClientProtocol(e), to_server.out, to_client.out);
    }
    let end = poll_fn(|cx| {
        loop {
            if let Poll::Ready(end) = pump::<FromClient>(cx, client, server, &mut to_server, st) {
                return Poll::Ready(end);
            }
            // The session's own messages to the client go between two of the server's,
            // never into one that is still streaming through.
            if !st.to_client.is_empty() && to_client.streaming == 0 {
                to_client.out.extend_from_slice(&st.to_client);
                st.to_client.clear();
            }
            if let Poll::Ready(end) = pump::<FromServer>(cx, server, client, &mut to_client, st) {
                return Poll::Ready(end);
            }
            // The server side may just have answered a catalog refresh that a deferred
            // client message waits on; nothing else would wake the client side for it.
            if to_server.deferred && !st.governance.refreshing() && !st.governance.holding() {
                continue;
            }
            return Poll::Pending;
        }
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
