//! Message framing: a type byte, a big-endian i32 length that counts itself, a body.
//! Lengths are checked before anything is allocated for them, because the length is
//! whatever the peer says it is (a 2 GiB header must cost nothing).

use bytes::{BufMut, Bytes, BytesMut};

/// PostgreSQL's own ceiling for a message (`PQ_LARGE_MESSAGE_LIMIT`, 1 GiB - 1).
pub const MAX_MESSAGE_LEN: usize = 0x3fff_ffff;

/// The header of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub tag: u8,
    /// Total size on the wire: tag byte, length field and body.
    pub total: usize,
}

impl Header {
    pub fn body_len(&self) -> usize {
        self.total - 5
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("invalid message length {len} for message type {tag:?}")]
    BadLength { tag: char, len: i64 },
    #[error("message type {tag:?} of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { tag: char, len: usize, limit: usize },
}

/// Reads the header at the start of `buf`, if all five bytes are there.
pub fn peek_header(buf: &[u8], limit: usize) -> Result<Option<Header>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(FrameError::BadLength {
            tag: tag as char,
            len: len as i64,
        });
    }
    let len = len as usize;
    if len > limit {
        return Err(FrameError::TooLarge {
            tag: tag as char,
            len,
            limit,
        });
    }
    Ok(Some(Header {
        tag,
        total: len + 1,
    }))
}

/// Builds a message from its tag and body.
pub fn message(tag: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + 5);
    out.put_u8(tag);
    out.put_i32(body.len() as i32 + 4);
    out.put_slice(body);
    out.freeze()
}

/// The big-endian i32 at the start of `bytes`, if there are four.
pub fn be_i32(bytes: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// Splits a body of NUL-terminated strings; `None` if the last one is not terminated.
pub fn read_cstr(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = body.iter().position(|&b| b == 0)?;
    Some((&body[..nul], &body[nul + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_five_bytes() {
        assert_eq!(peek_header(b"Q\0\0", MAX_MESSAGE_LEN), Ok(None));
        let h = peek_header(b"Q\0\0\0\x09SELE", MAX_MESSAGE_LEN)
            .unwrap()
            .unwrap();
        assert_eq!(h.tag, b'Q');
        assert_eq!(h.total, 10);
        assert_eq!(h.body_len(), 5);
    }

    #[test]
    fn absurd_lengths_are_refused_before_allocation() {
        // 2 GiB reads as a negative i32.
        let err = peek_header(b"Q\x80\0\0\0", MAX_MESSAGE_LEN).unwrap_err();
        assert!(matches!(err, FrameError::BadLength { .. }));
        assert!(matches!(
            peek_header(b"Q\0\0\0\x03", MAX_MESSAGE_LEN).unwrap_err(),
            FrameError::BadLength { len: 3, .. }
        ));
        assert!(matches!(
            peek_header(b"Q\x40\0\0\0", MAX_MESSAGE_LEN).unwrap_err(),
            FrameError::TooLarge { .. }
        ));
    }

    #[test]
    fn message_round_trips() {
        let m = message(b'Z', b"I");
        assert_eq!(&m[..], b"Z\0\0\0\x05I");
    }
}
