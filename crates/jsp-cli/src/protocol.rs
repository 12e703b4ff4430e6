//! How `jsp serve` tells the application protocols on its streams apart.
//!
//! A bidirectional stream that starts with an 8-byte magic header belongs to a protocol:
//! [`FILE_MAGIC`] to the file transfer of [`crate::transfer`], [`BENCH_MAGIC`] to the benchmark of
//! [`crate::bench`]. Anything else is plain data, which an `--echo` server echoes and any other
//! server discards. The server decides as soon as the first bytes differ from every magic (so a
//! short line typed into `jsp connect` is echoed at once), or when 8 bytes have arrived. All
//! integers in these protocols are big-endian.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Length of a magic header.
pub const MAGIC_LEN: usize = 8;
/// Starts a file transfer stream.
pub const FILE_MAGIC: [u8; MAGIC_LEN] = *b"JSPFILE1";
/// Starts a benchmark stream.
pub const BENCH_MAGIC: [u8; MAGIC_LEN] = *b"JSPBNCH1";

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A file transfer.
    File,
    /// A benchmark.
    Bench,
    /// Plain data.
    Data,
}

/// Reads the start of a stream until its kind is known. Returns the kind and the bytes read that
/// follow the magic header (for [`StreamKind::Data`], every byte read).
pub async fn classify<R: AsyncRead + Unpin>(recv: &mut R) -> io::Result<(StreamKind, Vec<u8>)> {
    let mut head = Vec::with_capacity(64 * 1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let candidates: Vec<(StreamKind, &[u8; MAGIC_LEN])> = [
            (StreamKind::File, &FILE_MAGIC),
            (StreamKind::Bench, &BENCH_MAGIC),
        ]
        .into_iter()
        .filter(|(_, magic)| {
            let n = head.len().min(MAGIC_LEN);
            head.get(..n) == magic.get(..n)
        })
        .collect();
        match candidates.as_slice() {
            [] => return Ok((StreamKind::Data, head)),
            [(kind, _)] if head.len() >= MAGIC_LEN => {
                return Ok((*kind, head.split_off(MAGIC_LEN)));
            }
            _ => {}
        }
        let n = recv.read(&mut buf).await?;
        if n == 0 {
            return Ok((StreamKind::Data, head));
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}

/// Writes a message frame: a type byte and a big-endian u64.
pub async fn write_u64_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    value: u64,
) -> io::Result<()> {
    let mut msg = [0u8; 9];
    msg[0] = kind;
    msg[1..].copy_from_slice(&value.to_be_bytes());
    w.write_all(&msg).await
}

/// Writes an error frame: `kind`, a u16 length and that many bytes of UTF-8 (truncated to
/// [`MAX_MESSAGE_LEN`]).
pub async fn write_text_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    text: &str,
) -> io::Result<()> {
    let mut end = text.len().min(MAX_MESSAGE_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let bytes = text.as_bytes().get(..end).unwrap_or_default();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let mut msg = Vec::with_capacity(3 + bytes.len());
    msg.push(kind);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(bytes);
    w.write_all(&msg).await
}

/// Longest text in an error frame, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Reads the text of an error frame (after its type byte).
pub async fn read_text<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<String> {
    let len = usize::from(r.read_u16().await?);
    if len > MAX_MESSAGE_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes (at most {MAX_MESSAGE_LEN})"),
        ));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn kind_of(chunks: &[&[u8]]) -> (StreamKind, Vec<u8>) {
        let mut reader = tokio_test_reader(chunks);
        classify(&mut reader).await.unwrap()
    }

    /// A reader returning `chunks` one read at a time (a chain of readers yields them one by
    /// one).
    fn tokio_test_reader(chunks: &[&[u8]]) -> impl AsyncRead + Unpin {
        let mut reader: Box<dyn AsyncRead + Unpin> = Box::new(tokio::io::empty());
        for c in chunks.iter().rev() {
            reader = Box::new(std::io::Cursor::new(c.to_vec()).chain(reader));
        }
        reader
    }

    #[tokio::test]
    async fn magic_headers_are_recognised_even_when_split() {
        let (kind, rest) = kind_of(&[b"JSP", b"FILE1", b"abc"]).await;
        assert_eq!(kind, StreamKind::File);
        assert!(rest.is_empty(), "decided as soon as the magic is complete");
        let (kind, rest) = kind_of(&[b"JSPBNCH1P12345"]).await;
        assert_eq!((kind, rest.as_slice()), (StreamKind::Bench, &b"P12345"[..]));
    }

    #[tokio::test]
    async fn other_data_is_decided_at_the_first_differing_byte() {
        let (kind, rest) = kind_of(&[b"hi\n"]).await;
        assert_eq!((kind, rest.as_slice()), (StreamKind::Data, &b"hi\n"[..]));
        // A prefix of a magic that then ends is data too.
        let (kind, rest) = kind_of(&[b"JSP"]).await;
        assert_eq!((kind, rest.as_slice()), (StreamKind::Data, &b"JSP"[..]));
        let (kind, rest) = kind_of(&[b"JSPX"]).await;
        assert_eq!((kind, rest.as_slice()), (StreamKind::Data, &b"JSPX"[..]));
    }
}
