//! Cryptography: the provider trait, the aws-lc-rs provider, the key schedule and packet keys.
//!
//! This module owns every use of cryptography in the engine. The engine holds an
//! `Arc<dyn CryptoProvider>` ([`provider`]; the default is [`AwsLcProvider`], and a seeded
//! `deterministic::DeterministicProvider` exists for tests and the simulator), derives secrets
//! with the key schedule of PROTOCOL.md §6 ([`key_schedule`]) and protects packets with the keys
//! of §5 and §6.3 ([`packet_key`]). No primitive is implemented here: they all come from
//! aws-lc-rs (and, in the deterministic provider only, ML-KEM from the RustCrypto `ml-kem` crate).

pub mod aws_lc;
#[cfg(any(test, feature = "deterministic-provider"))]
pub mod deterministic;
pub mod key_schedule;
pub mod packet_key;
pub mod provider;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

pub use aws_lc::{default_provider, AwsLcProvider};
pub use key_schedule::{HandshakeKeySchedule, KeySchedule, MasterKeySchedule};
pub use packet_key::{initial_keys, DirectionalKeys, HeaderKey, PacketKeyMaterial, PacketKeys};
pub use provider::{
    Aead, CipherSuite, ClientKeyExchange, CompletedServerKeyExchange, CryptoError, CryptoProvider,
    HashContext, HeaderProtection, Secret, ServerKeyExchange, SharedSecret, SigningKey,
};
