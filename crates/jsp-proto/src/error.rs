//! Error types and wire error codes (PROTOCOL.md §16).
//!
//! Errors say who is at fault: the peer sent something malformed or forbidden
//! ([`ConnectionError::ProtocolViolation`], [`HandshakeError`]), the peer closed
//! ([`ConnectionError::PeerClosed`]), the network failed ([`ConnectionError::TimedOut`]), or the
//! local configuration or API use is wrong ([`ConfigError`]).

use core::fmt;

/// A CONNECTION_CLOSE error code (PROTOCOL.md §16).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u64);

impl ErrorCode {
    /// Graceful close.
    pub const NO_ERROR: Self = Self(0x00);
    /// The endpoint is going away (server shutdown).
    pub const GOING_AWAY: Self = Self(0x01);
    /// Generic protocol violation.
    pub const PROTOCOL_ERROR: Self = Self(0x02);
    /// Idle or heartbeat timeout.
    pub const TIMEOUT: Self = Self(0x03);
    /// A rate limit was exceeded.
    pub const RATE_LIMIT_EXCEEDED: Self = Self(0x04);
    /// The endpoint hit an internal error.
    pub const INTERNAL_ERROR: Self = Self(0x05);
    /// Flow-control credit was exceeded.
    pub const FLOW_CONTROL_ERROR: Self = Self(0x06);
    /// Too many streams were opened.
    pub const STREAM_LIMIT_ERROR: Self = Self(0x07);
    /// A frame was received for a stream in a state that forbids it.
    pub const STREAM_STATE_ERROR: Self = Self(0x08);
    /// A frame could not be decoded.
    pub const FRAME_ENCODING_ERROR: Self = Self(0x09);
    /// Transport parameters were malformed or inconsistent.
    pub const TRANSPORT_PARAMETER_ERROR: Self = Self(0x0a);
    /// Too many connection IDs were issued.
    pub const CONNECTION_ID_LIMIT_ERROR: Self = Self(0x0b);
    /// A key update broke the rules of PROTOCOL.md §9.
    pub const KEY_UPDATE_ERROR: Self = Self(0x0c);
    /// Too much out-of-order handshake data.
    pub const CRYPTO_BUFFER_EXCEEDED: Self = Self(0x0d);
    /// An invalid Retry token.
    pub const INVALID_TOKEN: Self = Self(0x0e);
    /// Too many packets were protected with one key.
    pub const AEAD_LIMIT_REACHED: Self = Self(0x0f);
    /// A version negotiation was forged or inconsistent.
    pub const VERSION_NEGOTIATION_ERROR: Self = Self(0x10);
    /// The server refused a new connection because it is overloaded.
    pub const SERVER_BUSY: Self = Self(0x11);

    /// The code for a handshake alert (`0x100 + alert`).
    pub const fn handshake(alert: HandshakeAlert) -> Self {
        Self(0x100 + alert as u64)
    }

    /// The [`CloseReason`] an application sees for this code.
    pub fn close_reason(self) -> CloseReason {
        match self {
            Self::NO_ERROR => CloseReason::Normal,
            Self::GOING_AWAY | Self::SERVER_BUSY => CloseReason::GoingAway,
            Self::TIMEOUT => CloseReason::Timeout,
            Self::RATE_LIMIT_EXCEEDED => CloseReason::RateLimitExceeded,
            Self::INTERNAL_ERROR => CloseReason::InternalError,
            _ => CloseReason::ProtocolError,
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::NO_ERROR => "NO_ERROR",
            Self::GOING_AWAY => "GOING_AWAY",
            Self::PROTOCOL_ERROR => "PROTOCOL_ERROR",
            Self::TIMEOUT => "TIMEOUT",
            Self::RATE_LIMIT_EXCEEDED => "RATE_LIMIT_EXCEEDED",
            Self::INTERNAL_ERROR => "INTERNAL_ERROR",
            Self::FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR",
            Self::STREAM_LIMIT_ERROR => "STREAM_LIMIT_ERROR",
            Self::STREAM_STATE_ERROR => "STREAM_STATE_ERROR",
            Self::FRAME_ENCODING_ERROR => "FRAME_ENCODING_ERROR",
            Self::TRANSPORT_PARAMETER_ERROR => "TRANSPORT_PARAMETER_ERROR",
            Self::CONNECTION_ID_LIMIT_ERROR => "CONNECTION_ID_LIMIT_ERROR",
            Self::KEY_UPDATE_ERROR => "KEY_UPDATE_ERROR",
            Self::CRYPTO_BUFFER_EXCEEDED => "CRYPTO_BUFFER_EXCEEDED",
            Self::INVALID_TOKEN => "INVALID_TOKEN",
            Self::AEAD_LIMIT_REACHED => "AEAD_LIMIT_REACHED",
            Self::VERSION_NEGOTIATION_ERROR => "VERSION_NEGOTIATION_ERROR",
            Self::SERVER_BUSY => "SERVER_BUSY",
            ErrorCode(c) if (0x100..0x200).contains(&c) => {
                return write!(f, "HANDSHAKE_ALERT({})", c - 0x100)
            }
            ErrorCode(c) => return write!(f, "ErrorCode({c:#x})"),
        };
        f.write_str(name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Handshake alerts (PROTOCOL.md §16), carried as `0x100 + alert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HandshakeAlert {
    /// A message arrived out of order or in the wrong space.
    UnexpectedMessage = 10,
    /// A record could not be processed.
    BadRecord = 20,
    /// No acceptable parameters.
    HandshakeFailure = 40,
    /// A certificate or key was malformed or not the pinned one.
    BadCertificate = 42,
    /// A certificate is outside its validity window.
    CertificateExpired = 45,
    /// A field had an illegal value.
    IllegalParameter = 47,
    /// The peer's key is not trusted.
    UnknownCa = 48,
    /// A message could not be decoded.
    DecodeError = 50,
    /// A signature or Finished MAC did not verify.
    DecryptError = 51,
    /// No cipher suite or group in common.
    InsufficientSecurity = 71,
    /// Client authentication was required but not provided.
    CertificateRequired = 116,
}

/// Why a connection was closed, as an application sees it (the original README's `CloseReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Orderly close.
    Normal,
    /// The endpoint is shutting down.
    GoingAway,
    /// The peer broke the protocol.
    ProtocolError,
    /// Idle or heartbeat timeout.
    Timeout,
    /// A rate limit was exceeded.
    RateLimitExceeded,
    /// An internal error.
    InternalError,
    /// An application-defined code (APPLICATION_CLOSE).
    Application(u64),
}

impl CloseReason {
    /// The transport error code used to send this reason in CONNECTION_CLOSE, or `None` for
    /// application codes (sent in APPLICATION_CLOSE).
    pub fn transport_code(self) -> Option<ErrorCode> {
        Some(match self {
            CloseReason::Normal => ErrorCode::NO_ERROR,
            CloseReason::GoingAway => ErrorCode::GOING_AWAY,
            CloseReason::ProtocolError => ErrorCode::PROTOCOL_ERROR,
            CloseReason::Timeout => ErrorCode::TIMEOUT,
            CloseReason::RateLimitExceeded => ErrorCode::RATE_LIMIT_EXCEEDED,
            CloseReason::InternalError => ErrorCode::INTERNAL_ERROR,
            CloseReason::Application(_) => return None,
        })
    }
}

/// A failure of the handshake detected locally: the peer is not who it should be, or sent
/// something the handshake forbids.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The server's key is not pinned and not certified by a trusted authority.
    #[error("the peer's key {fingerprint} is not trusted (not pinned, no trusted certificate)")]
    UntrustedPeer {
        /// Fingerprint of the key the peer presented.
        fingerprint: String,
    },
    /// The certificate is outside its validity window.
    #[error("the peer's certificate is expired or not yet valid")]
    CertificateExpired,
    /// The certificate does not name the server the client asked for.
    #[error("the peer's certificate names a different subject")]
    SubjectMismatch,
    /// A certificate or raw key could not be decoded.
    #[error("the peer's certificate is malformed")]
    BadCertificate,
    /// A signature (CertificateVerify or certificate) did not verify.
    #[error("the peer's signature does not verify")]
    BadSignature,
    /// The peer's Finished MAC was wrong: the transcript was tampered with (downgrade, key-share
    /// substitution) or the peer does not hold the keys.
    #[error("handshake transcript mismatch (Finished MAC did not verify): tampering detected")]
    FinishedMismatch,
    /// The peer selected something the local side did not offer.
    #[error("the peer selected a parameter that was not offered: {0}")]
    IllegalParameter(&'static str),
    /// A message arrived out of order.
    #[error("unexpected handshake message: {0}")]
    UnexpectedMessage(&'static str),
    /// A message could not be decoded.
    #[error("malformed handshake message: {0}")]
    Decode(&'static str),
    /// No cipher suite, group or version in common.
    #[error("no common cipher suite, key-exchange group or version")]
    NoCommonParameters,
    /// Client authentication was required and the client sent no identity.
    #[error("the server requires a client identity")]
    CertificateRequired,
    /// A version negotiation was forged.
    #[error("version downgrade detected")]
    Downgrade,
    /// The handshake timed out while the peer's Handshake packets failed authentication: the
    /// two sides derived different keys, so the hello messages (key shares, suites, versions)
    /// were altered on the path.
    #[error("handshake tampering detected: the peer's handshake packets do not authenticate")]
    TamperingDetected,
    /// A cryptographic operation failed locally.
    #[error("crypto failure: {0}")]
    Crypto(String),
}

impl HandshakeError {
    /// The alert sent to the peer for this error.
    pub fn alert(&self) -> HandshakeAlert {
        match self {
            HandshakeError::UntrustedPeer { .. } => HandshakeAlert::UnknownCa,
            HandshakeError::CertificateExpired => HandshakeAlert::CertificateExpired,
            HandshakeError::SubjectMismatch | HandshakeError::BadCertificate => {
                HandshakeAlert::BadCertificate
            }
            HandshakeError::BadSignature | HandshakeError::FinishedMismatch => {
                HandshakeAlert::DecryptError
            }
            HandshakeError::IllegalParameter(_)
            | HandshakeError::Downgrade
            | HandshakeError::TamperingDetected => HandshakeAlert::IllegalParameter,
            HandshakeError::UnexpectedMessage(_) => HandshakeAlert::UnexpectedMessage,
            HandshakeError::Decode(_) => HandshakeAlert::DecodeError,
            HandshakeError::NoCommonParameters => HandshakeAlert::InsufficientSecurity,
            HandshakeError::CertificateRequired => HandshakeAlert::CertificateRequired,
            HandshakeError::Crypto(_) => HandshakeAlert::HandshakeFailure,
        }
    }
}

/// Why a connection ended (or failed to start).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer closed the connection with CONNECTION_CLOSE or APPLICATION_CLOSE.
    #[error("closed by peer: {reason:?} ({code}){}", fmt_msg(message))]
    PeerClosed {
        /// The reason as the application sees it.
        reason: CloseReason,
        /// The wire code.
        code: ErrorCode,
        /// The peer's message, if any.
        message: String,
    },
    /// This side closed the connection.
    #[error("closed locally: {reason:?}")]
    LocallyClosed {
        /// The reason given to `close`.
        reason: CloseReason,
    },
    /// The peer broke the protocol; this side closed the connection with `code`.
    #[error("protocol violation by peer ({code}): {message}")]
    ProtocolViolation {
        /// The code sent to the peer.
        code: ErrorCode,
        /// What happened.
        message: String,
    },
    /// The handshake failed locally (identity, tampering, parameters).
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server supports none of the client's versions.
    #[error("the server supports none of our versions (it offered {offered:x?})")]
    UnsupportedVersion {
        /// Versions the server listed.
        offered: Vec<u32>,
    },
    /// No packet arrived within the idle timeout, the handshake timeout, or the heartbeat limit.
    #[error("timed out")]
    TimedOut,
    /// The peer lost its state and reset the connection (stateless reset).
    #[error("reset by peer (stateless reset)")]
    Reset,
}

fn fmt_msg(m: &str) -> String {
    if m.is_empty() {
        String::new()
    } else {
        format!(": {m}")
    }
}

/// An invalid configuration or API misuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A client must trust at least one pinned key or authority.
    #[error("the client trusts no server key: configure a pinned fingerprint or an authority")]
    NoTrustAnchors,
    /// A list that must not be empty is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// A value is out of its allowed range.
    #[error("{field} is out of range: {detail}")]
    OutOfRange {
        /// The offending field.
        field: &'static str,
        /// What is allowed.
        detail: &'static str,
    },
    /// The operation needs a server configuration.
    #[error("this endpoint has no server configuration")]
    NotAServer,
    /// The endpoint holds its maximum number of connections.
    #[error("too many connections")]
    TooManyConnections,
    /// Crypto initialisation failed.
    #[error("crypto provider failure: {0}")]
    Crypto(String),
}
