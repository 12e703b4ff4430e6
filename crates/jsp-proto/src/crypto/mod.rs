//! Cryptography: the provider trait, the aws-lc-rs provider, the key schedule and packet keys.
