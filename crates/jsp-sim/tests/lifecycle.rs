//! How connections end (PROTOCOL.md §15.1): the idle timeout when the network disappears, and a
//! close with a reason and code that reaches the peer as sent.

mod common;

use jsp_proto::time::Instant;
use jsp_proto::{CloseReason, ConnectionError, ErrorCode};
use jsp_sim::engine::Pair;
use jsp_sim::{Datagram, Scope, Verdict};

use common::wire;
use common::{connected_pair, link20, ms, pinned, run_for, run_until, secs, transfer, App};

/// Cuts the network completely; returns the time of the cut.
fn cut(pair: &mut Pair) -> Instant {
    pair.sim
        .add_middlebox(Scope::Global, |_: Instant, _: &mut Datagram| Verdict::Drop);
    pair.sim.now()
}

#[test]
fn both_sides_time_out_after_the_negotiated_idle_timeout_when_the_network_vanishes() {
    let (mut server_cfg, mut client_cfg) = pinned();
    // The smaller of the two advertised values applies to both sides.
    client_cfg.transport.idle_timeout = secs(10);
    server_cfg.transport.idle_timeout = secs(8);
    let (mut pair, mut c, mut s) = connected_pair(81, server_cfg, client_cfg, link20());
    // Let path MTU discovery finish first: its probes are ack-eliciting packets, and one sent
    // after the cut would (rightly) restart the idle timer.
    run_for(&mut pair.sim, &mut [&mut c, &mut s], secs(2));
    let got = transfer(&mut pair.sim, &mut c, &mut s, b"last words", secs(5));
    assert_eq!(got, b"last words");
    run_for(&mut pair.sim, &mut [&mut c, &mut s], ms(100));
    let t = cut(&mut pair);
    assert!(run_until(
        &mut pair.sim,
        &mut [&mut c, &mut s],
        secs(60),
        |a| a.iter().all(|a| a.closed().is_some())
    ));
    for (who, app) in [("client", &c), ("server", &s)] {
        assert_eq!(app.closed(), Some(&ConnectionError::TimedOut), "{who}");
        let at = app.closed_at.map_or(0, Instant::as_nanos);
        // The last packet each side received arrived within the 100 ms before the cut.
        let lo =
            (t.as_nanos() + secs(8).as_nanos() as u64).saturating_sub(ms(100).as_nanos() as u64);
        let hi = t.as_nanos() + secs(8).as_nanos() as u64;
        assert!(
            (lo..=hi).contains(&at),
            "{who} closed {} ms after the cut",
            (at - t.as_nanos()) / 1_000_000
        );
    }
}

#[test]
fn with_default_settings_a_vanished_peer_is_detected_within_the_idle_timeout() {
    let (server_cfg, client_cfg) = pinned();
    let (mut pair, mut c, mut s) = connected_pair(83, server_cfg, client_cfg, link20());
    run_for(&mut pair.sim, &mut [&mut c, &mut s], secs(1));
    let t = cut(&mut pair);
    assert!(run_until(
        &mut pair.sim,
        &mut [&mut c, &mut s],
        secs(120),
        |a| a.iter().all(|a| a.closed().is_some())
    ));
    for app in [&c, &s] {
        assert_eq!(app.closed(), Some(&ConnectionError::TimedOut));
        let after = app.closed_at.map_or(u64::MAX, Instant::as_nanos) - t.as_nanos();
        assert!(
            after <= secs(30).as_nanos() as u64,
            "closed {after} ns after the cut"
        );
    }
}

#[test]
fn close_reason_message_and_application_code_reach_the_peer() {
    let cases = [
        (CloseReason::Normal, "bye", ErrorCode::NO_ERROR),
        (CloseReason::Application(42), "app says bye", ErrorCode(42)),
        (
            CloseReason::GoingAway,
            "shutting down",
            ErrorCode::GOING_AWAY,
        ),
    ];
    for (reason, message, code) in cases {
        let (server_cfg, client_cfg) = pinned();
        let (mut pair, mut c, mut s) = connected_pair(85, server_cfg, client_cfg, link20());
        let data = common::random_bytes(85, 50_000);
        assert!(transfer(&mut pair.sim, &mut c, &mut s, &data, secs(5)) == data);
        let now = pair.sim.now();
        c.expect_conn(&mut pair.sim)
            .close(now, reason, Some(message));
        assert!(run_until(
            &mut pair.sim,
            &mut [&mut c, &mut s],
            secs(5),
            |a| a.iter().all(|a| a.closed().is_some())
        ));
        assert_eq!(
            s.closed(),
            Some(&ConnectionError::PeerClosed {
                reason,
                code,
                message: message.to_string()
            })
        );
        assert_eq!(c.closed(), Some(&ConnectionError::LocallyClosed { reason }));
        // Promptly (the close waits for the last acknowledgement, then takes half an RTT), not by
        // a timeout.
        let after = s.closed_at.map_or(u64::MAX, Instant::as_nanos) - now.as_nanos();
        assert!(
            after <= ms(200).as_nanos() as u64,
            "peer closed {after} ns later"
        );
    }
}

#[test]
fn close_right_after_a_write_delivers_the_data_first() {
    let (server_cfg, client_cfg) = pinned();
    let (mut pair, mut c, mut s) = connected_pair(91, server_cfg, client_cfg, link20());
    let data = common::random_bytes(91, 300_000);
    let id = c.send_stream(&mut pair.sim, &data, true);
    let now = pair.sim.now();
    c.expect_conn(&mut pair.sim)
        .close(now, CloseReason::Normal, Some("done"));
    assert!(run_until(
        &mut pair.sim,
        &mut [&mut c, &mut s],
        secs(30),
        |a| a.iter().all(|a| a.closed().is_some())
    ));
    assert!(
        s.streams.get(&id.0) == Some(&data),
        "data lost by the close"
    );
    assert!(s.finished.contains(&id.0));
    assert_eq!(
        s.closed(),
        Some(&ConnectionError::PeerClosed {
            reason: CloseReason::Normal,
            code: ErrorCode::NO_ERROR,
            message: "done".into()
        })
    );
}

#[test]
fn server_close_reaches_the_client() {
    let (server_cfg, client_cfg) = pinned();
    let (mut pair, mut c, mut s) = connected_pair(87, server_cfg, client_cfg, link20());
    let now = pair.sim.now();
    s.expect_conn(&mut pair.sim)
        .close(now, CloseReason::Application(7), Some("maintenance"));
    assert!(run_until(
        &mut pair.sim,
        &mut [&mut c, &mut s],
        secs(5),
        |a| a[0].closed().is_some()
    ));
    assert_eq!(
        c.closed(),
        Some(&ConnectionError::PeerClosed {
            reason: CloseReason::Application(7),
            code: ErrorCode(7),
            message: "maintenance".into()
        })
    );
}

#[test]
fn application_close_during_the_handshake_does_not_reveal_its_code() {
    // Before 1-RTT keys an application close goes out as CONNECTION_CLOSE(NO_ERROR) without its
    // reason (PROTOCOL.md §15.1): Initial protection is readable by anyone on the path.
    let (server_cfg, client_cfg) = pinned();
    let mut pair = Pair::new(89, server_cfg, client_cfg, link20());
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    // Let the first flight reach the server, then close before the server's answer arrives.
    run_for(&mut pair.sim, &mut [&mut c, &mut s], ms(30));
    assert!(c.connected().is_none());
    let now = pair.sim.now();
    c.expect_conn(&mut pair.sim)
        .close(now, CloseReason::Application(42), Some("secret reason"));
    assert!(run_until(
        &mut pair.sim,
        &mut [&mut c, &mut s],
        secs(5),
        |a| a.iter().all(|a| a.closed().is_some())
    ));
    assert_eq!(
        s.closed(),
        Some(&ConnectionError::PeerClosed {
            reason: CloseReason::Normal,
            code: ErrorCode::NO_ERROR,
            message: String::new()
        })
    );
    assert!(s.connected().is_none());
    // An observer who decrypts every Initial packet of the client does not see the reason.
    let records: Vec<_> = pair
        .sim
        .capture()
        .records()
        .iter()
        .filter(|r| r.origin == jsp_sim::Origin::Node(pair.client))
        .collect();
    let odcid = wire::packets(&records[0].payload)[0].dcid;
    let provider = jsp_proto::crypto::default_provider();
    let (keys, _) = wire::observer_initial_keys(provider.as_ref(), odcid.as_slice());
    let plain: Vec<u8> = records
        .iter()
        .flat_map(|r| wire::initial_plaintexts(&keys, &r.payload))
        .flatten()
        .collect();
    assert!(!plain.is_empty());
    assert!(!wire::contains(&plain, b"secret reason"));
}
