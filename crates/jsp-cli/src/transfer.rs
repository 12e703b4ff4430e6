//! File transfer: `jsp send FILE` to `jsp serve --files DIR`, verified end to end and resumable.
//!
//! # Protocol
//!
//! One bidirectional stream per file. Integers are big-endian.
//!
//! The client opens with an **offer**:
//!
//! | field | size | |
//! |---|---|---|
//! | magic | 8 | `JSPFILE1` ([`FILE_MAGIC`]) |
//! | name length | u16 | 1 to [`MAX_NAME_LEN`] |
//! | name | that many bytes | UTF-8, a plain file name (see [`check_name`]) |
//! | size | u64 | the whole file, at most [`MAX_FILE_SIZE`] |
//! | sha256 | 32 | SHA-256 of the whole file |
//!
//! The server answers with one message: `'R'` + u64 *offset* (ready: it already holds the first
//! *offset* bytes of this file, same name and same hash, in `DIR/.NAME.HASH.partial`, where HASH
//! is the first 16 hex digits of the SHA-256), or `'E'` + u16 length + UTF-8 text (refused: bad
//! name, too large, a different file of that name exists, no `--files` ...; the stream ends).
//!
//! After `'R'` the client sends u64 *offset* (repeating where its data starts, which must equal
//! the server's) and then the file from *offset* to the end, and finishes the stream. While data
//! arrives the server sends `'P'` + u64 *have* every [`PROGRESS_INTERVAL`] bytes: that many bytes
//! are written to the partial file. At the end it sends one of:
//!
//! - `'O'` + u64 *size*: the SHA-256 of the whole file matched; the partial file was synced and
//!   renamed to `DIR/NAME` (never over an existing file). Only this makes `jsp send` exit 0.
//! - `'E'` + text: the stream ended before *size* bytes (the partial file is kept: send again to
//!   resume), the hash did not match (the partial file is deleted: send again from the start),
//!   more data than announced, or a local failure.
//!
//! # Resumption
//!
//! A transfer that breaks off (the client was killed, the network went away) leaves the partial
//! file on the server. Sending the same file again finds it by name and hash and continues at its
//! length. A newer transfer of a name takes over from an older one still in progress (whose
//! client is usually gone, but whose connection has not timed out yet): the older one stops, keeps
//! what it wrote, and the newer one continues from there. Partial files of the same name with
//! another hash (an older version of the file) are deleted when a transfer of the name starts.

mod receive;
mod send;

use std::io::{self, Read};
use std::path::{Component, Path};

use aws_lc_rs::digest::{Context, SHA256};
use tokio::io::{AsyncRead, AsyncReadExt};

pub use crate::protocol::FILE_MAGIC;
pub use receive::{Received, Receiver};
pub use send::{default_name, send_file, SendOptions, SendReport};

/// Longest file name, in bytes (the partial file's name adds 26 bytes and must stay within the
/// usual 255-byte limit of file systems).
pub const MAX_NAME_LEN: usize = 200;
/// Largest file accepted (1 TiB).
pub const MAX_FILE_SIZE: u64 = 1 << 40;
/// The server reports progress every this many bytes.
pub const PROGRESS_INTERVAL: u64 = 1 << 20;
/// Bytes read from a file or stream at once.
const CHUNK: usize = 256 * 1024;

/// Reply: ready, with the offset to send from.
const READY: u8 = b'R';
/// Reply: bytes written so far.
const PROGRESS: u8 = b'P';
/// Reply: verified and stored.
const OK: u8 = b'O';
/// Reply: refused or failed, with a message.
const ERROR: u8 = b'E';

/// What the client offers to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The file name the server stores it under.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file.
    pub sha256: [u8; 32],
}

impl Offer {
    /// The offer on the wire, magic header included.
    pub fn encode(&self) -> Vec<u8> {
        let name = self.name.as_bytes();
        let mut out = Vec::with_capacity(8 + 2 + name.len() + 8 + 32);
        out.extend_from_slice(&FILE_MAGIC);
        out.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.sha256);
        out
    }

    /// Reads an offer after its magic header. `Ok(Err(text))` is an offer to refuse with `text`.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Result<Self, String>> {
        let len = usize::from(r.read_u16().await?);
        if len == 0 || len > MAX_NAME_LEN {
            return Ok(Err(format!(
                "a file name must have 1 to {MAX_NAME_LEN} bytes, not {len}"
            )));
        }
        let mut name = vec![0u8; len];
        r.read_exact(&mut name).await?;
        let size = r.read_u64().await?;
        let mut sha256 = [0u8; 32];
        r.read_exact(&mut sha256).await?;
        let Ok(name) = String::from_utf8(name) else {
            return Ok(Err("the file name is not valid UTF-8".to_owned()));
        };
        if let Err(why) = check_name(&name) {
            return Ok(Err(why));
        }
        if size > MAX_FILE_SIZE {
            return Ok(Err(format!(
                "the file has {size} bytes; this server accepts at most {MAX_FILE_SIZE}"
            )));
        }
        Ok(Ok(Self { name, size, sha256 }))
    }
}

/// Checks that `name` is a plain file name, safe to join to the receiving directory: one path
/// component, no separators (`/` or `\`), not `.` or `..`, not hidden (names starting with `.`
/// are reserved for partial files), no drive or stream syntax (`:`), no control characters, at
/// most [`MAX_NAME_LEN`] bytes.
pub fn check_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("the file name {name:?} is not allowed: {why}"));
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad(&format!("longer than {MAX_NAME_LEN} bytes"));
    }
    if name.contains(['/', '\\']) {
        return bad("it contains a path separator");
    }
    if name.starts_with('.') {
        return bad("it starts with a dot");
    }
    if name.contains(':') {
        return bad("it contains ':'");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(c)), None) if c == name => Ok(()),
        _ => bad("it is not a plain file name"),
    }
}

/// The name of the partial file of `name` with hash `sha256`.
pub fn partial_name(name: &str, sha256: &[u8; 32]) -> String {
    format!(
        ".{name}.{}.partial",
        hex(sha256.get(..8).unwrap_or_default())
    )
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the first `len` bytes of `reader` (all of it for `u64::MAX`), with the context so
/// that more can be added; fails if the reader ends before `len` bytes (unless `len` is
/// `u64::MAX`).
fn hash_prefix(reader: &mut impl Read, len: u64) -> io::Result<(Context, u64)> {
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = reader.read(buf.get_mut(..want).unwrap_or_default())?;
        if n == 0 {
            if len == u64::MAX {
                break;
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than expected",
            ));
        }
        ctx.update(buf.get(..n).unwrap_or_default());
        done += n as u64;
    }
    Ok((ctx, done))
}

/// SHA-256 and length of a whole file (on a blocking thread).
pub async fn hash_file(path: &Path) -> io::Result<([u8; 32], u64)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let (ctx, len) = hash_prefix(&mut file, u64::MAX)?;
        Ok((digest_bytes(ctx), len))
    })
    .await
    .map_err(io::Error::other)?
}

fn digest_bytes(ctx: Context) -> [u8; 32] {
    let digest = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_traversal_does_not() {
        for ok in ["report.pdf", "a", "Ünïcødé name (1).txt", "x..y"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "/etc/passwd",
            ".hidden",
            "C:evil",
            "a\nb",
            "nul\0byte",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(MAX_NAME_LEN)).is_ok());
        assert!(check_name(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[tokio::test]
    async fn offers_round_trip_and_bad_ones_are_refused_with_a_reason() {
        let offer = Offer {
            name: "data.bin".into(),
            size: 12345,
            sha256: [7; 32],
        };
        let bytes = offer.encode();
        assert_eq!(bytes.get(..8), Some(&FILE_MAGIC[..]));
        let mut r = bytes.get(8..).unwrap();
        assert_eq!(Offer::read(&mut r).await.unwrap(), Ok(offer.clone()));

        let evil = Offer {
            name: "../x".into(),
            ..offer.clone()
        };
        let bytes = evil.encode();
        let mut r = bytes.get(8..).unwrap();
        let why = Offer::read(&mut r).await.unwrap().unwrap_err();
        assert!(why.contains("path separator"), "{why}");

        let huge = Offer {
            size: MAX_FILE_SIZE + 1,
            ..offer
        };
        let bytes = huge.encode();
        let mut r = bytes.get(8..).unwrap();
        assert!(Offer::read(&mut r).await.unwrap().is_err());
    }

    #[test]
    fn partial_names_carry_the_hash() {
        let name = partial_name("f.txt", &[0xab; 32]);
        assert_eq!(name, ".f.txt.abababababababab.partial");
        assert_eq!(name.len(), "f.txt".len() + 26);
    }
}
