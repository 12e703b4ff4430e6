//! Identity key files: reading and writing `identity.key` and `identity.pub`.
//!
//! A server's long-term identity (PROTOCOL.md §11.1) is an Ed25519 key pair kept as its 32-byte
//! seed. `jsp keygen` stores it as two one-line ASCII files in one directory:
//!
//! | file | content | mode |
//! |---|---|---|
//! | `identity.key` | the seed as 64 hex digits, then `\n` | `0600`, secret |
//! | `identity.pub` | `jsp-ed25519 `, the public key as 64 hex digits, then `\n` | `0644` |
//!
//! Hex is written in lowercase. Both files are written to a temporary file in the same directory
//! (created with its final mode, flushed to disk) and then renamed into place, so a crash never
//! leaves a truncated key behind. An existing `identity.key` is only replaced when asked; the
//! check is made atomically (a hard link that fails if the name exists), so two concurrent
//! `jsp keygen` runs cannot both think they created the key.
//!
//! Reading is strict, so that a truncated copy, a pasted fragment or the wrong file is reported
//! instead of silently yielding a different key:
//!
//! - hex digits may be upper or lower case;
//! - the line may end with `\n`, with `\r\n` (a file that passed through a Windows editor) or
//!   with nothing (`echo -n`): exactly one line ending is tolerated;
//! - anything else (leading or trailing spaces, a second line, a byte-order mark, a missing or
//!   misspelt `jsp-ed25519 ` prefix) is rejected with a [`FormatError`] that says what was found
//!   where;
//! - a file longer than [`MAX_KEY_FILE_LEN`] bytes is rejected without being read whole.
//!
//! The secret seed only ever lives in buffers that are zeroized when dropped.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use jsp_proto::crypto::default_provider;
use jsp_proto::crypto::provider::{ED25519_PUBLIC_KEY_LEN, ED25519_SEED_LEN};
use jsp_proto::crypto::{CryptoError, CryptoProvider};
use jsp_proto::identity::{Fingerprint, Identity, PublicKey};
use zeroize::Zeroizing;

/// File name of the secret key in a key directory.
pub const IDENTITY_KEY_FILE: &str = "identity.key";
/// File name of the public key in a key directory.
pub const IDENTITY_PUB_FILE: &str = "identity.pub";
/// What starts the line of a public key file (the key algorithm, then one space).
pub const PUBLIC_KEY_PREFIX: &str = "jsp-ed25519 ";
/// Longest key file accepted, in bytes. A valid file is at most 78 bytes; the limit only keeps a
/// wrong path (a log, a disk image) from being read into memory.
pub const MAX_KEY_FILE_LEN: usize = 1024;

/// Unix permissions of `identity.key`: read and write by the owner only.
pub const IDENTITY_KEY_MODE: u32 = 0o600;
/// Unix permissions of `identity.pub`: readable by everyone.
pub const IDENTITY_PUB_MODE: u32 = 0o644;

/// Number of hex digits that encode 32 bytes.
const HEX_LEN: usize = 2 * ED25519_SEED_LEN;
/// How many temporary-file names to try before giving up (a name is only taken if a crashed run
/// of a process with the same id left it behind).
const MAX_TEMP_ATTEMPTS: u32 = 16;

/// Why the content of a key file is not a key (see the module documentation for the formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file is empty.
    #[error("the file is empty")]
    Empty,
    /// The file is longer than [`MAX_KEY_FILE_LEN`] bytes.
    #[error("the file is longer than {MAX_KEY_FILE_LEN} bytes")]
    TooLarge,
    /// A public key file does not start with [`PUBLIC_KEY_PREFIX`].
    #[error("expected a line starting with `jsp-ed25519 `")]
    MissingPrefix,
    /// The line holds fewer or more than 64 hex digits.
    #[error("expected 64 hex characters, found {found}")]
    WrongLength {
        /// The number of hex digits found.
        found: usize,
    },
    /// A byte that is not a hex digit appears among the first 64 of the key.
    #[error("expected 64 hex characters, found {found} at column {column}")]
    InvalidDigit {
        /// The offending byte.
        found: ShownByte,
        /// Its 1-based column in the line.
        column: usize,
    },
    /// The 64 hex digits are followed by something other than one line ending.
    #[error("expected 64 hex characters, found more after them")]
    TrailingData,
}

/// A byte from a key file, displayed so that a reader can recognise it: a printable ASCII
/// character in quotes, anything else in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShownByte(pub u8);

impl fmt::Display for ShownByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b' ' => f.write_str("a space"),
            b'\t' => f.write_str("a tab"),
            b'\n' | b'\r' => f.write_str("a line break"),
            c if c.is_ascii_graphic() => write!(f, "'{}'", char::from(c)),
            c => write!(f, "byte 0x{c:02x}"),
        }
    }
}

/// A key file could not be read, parsed or written.
///
/// The Display messages are complete sentences for the person at the terminal: what went wrong
/// with which path, and where it helps, what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {}", path.display(), describe_io(source))]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A file or directory could not be created or written.
    #[error("cannot write {}: {}", path.display(), describe_io(source))]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file is not an identity key.
    #[error(
        "{} is not a JetStreamProto identity key ({problem}); generate one with `jsp keygen --out DIR`",
        path.display()
    )]
    NotAnIdentityKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        #[source]
        problem: FormatError,
    },
    /// The file is not a public key.
    #[error(
        "{} is not a JetStreamProto public key ({problem}); use the identity.pub written by `jsp keygen`",
        path.display()
    )]
    NotAPublicKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        #[source]
        problem: FormatError,
    },
    /// The file looks like neither an identity key nor a public key.
    #[error(
        "{} is not a JetStreamProto key file (expected an identity.key of 64 hex characters or an identity.pub starting with `jsp-ed25519 `); generate one with `jsp keygen --out DIR`",
        path.display()
    )]
    NotAKeyFile {
        /// The file.
        path: PathBuf,
    },
    /// `identity.key` exists and replacing it was not asked for.
    #[error("{} already exists; pass --force to replace it", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The crypto provider rejected the key read from the file (a local failure: any 32 bytes
    /// are a valid Ed25519 seed).
    #[error("cannot load the key in {}: {source}", path.display())]
    Crypto {
        /// The file.
        path: PathBuf,
        /// The provider's error.
        source: CryptoError,
    },
}

/// A key file of either kind, as found by [`read_key_file`].
#[derive(Debug)]
pub enum KeyFile {
    /// An `identity.key`: the secret identity.
    Identity(Identity),
    /// An `identity.pub`: only the public key.
    Public(PublicKey),
}

impl KeyFile {
    /// The public key, whichever kind of file it came from.
    pub fn public_key(&self) -> PublicKey {
        match self {
            KeyFile::Identity(identity) => identity.public_key(),
            KeyFile::Public(key) => *key,
        }
    }

    /// The fingerprint of the public key (PROTOCOL.md §11.1).
    pub fn fingerprint(&self, provider: &dyn CryptoProvider) -> Fingerprint {
        match self {
            KeyFile::Identity(identity) => identity.fingerprint(),
            KeyFile::Public(key) => key.fingerprint(provider),
        }
    }
}

/// Reads an `identity.key` with the default crypto provider.
pub fn read_identity(path: impl AsRef<Path>) -> Result<Identity, KeyFileError> {
    read_identity_with(path, &*default_provider())
}

/// Reads an `identity.key`, deriving the key pair with `provider`.
pub fn read_identity_with(
    path: impl AsRef<Path>,
    provider: &dyn CryptoProvider,
) -> Result<Identity, KeyFileError> {
    let path = path.as_ref();
    let content = read_limited(path)?;
    identity_from_content(path, &content, provider)
}

/// Reads an `identity.pub`.
pub fn read_public(path: impl AsRef<Path>) -> Result<PublicKey, KeyFileError> {
    let path = path.as_ref();
    let content = read_limited(path)?;
    parse_public(&content).map_err(|problem| KeyFileError::NotAPublicKey {
        path: path.to_owned(),
        problem,
    })
}

/// Reads a key file of either kind, telling them apart by content: a file that starts with
/// `jsp-` is read as a public key, one that starts with a hex digit as an identity key, and
/// anything else is [`KeyFileError::NotAKeyFile`].
pub fn read_key_file(
    path: impl AsRef<Path>,
    provider: &dyn CryptoProvider,
) -> Result<KeyFile, KeyFileError> {
    let path = path.as_ref();
    let content = read_limited(path)?;
    if content.starts_with(b"jsp-") {
        parse_public(&content)
            .map(KeyFile::Public)
            .map_err(|problem| KeyFileError::NotAPublicKey {
                path: path.to_owned(),
                problem,
            })
    } else if content.first().is_some_and(u8::is_ascii_hexdigit) {
        identity_from_content(path, &content, provider).map(KeyFile::Identity)
    } else if content.is_empty() {
        Err(KeyFileError::NotAnIdentityKey {
            path: path.to_owned(),
            problem: FormatError::Empty,
        })
    } else {
        Err(KeyFileError::NotAKeyFile {
            path: path.to_owned(),
        })
    }
}

/// Parses the content of an `identity.key` into the 32-byte seed.
pub fn parse_seed(content: &[u8]) -> Result<Zeroizing<[u8; ED25519_SEED_LEN]>, FormatError> {
    check_size(content)?;
    let mut seed = Zeroizing::new([0u8; ED25519_SEED_LEN]);
    parse_hex_line(content, 0, seed.as_mut_slice())?;
    Ok(seed)
}

/// Parses the content of an `identity.pub`.
pub fn parse_public(content: &[u8]) -> Result<PublicKey, FormatError> {
    check_size(content)?;
    let rest = content
        .strip_prefix(PUBLIC_KEY_PREFIX.as_bytes())
        .ok_or(FormatError::MissingPrefix)?;
    let mut key = [0u8; ED25519_PUBLIC_KEY_LEN];
    parse_hex_line(rest, PUBLIC_KEY_PREFIX.len(), &mut key)?;
    Ok(PublicKey::from_bytes(key))
}

/// The content of an `identity.key` for `identity`: the seed in lowercase hex and a newline.
pub fn encode_identity(identity: &Identity) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(HEX_LEN + 1));
    push_hex(&mut out, identity.seed());
    out.push('\n');
    out
}

/// The content of an `identity.pub` for `key`: `jsp-ed25519 `, the key in lowercase hex and a
/// newline.
pub fn encode_public(key: &PublicKey) -> String {
    let mut out = String::with_capacity(PUBLIC_KEY_PREFIX.len() + HEX_LEN + 1);
    out.push_str(PUBLIC_KEY_PREFIX);
    push_hex(&mut out, key.as_bytes());
    out.push('\n');
    out
}

/// Writes `dir/identity.key` (mode 0600) and `dir/identity.pub` (mode 0644) for `identity`,
/// creating `dir` if it is missing, and returns their paths (key first).
///
/// Fails with [`KeyFileError::AlreadyExists`] if `dir/identity.key` exists and `force` is false;
/// nothing is written then. `identity.pub` is always replaced: it is derived from the key. Each
/// file is written to a temporary file in `dir` and renamed into place (see the module
/// documentation); on error no temporary file is left behind. The key is committed before the
/// public key: should renaming `identity.pub` into place then fail, the error is returned and the
/// new `identity.key` stays (the public key can always be derived from it).
pub fn write_identity(
    dir: impl AsRef<Path>,
    identity: &Identity,
    force: bool,
) -> Result<(PathBuf, PathBuf), KeyFileError> {
    let dir = dir.as_ref();
    let key_path = dir.join(IDENTITY_KEY_FILE);
    let pub_path = dir.join(IDENTITY_PUB_FILE);

    fs::create_dir_all(dir).map_err(|source| KeyFileError::Write {
        path: dir.to_owned(),
        source,
    })?;
    // Checked first so that a refusal writes nothing; the commit below checks again atomically.
    if !force && fs::symlink_metadata(&key_path).is_ok() {
        return Err(KeyFileError::AlreadyExists { path: key_path });
    }

    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyFileError::Write { path, source }
    };
    let key_tmp = TempFile::stage(
        dir,
        IDENTITY_KEY_FILE,
        IDENTITY_KEY_MODE,
        encode_identity(identity).as_bytes(),
    )
    .map_err(write_err(&key_path))?;
    let pub_tmp = TempFile::stage(
        dir,
        IDENTITY_PUB_FILE,
        IDENTITY_PUB_MODE,
        encode_public(&identity.public_key()).as_bytes(),
    )
    .map_err(write_err(&pub_path))?;

    let committed = if force {
        key_tmp.replace(&key_path)
    } else {
        key_tmp.create_new(&key_path)
    };
    committed.map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            KeyFileError::AlreadyExists {
                path: key_path.clone(),
            }
        } else {
            KeyFileError::Write {
                path: key_path.clone(),
                source,
            }
        }
    })?;
    pub_tmp.replace(&pub_path).map_err(write_err(&pub_path))?;
    sync_dir(dir);
    Ok((key_path, pub_path))
}

fn identity_from_content(
    path: &Path,
    content: &[u8],
    provider: &dyn CryptoProvider,
) -> Result<Identity, KeyFileError> {
    let seed = parse_seed(content).map_err(|problem| KeyFileError::NotAnIdentityKey {
        path: path.to_owned(),
        problem,
    })?;
    Identity::from_seed(provider, &seed).map_err(|source| KeyFileError::Crypto {
        path: path.to_owned(),
        source,
    })
}

/// Reads at most [`MAX_KEY_FILE_LEN`] + 1 bytes of `path` into a buffer zeroized on drop (the
/// parsers report a longer file as [`FormatError::TooLarge`]).
fn read_limited(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let read_err = |source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    // Room for one byte past the limit (to detect a longer file) and for the standard library's
    // end-of-file probe, so the buffer never reallocates and leaves an unzeroized copy behind.
    let mut content = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN + 64));
    let limit = u64::try_from(MAX_KEY_FILE_LEN + 1).unwrap_or(u64::MAX);
    file.take(limit)
        .read_to_end(&mut content)
        .map_err(read_err)?;
    Ok(content)
}

/// Rejects empty and oversized content before any parsing.
fn check_size(content: &[u8]) -> Result<(), FormatError> {
    if content.is_empty() {
        Err(FormatError::Empty)
    } else if content.len() > MAX_KEY_FILE_LEN {
        Err(FormatError::TooLarge)
    } else {
        Ok(())
    }
}

/// Parses exactly `2 * out.len()` hex digits followed by at most one line ending into `out`.
/// `column_offset` is the number of bytes on the line before `line` (for error positions).
fn parse_hex_line(line: &[u8], column_offset: usize, out: &mut [u8]) -> Result<(), FormatError> {
    let body = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line);
    let want = 2 * out.len();
    let digits = body.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    match body.get(digits) {
        None if digits == want => {}
        None => return Err(FormatError::WrongLength { found: digits }),
        Some(_) if digits == want => return Err(FormatError::TrailingData),
        Some(_) if digits > want => return Err(FormatError::WrongLength { found: digits }),
        Some(&found) => {
            return Err(FormatError::InvalidDigit {
                found: ShownByte(found),
                column: column_offset + digits + 1,
            })
        }
    }
    for (byte, pair) in out.iter_mut().zip(body.chunks_exact(2)) {
        *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
    }
    Ok(())
}

/// The value of an ASCII hex digit (the caller has checked it is one).
fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// A short lowercase description of an I/O error for a one-line message ("permission denied"
/// rather than "Permission denied (os error 13)").
pub fn describe_io(err: &io::Error) -> String {
    use io::ErrorKind as K;
    let text = match err.kind() {
        K::NotFound => "no such file or directory",
        K::PermissionDenied => "permission denied",
        K::AlreadyExists => "it already exists",
        K::IsADirectory => "it is a directory",
        K::NotADirectory => "a component of the path is not a directory",
        K::ReadOnlyFilesystem => "read-only file system",
        K::StorageFull => "no space left on device",
        K::QuotaExceeded => "disk quota exceeded",
        _ => return err.to_string(),
    };
    text.to_owned()
}

/// A staged file: written and flushed under a temporary name in the destination's directory,
/// removed on drop unless it was committed.
struct TempFile {
    path: PathBuf,
    committed: bool,
}

/// Distinguishes the temporary files of one process.
static TEMP_COUNTER: AtomicU32 = AtomicU32::new(0);

impl TempFile {
    /// Creates `dir/.NAME.PID.N.tmp` with `mode` (never following or replacing an existing
    /// file), writes `content` and flushes it to disk.
    fn stage(dir: &Path, name: &str, mode: u32, content: &[u8]) -> io::Result<TempFile> {
        let mut attempt = 0;
        let (file, path) = loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
            match create_with_mode(&path, mode) {
                Ok(file) => break (file, path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    attempt += 1;
                    if attempt >= MAX_TEMP_ATTEMPTS {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let staged = TempFile {
            path,
            committed: false,
        };
        write_all_synced(file, mode, content)?;
        Ok(staged)
    }

    /// Renames the staged file to `dest`, replacing whatever is there.
    fn replace(mut self, dest: &Path) -> io::Result<()> {
        fs::rename(&self.path, dest)?;
        self.committed = true;
        Ok(())
    }

    /// Moves the staged file to `dest`, failing with `AlreadyExists` if `dest` exists.
    fn create_new(mut self, dest: &Path) -> io::Result<()> {
        match fs::hard_link(&self.path, dest) {
            // The temporary name is removed by drop.
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
            Err(_) => {
                // A file system without hard links: check, then rename (racy, but only against
                // another keygen started in the same instant on such a file system).
                if fs::symlink_metadata(dest).is_ok() {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                fs::rename(&self.path, dest)?;
                self.committed = true;
                Ok(())
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: nothing more can be done about a temporary file that cannot be
            // removed, and the error being reported (if any) is the one that matters.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(unix)]
fn create_with_mode(path: &Path, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

#[cfg(not(unix))]
fn create_with_mode(path: &Path, _mode: u32) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

fn write_all_synced(mut file: File, mode: u32, content: &[u8]) -> io::Result<()> {
    // The umask may have removed bits from the mode given at creation (0644 under umask 077):
    // set it exactly. It can only have removed bits, so the secret was never more exposed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(content)?;
    file.sync_all()
}

/// Flushes the directory entry changes of `dir` to disk (best effort: some file systems refuse
/// to sync a directory, and the files themselves are already on disk).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests;
