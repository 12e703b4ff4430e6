//! TLS material shared by the quinn and TCP + TLS 1.3 peers: the crypto
//! provider (aws-lc-rs, TLS 1.3 only, X25519MLKEM768 only), the self-signed
//! `localhost` certificate a server presents, the trust string handed to the
//! clients, and the client configurations (one that never resumes, one that
//! does) sharing a single session store.
//!
//! Settings that differ from rustls' defaults, and why:
//! - Key exchange: only `X25519MLKEM768`. rustls puts it first only with its
//!   `prefer-post-quantum` feature, which this workspace does not enable
//!   (without it rustls would negotiate plain X25519); offering nothing else
//!   makes the post-quantum hybrid the only possible outcome, as it is for
//!   JetStreamProto.
//! - Certificate key: Ed25519, the signature algorithm JetStreamProto
//!   identities use, so both sides sign and verify the same primitive.
//! - Protocol versions: TLS 1.3 only.

use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::NamedGroup;

/// The name the self-signed certificate is issued to and the clients ask
/// for (servers listen on 127.0.0.1, the name is only checked against the
/// certificate).
pub const SERVER_NAME: &str = "localhost";

/// How many server names the client session store remembers (rustls'
/// default size; the bench talks to one server, so one is used).
const CLIENT_SESSION_CACHE: usize = 256;

/// The crypto provider of both TLS peers: rustls' aws-lc-rs provider with
/// its default cipher suites (AES-256-GCM first) and `X25519MLKEM768` as the
/// only key exchange group.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768];
    Arc::new(provider)
}

/// A server's self-signed certificate for [`SERVER_NAME`] and its private
/// key (Ed25519), generated with rcgen at server start.
pub struct ServerCert {
    /// The certificate, DER.
    cert: CertificateDer<'static>,
    /// The private key, PKCS#8 DER.
    key: PrivatePkcs8KeyDer<'static>,
}

impl ServerCert {
    /// Generates a fresh Ed25519 key pair and a self-signed certificate for
    /// [`SERVER_NAME`].
    pub fn generate() -> anyhow::Result<Self> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .context("generating the Ed25519 certificate key")?;
        let cert = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])
            .context("certificate parameters")?
            .self_signed(&key_pair)
            .context("self-signing the certificate")?;
        Ok(Self {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
        })
    }

    /// The trust string for [`super::ServerInfo::trust`]: the hex of the
    /// certificate DER.
    pub fn trust(&self) -> String {
        hex::encode(&self.cert)
    }

    /// A TLS 1.3-only server configuration presenting this certificate,
    /// with rustls' defaults otherwise (stateful in-memory session cache of
    /// 256 entries, two tickets per handshake, no early data); callers
    /// adjust resumption and early data to their transport.
    pub fn server_config(&self) -> anyhow::Result<rustls::ServerConfig> {
        rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3 with the aws-lc-rs provider")?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .context("installing the server certificate")
    }
}

/// The two client configurations of a TLS peer. Both trust exactly the
/// server's certificate and share one session store, so tickets received
/// on any connection are available to later resumptions.
pub struct ClientConfigs {
    /// For full handshakes: stores the tickets it receives but never offers
    /// one.
    pub full: Arc<rustls::ClientConfig>,
    /// For resumed handshakes: offers a stored ticket when it has one.
    pub resume: Arc<rustls::ClientConfig>,
}

impl ClientConfigs {
    /// Builds the configurations from a server's trust string (hex of its
    /// certificate DER). `early_data` sets `enable_early_data` on the
    /// resuming configuration.
    pub fn new(trust: &str, early_data: bool) -> anyhow::Result<Self> {
        let der = hex::decode(trust).context("trust is not hex")?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(der))
            .context("trusting the server certificate")?;
        let store = Arc::new(ClientSessionMemoryCache::new(CLIENT_SESSION_CACHE));

        let mut full = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3 with the aws-lc-rs provider")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // A clone, not a second build: rustls resumes only sessions made
        // with the same certificate verifier (the same `Arc`).
        let mut resume = full.clone();
        full.resumption = Resumption::store(Arc::new(StoreOnly(Arc::clone(&store))));
        resume.resumption = Resumption::store(store);
        resume.enable_early_data = early_data;
        Ok(Self {
            full: Arc::new(full),
            resume: Arc::new(resume),
        })
    }

    /// The server name both configurations connect to, [`SERVER_NAME`].
    pub fn server_name() -> anyhow::Result<ServerName<'static>> {
        ServerName::try_from(SERVER_NAME).context("server name")
    }
}

/// A session store that records what it is given but never hands a session
/// out: full handshakes through it leave tickets for later resumptions
/// without resuming themselves.
struct StoreOnly(Arc<ClientSessionMemoryCache>);

impl fmt::Debug for StoreOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreOnly").field(&self.0).finish()
    }
}

impl ClientSessionStore for StoreOnly {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.0.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.0.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.0.set_tls12_session(server_name, value);
    }

    fn tls12_session(
        &self,
        _server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.0.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.0.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        _server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        None
    }
}
