use super::*;
use crate::backoff::BackoffConfig;
use crate::limits::{CircuitBreakerConfig, RateLimitConfig, RateLimitPolicy};
use jsp_proto::crypto::{default_provider, CipherSuite};
use jsp_proto::identity::{Certificate, Identity};
use jsp_proto::recovery::congestion::{BbrConfig, CongestionControl};
use jsp_proto::time::UnixTime;
use jsp_proto::{ClientAuth, RetryPolicy, ServerConfig};

fn identity(byte: u8) -> Identity {
    Identity::from_seed(default_provider().as_ref(), &[byte; 32]).unwrap()
}

fn certified(byte: u8) -> CertifiedIdentity {
    identity(byte).into()
}

fn fp(hex: &str) -> Fingerprint {
    format!("SHA256:{hex}").parse().unwrap()
}

fn key(hex: &str) -> PublicKey {
    identity_files::parse_public_key(&format!("jsp-ed25519 {hex}")).unwrap()
}

const MINIMAL_SERVER: &str = "[identity]\nkey_file = \"k\"\n[listen]\nudp = [\"127.0.0.1:4433\"]\n";
const MINIMAL_CLIENT: &str = "[trust]\npinned = [\"SHA256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb\"]\n";

fn server(text: &str) -> Result<LoadedServer, ConfigFileError> {
    ServerFile::parse(text)?.into_config_with_identity(certified(1))
}

fn client(text: &str) -> Result<LoadedClient, ConfigFileError> {
    ClientFile::parse(text)?.into_config_with_identity(None)
}

/// The error's text, which must name `field`.
fn error_naming(result: Result<impl std::fmt::Debug, ConfigFileError>, field: &str) -> String {
    let err = result.expect_err("expected an error");
    assert_eq!(err.field(), Some(field), "{err}");
    let text = err.to_string();
    assert!(text.contains(field), "{text}");
    text
}

#[test]
fn full_server_example_reaches_every_field() {
    let file = ServerFile::parse(EXAMPLE_SERVER_TOML).unwrap();
    let section = file.identity.clone().unwrap();
    assert_eq!(section.key_file, PathBuf::from("identity.key"));
    assert_eq!(
        section.certificate_file,
        Some(PathBuf::from("identity.cert"))
    );
    let LoadedServer { config, driver } = file.into_config_with_identity(certified(1)).unwrap();

    assert_eq!(
        driver.listen,
        ListenAddrs {
            udp: vec![
                "0.0.0.0:4433".parse().unwrap(),
                "[::]:4433".parse().unwrap()
            ],
            tcp: vec!["0.0.0.0:4433".parse().unwrap()],
            ws: vec!["127.0.0.1:8080".parse().unwrap()],
        }
    );
    match &config.client_auth {
        ClientAuth::Optional(trust) => {
            assert_eq!(
                trust.pinned,
                [fp(
                    "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
                )]
            );
            assert_eq!(
                trust.authorities,
                [key(
                    "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
                )]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(config.retry, RetryPolicy::WhenBusy(512));
    assert_eq!(config.retry_token_lifetime, Duration::from_secs(15));

    assert_eq!(config.max_connections, 50_000);
    assert_eq!(config.max_handshakes, 800);
    assert_eq!(config.transport.max_streams, 64);
    assert_eq!(
        driver.rate_limits,
        RateLimitConfig {
            policy: RateLimitPolicy::Close,
            messages_per_sec: Some(200),
            bytes_per_sec: Some(2_097_152),
            global_messages_per_sec: Some(20_000),
            global_bytes_per_sec: None,
            burst: Duration::from_secs(2),
        }
    );
    assert_eq!(
        driver.circuit_breaker,
        Some(CircuitBreakerConfig {
            retry_at: 512,
            open_at: 700,
            resume_below: 200,
            failure_threshold: 100,
            failure_window: Duration::from_secs(20),
            cool_down: Duration::from_secs(3),
            half_open_probes: 8,
        })
    );

    assert_eq!(config.tickets_per_connection, 2);
    assert_eq!(config.ticket_lifetime, Duration::from_secs(12 * 3600));
    assert_eq!(config.ticket_key_rotation, Duration::from_secs(1800));
    assert_eq!(config.anti_replay_capacity, 50_000);
    assert_eq!(config.max_early_data, 32_768);

    let t = &config.transport;
    assert_eq!(t.idle_timeout, Duration::from_secs(45));
    assert_eq!(t.handshake_timeout, Duration::from_secs(8));
    assert_eq!(t.heartbeat_interval, Duration::from_secs(4));
    assert_eq!(t.heartbeat_timeout_count, 4);
    assert_eq!(driver.cleanup_interval, Duration::from_secs(15));

    assert_eq!(
        t.congestion_control,
        CongestionControl::Bbr(BbrConfig::default())
    );
    assert_eq!(
        t.compression.mode,
        jsp_proto::compression::CompressionMode::Auto
    );
    assert_eq!(t.compression.min_size, 64);
    assert_eq!(
        t.cipher_suites,
        [CipherSuite::ChaCha20Poly1305, CipherSuite::Aes256Gcm]
    );
    assert_eq!(t.initial_rtt, Duration::from_millis(80));
    assert_eq!(t.max_udp_payload_size, 1400);
    assert_eq!(t.initial_mtu, 1280);
    assert_eq!(t.key_update_packets, 500_000);
    assert_eq!(t.key_update_interval, Duration::from_secs(1800));
    assert_eq!(t.max_ack_delay, Duration::from_millis(20));
    assert_eq!(t.ack_eliciting_threshold, 3);
    assert_eq!(t.max_datagram_frame_size, 1100);
    assert_eq!(t.datagram_send_queue, 128);
    assert_eq!(t.initial_max_data, 2_097_152);
    assert_eq!(t.initial_max_stream_data, 524_288);
    assert_eq!(t.max_stream_window, 8_388_608);
    assert_eq!(t.max_connection_window, 16_777_216);
    assert_eq!(t.send_buffer, 8_388_608);
}

#[test]
fn full_client_example_reaches_every_field() {
    let file = ClientFile::parse(EXAMPLE_CLIENT_TOML).unwrap();
    let section = file.identity.clone().unwrap();
    assert_eq!(section.key_file, PathBuf::from("client.key"));
    assert_eq!(section.certificate_file, Some(PathBuf::from("client.cert")));
    let LoadedClient { config, driver } = file.into_config_with_identity(None).unwrap();

    assert_eq!(config.server_name.as_deref(), Some("chat.example.org"));
    assert_eq!(
        driver.server,
        ServerAddrs {
            udp: Some("chat.example.org:4433".into()),
            tcp: Some("chat.example.org:4433".into()),
            ws: Some("wss://chat.example.org/jsp".into()),
        }
    );
    assert_eq!(
        config.trust.pinned,
        [fp(
            "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6"
        )]
    );
    assert_eq!(
        config.trust.authorities,
        [key(
            "18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4"
        )]
    );
    assert!(!config.enable_0rtt);
    let t = &config.transport;
    assert_eq!(t.max_streams, 32);
    assert_eq!(t.idle_timeout, Duration::from_secs(60));
    assert_eq!(t.handshake_timeout, Duration::from_secs(5));
    assert_eq!(t.heartbeat_interval, Duration::from_secs(10));
    assert_eq!(t.heartbeat_timeout_count, 2);
    assert_eq!(t.congestion_control, CongestionControl::NewReno);
    assert_eq!(t.cipher_suites, [CipherSuite::ChaCha20Poly1305]);
    assert_eq!(t.initial_rtt, Duration::from_millis(150));
    assert_eq!(t.max_udp_payload_size, 1350);
    assert_eq!(t.initial_mtu, 1250);
    assert_eq!(t.key_update_packets, 100_000);
    assert_eq!(t.key_update_interval, Duration::from_secs(600));
    assert_eq!(t.max_ack_delay, Duration::from_millis(10));
    assert_eq!(t.ack_eliciting_threshold, 4);
    assert_eq!(t.max_datagram_frame_size, 1000);
    assert_eq!(t.datagram_send_queue, 64);
    assert_eq!(t.initial_max_data, 4_194_304);
    assert_eq!(t.initial_max_stream_data, 131_072);
    assert_eq!(t.max_stream_window, 4_194_304);
    assert_eq!(t.max_connection_window, 8_388_608);
    assert_eq!(t.send_buffer, 4_194_304);
    assert_eq!(
        driver.fallback,
        FallbackConfig {
            tcp_delay: Duration::from_millis(300),
            ws_delay: Duration::from_millis(800),
        }
    );
    assert_eq!(
        driver.reconnect,
        Some(BackoffConfig {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            max_attempts: None,
        })
    );
}

#[test]
fn omitted_server_fields_take_the_documented_defaults() {
    let LoadedServer { config, driver } = server(MINIMAL_SERVER).unwrap();
    let engine = ServerConfig::new(certified(1));
    assert_eq!(
        format!("{:?}", config.transport),
        format!("{:?}", engine.transport)
    );
    let t = &config.transport;
    assert_eq!(t.idle_timeout, Duration::from_secs(30));
    assert_eq!(t.heartbeat_interval, Duration::from_secs(5));
    assert_eq!(t.heartbeat_timeout_count, 3);
    assert_eq!(t.max_streams, 100);
    assert!(matches!(config.client_auth, ClientAuth::None));
    assert_eq!(config.retry, RetryPolicy::Never);
    assert_eq!(config.max_connections, engine.max_connections);
    assert_eq!(config.max_handshakes, engine.max_handshakes);
    assert_eq!(config.retry_token_lifetime, engine.retry_token_lifetime);
    assert_eq!(config.tickets_per_connection, engine.tickets_per_connection);
    assert_eq!(config.ticket_lifetime, engine.ticket_lifetime);
    assert_eq!(config.ticket_key_rotation, engine.ticket_key_rotation);
    assert_eq!(config.anti_replay_capacity, engine.anti_replay_capacity);
    assert_eq!(config.max_early_data, engine.max_early_data);

    let expected = ServerDriverSettings {
        listen: ListenAddrs {
            udp: vec!["127.0.0.1:4433".parse().unwrap()],
            ..ListenAddrs::default()
        },
        ..ServerDriverSettings::default()
    };
    assert_eq!(driver, expected);
    let r = &driver.rate_limits;
    assert_eq!(r.messages_per_sec, Some(100));
    assert_eq!(r.bytes_per_sec, Some(1_048_576));
    assert_eq!(r.global_messages_per_sec, Some(10_000));
    assert_eq!(r.global_bytes_per_sec, Some(100_000_000));
    assert_eq!(r.policy, RateLimitPolicy::BackPressure);
    assert_eq!(driver.cleanup_interval, Duration::from_secs(10));
}

#[test]
fn breaker_defaults_follow_limits_and_retry() {
    let text =
        format!("{MINIMAL_SERVER}[limits]\nmax_handshakes = 100\n[retry]\npolicy = \"always\"\n");
    let breaker = server(&text).unwrap().driver.circuit_breaker.unwrap();
    assert_eq!(
        (breaker.retry_at, breaker.open_at, breaker.resume_below),
        (0, 100, 25)
    );
    let off = format!("{MINIMAL_SERVER}[circuit_breaker]\nenabled = false\n");
    assert_eq!(server(&off).unwrap().driver.circuit_breaker, None);
}

#[test]
fn omitted_client_fields_take_the_documented_defaults() {
    let LoadedClient { config, driver } = client(MINIMAL_CLIENT).unwrap();
    assert_eq!(
        format!("{:?}", config.transport),
        format!("{:?}", TransportConfig::default())
    );
    assert!(config.enable_0rtt);
    assert_eq!(config.server_name, None);
    assert!(config.identity.is_none());
    assert_eq!(driver, ClientDriverSettings::default());
    assert_eq!(driver.reconnect, None);
    assert_eq!(driver.fallback.tcp_delay, Duration::from_millis(500));
    assert_eq!(driver.fallback.ws_delay, Duration::from_secs(1));
    let enabled = format!("{MINIMAL_CLIENT}[reconnect]\nenabled = true\n");
    assert_eq!(
        client(&enabled).unwrap().driver.reconnect,
        Some(BackoffConfig::default())
    );
}

#[test]
fn unknown_fields_are_errors_that_name_them() {
    let text = error_naming(
        server(&format!("{MINIMAL_SERVER}[limits]\nmax_stream = 3\n")),
        "limits.max_stream",
    );
    assert!(text.contains("unknown field `max_stream`"), "{text}");
    assert!(text.contains("line 6"), "{text}");
    let text = error_naming(server(&format!("{MINIMAL_SERVER}[limit]\n")), "limit");
    assert!(text.contains("unknown field `limit`"), "{text}");
    error_naming(
        client(&format!("{MINIMAL_CLIENT}[reconnect]\nenable = true\n")),
        "reconnect.enable",
    );
    // Server-only fields are unknown to a client and vice versa.
    error_naming(
        client(&format!(
            "{MINIMAL_CLIENT}[timeouts]\ncleanup_interval = \"1s\"\n"
        )),
        "timeouts.cleanup_interval",
    );
    error_naming(
        server(&format!("{MINIMAL_SERVER}[fallback]\ntcp_delay = \"1s\"\n")),
        "fallback",
    );
}

#[test]
fn values_of_the_wrong_type_or_form_are_errors() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[limits]\nmax_streams = \"many\"",
            "limits.max_streams",
            "invalid type: string \"many\"",
        ),
        ("[limits]\nmax_streams = -1", "limits.max_streams", "-1"),
        (
            "[limits]\nrate_limit_messages = 0",
            "limits.rate_limit_messages",
            "a positive integer or \"unlimited\"",
        ),
        (
            "[limits]\nrate_limit_bytes = \"lots\"",
            "limits.rate_limit_bytes",
            "\"lots\"",
        ),
        (
            "[limits]\nrate_limit_policy = \"drop\"",
            "limits.rate_limit_policy",
            "unknown variant `drop`",
        ),
        (
            "[timeouts]\nidle = 30",
            "timeouts.idle",
            "expected a duration such as",
        ),
        (
            "[timeouts]\nidle = \"30\"",
            "timeouts.idle",
            "invalid value: string \"30\"",
        ),
        (
            "[transport]\ninitial_mtu = 70000",
            "transport.initial_mtu",
            "70000",
        ),
        (
            "[transport]\ncongestion_control = \"vegas\"",
            "transport.congestion_control",
            "unknown variant `vegas`",
        ),
        (
            "[transport]\ncompression = \"zstd\"",
            "transport.compression",
            "unknown variant `zstd`",
        ),
        (
            "[transport]\ncipher_suites = [\"aes-128-gcm\"]",
            "transport.cipher_suites[0]",
            "unknown variant `aes-128-gcm`",
        ),
        (
            "[client_auth]\nmode = \"required\"\npinned = [\"SHA256:00\"]",
            "client_auth.pinned[0]",
            "got \"SHA256:00\"",
        ),
        (
            "[client_auth]\nmode = \"required\"\nauthorities = [\"ssh-ed25519 AAAA\"]",
            "client_auth.authorities[0]",
            "jsp-ed25519",
        ),
        (
            "[circuit_breaker]\nenabled = \"yes\"",
            "circuit_breaker.enabled",
            "expected a boolean",
        ),
    ];
    for (extra, field, detail) in cases {
        let text = error_naming(server(&format!("{MINIMAL_SERVER}{extra}\n")), field);
        assert!(text.contains(detail), "{text}");
    }
    let text = error_naming(
        server("[identity]\nkey_file = \"k\"\n[listen]\ntcp = [\"localhost\"]\n"),
        "listen.tcp[0]",
    );
    assert!(text.contains("an IP address and port"), "{text}");
}

#[test]
fn inconsistent_server_values_are_errors() {
    let cases: &[(&str, &str)] = &[
        ("[client_auth]\npinned = [\"SHA256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb\"]", "client_auth.mode"),
        ("[client_auth]\nmode = \"required\"", "client_auth"),
        ("[retry]\npolicy = \"when_busy\"", "retry.busy_threshold"),
        ("[retry]\nbusy_threshold = 3", "retry.busy_threshold"),
        ("[limits]\nmax_connections = 0", "limits.max_connections"),
        ("[limits]\nmax_handshakes = 0", "limits.max_handshakes"),
        ("[limits]\nrate_limit_burst = \"0s\"", "limits.rate_limit_burst"),
        ("[transport]\ninitial_mtu = 1000", "transport.initial_mtu"),
        ("[transport]\ncipher_suites = []", "transport.cipher_suites"),
        ("[transport]\ncipher_suites = [\"aes-256-gcm\", \"aes-256-gcm\"]", "transport.cipher_suites[1]"),
        ("[transport]\nkey_update_packets = 0", "transport.key_update_packets"),
        ("[timeouts]\nheartbeat_timeout_count = 0", "timeouts.heartbeat_timeout_count"),
        ("[timeouts]\ncleanup_interval = \"0s\"", "timeouts.cleanup_interval"),
        ("[session_tickets]\nlifetime = \"8d\"", "session_tickets.lifetime"),
        ("[session_tickets]\nkey_rotation = \"0s\"", "session_tickets.key_rotation"),
        ("[circuit_breaker]\nresume_below = 5000", "circuit_breaker.resume_below"),
        ("[circuit_breaker]\nhalf_open_probes = 0", "circuit_breaker.half_open_probes"),
        ("[circuit_breaker]\nfailure_window = \"0s\"", "circuit_breaker.failure_window"),
    ];
    for (extra, field) in cases {
        error_naming(server(&format!("{MINIMAL_SERVER}{extra}\n")), field);
    }
    error_naming(server("[identity]\nkey_file = \"k\"\n"), "listen");
    let text = error_naming(server("[identity]\n"), "identity");
    assert!(text.contains("missing field `key_file`"), "{text}");
}

#[test]
fn inconsistent_client_values_are_errors() {
    let text = error_naming(client(""), "trust");
    assert!(text.contains("trusts no server key"), "{text}");
    let cases: &[(&str, &str)] = &[
        ("[server]\nudp = \"example.org\"", "server.udp"),
        ("[server]\ntcp = \"example.org:0\"", "server.tcp"),
        ("[server]\nws = \"https://example.org/\"", "server.ws"),
        ("[server]\nws = \"wss:///path\"", "server.ws"),
        ("[server]\nname = \"\"", "server.name"),
        (
            "[fallback]\ntcp_delay = \"2s\"\nws_delay = \"1s\"",
            "fallback.ws_delay",
        ),
        ("[reconnect]\nbase = \"0s\"", "reconnect.base"),
        ("[reconnect]\nbase = \"1m\"\ncap = \"1s\"", "reconnect.cap"),
        ("[reconnect]\nmax_attempts = 0", "reconnect.max_attempts"),
        (
            "[reconnect]\nmax_attempts = 4294967296",
            "reconnect.max_attempts",
        ),
        ("[limits]\nmax_streams = 1.5", "limits.max_streams"),
    ];
    for (extra, field) in cases {
        error_naming(client(&format!("{MINIMAL_CLIENT}{extra}\n")), field);
    }
}

#[test]
fn syntax_errors_report_the_position() {
    let err = ServerFile::parse("[identity]\nkey_file = \"k\"\n[limits\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line 3"), "{text}");
    assert!(!text.contains('\n'), "{text:?}");
    assert_eq!(err.field(), Some(""));
}

#[test]
fn load_reads_identity_files_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(5);
    let ca = identity(6);
    identity_files::write_identity_key(&dir.path().join("identity.key"), &id).unwrap();
    let cert = Certificate::issue(
        &ca,
        "example.org",
        &id.public_key(),
        UnixTime(0),
        UnixTime(u64::MAX),
    )
    .unwrap();
    identity_files::write_certificate(&dir.path().join("identity.cert"), &cert).unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(&path, EXAMPLE_SERVER_TOML).unwrap();
    let loaded = ServerFile::load(&path).unwrap();
    assert_eq!(
        loaded.config.identity.identity.public_key(),
        id.public_key()
    );
    assert_eq!(loaded.config.identity.certificate.as_ref(), Some(&cert));

    // A certificate for another key is refused.
    let other = Certificate::issue(
        &ca,
        "example.org",
        &ca.public_key(),
        UnixTime(0),
        UnixTime(u64::MAX),
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("identity.cert")).unwrap();
    identity_files::write_certificate(&dir.path().join("identity.cert"), &other).unwrap();
    let text = error_naming(ServerFile::load(&path), "identity.certificate_file");
    assert!(text.starts_with(&path.display().to_string()), "{text}");
    assert!(text.contains("the certificate is for key"), "{text}");

    // A missing key file names the field and the file.
    let client_path = dir.path().join("client.toml");
    std::fs::write(&client_path, EXAMPLE_CLIENT_TOML).unwrap();
    let text = error_naming(ClientFile::load(&client_path), "identity.key_file");
    assert!(text.contains("client.key"), "{text}");

    // A client without [identity] needs no files.
    let minimal = dir.path().join("minimal.toml");
    std::fs::write(&minimal, MINIMAL_CLIENT).unwrap();
    assert!(ClientFile::load(&minimal)
        .unwrap()
        .config
        .identity
        .is_none());

    // A server without [identity] cannot be loaded from a file.
    std::fs::write(&minimal, "[listen]\nudp = [\"127.0.0.1:1\"]\n").unwrap();
    error_naming(ServerFile::load(&minimal), "identity.key_file");

    let missing = dir.path().join("missing.toml");
    assert!(matches!(
        ServerFile::load(&missing),
        Err(ConfigFileError::Read { .. })
    ));
}

#[test]
fn typed_errors_carry_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[limits]\nmax_streams = true\n").unwrap();
    match ServerFile::load(&path).unwrap_err() {
        ConfigFileError::Parse {
            file,
            field,
            line,
            column,
            ..
        } => {
            assert_eq!(file.as_deref(), Some(path.as_path()));
            assert_eq!(field, "limits.max_streams");
            assert_eq!((line, column), (Some(2), Some(15)));
        }
        other => panic!("{other:?}"),
    }
}
