//! Complete example config files, with every field set to a value other than its default. They
//! document the format (the `jsp` command can print them), and the tests parse them and check that
//! every field reaches the configuration it belongs to.

/// A server config file setting every field.
pub const EXAMPLE_SERVER_TOML: &str = r#"# JetStreamProto server configuration.
# Every field is optional except identity.key_file and at least one listen address;
# durations are written "250ms", "30s", "5m", "1h" or "7d".

[identity]
key_file = "identity.key"            # 64 hex characters of Ed25519 seed (`jsp keygen`)
certificate_file = "identity.cert"   # optional: sent instead of the bare key

[listen]
udp = ["0.0.0.0:4433", "[::]:4433"]
tcp = ["0.0.0.0:4433"]               # TCP carriage for networks that block UDP
ws = ["127.0.0.1:8080"]              # WebSocket carriage (behind a TLS proxy)

[client_auth]
mode = "optional"                    # "none" (default) | "optional" | "required"
pinned = ["SHA256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"]
authorities = ["jsp-ed25519 3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"]

[retry]
policy = "when_busy"                 # "never" (default) | "always" | "when_busy"
busy_threshold = 512                 # handshakes in flight (only with "when_busy")
token_lifetime = "15s"

[limits]
max_connections = 50000
max_handshakes = 800
max_streams = 64                     # concurrent streams of each direction per connection
rate_limit_policy = "close"          # "back_pressure" (default) | "close"
rate_limit_messages = 200            # per connection per second, or "unlimited"
rate_limit_bytes = 2097152           # per connection per second, or "unlimited"
rate_limit_burst = "2s"              # each bucket holds this much time's worth of its rate
global_rate_limit_messages = 20000   # whole server per second, or "unlimited"
global_rate_limit_bytes = "unlimited"

[circuit_breaker]
enabled = true
open_at = 700                        # handshakes in flight that open it (default max_handshakes)
resume_below = 200                   # in flight must fall below this to close again
failure_threshold = 100              # failed handshakes within failure_window that open it
failure_window = "20s"
cool_down = "3s"
half_open_probes = 8

[session_tickets]
per_connection = 2                   # 0 disables resumption
lifetime = "12h"
key_rotation = "30m"
anti_replay_capacity = 50000
max_early_data = 32768               # 0-RTT bytes per connection; 0 disables 0-RTT

[timeouts]
idle = "45s"                         # "0s" never closes idle connections
handshake = "8s"
heartbeat_interval = "4s"            # "0s" disables heartbeats
heartbeat_timeout_count = 4
cleanup_interval = "15s"             # how often closed and idle sessions are swept

[transport]
congestion_control = "bbr"           # "bbr" (default) | "cubic" | "newreno"
compression = "auto"                 # "auto" (default: LZ4 where it pays) | "on" | "off"
compression_min_size = 64            # bytes; shorter data is never compressed
cipher_suites = ["chacha20-poly1305", "aes-256-gcm"]
initial_rtt = "80ms"
max_udp_payload_size = 1400
initial_mtu = 1280
key_update_packets = 500000
key_update_interval = "30m"
max_ack_delay = "20ms"
ack_eliciting_threshold = 3
max_datagram_frame_size = 1100
datagram_send_queue = 128
initial_max_data = 2097152
initial_max_stream_data = 524288
max_stream_window = 8388608
max_connection_window = 16777216
send_buffer = 8388608
"#;

/// A client config file setting every field.
pub const EXAMPLE_CLIENT_TOML: &str = r#"# JetStreamProto client configuration.
# Every field is optional except a trust anchor (trust.pinned or trust.authorities).

[server]
name = "chat.example.org"            # checked against the server certificate's subject
udp = "chat.example.org:4433"
tcp = "chat.example.org:4433"
ws = "wss://chat.example.org/jsp"

[identity]                           # optional: sent (encrypted) only if the server asks
key_file = "client.key"
certificate_file = "client.cert"

[trust]
pinned = ["SHA256:2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6"]
authorities = ["jsp-ed25519 18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4"]

[session_tickets]
enable_0rtt = false

[limits]
max_streams = 32

[timeouts]
idle = "60s"
handshake = "5s"
heartbeat_interval = "10s"
heartbeat_timeout_count = 2

[transport]
congestion_control = "newreno"
cipher_suites = ["chacha20-poly1305"]
initial_rtt = "150ms"
max_udp_payload_size = 1350
initial_mtu = 1250
key_update_packets = 100000
key_update_interval = "10m"
max_ack_delay = "10ms"
ack_eliciting_threshold = 4
max_datagram_frame_size = 1000
datagram_send_queue = 64
initial_max_data = 4194304
initial_max_stream_data = 131072
max_stream_window = 4194304
max_connection_window = 8388608
send_buffer = 4194304

[fallback]
tcp_delay = "300ms"                  # start TCP if UDP has not connected by then
ws_delay = "800ms"                   # start WebSocket if neither has connected by then

[reconnect]
enabled = true
base = "200ms"                       # delay ceiling of the first attempt, doubling
cap = "10s"
max_attempts = "unlimited"           # or a positive integer
"#;
