//! Handshake messages (PROTOCOL.md §7, §13.1): the 4-byte message header, the
//! [`MessageReader`] that splits a contiguous crypto stream into complete messages, and the
//! parsed representation and codec of every message.
//!
//! Parsed messages borrow their variable-length fields (key shares, transport parameters,
//! certificates, tickets) from the message bytes; the short version and suite lists are stored
//! inline ([`ShortList`]), so decoding never allocates. Decoders reject everything §7 forbids
//! with a [`MessageError`] that names the alert (or transport error) to close with. Encoders
//! append a complete message, header included, to a caller-provided `Vec<u8>`, and leave it
//! unchanged when they fail. Semantic checks that need negotiation state (the share length of
//! the chosen group, the signature scheme, whether a version was offered) belong to the
//! handshake layer.

use core::fmt;
use core::ops::Range;

use super::alert;
use super::error_code;
use super::varint::{DecodeError, EncodeError, Reader};

/// The largest handshake message, header included: 16 KiB (PROTOCOL.md §7.1).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;
/// Length of the message header: `msg_type u8 || length u24` (PROTOCOL.md §7.1).
pub const HEADER_LEN: usize = 4;
/// Length of ClientHello and ServerHello randoms.
pub const RANDOM_LEN: usize = 32;
/// Length of the PSK binder, the last bytes of a ClientHello that offers a PSK (PROTOCOL.md
/// §6.5, §7.2).
pub const BINDER_LEN: usize = 32;
/// Length of Finished verify_data (PROTOCOL.md §7.8).
pub const VERIFY_DATA_LEN: usize = 32;
/// The most versions or cipher suites a ClientHello may list (PROTOCOL.md §7.2).
pub const MAX_LIST_LEN: usize = 16;
/// Cap on a key share's length. The exact lengths (1216 from the client, 1120 from the server
/// for X25519-MLKEM768) are checked by the handshake layer (PROTOCOL.md §7.2-§7.4).
pub const MAX_KEY_SHARE_LEN: usize = 4096;
/// The longest ticket lifetime, 7 days in seconds (PROTOCOL.md §13.1).
pub const MAX_TICKET_LIFETIME: u32 = 7 * 24 * 60 * 60;
/// The X25519-MLKEM768 hybrid group, the only group of version 1 (PROTOCOL.md §7.2).
pub const GROUP_X25519_MLKEM768: u16 = 0x0001;
/// The Ed25519 signature scheme of CertificateVerify (PROTOCOL.md §7.7).
pub const SCHEME_ED25519: u16 = 0x0807;

/// Extension types (PROTOCOL.md §7.2, §13.1).
pub mod ext {
    /// server_name.
    pub const SERVER_NAME: u16 = 0;
    /// transport_parameters.
    pub const TRANSPORT_PARAMETERS: u16 = 1;
    /// early_data.
    pub const EARLY_DATA: u16 = 2;
    /// pre_shared_key.
    pub const PRE_SHARED_KEY: u16 = 3;
    /// previous_version.
    pub const PREVIOUS_VERSION: u16 = 4;
}

/// Why a handshake message was rejected. [`MessageError::alert`] and [`MessageError::code`] give
/// what to close the connection with (PROTOCOL.md §7.1, §16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// A message type that does not exist: `UNEXPECTED_MESSAGE`. (A known type in the wrong
    /// space or order is the handshake layer's to detect, with the same alert.)
    #[error("unexpected handshake message type {0}")]
    UnexpectedMessage(u8),
    /// A message longer than 16 KiB: `CRYPTO_BUFFER_EXCEEDED`.
    #[error("handshake message of {0} bytes exceeds 16 KiB")]
    TooLarge(usize),
    /// A malformed body: `DECODE_ERROR`.
    #[error("malformed {0}")]
    Decode(&'static str),
    /// An extension that appears twice: `ILLEGAL_PARAMETER`.
    #[error("extension {0} appears twice")]
    DuplicateExtension(u16),
    /// A known extension in a message that does not carry it: `ILLEGAL_PARAMETER`.
    #[error("extension {0} not allowed in this message")]
    UnexpectedExtension(u16),
    /// pre_shared_key is not the last extension of a ClientHello: `ILLEGAL_PARAMETER`.
    #[error("pre_shared_key is not the last extension")]
    PskNotLast,
    /// early_data without pre_shared_key in a ClientHello: `ILLEGAL_PARAMETER`.
    #[error("early_data without pre_shared_key")]
    EarlyDataWithoutPsk,
    /// A field out of its allowed range: `ILLEGAL_PARAMETER`.
    #[error("illegal {0}")]
    IllegalParameter(&'static str),
}

impl From<DecodeError> for MessageError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TrailingBytes => MessageError::Decode("message: trailing bytes"),
            _ => MessageError::Decode("message: truncated field"),
        }
    }
}

impl MessageError {
    /// The handshake alert (PROTOCOL.md §16), or `None` for [`MessageError::TooLarge`], which is
    /// the transport error `CRYPTO_BUFFER_EXCEEDED`.
    pub const fn alert(&self) -> Option<u8> {
        Some(match self {
            MessageError::UnexpectedMessage(_) => alert::UNEXPECTED_MESSAGE,
            MessageError::TooLarge(_) => return None,
            MessageError::Decode(_) => alert::DECODE_ERROR,
            MessageError::DuplicateExtension(_)
            | MessageError::UnexpectedExtension(_)
            | MessageError::PskNotLast
            | MessageError::EarlyDataWithoutPsk
            | MessageError::IllegalParameter(_) => alert::ILLEGAL_PARAMETER,
        })
    }

    /// The transport error code to close with: `0x100 + alert`, or `CRYPTO_BUFFER_EXCEEDED`
    /// (PROTOCOL.md §16).
    pub const fn code(&self) -> u64 {
        match self.alert() {
            Some(a) => error_code::handshake_alert(a),
            None => error_code::CRYPTO_BUFFER_EXCEEDED,
        }
    }
}

/// A handshake message type (PROTOCOL.md §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1.
    ClientHello,
    /// 2.
    ServerHello,
    /// 4.
    NewSessionTicket,
    /// 8.
    EncryptedExtensions,
    /// 11.
    Certificate,
    /// 13.
    CertificateRequest,
    /// 15.
    CertificateVerify,
    /// 20.
    Finished,
}

impl MessageType {
    /// The `msg_type` byte.
    pub const fn code(self) -> u8 {
        match self {
            MessageType::ClientHello => 1,
            MessageType::ServerHello => 2,
            MessageType::NewSessionTicket => 4,
            MessageType::EncryptedExtensions => 8,
            MessageType::Certificate => 11,
            MessageType::CertificateRequest => 13,
            MessageType::CertificateVerify => 15,
            MessageType::Finished => 20,
        }
    }
}

impl TryFrom<u8> for MessageType {
    type Error = MessageError;
    fn try_from(code: u8) -> Result<Self, MessageError> {
        Ok(match code {
            1 => MessageType::ClientHello,
            2 => MessageType::ServerHello,
            4 => MessageType::NewSessionTicket,
            8 => MessageType::EncryptedExtensions,
            11 => MessageType::Certificate,
            13 => MessageType::CertificateRequest,
            15 => MessageType::CertificateVerify,
            20 => MessageType::Finished,
            other => return Err(MessageError::UnexpectedMessage(other)),
        })
    }
}

/// Reads the header at the front of a crypto stream: `Ok(None)` if fewer than 4 bytes are
/// available, otherwise the type and the total message length (header included), after checking
/// the type exists and the length is within 16 KiB (PROTOCOL.md §7.1). Both checks happen before
/// the body arrives, so a peer cannot make the receiver buffer an oversized message.
pub fn peek_header(stream: &[u8]) -> Result<Option<(MessageType, usize)>, MessageError> {
    let Some(&[ty, a, b, c]) = stream.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let ty = MessageType::try_from(ty)?;
    let body = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
    let total = body + HEADER_LEN;
    if total > MAX_MESSAGE_LEN {
        return Err(MessageError::TooLarge(total));
    }
    Ok(Some((ty, total)))
}

/// One complete message from the crypto stream, not yet parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawMessage<'a> {
    /// The message type.
    pub ty: MessageType,
    /// The body, after the header.
    pub body: &'a [u8],
    /// The whole message, header included: what the transcript hash covers (PROTOCOL.md §6.1).
    pub raw: &'a [u8],
}

impl<'a> RawMessage<'a> {
    /// Parses the body.
    pub fn parse(&self) -> Result<Message<'a>, MessageError> {
        Message::decode_body(self.ty, self.body)
    }
}

/// Splits a contiguous prefix of a crypto stream into complete messages (PROTOCOL.md §7.1).
///
/// Yields each complete message, stops (`None`) at an incomplete one, and yields an error, then
/// stops, on an unknown type or a length above 16 KiB. [`MessageReader::consumed`] tells how many
/// bytes the complete messages took, so the caller can discard them and keep the incomplete tail.
#[derive(Clone, Debug)]
pub struct MessageReader<'a> {
    stream: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> MessageReader<'a> {
    /// A reader over the contiguous bytes received so far.
    pub fn new(stream: &'a [u8]) -> Self {
        MessageReader {
            stream,
            pos: 0,
            failed: false,
        }
    }

    /// Bytes taken by the messages yielded so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for MessageReader<'a> {
    type Item = Result<RawMessage<'a>, MessageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.stream.get(self.pos..)?;
        let (ty, total) = match peek_header(rest) {
            Ok(Some(header)) => header,
            Ok(None) => return None,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let raw = rest.get(..total)?;
        self.pos += total;
        Some(Ok(RawMessage {
            ty,
            body: raw.get(HEADER_LEN..).unwrap_or(&[]),
            raw,
        }))
    }
}

impl core::iter::FusedIterator for MessageReader<'_> {}

/// Up to 16 `Copy` values stored inline: the version and cipher suite lists of a ClientHello
/// (PROTOCOL.md §7.2). Dereferences to a slice.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortList<T> {
    len: u8,
    // Entries past `len` are always `T::default()`, so the derived equality is the slice's.
    items: [T; MAX_LIST_LEN],
}

impl<T: Copy + Default> ShortList<T> {
    /// An empty list.
    pub fn new() -> Self {
        ShortList {
            len: 0,
            items: [T::default(); MAX_LIST_LEN],
        }
    }

    /// A list holding `items`, failing if there are more than 16.
    pub fn from_slice(items: &[T]) -> Result<Self, EncodeError> {
        let mut list = Self::new();
        for &item in items {
            list.push(item)?;
        }
        Ok(list)
    }

    /// Appends `item`, failing if the list is full.
    pub fn push(&mut self, item: T) -> Result<(), EncodeError> {
        let slot = self
            .items
            .get_mut(usize::from(self.len))
            .ok_or(EncodeError::BadCount {
                field: "list",
                len: MAX_LIST_LEN + 1,
                min: 0,
                max: MAX_LIST_LEN,
            })?;
        *slot = item;
        self.len += 1;
        Ok(())
    }

    /// The entries.
    pub fn as_slice(&self) -> &[T] {
        self.items.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl<T: Copy + Default> Default for ShortList<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Default> core::ops::Deref for ShortList<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Copy + Default + fmt::Debug> fmt::Debug for ShortList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: Copy + Default> TryFrom<&[T]> for ShortList<T> {
    type Error = EncodeError;
    fn try_from(items: &[T]) -> Result<Self, EncodeError> {
        Self::from_slice(items)
    }
}

/// A key share: `u16 group || u16 length || share` (PROTOCOL.md §7.2, §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyShare<'a> {
    /// The group, e.g. [`GROUP_X25519_MLKEM768`].
    pub group: u16,
    /// The share, at most [`MAX_KEY_SHARE_LEN`] bytes.
    pub share: &'a [u8],
}

impl<'a> KeyShare<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, MessageError> {
        let group = r.get_u16()?;
        let share = r.get_u16_prefixed()?;
        if share.len() > MAX_KEY_SHARE_LEN {
            return Err(MessageError::IllegalParameter("key share length"));
        }
        Ok(KeyShare { group, share })
    }

    fn encode(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.share.len() > MAX_KEY_SHARE_LEN {
            return Err(EncodeError::TooLong {
                field: "key share",
                len: self.share.len(),
                max: MAX_KEY_SHARE_LEN,
            });
        }
        buf.extend_from_slice(&self.group.to_be_bytes());
        put_u16_prefixed(buf, "key share", self.share)
    }
}

/// The pre_shared_key extension of a ClientHello (PROTOCOL.md §7.2, §13.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreSharedKey<'a> {
    /// The ticket (non-empty).
    pub identity: &'a [u8],
    /// `(ticket age in ms + age_add) mod 2^32`.
    pub obfuscated_ticket_age: u32,
    /// The binder (§6.5). When encoding, a placeholder to patch with
    /// [`ClientHelloLayout::patch_binder`].
    pub binder: [u8; BINDER_LEN],
}

/// ClientHello (PROTOCOL.md §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// Client random.
    pub random: [u8; RANDOM_LEN],
    /// Supported versions in preference order (1..=16).
    pub versions: ShortList<u32>,
    /// Offered cipher suites in preference order (1..=16).
    pub cipher_suites: ShortList<u16>,
    /// The client's key share.
    pub key_share: KeyShare<'a>,
    /// server_name: a UTF-8 host name of 1..=255 bytes.
    pub server_name: Option<&'a str>,
    /// transport_parameters (required), encoded as §8.
    pub transport_parameters: &'a [u8],
    /// early_data: the client sends 0-RTT packets. Requires `pre_shared_key`.
    pub early_data: bool,
    /// pre_shared_key, always encoded as the last extension.
    pub pre_shared_key: Option<PreSharedKey<'a>>,
    /// previous_version: the version attempted before a version negotiation (§4.5).
    pub previous_version: Option<u32>,
}

/// Where [`ClientHello::encode`] put the message, as absolute offsets into the output buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHelloLayout {
    /// The whole message, header included.
    pub message: Range<usize>,
    /// Offset of the binder (the last 32 bytes of the message), if a PSK is offered.
    pub binder_offset: Option<usize>,
}

impl ClientHelloLayout {
    /// The truncated ClientHello the binder is computed over: the message, header included, with
    /// its final length, without the last 32 bytes (PROTOCOL.md §6.5). `None` without a PSK or if
    /// `buf` is not the buffer the message was encoded into.
    pub fn truncated<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        buf.get(self.message.start..self.binder_offset?)
    }

    /// Writes the binder over the placeholder.
    pub fn patch_binder(
        &self,
        buf: &mut [u8],
        binder: &[u8; BINDER_LEN],
    ) -> Result<(), EncodeError> {
        let at = self.binder_offset.ok_or(EncodeError::OutOfBounds)?;
        at.checked_add(BINDER_LEN)
            .and_then(|end| buf.get_mut(at..end))
            .ok_or(EncodeError::OutOfBounds)?
            .copy_from_slice(binder);
        Ok(())
    }
}

/// The truncated ClientHello of a received message `raw` (header included) that offered a PSK:
/// all but its last 32 bytes, the binder (PROTOCOL.md §6.5). `None` if `raw` is too short.
pub fn truncated_client_hello(raw: &[u8]) -> Option<&[u8]> {
    raw.get(..raw.len().checked_sub(BINDER_LEN)?)
}

impl<'a> ClientHello<'a> {
    /// Parses a ClientHello body (PROTOCOL.md §7.2).
    pub fn decode(body: &'a [u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(body);
        let random = r.get_array()?;
        let n = list_count(&mut r, "version count")?;
        let mut versions = ShortList::new();
        for _ in 0..n {
            push_checked(&mut versions, r.get_u32()?)?;
        }
        let n = list_count(&mut r, "cipher suite count")?;
        let mut cipher_suites = ShortList::new();
        for _ in 0..n {
            push_checked(&mut cipher_suites, r.get_u16()?)?;
        }
        let key_share = KeyShare::decode(&mut r)?;
        let mut hello = ClientHello {
            random,
            versions,
            cipher_suites,
            key_share,
            server_name: None,
            transport_parameters: &[],
            early_data: false,
            pre_shared_key: None,
            previous_version: None,
        };
        let mut transport_parameters = None;
        let mut exts = Extensions::read(&mut r)?;
        while let Some((ty, data)) = exts.next_ext()? {
            if hello.pre_shared_key.is_some() {
                return Err(MessageError::PskNotLast);
            }
            match ty {
                ext::SERVER_NAME => hello.server_name = Some(decode_server_name(data)?),
                ext::TRANSPORT_PARAMETERS => transport_parameters = Some(data),
                ext::EARLY_DATA => {
                    empty_ext(data, "early_data")?;
                    hello.early_data = true;
                }
                ext::PRE_SHARED_KEY => hello.pre_shared_key = Some(decode_psk(data)?),
                ext::PREVIOUS_VERSION => hello.previous_version = Some(exact_u32(data)?),
                _ => {}
            }
        }
        r.finish()?;
        hello.transport_parameters = transport_parameters
            .ok_or(MessageError::Decode("ClientHello: no transport_parameters"))?;
        if hello.early_data && hello.pre_shared_key.is_none() {
            return Err(MessageError::EarlyDataWithoutPsk);
        }
        Ok(hello)
    }

    /// Appends the message, header included. Extensions are written in the order server_name,
    /// transport_parameters, early_data, previous_version, pre_shared_key (last, §7.2), with
    /// `pre_shared_key.binder` as written: pass a placeholder and patch it with the returned
    /// layout once the binder over [`ClientHelloLayout::truncated`] is computed.
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<ClientHelloLayout, EncodeError> {
        if self.early_data && self.pre_shared_key.is_none() {
            return Err(EncodeError::Invalid("early_data without pre_shared_key"));
        }
        check_count("versions", self.versions.len())?;
        check_count("cipher_suites", self.cipher_suites.len())?;
        let message = write_message(buf, MessageType::ClientHello, |buf| {
            buf.extend_from_slice(&self.random);
            put_list_len(buf, self.versions.len());
            for v in self.versions.iter() {
                buf.extend_from_slice(&v.to_be_bytes());
            }
            put_list_len(buf, self.cipher_suites.len());
            for s in self.cipher_suites.iter() {
                buf.extend_from_slice(&s.to_be_bytes());
            }
            self.key_share.encode(buf)?;
            with_u16_len(buf, "extensions", |buf| {
                if let Some(name) = self.server_name {
                    if name.is_empty() || name.len() > 255 {
                        return Err(EncodeError::TooLong {
                            field: "server_name",
                            len: name.len(),
                            max: 255,
                        });
                    }
                    put_ext(buf, ext::SERVER_NAME, name.as_bytes())?;
                }
                put_ext(buf, ext::TRANSPORT_PARAMETERS, self.transport_parameters)?;
                if self.early_data {
                    put_ext(buf, ext::EARLY_DATA, &[])?;
                }
                if let Some(v) = self.previous_version {
                    put_ext(buf, ext::PREVIOUS_VERSION, &v.to_be_bytes())?;
                }
                if let Some(psk) = &self.pre_shared_key {
                    if psk.identity.is_empty() {
                        return Err(EncodeError::Invalid("empty PSK identity"));
                    }
                    buf.extend_from_slice(&ext::PRE_SHARED_KEY.to_be_bytes());
                    with_u16_len(buf, "pre_shared_key", |buf| {
                        put_u16_prefixed(buf, "PSK identity", psk.identity)?;
                        buf.extend_from_slice(&psk.obfuscated_ticket_age.to_be_bytes());
                        buf.extend_from_slice(&psk.binder);
                        Ok(())
                    })?;
                }
                Ok(())
            })
        })?;
        let binder_offset = self.pre_shared_key.map(|_| message.end - BINDER_LEN);
        Ok(ClientHelloLayout {
            message,
            binder_offset,
        })
    }
}

/// ServerHello (PROTOCOL.md §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerHello<'a> {
    /// Server random.
    pub random: [u8; RANDOM_LEN],
    /// The selected version.
    pub version: u32,
    /// The selected cipher suite.
    pub cipher_suite: u16,
    /// The server's key share.
    pub key_share: KeyShare<'a>,
    /// Whether the server accepted the client's PSK (an empty pre_shared_key extension).
    pub psk_accepted: bool,
}

impl<'a> ServerHello<'a> {
    /// Parses a ServerHello body (PROTOCOL.md §7.3). Its only extension is pre_shared_key with
    /// empty data; other known extensions are rejected, unknown ones ignored.
    pub fn decode(body: &'a [u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(body);
        let random = r.get_array()?;
        let version = r.get_u32()?;
        let cipher_suite = r.get_u16()?;
        let key_share = KeyShare::decode(&mut r)?;
        let mut psk_accepted = false;
        let mut exts = Extensions::read(&mut r)?;
        while let Some((ty, data)) = exts.next_ext()? {
            match ty {
                ext::PRE_SHARED_KEY => {
                    empty_ext(data, "pre_shared_key")?;
                    psk_accepted = true;
                }
                ext::SERVER_NAME
                | ext::TRANSPORT_PARAMETERS
                | ext::EARLY_DATA
                | ext::PREVIOUS_VERSION => return Err(MessageError::UnexpectedExtension(ty)),
                _ => {}
            }
        }
        r.finish()?;
        Ok(ServerHello {
            random,
            version,
            cipher_suite,
            key_share,
            psk_accepted,
        })
    }

    /// Appends the message, header included.
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        write_message(buf, MessageType::ServerHello, |buf| {
            buf.extend_from_slice(&self.random);
            buf.extend_from_slice(&self.version.to_be_bytes());
            buf.extend_from_slice(&self.cipher_suite.to_be_bytes());
            self.key_share.encode(buf)?;
            with_u16_len(buf, "extensions", |buf| {
                if self.psk_accepted {
                    put_ext(buf, ext::PRE_SHARED_KEY, &[])?;
                }
                Ok(())
            })
        })
        .map(|_| ())
    }
}

/// EncryptedExtensions (PROTOCOL.md §7.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncryptedExtensions<'a> {
    /// The server's transport parameters (required), encoded as §8.
    pub transport_parameters: &'a [u8],
    /// Whether the server accepts the client's 0-RTT data.
    pub early_data: bool,
}

impl<'a> EncryptedExtensions<'a> {
    /// Parses an EncryptedExtensions body (PROTOCOL.md §7.5): transport_parameters is required,
    /// early_data must be empty, other known extensions are rejected, unknown ones ignored.
    pub fn decode(body: &'a [u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(body);
        let mut transport_parameters = None;
        let mut early_data = false;
        let mut exts = Extensions::read(&mut r)?;
        while let Some((ty, data)) = exts.next_ext()? {
            match ty {
                ext::TRANSPORT_PARAMETERS => transport_parameters = Some(data),
                ext::EARLY_DATA => {
                    empty_ext(data, "early_data")?;
                    early_data = true;
                }
                ext::SERVER_NAME | ext::PRE_SHARED_KEY | ext::PREVIOUS_VERSION => {
                    return Err(MessageError::UnexpectedExtension(ty))
                }
                _ => {}
            }
        }
        r.finish()?;
        Ok(EncryptedExtensions {
            transport_parameters: transport_parameters.ok_or(MessageError::Decode(
                "EncryptedExtensions: no transport_parameters",
            ))?,
            early_data,
        })
    }

    /// Appends the message, header included.
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        write_message(buf, MessageType::EncryptedExtensions, |buf| {
            with_u16_len(buf, "extensions", |buf| {
                put_ext(buf, ext::TRANSPORT_PARAMETERS, self.transport_parameters)?;
                if self.early_data {
                    put_ext(buf, ext::EARLY_DATA, &[])?;
                }
                Ok(())
            })
        })
        .map(|_| ())
    }
}

/// CertificateRequest (PROTOCOL.md §7.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CertificateRequest {
    /// Reserved for later policies; version 1 sends 0. Received values are passed through, not
    /// rejected, so that later versions can define bits.
    pub flags: u8,
}

impl CertificateRequest {
    /// Parses a CertificateRequest body: exactly one byte.
    pub fn decode(body: &[u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(body);
        let flags = r.get_u8()?;
        r.finish()?;
        Ok(CertificateRequest { flags })
    }

    /// Appends the message, header included.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&[MessageType::CertificateRequest.code(), 0, 0, 1, self.flags]);
    }
}

/// The kind of credential in a Certificate message (PROTOCOL.md §7.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertificateKind {
    /// 0: raw public key, `algorithm u8 || public key`; empty means "no certificate".
    RawPublicKey,
    /// 1: a §11 certificate.
    Certificate,
}

impl CertificateKind {
    /// The `kind` byte.
    pub const fn code(self) -> u8 {
        match self {
            CertificateKind::RawPublicKey => 0,
            CertificateKind::Certificate => 1,
        }
    }
}

/// The Certificate handshake message (PROTOCOL.md §7.6), not to be confused with the §11
/// certificate it may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertificateMsg<'a> {
    /// What `data` holds.
    pub kind: CertificateKind,
    /// The raw public key or certificate bytes, parsed by the identity layer. Empty only for
    /// [`CertificateKind::RawPublicKey`], meaning the client has no identity.
    pub data: &'a [u8],
}

impl<'a> CertificateMsg<'a> {
    /// The "no certificate" answer of a client without identity: kind 0, length 0.
    pub const NONE: CertificateMsg<'static> = CertificateMsg {
        kind: CertificateKind::RawPublicKey,
        data: &[],
    };

    /// Whether this is the "no certificate" answer.
    pub fn is_none(&self) -> bool {
        self.data.is_empty()
    }

    /// Parses a Certificate body: rejects unknown kinds and an empty kind-1 certificate.
    pub fn decode(body: &'a [u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(body);
        let kind = match r.get_u8()? {
            0 => CertificateKind::RawPublicKey,
            1 => CertificateKind::Certificate,
            _ => return Err(MessageError::Decode("Certificate: unknown kind")),
        };
        let data = r.get_u16_prefixed()?;
        r.finish()?;
        if kind == CertificateKind::Certificate && data.is_empty() {
            return Err(MessageError::Decode("Certificate: empty certificate"));
        }
        Ok(CertificateMsg { kind, data })
    }

    /// Appends the message, header included.
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.kind == CertificateKind::Certificate && self.data.is_empty() {
            return Err(EncodeError::Invalid("empty certificate"));
        }
        write_message(buf, MessageType::Certificate, |buf| {
            buf.push(self.kind.code());
            put_u16_prefixed(buf, "certificate", self.data)
        })
        .map(|_| ())
    }
}

/// CertificateVerify (PROTOCOL.md §7.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertificateVerify<'a> {
    /// The signature scheme, e.g. [`SCHEME_ED25519`].
    pub scheme: u16,
    /// The signature.
    pub signature: &'a [u8],
}

impl<'a> CertificateVerify<'a> {
    /// Parses a CertificateVerify body.
    pub fn decode(body: &'a [u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(body);
        let scheme = r.get_u16()?;
        let signature = r.get_u16_prefixed()?;
        r.finish()?;
        Ok(CertificateVerify { scheme, signature })
    }

    /// Appends the message, header included.
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        write_message(buf, MessageType::CertificateVerify, |buf| {
            buf.extend_from_slice(&self.scheme.to_be_bytes());
            put_u16_prefixed(buf, "signature", self.signature)
        })
        .map(|_| ())
    }
}

/// Finished (PROTOCOL.md §7.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// HMAC over the transcript (§6.5). Compare in constant time.
    pub verify_data: [u8; VERIFY_DATA_LEN],
}

impl Finished {
    /// Parses a Finished body: exactly 32 bytes.
    pub fn decode(body: &[u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(body);
        let verify_data = r.get_array()?;
        r.finish()?;
        Ok(Finished { verify_data })
    }

    /// Appends the message, header included.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&[MessageType::Finished.code(), 0, 0, 32]);
        buf.extend_from_slice(&self.verify_data);
    }
}

/// NewSessionTicket (PROTOCOL.md §13.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewSessionTicket<'a> {
    /// Lifetime in seconds, at most 7 days.
    pub lifetime: u32,
    /// Added to the ticket age to obfuscate it (§13.2).
    pub age_add: u32,
    /// Per-ticket nonce for the resumption PSK (§6.6), at most 255 bytes.
    pub nonce: &'a [u8],
    /// The opaque ticket, 1..=65535 bytes.
    pub ticket: &'a [u8],
    /// The early_data extension: the most 0-RTT bytes the client may send with this ticket.
    pub max_early_data: Option<u32>,
}

impl<'a> NewSessionTicket<'a> {
    /// Parses a NewSessionTicket body: rejects a lifetime above 7 days, an empty ticket, and
    /// known extensions other than early_data.
    pub fn decode(body: &'a [u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(body);
        let lifetime = r.get_u32()?;
        if lifetime > MAX_TICKET_LIFETIME {
            return Err(MessageError::IllegalParameter("ticket lifetime"));
        }
        let age_add = r.get_u32()?;
        let nonce = r.get_u8_prefixed()?;
        let ticket = r.get_u16_prefixed()?;
        if ticket.is_empty() {
            return Err(MessageError::Decode("NewSessionTicket: empty ticket"));
        }
        let mut max_early_data = None;
        let mut exts = Extensions::read(&mut r)?;
        while let Some((ty, data)) = exts.next_ext()? {
            match ty {
                ext::EARLY_DATA => max_early_data = Some(exact_u32(data)?),
                ext::SERVER_NAME
                | ext::TRANSPORT_PARAMETERS
                | ext::PRE_SHARED_KEY
                | ext::PREVIOUS_VERSION => return Err(MessageError::UnexpectedExtension(ty)),
                _ => {}
            }
        }
        r.finish()?;
        Ok(NewSessionTicket {
            lifetime,
            age_add,
            nonce,
            ticket,
            max_early_data,
        })
    }

    /// Appends the message, header included.
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.lifetime > MAX_TICKET_LIFETIME {
            return Err(EncodeError::Invalid("ticket lifetime above 7 days"));
        }
        if self.ticket.is_empty() {
            return Err(EncodeError::Invalid("empty ticket"));
        }
        write_message(buf, MessageType::NewSessionTicket, |buf| {
            buf.extend_from_slice(&self.lifetime.to_be_bytes());
            buf.extend_from_slice(&self.age_add.to_be_bytes());
            put_u8_prefixed(buf, "ticket nonce", self.nonce)?;
            put_u16_prefixed(buf, "ticket", self.ticket)?;
            with_u16_len(buf, "extensions", |buf| {
                if let Some(max) = self.max_early_data {
                    put_ext(buf, ext::EARLY_DATA, &max.to_be_bytes())?;
                }
                Ok(())
            })
        })
        .map(|_| ())
    }
}

/// A parsed handshake message (PROTOCOL.md §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// ClientHello.
    ClientHello(ClientHello<'a>),
    /// ServerHello.
    ServerHello(ServerHello<'a>),
    /// NewSessionTicket.
    NewSessionTicket(NewSessionTicket<'a>),
    /// EncryptedExtensions.
    EncryptedExtensions(EncryptedExtensions<'a>),
    /// Certificate.
    Certificate(CertificateMsg<'a>),
    /// CertificateRequest.
    CertificateRequest(CertificateRequest),
    /// CertificateVerify.
    CertificateVerify(CertificateVerify<'a>),
    /// Finished.
    Finished(Finished),
}

impl<'a> Message<'a> {
    /// Parses one complete message, header included, with nothing after it (PROTOCOL.md §7.1).
    pub fn decode(raw: &'a [u8]) -> Result<Self, MessageError> {
        let (ty, total) = peek_header(raw)?.ok_or(MessageError::Decode("message header"))?;
        if raw.len() != total {
            return Err(MessageError::Decode("message length"));
        }
        Message::decode_body(ty, raw.get(HEADER_LEN..).unwrap_or(&[]))
    }

    /// Parses the body of a message of type `ty`.
    pub fn decode_body(ty: MessageType, body: &'a [u8]) -> Result<Self, MessageError> {
        Ok(match ty {
            MessageType::ClientHello => Message::ClientHello(ClientHello::decode(body)?),
            MessageType::ServerHello => Message::ServerHello(ServerHello::decode(body)?),
            MessageType::NewSessionTicket => {
                Message::NewSessionTicket(NewSessionTicket::decode(body)?)
            }
            MessageType::EncryptedExtensions => {
                Message::EncryptedExtensions(EncryptedExtensions::decode(body)?)
            }
            MessageType::Certificate => Message::Certificate(CertificateMsg::decode(body)?),
            MessageType::CertificateRequest => {
                Message::CertificateRequest(CertificateRequest::decode(body)?)
            }
            MessageType::CertificateVerify => {
                Message::CertificateVerify(CertificateVerify::decode(body)?)
            }
            MessageType::Finished => Message::Finished(Finished::decode(body)?),
        })
    }

    /// The message type.
    pub fn ty(&self) -> MessageType {
        match self {
            Message::ClientHello(_) => MessageType::ClientHello,
            Message::ServerHello(_) => MessageType::ServerHello,
            Message::NewSessionTicket(_) => MessageType::NewSessionTicket,
            Message::EncryptedExtensions(_) => MessageType::EncryptedExtensions,
            Message::Certificate(_) => MessageType::Certificate,
            Message::CertificateRequest(_) => MessageType::CertificateRequest,
            Message::CertificateVerify(_) => MessageType::CertificateVerify,
            Message::Finished(_) => MessageType::Finished,
        }
    }

    /// Appends the message, header included.
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Message::ClientHello(m) => m.encode(buf).map(|_| ()),
            Message::ServerHello(m) => m.encode(buf),
            Message::NewSessionTicket(m) => m.encode(buf),
            Message::EncryptedExtensions(m) => m.encode(buf),
            Message::Certificate(m) => m.encode(buf),
            Message::CertificateRequest(m) => {
                m.encode(buf);
                Ok(())
            }
            Message::CertificateVerify(m) => m.encode(buf),
            Message::Finished(m) => {
                m.encode(buf);
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding helpers

/// An extension list being read: `u16 total length || (u16 type || u16 length || data)*`,
/// rejecting duplicate types, known or not (PROTOCOL.md §7.1).
struct Extensions<'a> {
    r: Reader<'a>,
    /// One bit per extension type seen so far.
    seen: [u64; 1024],
}

impl<'a> Extensions<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, MessageError> {
        Ok(Extensions {
            r: Reader::new(r.get_u16_prefixed()?),
            seen: [0; 1024],
        })
    }

    fn next_ext(&mut self) -> Result<Option<(u16, &'a [u8])>, MessageError> {
        if self.r.is_empty() {
            return Ok(None);
        }
        let ty = self.r.get_u16()?;
        let data = self.r.get_u16_prefixed()?;
        let (word, bit) = (usize::from(ty >> 6), 1u64 << (ty & 63));
        let slot = self
            .seen
            .get_mut(word)
            .ok_or(MessageError::DuplicateExtension(ty))?;
        if *slot & bit != 0 {
            return Err(MessageError::DuplicateExtension(ty));
        }
        *slot |= bit;
        Ok(Some((ty, data)))
    }
}

fn list_count(r: &mut Reader<'_>, field: &'static str) -> Result<u8, MessageError> {
    let n = r.get_u8()?;
    if n == 0 || usize::from(n) > MAX_LIST_LEN {
        return Err(MessageError::Decode(field));
    }
    Ok(n)
}

fn push_checked<T: Copy + Default>(list: &mut ShortList<T>, v: T) -> Result<(), MessageError> {
    list.push(v)
        .map_err(|_| MessageError::Decode("list longer than 16"))
}

fn empty_ext(data: &[u8], name: &'static str) -> Result<(), MessageError> {
    if data.is_empty() {
        Ok(())
    } else {
        Err(MessageError::Decode(name))
    }
}

fn exact_u32(data: &[u8]) -> Result<u32, MessageError> {
    let mut r = Reader::new(data);
    let v = r.get_u32()?;
    r.finish()?;
    Ok(v)
}

fn decode_server_name(data: &[u8]) -> Result<&str, MessageError> {
    if data.is_empty() || data.len() > 255 {
        return Err(MessageError::Decode("server_name length"));
    }
    core::str::from_utf8(data).map_err(|_| MessageError::Decode("server_name: not UTF-8"))
}

fn decode_psk(data: &[u8]) -> Result<PreSharedKey<'_>, MessageError> {
    let mut r = Reader::new(data);
    let identity = r.get_u16_prefixed()?;
    if identity.is_empty() {
        return Err(MessageError::Decode("pre_shared_key: empty identity"));
    }
    let obfuscated_ticket_age = r.get_u32()?;
    let binder = r.get_array()?;
    r.finish()?;
    Ok(PreSharedKey {
        identity,
        obfuscated_ticket_age,
        binder,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers

/// Writes a message header, the body written by `body`, then patches the u24 length. Leaves `buf`
/// unchanged on error. Returns the message's range in `buf`.
fn write_message(
    buf: &mut Vec<u8>,
    ty: MessageType,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<Range<usize>, EncodeError> {
    let start = buf.len();
    buf.extend_from_slice(&[ty.code(), 0, 0, 0]);
    let result = body(buf).and_then(|()| {
        let total = buf.len() - start;
        if total > MAX_MESSAGE_LEN {
            return Err(EncodeError::TooLong {
                field: "handshake message",
                len: total,
                max: MAX_MESSAGE_LEN,
            });
        }
        // total - 4 < 2^14, so it fits the u24.
        let len = u32::try_from(total - HEADER_LEN).unwrap_or(0).to_be_bytes();
        if let Some(field) = buf.get_mut(start + 1..start + HEADER_LEN) {
            field.copy_from_slice(&len[1..]);
        }
        Ok(start..buf.len())
    });
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

/// Writes a u16 length placeholder, the content written by `f`, then patches the length.
fn with_u16_len(
    buf: &mut Vec<u8>,
    field: &'static str,
    f: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    f(buf)?;
    let len = buf.len() - at - 2;
    let len = u16::try_from(len).map_err(|_| EncodeError::TooLong {
        field,
        len,
        max: usize::from(u16::MAX),
    })?;
    if let Some(slot) = buf.get_mut(at..at + 2) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

fn put_u16_prefixed(
    buf: &mut Vec<u8>,
    field: &'static str,
    data: &[u8],
) -> Result<(), EncodeError> {
    let len = u16::try_from(data.len()).map_err(|_| EncodeError::TooLong {
        field,
        len: data.len(),
        max: usize::from(u16::MAX),
    })?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(data);
    Ok(())
}

fn put_u8_prefixed(buf: &mut Vec<u8>, field: &'static str, data: &[u8]) -> Result<(), EncodeError> {
    let len = u8::try_from(data.len()).map_err(|_| EncodeError::TooLong {
        field,
        len: data.len(),
        max: usize::from(u8::MAX),
    })?;
    buf.push(len);
    buf.extend_from_slice(data);
    Ok(())
}

fn put_ext(buf: &mut Vec<u8>, ty: u16, data: &[u8]) -> Result<(), EncodeError> {
    buf.extend_from_slice(&ty.to_be_bytes());
    put_u16_prefixed(buf, "extension", data)
}

fn check_count(field: &'static str, len: usize) -> Result<(), EncodeError> {
    if (1..=MAX_LIST_LEN).contains(&len) {
        Ok(())
    } else {
        Err(EncodeError::BadCount {
            field,
            len,
            min: 1,
            max: MAX_LIST_LEN,
        })
    }
}

fn put_list_len(buf: &mut Vec<u8>, len: usize) {
    // Checked to be 1..=16 by `check_count`.
    buf.push(u8::try_from(len).unwrap_or(0));
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
