//! Identities: Ed25519 keys, fingerprints and the JetStreamProto certificate format.
