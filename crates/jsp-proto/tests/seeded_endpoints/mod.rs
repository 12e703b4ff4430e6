//! A server and a client endpoint with seeded keys, for engine tests that carry datagrams between
//! them by hand.

use std::sync::Arc;

use jsp_proto::crypto::deterministic::DeterministicProvider;
use jsp_proto::identity::Identity;
use jsp_proto::{ClientConfig, Endpoint, EndpointConfig, ServerConfig};

/// The server endpoint, the client endpoint, and a client configuration pinning the server's key;
/// the same `seed` (1..=9) gives the same keys and randomness.
pub fn seeded_endpoints(seed: u8) -> (Endpoint, Endpoint, Arc<ClientConfig>) {
    let sp = Arc::new(DeterministicProvider::new([seed + 1; 32]));
    let cp = Arc::new(DeterministicProvider::new([seed; 32]));
    let id = Identity::from_seed(sp.as_ref(), &[10 - seed; 32]).expect("identity from seed");
    let client_cfg = Arc::new(ClientConfig::new(jsp_proto::TrustPolicy::pinned(
        id.fingerprint(),
    )));
    let server = Endpoint::new(
        EndpointConfig::default(),
        sp,
        Some(ServerConfig::new(id)),
        1_800_000_000,
    )
    .expect("server endpoint");
    let client =
        Endpoint::new(EndpointConfig::default(), cp, None, 1_800_000_000).expect("client endpoint");
    (server, client, client_cfg)
}
