//! The key, public-key and certificate files of the `jsp` command and of config files.
//!
//! - `identity.key`: the 32-byte Ed25519 seed as 64 lowercase hex characters and a newline,
//!   written with mode 0600 and never over an existing file.
//! - `identity.pub`: `jsp-ed25519 ` followed by the 64 hex characters of the public key and a
//!   newline. The same line names an authority key in a config file.
//! - `identity.cert`: `jsp-certificate ` followed by the hex of the encoded certificate
//!   (PROTOCOL.md §11.2) and a newline.
//!
//! Readers are strict: exactly that content, optionally followed by one `\n` or `\r\n`; hex
//! digits may be upper or lower case. Anything else is refused with an error saying what a valid
//! file looks like.

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use jsp_proto::crypto::{default_provider, CryptoError};
use jsp_proto::identity::{Certificate, CertificateError, Identity, PublicKey};
use zeroize::Zeroizing;

/// Prefix of a public-key line (`identity.pub`, authority keys in config files).
pub const PUBLIC_KEY_PREFIX: &str = "jsp-ed25519 ";
/// Prefix of a certificate file.
pub const CERTIFICATE_PREFIX: &str = "jsp-certificate ";
/// Largest key, public-key or certificate file read (a certificate is well under 1 KiB).
pub const MAX_IDENTITY_FILE_LEN: u64 = 16 * 1024;
/// Mode of a written identity key file (owner read/write only).
pub const IDENTITY_KEY_MODE: u32 = 0o600;

const KEY_LEN: usize = 32;

/// What is wrong with the content of an identity, public-key or certificate file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatDetail {
    /// The `jsp-ed25519 ` or `jsp-certificate ` prefix is missing.
    MissingPrefix,
    /// The hex part has the wrong number of characters.
    Length {
        /// Characters found.
        found: usize,
    },
    /// A character of the hex part is not a hex digit.
    NotHex {
        /// Zero-based position within the hex part.
        position: usize,
    },
}

impl fmt::Display for FormatDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatDetail::MissingPrefix => f.write_str("the prefix is missing"),
            FormatDetail::Length { found } => write!(f, "found {found} characters"),
            FormatDetail::NotHex { position } => {
                write!(
                    f,
                    "found a character that is not a hex digit at position {position}"
                )
            }
        }
    }
}

/// Why the content of a key or certificate file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Not an `identity.key`.
    #[error("not a JetStreamProto identity key: expected 64 hex characters ({0})")]
    NotAnIdentityKey(FormatDetail),
    /// Not a public-key line.
    #[error("not a JetStreamProto public key: expected \"jsp-ed25519 \" followed by 64 hex characters ({0})")]
    NotAPublicKey(FormatDetail),
    /// Not a certificate file.
    #[error("not a JetStreamProto certificate: expected \"jsp-certificate \" followed by hex characters ({0})")]
    NotACertificate(FormatDetail),
    /// The certificate bytes do not decode.
    #[error("invalid certificate: {0}")]
    Certificate(CertificateError),
}

/// Why a key or certificate file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityFileError {
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An identity key file exists already; it is never overwritten.
    #[error("{}: already exists (an identity key is never overwritten)", path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than [`MAX_IDENTITY_FILE_LEN`].
    #[error("{}: larger than {MAX_IDENTITY_FILE_LEN} bytes, not a key or certificate file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The content is malformed.
    #[error("{}{reason}", path_prefix(path.as_deref()))]
    Format {
        /// The file, when the content came from one.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: FormatError,
    },
    /// The crypto provider refused the key.
    #[error("the crypto provider refused the key: {0}")]
    Crypto(#[from] CryptoError),
}

fn path_prefix(path: Option<&Path>) -> String {
    path.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

impl From<FormatError> for IdentityFileError {
    fn from(reason: FormatError) -> Self {
        IdentityFileError::Format { path: None, reason }
    }
}

impl IdentityFileError {
    fn in_file(self, file: &Path) -> Self {
        match self {
            IdentityFileError::Format { path: None, reason } => IdentityFileError::Format {
                path: Some(file.to_owned()),
                reason,
            },
            other => other,
        }
    }
}

/// The content of an `identity.key` file for `identity` (secret: zeroized on drop).
pub fn encode_identity_key(identity: &Identity) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(2 * KEY_LEN + 1));
    push_hex(&mut text, identity.seed());
    text.push('\n');
    text
}

/// Parses the content of an `identity.key` file.
pub fn parse_identity_key(text: &str) -> Result<Identity, IdentityFileError> {
    let body = strip_newline(text);
    let seed: Zeroizing<[u8; KEY_LEN]> =
        Zeroizing::new(decode_hex_array(body).map_err(FormatError::NotAnIdentityKey)?);
    let provider = default_provider();
    Ok(Identity::from_seed(provider.as_ref(), &seed)?)
}

/// Writes `identity` to a new `identity.key` file with mode 0600 (on Unix). Refuses to overwrite
/// an existing file.
pub fn write_identity_key(path: &Path, identity: &Identity) -> Result<(), IdentityFileError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, IDENTITY_KEY_MODE);
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            IdentityFileError::AlreadyExists {
                path: path.to_owned(),
            }
        } else {
            io_error(path, source)
        }
    })?;
    let text = encode_identity_key(identity);
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}

/// Reads an `identity.key` file.
pub fn read_identity_key(path: &Path) -> Result<Identity, IdentityFileError> {
    let text = read_small(path)?;
    parse_identity_key(&text).map_err(|e| e.in_file(path))
}

/// The `jsp-ed25519 <hex>` line for `key`, with its newline.
pub fn encode_public_key(key: &PublicKey) -> String {
    let mut text = String::with_capacity(PUBLIC_KEY_PREFIX.len() + 2 * KEY_LEN + 1);
    text.push_str(PUBLIC_KEY_PREFIX);
    push_hex(&mut text, key.as_bytes());
    text.push('\n');
    text
}

/// Parses a `jsp-ed25519 <hex>` line (the content of `identity.pub`, or an authority key).
pub fn parse_public_key(text: &str) -> Result<PublicKey, IdentityFileError> {
    let body = strip_newline(text)
        .strip_prefix(PUBLIC_KEY_PREFIX)
        .ok_or(FormatError::NotAPublicKey(FormatDetail::MissingPrefix))?;
    let bytes = decode_hex_array(body).map_err(FormatError::NotAPublicKey)?;
    Ok(PublicKey::from_bytes(bytes))
}

/// Writes an `identity.pub` file (replacing an existing one).
pub fn write_public_key(path: &Path, key: &PublicKey) -> Result<(), IdentityFileError> {
    std::fs::write(path, encode_public_key(key)).map_err(|e| io_error(path, e))
}

/// Reads an `identity.pub` file.
pub fn read_public_key(path: &Path) -> Result<PublicKey, IdentityFileError> {
    let text = read_small(path)?;
    parse_public_key(&text).map_err(|e| e.in_file(path))
}

/// The content of a certificate file for `cert`.
pub fn encode_certificate(cert: &Certificate) -> String {
    let bytes = cert.encode();
    let mut text = String::with_capacity(CERTIFICATE_PREFIX.len() + 2 * bytes.len() + 1);
    text.push_str(CERTIFICATE_PREFIX);
    push_hex(&mut text, &bytes);
    text.push('\n');
    text
}

/// Parses the content of a certificate file (the signature is not verified here).
pub fn parse_certificate(text: &str) -> Result<Certificate, IdentityFileError> {
    let not_cert = FormatError::NotACertificate;
    let body = strip_newline(text)
        .strip_prefix(CERTIFICATE_PREFIX)
        .ok_or(not_cert(FormatDetail::MissingPrefix))?;
    let found = body.chars().count();
    if found == 0 || found % 2 != 0 {
        return Err(not_cert(FormatDetail::Length { found }).into());
    }
    let mut bytes = vec![0u8; found / 2];
    decode_hex_into(body, &mut bytes).map_err(not_cert)?;
    Certificate::decode(&bytes).map_err(|e| FormatError::Certificate(e).into())
}

/// Writes a certificate file (replacing an existing one).
pub fn write_certificate(path: &Path, cert: &Certificate) -> Result<(), IdentityFileError> {
    std::fs::write(path, encode_certificate(cert)).map_err(|e| io_error(path, e))
}

/// Reads a certificate file.
pub fn read_certificate(path: &Path) -> Result<Certificate, IdentityFileError> {
    let text = read_small(path)?;
    parse_certificate(&text).map_err(|e| e.in_file(path))
}

fn io_error(path: &Path, source: io::Error) -> IdentityFileError {
    IdentityFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads at most [`MAX_IDENTITY_FILE_LEN`] bytes of UTF-8 (zeroized when dropped).
fn read_small(path: &Path) -> Result<Zeroizing<String>, IdentityFileError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_IDENTITY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    if bytes.len() as u64 > MAX_IDENTITY_FILE_LEN {
        return Err(IdentityFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(e) => {
            let found = e.valid_up_to();
            Err(io_error(
                path,
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not a text file (invalid UTF-8 after {found} bytes)"),
                ),
            ))
        }
    }
}

fn strip_newline(text: &str) -> &str {
    text.strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
}

fn decode_hex_array<const N: usize>(hex: &str) -> Result<[u8; N], FormatDetail> {
    let mut out = [0u8; N];
    decode_hex_into(hex, &mut out)?;
    Ok(out)
}

/// Decodes `hex` (exactly `2 * out.len()` hex digits, either case) into `out`.
fn decode_hex_into(hex: &str, out: &mut [u8]) -> Result<(), FormatDetail> {
    let found = hex.chars().count();
    if found != 2 * out.len() {
        return Err(FormatDetail::Length { found });
    }
    let mut digits = hex.chars().enumerate().map(|(position, c)| {
        c.to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
            .ok_or(FormatDetail::NotHex { position })
    });
    for byte in out.iter_mut() {
        let (Some(hi), Some(lo)) = (digits.next(), digits.next()) else {
            return Err(FormatDetail::Length { found });
        };
        *byte = (hi? << 4) | lo?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsp_proto::time::UnixTime;

    fn identity(byte: u8) -> Identity {
        Identity::from_seed(default_provider().as_ref(), &[byte; 32]).unwrap()
    }

    #[test]
    fn identity_key_round_trips_through_a_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let id = identity(7);
        write_identity_key(&path, &id).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", "07".repeat(32)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, IDENTITY_KEY_MODE);
        }
        let back = read_identity_key(&path).unwrap();
        assert_eq!(back.public_key(), id.public_key());
        assert!(matches!(
            write_identity_key(&path, &identity(8)),
            Err(IdentityFileError::AlreadyExists { .. })
        ));
        assert_eq!(
            read_identity_key(&path).unwrap().public_key(),
            id.public_key()
        );
    }

    #[test]
    fn identity_key_parsing_is_strict() {
        let good = "ab".repeat(32);
        assert!(parse_identity_key(&good).is_ok());
        assert!(parse_identity_key(&format!("{good}\n")).is_ok());
        assert!(parse_identity_key(&format!("{good}\r\n")).is_ok());
        assert!(parse_identity_key(&good.to_uppercase()).is_ok());
        let cases = [
            (String::new(), FormatDetail::Length { found: 0 }),
            (good[..63].to_owned(), FormatDetail::Length { found: 63 }),
            (format!("{good}\n\n"), FormatDetail::Length { found: 65 }),
            (
                format!(" {}", &good[1..]),
                FormatDetail::NotHex { position: 0 },
            ),
            (
                format!("{}g", &good[..63]),
                FormatDetail::NotHex { position: 63 },
            ),
            (
                format!("{}é", &good[..63]),
                FormatDetail::NotHex { position: 63 },
            ),
        ];
        for (text, detail) in cases {
            match parse_identity_key(&text) {
                Err(IdentityFileError::Format {
                    path: None,
                    reason: FormatError::NotAnIdentityKey(d),
                }) => assert_eq!(d, detail, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let err = parse_identity_key("hello").unwrap_err().to_string();
        assert_eq!(
            err,
            "not a JetStreamProto identity key: expected 64 hex characters (found 5 characters)"
        );
    }

    #[test]
    fn public_key_round_trips_and_is_strict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.pub");
        let key = identity(1).public_key();
        write_public_key(&path, &key).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("jsp-ed25519 ") && text.ends_with('\n'));
        assert_eq!(text.len(), 12 + 64 + 1);
        assert_eq!(read_public_key(&path).unwrap(), key);
        let hex = &text[12..76];
        for (bad, detail) in [
            (format!("ssh-ed25519 {hex}"), FormatDetail::MissingPrefix),
            (
                format!("jsp-ed25519  {hex}"),
                FormatDetail::Length { found: 65 },
            ),
            (
                format!("jsp-ed25519 {}", &hex[..62]),
                FormatDetail::Length { found: 62 },
            ),
        ] {
            assert_eq!(
                parse_public_key(&bad).unwrap_err().to_string(),
                FormatError::NotAPublicKey(detail).to_string()
            );
        }
    }

    #[test]
    fn certificate_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.cert");
        let ca = identity(2);
        let server = identity(3);
        let cert = Certificate::issue(
            &ca,
            "example.org",
            &server.public_key(),
            UnixTime(0),
            UnixTime(u64::MAX),
        )
        .unwrap();
        write_certificate(&path, &cert).unwrap();
        assert_eq!(read_certificate(&path).unwrap(), cert);
        assert!(matches!(
            parse_certificate("jsp-certificate 0102"),
            Err(IdentityFileError::Format {
                reason: FormatError::Certificate(_),
                ..
            })
        ));
        assert!(matches!(
            parse_certificate("jsp-certificate 010"),
            Err(IdentityFileError::Format {
                reason: FormatError::NotACertificate(FormatDetail::Length { found: 3 }),
                ..
            })
        ));
        assert!(parse_certificate("0102").is_err());
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        let err = read_identity_key(&missing).unwrap_err();
        assert!(matches!(err, IdentityFileError::Io { .. }));
        assert!(err.to_string().starts_with(&missing.display().to_string()));
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not a key\n").unwrap();
        let err = read_identity_key(&bad).unwrap_err().to_string();
        assert!(err.starts_with(&format!(
            "{}: not a JetStreamProto identity key",
            bad.display()
        )));
        let big = dir.path().join("big.key");
        std::fs::write(&big, vec![b'a'; 20_000]).unwrap();
        assert!(matches!(
            read_identity_key(&big),
            Err(IdentityFileError::TooLarge { .. })
        ));
        let binary = dir.path().join("binary.key");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        assert!(read_identity_key(&binary).is_err());
    }
}
