//! The network subcommands end to end, as a user runs them, on loopback: `serve`, `connect`,
//! `send`, `bench` and `demo`, and their error messages.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod support;

use std::fs;

use support::*;

#[test]
fn connect_pipes_lines_through_an_echo_server() {
    let tmp = temp_dir();
    let (key, fp) = keygen(tmp.path());
    let server = Server::start(&key, &["--echo"]);
    assert_eq!(server.fingerprint, fp);
    assert_eq!(server.udp, server.tcp, "TCP listens on the UDP port");

    let input = b"one\ntwo\nthree, with more words\n";
    let (code, out, err) = run(
        &["connect", &server.udp, "--pin", &fp, "--transport", "udp"],
        input,
    );
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(out, "one\ntwo\nthree, with more words");
    let first = err.lines().next().unwrap();
    assert!(first.starts_with("connected to "), "{err}");
    for part in ["over UDP", "AES-256-GCM", "X25519-MLKEM768"] {
        assert!(first.contains(part), "{first}");
    }
}

#[test]
fn connect_over_each_carriage_to_one_server() {
    let tmp = temp_dir();
    let (key, fp) = keygen(tmp.path());
    let server = Server::start(&key, &["--echo", "--ws", "127.0.0.1:0"]);
    let ws = server.ws.clone().expect("a WebSocket address");
    for (transport, name) in [
        ("tcp", "TCP"),
        ("ws", "WebSocket"),
        ("udp", "UDP"),
        ("auto", "UDP"),
    ] {
        let line = format!("over {transport}\n");
        let (code, out, err) = run(
            &[
                "connect",
                &server.udp,
                "--pin",
                &fp,
                "--transport",
                transport,
                "--ws",
                &ws,
            ],
            line.as_bytes(),
        );
        assert_eq!(code, Some(0), "{transport}: stderr: {err}");
        assert_eq!(out, line.trim_end(), "{transport}");
        assert!(
            err.contains(&format!("over {name} in")),
            "{transport}: {err}"
        );
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_in_connect_closes_the_connection_gracefully() {
    let tmp = temp_dir();
    let (key, fp) = keygen(tmp.path());
    let mut server = Server::start(&key, &["--echo"]);
    let mut cmd = jsp_command();
    cmd.args(["connect", &server.udp, "--pin", &fp]);
    let mut client = Proc::spawn_interactive(cmd, b"still here\n");
    client.stdout.wait_for("echoed", |l| l == "still here");
    client.signal("INT");
    assert_eq!(client.wait().code(), Some(1));
    let err = client.stderr.rest().join("\n");
    assert!(err.ends_with("error: interrupted"), "{err}");
    // The server hears the close at once (not after its idle timeout).
    let line = server.proc.stderr.wait_for("about the disconnect", |l| {
        l.contains("client disconnected")
    });
    assert!(line.contains("closed by peer"), "{line}");
}

#[test]
fn a_server_without_echo_takes_the_lines_and_sends_nothing_back() {
    let tmp = temp_dir();
    let (key, fp) = keygen(tmp.path());
    let server = Server::start(&key, &[]);
    let (code, out, err) = run(&["connect", &server.udp, "--pin", &fp], b"hello\n");
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(out, "");
}

#[test]
fn send_stores_the_file_intact() {
    let tmp = temp_dir();
    let (key, fp) = keygen(tmp.path());
    let inbox = tmp.path().join("inbox");
    let server = Server::start(&key, &["--files", inbox.to_str().unwrap()]);
    let data = test_data(3_000_000, 1);
    let file = tmp.path().join("data.bin");
    fs::write(&file, &data).unwrap();

    let (code, out, err) = run(
        &[
            "send",
            file.to_str().unwrap(),
            "--to",
            &server.udp,
            "--pin",
            &fp,
        ],
        b"",
    );
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(
        out.starts_with("stored data.bin on the server: 3000000 bytes sent in "),
        "{out}"
    );
    assert!(
        fs::read(inbox.join("data.bin")).unwrap() == data,
        "the stored file differs"
    );
    // Nothing but the file is left behind.
    let names: Vec<_> = fs::read_dir(&inbox)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["data.bin"]);
}

#[test]
fn sending_again_finds_the_file_and_a_different_file_of_that_name_is_refused() {
    let tmp = temp_dir();
    let (key, fp) = keygen(tmp.path());
    let inbox = tmp.path().join("inbox");
    let server = Server::start(&key, &["--files", inbox.to_str().unwrap()]);
    let file = tmp.path().join("notes.txt");
    fs::write(&file, test_data(100_000, 2)).unwrap();
    let send = |extra: &[&str]| {
        let mut args = vec![
            "send",
            file.to_str().unwrap(),
            "--to",
            &server.udp,
            "--pin",
            &fp,
        ];
        args.extend_from_slice(extra);
        run(&args, b"")
    };

    let (code, _, err) = send(&[]);
    assert_eq!(code, Some(0), "stderr: {err}");
    let (code, out, err) = send(&[]);
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(
        out.starts_with("notes.txt is already on the server: 100000 bytes"),
        "{out}"
    );

    fs::write(&file, test_data(100_000, 3)).unwrap();
    let (code, _, err) = send(&[]);
    let line = single_error(code, &err);
    assert!(
        line.contains("the server already has a different file named notes.txt"),
        "{line}"
    );
    // Under another name it goes through.
    let (code, _, err) = send(&["--name", "notes-2.txt"]);
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(
        fs::read(inbox.join("notes-2.txt")).unwrap(),
        fs::read(&file).unwrap()
    );
}

#[test]
fn an_interrupted_transfer_resumes_with_only_the_rest() {
    let tmp = temp_dir();
    let (key, fp) = keygen(tmp.path());
    let inbox = tmp.path().join("inbox");
    let server = Server::start(&key, &["--files", inbox.to_str().unwrap()]);
    let data = test_data(3_500_000, 4);
    let file = tmp.path().join("big.bin");
    fs::write(&file, &data).unwrap();
    let args = [
        "send",
        file.to_str().unwrap(),
        "--to",
        &server.udp,
        "--pin",
        &fp,
    ];

    // The first sender stops after 2 MiB, once the server has written them, and is killed.
    let mut cmd = jsp_command();
    cmd.args(args).args(["--stall-after", "2MiB"]);
    let mut first = Proc::spawn(cmd, None);
    first.stderr.wait_for("saying it stalled", |l| {
        l.starts_with("stalled after sending 2097152 bytes")
    });
    first.kill();
    assert!(!inbox.join("big.bin").exists());

    // The second one resumes where the server stopped (taking over from the first transfer,
    // whose connection has not timed out yet) and sends only the rest.
    let (code, out, err) = run(&args, b"");
    assert_eq!(code, Some(0), "stderr: {err}");
    let rest = 3_500_000 - 2_097_152;
    assert!(
        out.starts_with(&format!(
            "stored big.bin on the server: 3500000 bytes, {rest} sent (resumed at 2097152) in "
        )),
        "{out}"
    );
    assert!(err.contains("resuming big.bin"), "{err}");
    assert!(
        fs::read(inbox.join("big.bin")).unwrap() == data,
        "the stored file differs"
    );
    let names: Vec<_> = fs::read_dir(&inbox)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["big.bin"], "no partial file is left");
}

#[test]
fn send_to_a_server_without_files_and_unsafe_names_are_refused() {
    let tmp = temp_dir();
    let (key, fp) = keygen(tmp.path());
    let server = Server::start(&key, &[]);
    let file = tmp.path().join("a.txt");
    fs::write(&file, b"abc").unwrap();
    let path = file.to_str().unwrap();

    let (code, _, err) = run(&["send", path, "--to", &server.udp, "--pin", &fp], b"");
    let line = single_error(code, &err);
    assert!(
        line.contains("this server does not accept files; start it with `jsp serve --files DIR`"),
        "{line}"
    );

    for name in ["../escape.txt", ".hidden", "a/b"] {
        let (code, _, err) = run(
            &[
                "send",
                path,
                "--to",
                &server.udp,
                "--pin",
                &fp,
                "--name",
                name,
            ],
            b"",
        );
        let line = single_error(code, &err);
        assert!(line.contains("is not allowed"), "{line}");
        assert!(line.ends_with("; choose another with --name"), "{line}");
    }
}

#[test]
fn a_wrong_pin_fails_with_a_clear_message() {
    let tmp = temp_dir();
    let (key, fp) = keygen(tmp.path());
    let other = temp_dir();
    let (_, other_fp) = keygen(other.path());
    let server = Server::start(&key, &["--echo"]);

    let (code, out, err) = run(&["connect", &server.udp, "--pin", &other_fp], b"hi\n");
    let line = single_error(code, &err);
    assert_eq!(out, "");
    assert_eq!(
        line,
        format!(
            "error: the server at {} presented the key {fp}, not the pinned {other_fp}; \
             check --pin: the server prints its fingerprint when it starts \
             (or run `jsp fingerprint identity.pub` next to its key)",
            server.udp
        )
    );
}

#[test]
fn an_unreachable_server_fails_with_a_clear_message() {
    // A TCP port with nothing listening: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let fp = format!("SHA256:{}", "ab".repeat(32));
    let (code, _, err) = run(&["connect", &addr, "--pin", &fp, "--transport", "tcp"], b"");
    let line = single_error(code, &err);
    assert_eq!(
        line,
        format!(
            "error: cannot reach {addr} over TCP: connection refused; \
             check the address and that `jsp serve` is running there"
        )
    );

    // A UDP socket that never answers: the handshake times out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let (code, _, err) = run(
        &[
            "connect",
            &addr,
            "--pin",
            &fp,
            "--transport",
            "udp",
            "--timeout",
            "0.5",
        ],
        b"",
    );
    let line = single_error(code, &err);
    assert_eq!(
        line,
        format!(
            "error: no answer from {addr} over UDP within 500 ms; check the address and that \
             `jsp serve` is running there (if UDP is blocked, try --transport tcp)"
        )
    );
}

#[test]
fn a_port_in_use_fails_with_a_clear_message() {
    let tmp = temp_dir();
    let (key, _) = keygen(tmp.path());
    let key = key.to_str().unwrap();

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap().to_string();
    let (code, out, err) = run(&["serve", "--listen", &addr, "--identity", key], b"");
    let line = single_error(code, &err);
    assert_eq!(out, "");
    assert_eq!(
        line,
        format!(
            "error: cannot listen on {addr} (UDP): address already in use; \
             stop the program using that port, or choose another port"
        )
    );

    // The UDP port is free but its TCP twin is taken.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    let (code, _, err) = run(&["serve", "--listen", &addr, "--identity", key], b"");
    let line = single_error(code, &err);
    assert!(
        line.starts_with(&format!(
            "error: cannot listen on {addr} (TCP): address already in use"
        )),
        "{line}"
    );
}

#[test]
fn serve_reports_a_bad_key_file_and_missing_flags() {
    let tmp = temp_dir();
    let bad = tmp.path().join("identity.key");
    fs::write(&bad, "not a key\n").unwrap();
    let (code, _, err) = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--identity",
            bad.to_str().unwrap(),
        ],
        b"",
    );
    let line = single_error(code, &err);
    assert!(
        line.contains("is not a JetStreamProto identity key"),
        "{line}"
    );
    assert!(
        line.ends_with("generate one with `jsp keygen --out DIR`"),
        "{line}"
    );

    let (code, _, err) = run(&["serve", "--listen", "127.0.0.1:0"], b"");
    let line = single_error(code, &err);
    assert!(line.contains("the server needs an identity key"), "{line}");
}

#[test]
fn serve_takes_a_config_file_and_flags_override_it() {
    let tmp = temp_dir();
    let (_, fp) = keygen(tmp.path());
    let config = tmp.path().join("server.toml");
    fs::write(
        &config,
        "[identity]\nkey_file = \"keys/identity.key\"\n\n[listen]\nudp = [\"127.0.0.1:0\"]\n\n\
         [timeouts]\ncleanup_interval = \"5s\"\n",
    )
    .unwrap();
    let mut cmd = jsp_command();
    cmd.args(["serve", "--echo", "--config"]).arg(&config);
    let mut server = Server::start_command(cmd);
    assert_eq!(server.fingerprint, fp);
    assert_eq!(server.tcp, "", "no TCP listener unless configured");
    // The file's settings reach the server (the sweep itself is tested in jsp's tests/server.rs).
    server
        .proc
        .stderr
        .wait_for("the configured cleanup interval", |l| {
            l.contains("INFO") && l.contains("cleanup_interval=5s")
        });
    let (code, out, err) = run(&["connect", &server.udp, "--pin", &fp], b"configured\n");
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(out, "configured");

    // --listen replaces the file's addresses (and adds TCP on the same port).
    let mut cmd = jsp_command();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config);
    let server = Server::start_command(cmd);
    assert_eq!(server.udp, server.tcp);

    // A typo is an error that names the field.
    fs::write(&config, "[listen]\nudpp = [\"127.0.0.1:0\"]\n").unwrap();
    let (code, _, err) = run(&["serve", "--config", config.to_str().unwrap()], b"");
    let line = single_error(code, &err);
    assert!(line.contains("server.toml"), "{line}");
    assert!(line.contains("udpp"), "{line}");
}

#[test]
fn the_config_files_rate_limits_apply() {
    let tmp = temp_dir();
    let (key, fp) = keygen(tmp.path());
    let config = tmp.path().join("server.toml");
    fs::write(
        &config,
        "[limits]\nrate_limit_policy = \"close\"\nrate_limit_bytes = 10000\n",
    )
    .unwrap();
    let inbox = tmp.path().join("inbox");
    let mut cmd = jsp_command();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--identity"])
        .arg(&key)
        .arg("--files")
        .arg(&inbox)
        .arg("--config")
        .arg(&config);
    let server = Server::start_command(cmd);
    let file = tmp.path().join("big.bin");
    fs::write(&file, test_data(1_000_000, 5)).unwrap();
    let (code, _, err) = run(
        &[
            "send",
            file.to_str().unwrap(),
            "--to",
            &server.udp,
            "--pin",
            &fp,
        ],
        b"",
    );
    let line = single_error(code, &err);
    assert!(
        line.starts_with(
            "error: the server closed the connection: closed by peer: RateLimitExceeded"
        ),
        "{line}"
    );
    assert!(line.contains("rate_limit_bytes"), "{line}");
    assert!(!inbox.join("big.bin").exists());
}

#[cfg(unix)]
#[test]
fn serve_shuts_down_gracefully_on_sigterm() {
    let tmp = temp_dir();
    let (key, _) = keygen(tmp.path());
    let mut server = Server::start(&key, &["--echo"]);
    server.proc.signal("TERM");
    let status = server.proc.wait();
    assert_eq!(status.code(), Some(0));
    let rest = server.proc.stdout.rest();
    assert_eq!(rest.last().map(String::as_str), Some("stopped"));
    let log = server.proc.stderr.rest().join("\n");
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn bench_reports_latency_throughput_and_statistics() {
    let tmp = temp_dir();
    let (key, fp) = keygen(tmp.path());
    let server = Server::start(&key, &[]);
    let (code, out, err) = run(
        &[
            "bench",
            &server.udp,
            "--pin",
            &fp,
            "--bytes",
            "2M",
            "--pings",
            "20",
        ],
        b"",
    );
    assert_eq!(code, Some(0), "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("latency: 20 round trips of 32 bytes: p50 "),
        "{out}"
    );
    assert!(lines[0].contains(", p99 "), "{out}");
    assert!(lines[1].starts_with("upload: 2.0 MB in "), "{out}");
    assert!(lines[1].contains("MB/s"), "{out}");
    assert!(lines[2].starts_with("connection: rtt "), "{out}");
    assert!(lines[2].contains(" over UDP"), "{out}");
}

#[test]
fn demo_shows_handshake_echo_transfer_and_statistics() {
    let (code, out, err) = run(&["demo", "--bytes", "3M"], b"");
    assert_eq!(code, Some(0), "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    // Each step's first line is labelled; its continuation lines are indented.
    let starts: Vec<&str> = lines
        .iter()
        .filter(|l| !l.starts_with(' '))
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(
        starts,
        [
            "JetStreamProto",
            "server",
            "handshake",
            "echo",
            "transfer",
            "stats",
            "fec",
            "next"
        ],
        "{out}"
    );
    assert!(
        lines.last().unwrap().trim_start().starts_with("then "),
        "{out}"
    );
    // The FEC step (tested on its own in demo_fec.rs) printed its table.
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("rebuilt by FEC")),
        "{out}"
    );
    assert!(lines[2].contains("X25519-MLKEM768"), "{out}");
    assert!(
        lines[3].contains("\"hello, post-quantum world\" came back in "),
        "{out}"
    );
    assert!(lines[4].starts_with("transfer   3.0 MB in "), "{out}");
    assert!(
        lines[5].contains("rtt ") && lines[5].contains("cwnd "),
        "{out}"
    );
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["serve", "connect", "send", "bench", "demo"] {
        let (code, out, _) = run(&[sub, "--help"], b"");
        assert_eq!(code, Some(0), "{sub}");
        assert!(out.contains("Usage: jsp"), "{sub}: {out}");
    }
    let (code, out, _) = run(&["serve", "--example-config"], b"");
    assert_eq!(code, Some(0));
    assert!(out.contains("[listen]"), "{out}");
}
