//! Stream handles: [`SendStream`] implements tokio's `AsyncWrite` (back-pressure when the
//! connection's send buffer is full) and [`RecvStream`] implements `AsyncRead` (EOF at FIN).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use jsp_proto::connection::StreamPriority;
use jsp_proto::{ConnectionError, StreamApiError, StreamId};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::connection::Connection;
use crate::error::Error;

fn io_err(e: ConnectionError) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, e)
}

/// The sending half of a stream. Dropping it without [`SendStream::finish`] finishes it too, so
/// everything written is delivered.
#[derive(Debug)]
pub struct SendStream {
    conn: Connection,
    id: StreamId,
    finished: bool,
    reset: bool,
}

impl SendStream {
    pub(crate) fn new(conn: Connection, id: StreamId) -> Self {
        Self {
            conn,
            id,
            finished: false,
            reset: false,
        }
    }

    /// The stream's identifier.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Changes how this stream's data competes for the connection: its QoS class, priority and
    /// weight (PROTOCOL.md §14.4). A real-time stream should be `QosClass::Media`, which forward
    /// error correction also protects by default once loss is measured (§19). A stream that
    /// already ended has nothing left to schedule: that is not an error.
    pub fn set_priority(&self, priority: StreamPriority) -> Result<(), ConnectionError> {
        let id = self.id;
        let _ = self.conn.with(|c, _| c.set_stream_priority(id, priority))?;
        Ok(())
    }

    /// Ends the stream after the data already written.
    pub fn finish(&mut self) -> Result<(), ConnectionError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let id = self.id;
        self.conn
            .with(|c, cs| {
                cs.ack_watch.insert(id);
                c.stream_write(id, &[], true)
            })?
            .map(|_| ())
            .or_else(|e| match e {
                StreamApiError::NotWritable | StreamApiError::Stopped(_) => Ok(()),
                _ => Ok(()),
            })
    }

    /// Abandons the stream with an application error code (RESET_STREAM).
    pub fn reset(&mut self, code: u64) {
        self.finished = true;
        self.reset = true;
        let id = self.id;
        let _ = self.conn.with(|c, _| c.reset_stream(id, code));
    }

    /// Finishes the stream (if not done yet) and waits until the peer acknowledged everything
    /// written and the end of the stream: the data reached the peer's stack and nothing is left
    /// to retransmit. Bytes of partially reliable messages abandoned at their deadline count as
    /// done.
    ///
    /// # Errors
    /// [`Error::StreamStopped`] if the peer stopped the stream, [`Error::StreamReset`] if we
    /// reset it, [`Error::Connection`] if the connection ended first: in each case some data may
    /// not have been delivered.
    pub async fn acknowledged(&mut self) -> Result<(), Error> {
        if self.reset {
            return Err(Error::StreamReset);
        }
        self.finish()?;
        let id = self.id;
        self.conn
            .wait(|_, cs, cx| {
                if cs.acked_streams.contains(&id) {
                    return Some(Ok(()));
                }
                if let Some(code) = cs.stopped_streams.get(&id) {
                    return Some(Err(Error::StreamStopped(*code)));
                }
                if let Some(e) = &cs.error {
                    return Some(Err(Error::Connection(e.clone())));
                }
                cs.ack_wakers.insert(id, cx.waker().clone());
                None
            })
            .await?
    }

    /// Writes one partially reliable message: abandoned (and reported skipped to the reader) if
    /// it cannot be delivered within `ttl`.
    pub async fn send_message(
        &mut self,
        data: &[u8],
        ttl: std::time::Duration,
    ) -> Result<(), io::Error> {
        let id = self.id;
        self.conn
            .wait(|c, cs, cx| match c.stream_send_message(id, data, ttl) {
                Ok(()) => Some(Ok(())),
                Err(StreamApiError::Blocked) => {
                    cs.write_wakers.push(cx.waker().clone());
                    None
                }
                Err(e) => Some(Err(io::Error::other(e))),
            })
            .await
            .map_err(io_err)?
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        let _ = self.finish();
        let id = self.id;
        let _ = self.conn.with(|_, cs| {
            cs.ack_watch.remove(&id);
            cs.acked_streams.remove(&id);
            cs.stopped_streams.remove(&id);
            cs.ack_wakers.remove(&id);
        });
    }
}

impl AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let id = self.id;
        let r = self
            .conn
            .with(|c, cs| match c.stream_write(id, buf, false) {
                Ok(n) => Ok(Some(n)),
                Err(StreamApiError::Blocked) => {
                    cs.write_wakers.push(cx.waker().clone());
                    Ok(None)
                }
                Err(StreamApiError::Stopped(code)) => Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!("the peer stopped the stream (code {code})"),
                )),
                Err(StreamApiError::NotOpen) => Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    cs.error
                        .clone()
                        .map_or_else(|| "connection not open".to_string(), |e| e.to_string()),
                )),
                Err(e) => Err(io::Error::other(e)),
            });
        match r {
            Ok(Ok(Some(n))) => Poll::Ready(Ok(n)),
            Ok(Ok(None)) => Poll::Pending,
            Ok(Err(e)) => Poll::Ready(Err(e)),
            Err(e) => Poll::Ready(Err(io_err(e))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written data is queued in the engine, which sends it as fast as congestion control
        // allows; there is no separate user-space buffer to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.finish().map_err(io_err))
    }
}

/// The receiving half of a stream.
#[derive(Debug)]
pub struct RecvStream {
    conn: Connection,
    id: StreamId,
    fin: bool,
}

impl RecvStream {
    pub(crate) fn new(conn: Connection, id: StreamId) -> Self {
        Self {
            conn,
            id,
            fin: false,
        }
    }

    /// The stream's identifier.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Reads the whole stream, failing if it is longer than `limit` bytes.
    pub async fn read_all(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::io::AsyncReadExt::read(self, &mut buf).await?;
            if n == 0 {
                return Ok(out);
            }
            if out.len() + n > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("stream longer than {limit} bytes"),
                ));
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Asks the peer to stop sending (STOP_SENDING with `code`).
    pub fn stop(&mut self, code: u64) {
        self.fin = true;
        let id = self.id;
        let _ = self.conn.with(|c, _| c.stop_sending(id, code));
    }
}

impl Drop for RecvStream {
    /// Dropping a stream before its end asks the peer to stop sending (STOP_SENDING, code 0),
    /// so a sender does not keep writing into a stream nobody reads.
    fn drop(&mut self) {
        let id = self.id;
        let unfinished = !self.fin;
        let _ = self.conn.with(|c, cs| {
            if unfinished {
                let _ = c.stop_sending(id, 0);
            }
            cs.readable.remove(&id);
            cs.read_wakers.remove(&id);
            cs.stream_resets.remove(&id);
        });
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.fin {
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let id = self.id;
        let now = self.conn.engine_now();
        // The engine copies straight into the caller's buffer: no allocation per read.
        let unfilled = buf.initialize_unfilled();
        let r = self.conn.with(|c, cs| {
            if let Some(rate) = cs.rate.as_mut() {
                match rate.before_read(crate::clock::std_now()) {
                    crate::rate::Verdict::Proceed => {}
                    crate::rate::Verdict::Wait(wait) => {
                        crate::rate::wake_after(cx.waker().clone(), wait);
                        return Ok(None);
                    }
                    crate::rate::Verdict::Close => {
                        let e = crate::connection::rate_close(c, now);
                        return Err(io::Error::new(io::ErrorKind::ConnectionAborted, e));
                    }
                }
            }
            match c.stream_read_into(id, unfilled) {
                Ok((n, fin)) if n > 0 || fin => {
                    if let Some(rate) = cs.rate.as_mut() {
                        rate.after_read(n as u64);
                    }
                    Ok(Some((n, fin)))
                }
                Ok(_) => {
                    if let Some(code) = cs.stream_resets.get(&id) {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            format!("the peer reset the stream (code {code})"),
                        ));
                    }
                    if let Some(e) = &cs.error {
                        return Err(io::Error::new(io::ErrorKind::ConnectionAborted, e.clone()));
                    }
                    cs.readable.remove(&id);
                    cs.read_wakers.insert(id, cx.waker().clone());
                    Ok(None)
                }
                // Released after its FIN was read, or reset.
                Err(_) => match cs.stream_resets.get(&id) {
                    Some(code) => Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        format!("the peer reset the stream (code {code})"),
                    )),
                    None => Ok(Some((0, true))),
                },
            }
        });
        match r {
            Ok(Ok(Some((n, fin)))) => {
                buf.advance(n);
                if fin {
                    self.fin = true;
                }
                Poll::Ready(Ok(()))
            }
            Ok(Ok(None)) => Poll::Pending,
            Ok(Err(e)) => Poll::Ready(Err(e)),
            Err(e) => Poll::Ready(Err(io_err(e))),
        }
    }
}
