//! End-to-end tests of the `jsp` binary: they run it as a user would, in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn jsp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jsp"))
        .args(args)
        .output()
        .unwrap()
}

fn jsp_in(args: &[&str], dir: &Path) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.push(dir.to_str().unwrap());
    jsp(&all)
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("jsp-cli-test")
        .tempdir()
        .unwrap()
}

/// Checks that `out` failed with exit code 1 and exactly one `error: ` line on stderr, and
/// returns that line.
fn single_error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(out));
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(out));
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {err}");
    assert!(lines[0].starts_with("error: "), "stderr: {err}");
    lines[0].to_owned()
}

fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix("SHA256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[test]
fn keygen_writes_both_files_and_prints_the_fingerprint_last() {
    let tmp = temp_dir();
    let dir = tmp.path().join("new").join("keys");
    let out = jsp_in(&["keygen", "--out"], &dir);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(out.stderr.is_empty());

    let text = stdout(&out);
    assert!(text.ends_with('\n'));
    let last = text.lines().last().unwrap();
    assert!(is_fingerprint(last), "last line {last:?}");
    assert!(
        text.lines().count() >= 2,
        "a human line precedes the fingerprint"
    );

    let key = fs::read_to_string(dir.join("identity.key")).unwrap();
    assert_eq!(key.len(), 65);
    assert!(key.ends_with('\n'));
    assert!(key[..64]
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));

    let public = fs::read_to_string(dir.join("identity.pub")).unwrap();
    let hex = public
        .strip_prefix("jsp-ed25519 ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap();
    assert_eq!(hex.len(), 64);
    assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));

    // The fingerprint of either file is the one keygen printed.
    for file in ["identity.key", "identity.pub"] {
        let fp = jsp(&["fingerprint", dir.join(file).to_str().unwrap()]);
        assert!(fp.status.success(), "stderr: {}", stderr(&fp));
        assert_eq!(stdout(&fp), format!("{last}\n"), "{file}");
    }

    // Nothing but the two files in the directory.
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["identity.key", "identity.pub"]);
}

#[cfg(unix)]
#[test]
fn keygen_sets_file_modes() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = temp_dir();
    let out = jsp_in(&["keygen", "--out"], tmp.path());
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let mode = |name: &str| {
        fs::metadata(tmp.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("identity.key"), 0o600);
    assert_eq!(mode("identity.pub"), 0o644);
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let tmp = temp_dir();
    let first = jsp_in(&["keygen", "--out"], tmp.path());
    assert!(first.status.success());
    let key_before = fs::read(tmp.path().join("identity.key")).unwrap();
    let pub_before = fs::read(tmp.path().join("identity.pub")).unwrap();

    let again = jsp_in(&["keygen", "--out"], tmp.path());
    let line = single_error_line(&again);
    let key_path = tmp.path().join("identity.key");
    assert_eq!(
        line,
        format!(
            "error: {} already exists; pass --force to replace it",
            key_path.display()
        )
    );
    assert_eq!(fs::read(&key_path).unwrap(), key_before);
    assert_eq!(
        fs::read(tmp.path().join("identity.pub")).unwrap(),
        pub_before
    );

    let forced = jsp_in(&["keygen", "--force", "--out"], tmp.path());
    assert!(forced.status.success(), "stderr: {}", stderr(&forced));
    assert_ne!(fs::read(&key_path).unwrap(), key_before);
    let new_fp = stdout(&forced).lines().last().unwrap().to_owned();
    let old_fp = stdout(&first).lines().last().unwrap().to_owned();
    assert_ne!(new_fp, old_fp);
    let fp = jsp(&["fingerprint", key_path.to_str().unwrap()]);
    assert_eq!(stdout(&fp), format!("{new_fp}\n"));
    let fp = jsp(&[
        "fingerprint",
        tmp.path().join("identity.pub").to_str().unwrap(),
    ]);
    assert_eq!(stdout(&fp), format!("{new_fp}\n"));
}

#[test]
fn fingerprint_rejects_a_garbage_key_file() {
    let tmp = temp_dir();
    let path = tmp.path().join("identity.key");

    fs::write(&path, "this is not a key\n").unwrap();
    let line = single_error_line(&jsp_in(&["fingerprint"], &path));
    assert!(
        line.starts_with(&format!(
            "error: {} is not a JetStreamProto key file",
            path.display()
        )),
        "{line}"
    );
    assert!(
        line.ends_with("generate one with `jsp keygen --out DIR`"),
        "{line}"
    );

    fs::write(&path, "0123456789abcdef\n").unwrap();
    let line = single_error_line(&jsp_in(&["fingerprint"], &path));
    assert_eq!(
        line,
        format!(
            "error: {} is not a JetStreamProto identity key (expected 64 hex characters, \
             found 16); generate one with `jsp keygen --out DIR`",
            path.display()
        )
    );

    fs::write(&path, format!("jsp-ed25519 {}\n", "z".repeat(64))).unwrap();
    let line = single_error_line(&jsp_in(&["fingerprint"], &path));
    assert!(
        line.contains("is not a JetStreamProto public key"),
        "{line}"
    );
    assert!(line.contains("found 'z' at column 13"), "{line}");
}

#[test]
fn fingerprint_of_a_missing_file_or_a_directory() {
    let tmp = temp_dir();
    let missing = tmp.path().join("missing.key");
    let line = single_error_line(&jsp_in(&["fingerprint"], &missing));
    assert_eq!(
        line,
        format!(
            "error: cannot read {}: no such file or directory",
            missing.display()
        )
    );

    let line = single_error_line(&jsp_in(&["fingerprint"], tmp.path()));
    assert!(line.starts_with("error: cannot read "), "{line}");
}

#[test]
fn keygen_reports_an_unwritable_directory() {
    // A path under a regular file cannot be created (unlike a read-only directory, this also
    // fails when the tests run as root).
    let tmp = temp_dir();
    let file = tmp.path().join("plain-file");
    fs::write(&file, "x").unwrap();
    let out = jsp_in(&["keygen", "--out"], &file.join("keys"));
    let line = single_error_line(&out);
    assert!(line.starts_with("error: cannot write "), "{line}");
}

#[test]
fn fingerprint_is_tolerant_of_crlf() {
    let tmp = temp_dir();
    let out = jsp_in(&["keygen", "--out"], tmp.path());
    let fp = stdout(&out).lines().last().unwrap().to_owned();
    let key = fs::read_to_string(tmp.path().join("identity.key")).unwrap();
    let crlf = tmp.path().join("crlf.key");
    fs::write(&crlf, key.replace('\n', "\r\n")).unwrap();
    let out = jsp_in(&["fingerprint"], &crlf);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), format!("{fp}\n"));
}

#[test]
fn help_and_version() {
    for args in [
        &["--help"][..],
        &["keygen", "--help"],
        &["fingerprint", "--help"],
        &["help", "keygen"],
    ] {
        let out = jsp(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(stdout(&out).contains("Usage: jsp"), "{args:?}");
    }
    let out = jsp(&["keygen", "--help"]);
    assert!(stdout(&out).contains("--out <DIR>"));
    assert!(stdout(&out).contains("--force"));

    let out = jsp(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), format!("jsp {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_with_code_2() {
    for args in [&[][..], &["keygen"], &["fingerprint"], &["frobnicate"]] {
        let out = jsp(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(stderr(&out).contains("Usage: jsp"), "{args:?}");
    }
}
