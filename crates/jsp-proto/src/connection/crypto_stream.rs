//! CRYPTO frame streams (PROTOCOL.md §7.1): the send side keeps handshake bytes until they are
//! acknowledged and re-queues lost ranges; the receive side reassembles out-of-order data, within
//! a bounded buffer, into complete handshake messages.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::range_set::RangeSet;

/// Most out-of-order crypto data buffered per space (PROTOCOL.md §7.1).
pub const MAX_CRYPTO_BUFFER: u64 = 64 * 1024;
/// Largest handshake message accepted (PROTOCOL.md §7.1).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// Outgoing handshake bytes of one packet number space.
#[derive(Debug, Default)]
pub struct CryptoSend {
    data: Vec<u8>,
    /// Offsets queued for (re)transmission.
    pending: RangeSet,
    acked: RangeSet,
}

impl CryptoSend {
    /// Appends handshake bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        let start = self.data.len() as u64;
        self.data.extend_from_slice(bytes);
        self.pending.insert(start..self.data.len() as u64);
    }

    /// Whether bytes wait to be sent.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the next range of at most `max_len` bytes to send.
    pub fn next_chunk(&mut self, max_len: usize) -> Option<(u64, &[u8])> {
        if max_len == 0 {
            return None;
        }
        let r = self.pending.pop_min(max_len as u64)?;
        let (s, e) = (usize::try_from(r.start).ok()?, usize::try_from(r.end).ok()?);
        Some((r.start, &self.data[s..e]))
    }

    /// A sent range was acknowledged.
    pub fn on_ack(&mut self, range: Range<u64>) {
        self.acked.insert(range);
    }

    /// A sent range was lost: queue what of it is not acknowledged.
    pub fn on_lost(&mut self, range: Range<u64>) {
        self.pending.insert_difference(range, &self.acked);
    }

    /// Re-queues every unacknowledged byte (used by probes).
    pub fn requeue_unacked(&mut self) {
        self.on_lost(0..self.data.len() as u64);
    }

    /// Whether everything written was acknowledged.
    pub fn all_acked(&self) -> bool {
        self.data.is_empty() || self.acked.iter().next() == Some(0..self.data.len() as u64)
    }
}

/// Why incoming crypto data was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoRecvError {
    /// More than [`MAX_CRYPTO_BUFFER`] bytes ahead of the read point.
    BufferExceeded,
    /// A message longer than [`MAX_MESSAGE_LEN`].
    MessageTooLong,
}

/// Incoming handshake bytes of one packet number space.
#[derive(Debug, Default)]
pub struct CryptoRecv {
    /// Out-of-order fragments by offset.
    fragments: BTreeMap<u64, Vec<u8>>,
    /// Contiguous bytes not yet consumed as messages; `assembled[0]` is at `assembled_offset`.
    assembled: Vec<u8>,
    assembled_offset: u64,
}

impl CryptoRecv {
    /// The offset up to which data is contiguous.
    fn contiguous_end(&self) -> u64 {
        self.assembled_offset + self.assembled.len() as u64
    }

    /// Adds a CRYPTO frame's data.
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> Result<(), CryptoRecvError> {
        let end = offset.saturating_add(data.len() as u64);
        let have = self.contiguous_end();
        if end <= have {
            return Ok(()); // duplicate
        }
        if end - self.assembled_offset > MAX_CRYPTO_BUFFER {
            return Err(CryptoRecvError::BufferExceeded);
        }
        // Trim what we already have.
        let skip = usize::try_from(have.saturating_sub(offset)).unwrap_or(usize::MAX);
        let (offset, data) = if skip > 0 {
            (have, &data[skip.min(data.len())..])
        } else {
            (offset, data)
        };
        if offset == have {
            self.assembled.extend_from_slice(data);
            self.drain_fragments();
        } else {
            let keep = self
                .fragments
                .get(&offset)
                .is_none_or(|old| old.len() < data.len());
            if keep {
                self.fragments.insert(offset, data.to_vec());
            }
        }
        Ok(())
    }

    fn drain_fragments(&mut self) {
        loop {
            let have = self.contiguous_end();
            let Some((&off, _)) = self.fragments.range(..=have).next() else {
                return;
            };
            let Some(frag) = self.fragments.remove(&off) else {
                return;
            };
            let frag_end = off + frag.len() as u64;
            if frag_end > have {
                let skip = usize::try_from(have - off).unwrap_or(0);
                self.assembled.extend_from_slice(&frag[skip..]);
            }
        }
    }

    /// Takes the next complete handshake message (header included), if one is assembled.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, CryptoRecvError> {
        if self.assembled.len() < 4 {
            return Ok(None);
        }
        let len = (usize::from(self.assembled[1]) << 16)
            | (usize::from(self.assembled[2]) << 8)
            | usize::from(self.assembled[3]);
        if len > MAX_MESSAGE_LEN {
            return Err(CryptoRecvError::MessageTooLong);
        }
        if self.assembled.len() < 4 + len {
            return Ok(None);
        }
        let rest = self.assembled.split_off(4 + len);
        let msg = std::mem::replace(&mut self.assembled, rest);
        self.assembled_offset += msg.len() as u64;
        Ok(Some(msg))
    }

    /// Whether unconsumed data remains (a partial message).
    pub fn has_partial(&self) -> bool {
        !self.assembled.is_empty() || !self.fragments.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t, 0, 0, body.len() as u8];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn reassembles_out_of_order_and_splits_messages() {
        let mut bytes = msg(1, b"hello");
        bytes.extend(msg(2, b"world!"));
        let mut r = CryptoRecv::default();
        r.insert(6, &bytes[6..]).unwrap();
        assert_eq!(r.next_message().unwrap(), None);
        r.insert(0, &bytes[..8]).unwrap();
        assert_eq!(r.next_message().unwrap(), Some(msg(1, b"hello")));
        assert_eq!(r.next_message().unwrap(), Some(msg(2, b"world!")));
        assert_eq!(r.next_message().unwrap(), None);
        r.insert(0, &bytes).unwrap(); // duplicate is ignored
        assert!(!r.has_partial());
    }

    #[test]
    fn bounds_buffer_and_message_size() {
        let mut r = CryptoRecv::default();
        assert_eq!(
            r.insert(MAX_CRYPTO_BUFFER, b"x"),
            Err(CryptoRecvError::BufferExceeded)
        );
        r.insert(0, &[1, 0xff, 0, 0]).unwrap();
        assert_eq!(r.next_message(), Err(CryptoRecvError::MessageTooLong));
    }

    #[test]
    fn send_requeues_only_unacked_lost_bytes() {
        let mut s = CryptoSend::default();
        s.write(&[7u8; 100]);
        let (o, d) = s.next_chunk(60).unwrap();
        assert_eq!((o, d.len()), (0, 60));
        let (o, d) = s.next_chunk(60).unwrap();
        assert_eq!((o, d.len()), (60, 40));
        assert!(s.next_chunk(60).is_none());
        s.on_ack(20..40);
        s.on_lost(0..60);
        assert_eq!(s.next_chunk(100).map(|(o, d)| (o, d.len())), Some((0, 20)));
        assert_eq!(s.next_chunk(100).map(|(o, d)| (o, d.len())), Some((40, 20)));
        s.on_ack(0..100);
        assert!(s.all_acked());
    }
}
