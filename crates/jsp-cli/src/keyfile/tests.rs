use super::*;

const SEED_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn seed_bytes() -> [u8; 32] {
    core::array::from_fn(|i| u8::try_from(i).unwrap())
}

/// A fresh, empty directory under the system temporary directory, removed on drop.
fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("jsp-keyfile-test")
        .tempdir()
        .unwrap()
}

#[test]
fn parses_a_seed_with_newline() {
    let seed = parse_seed(format!("{SEED_HEX}\n").as_bytes()).unwrap();
    assert_eq!(*seed, seed_bytes());
}

#[test]
fn tolerates_crlf_and_a_missing_newline() {
    for content in [format!("{SEED_HEX}\r\n"), SEED_HEX.to_owned()] {
        assert_eq!(*parse_seed(content.as_bytes()).unwrap(), seed_bytes());
    }
}

#[test]
fn accepts_uppercase_hex() {
    let upper = format!("{}\n", SEED_HEX.to_uppercase());
    assert_eq!(*parse_seed(upper.as_bytes()).unwrap(), seed_bytes());
}

#[test]
fn rejects_bad_hex_with_its_column() {
    let mut bad = SEED_HEX.to_owned();
    bad.replace_range(10..11, "g");
    assert_eq!(
        parse_seed(bad.as_bytes()),
        Err(FormatError::InvalidDigit {
            found: ShownByte(b'g'),
            column: 11
        })
    );
    let err = parse_seed(bad.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected 64 hex characters, found 'g' at column 11"
    );
}

#[test]
fn rejects_wrong_length() {
    assert_eq!(
        parse_seed(format!("{}\n", &SEED_HEX[..62]).as_bytes()),
        Err(FormatError::WrongLength { found: 62 })
    );
    assert_eq!(
        parse_seed(format!("{SEED_HEX}00\n").as_bytes()),
        Err(FormatError::WrongLength { found: 66 })
    );
    assert_eq!(
        parse_seed(b"\n"),
        Err(FormatError::WrongLength { found: 0 })
    );
    assert_eq!(parse_seed(b""), Err(FormatError::Empty));
}

#[test]
fn rejects_trailing_garbage() {
    for tail in ["\n\n", " \n", "\nmore\n", "\r\r\n", "#comment"] {
        assert_eq!(
            parse_seed(format!("{SEED_HEX}{tail}").as_bytes()),
            Err(FormatError::TrailingData),
            "tail {tail:?}"
        );
    }
}

#[test]
fn rejects_leading_whitespace_and_bom() {
    assert_eq!(
        parse_seed(format!(" {SEED_HEX}\n").as_bytes()),
        Err(FormatError::InvalidDigit {
            found: ShownByte(b' '),
            column: 1
        })
    );
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend_from_slice(SEED_HEX.as_bytes());
    assert_eq!(
        parse_seed(&bom),
        Err(FormatError::InvalidDigit {
            found: ShownByte(0xef),
            column: 1
        })
    );
}

#[test]
fn rejects_oversized_content() {
    let big = vec![b'a'; MAX_KEY_FILE_LEN + 1];
    assert_eq!(parse_seed(&big), Err(FormatError::TooLarge));
    assert_eq!(parse_public(&big), Err(FormatError::TooLarge));
}

#[test]
fn parses_a_public_key() {
    let key = parse_public(format!("jsp-ed25519 {SEED_HEX}\n").as_bytes()).unwrap();
    assert_eq!(key.as_bytes(), &seed_bytes());
    let key = parse_public(format!("jsp-ed25519 {SEED_HEX}\r\n").as_bytes()).unwrap();
    assert_eq!(key.as_bytes(), &seed_bytes());
}

#[test]
fn rejects_bad_public_keys() {
    assert_eq!(
        parse_public(format!("{SEED_HEX}\n").as_bytes()),
        Err(FormatError::MissingPrefix)
    );
    assert_eq!(
        parse_public(format!("jsp-ed25519  {SEED_HEX}\n").as_bytes()),
        Err(FormatError::InvalidDigit {
            found: ShownByte(b' '),
            column: 13
        })
    );
    assert_eq!(
        parse_public(format!("jsp-ed448 {SEED_HEX}\n").as_bytes()),
        Err(FormatError::MissingPrefix)
    );
    assert_eq!(
        parse_public(b"jsp-ed25519 \n"),
        Err(FormatError::WrongLength { found: 0 })
    );
    assert_eq!(
        parse_public(format!("jsp-ed25519 {SEED_HEX} comment\n").as_bytes()),
        Err(FormatError::TrailingData)
    );
    assert_eq!(parse_public(b""), Err(FormatError::Empty));
}

#[test]
fn encodings_round_trip() {
    let provider = default_provider();
    let identity = Identity::from_seed(&*provider, &seed_bytes()).unwrap();
    let key_text = encode_identity(&identity);
    assert_eq!(key_text.as_str(), format!("{SEED_HEX}\n"));
    assert_eq!(*parse_seed(key_text.as_bytes()).unwrap(), seed_bytes());

    let pub_text = encode_public(&identity.public_key());
    assert!(pub_text.starts_with("jsp-ed25519 "));
    assert!(pub_text.ends_with('\n'));
    assert_eq!(pub_text.len(), PUBLIC_KEY_PREFIX.len() + 64 + 1);
    assert_eq!(
        parse_public(pub_text.as_bytes()).unwrap(),
        identity.public_key()
    );
}

#[test]
fn write_then_read_both_files() {
    let provider = default_provider();
    let tmp = temp_dir();
    let dir = tmp.path().join("nested").join("keys");
    let identity = Identity::generate(&*provider).unwrap();
    let (key_path, pub_path) = write_identity(&dir, &identity, false).unwrap();
    assert_eq!(key_path, dir.join("identity.key"));
    assert_eq!(pub_path, dir.join("identity.pub"));

    let read = read_identity(&key_path).unwrap();
    assert_eq!(read.seed(), identity.seed());
    assert_eq!(read.fingerprint(), identity.fingerprint());
    assert_eq!(read_public(&pub_path).unwrap(), identity.public_key());

    for path in [&key_path, &pub_path] {
        let file = read_key_file(path, &*provider).unwrap();
        assert_eq!(file.fingerprint(&*provider), identity.fingerprint());
        assert_eq!(file.public_key(), identity.public_key());
    }
    // Only the two files: no temporary file left behind.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
}

#[cfg(unix)]
#[test]
fn written_files_have_exact_modes() {
    use std::os::unix::fs::PermissionsExt;
    let provider = default_provider();
    let tmp = temp_dir();
    let identity = Identity::generate(&*provider).unwrap();
    let (key_path, pub_path) = write_identity(tmp.path(), &identity, false).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(mode(&pub_path), 0o644);
}

#[test]
fn refuses_to_overwrite_without_force() {
    let provider = default_provider();
    let tmp = temp_dir();
    let first = Identity::generate(&*provider).unwrap();
    let second = Identity::generate(&*provider).unwrap();
    let (key_path, pub_path) = write_identity(tmp.path(), &first, false).unwrap();

    let err = write_identity(tmp.path(), &second, false).unwrap_err();
    assert!(
        matches!(&err, KeyFileError::AlreadyExists { path } if *path == key_path),
        "{err:?}"
    );
    assert!(err.to_string().ends_with("pass --force to replace it"));
    // Neither file was touched and nothing was left behind.
    assert_eq!(read_identity(&key_path).unwrap().seed(), first.seed());
    assert_eq!(read_public(&pub_path).unwrap(), first.public_key());
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2);

    write_identity(tmp.path(), &second, true).unwrap();
    assert_eq!(read_identity(&key_path).unwrap().seed(), second.seed());
    assert_eq!(read_public(&pub_path).unwrap(), second.public_key());
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2);
}

#[test]
fn create_new_is_atomic_against_an_existing_file() {
    // The commit itself refuses an existing name, even if the early check was passed (a
    // concurrent keygen created the key in between).
    let tmp = temp_dir();
    let dest = tmp.path().join("identity.key");
    fs::write(&dest, "existing\n").unwrap();
    let staged = TempFile::stage(tmp.path(), "identity.key", 0o600, b"new\n").unwrap();
    let err = staged.create_new(&dest).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read_to_string(&dest).unwrap(), "existing\n");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn read_errors_name_the_file() {
    let tmp = temp_dir();
    let missing = tmp.path().join("nope.key");
    let err = read_identity(&missing).unwrap_err();
    assert!(matches!(err, KeyFileError::Read { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read {}: no such file or directory",
            missing.display()
        )
    );

    let garbage = tmp.path().join("garbage.key");
    fs::write(&garbage, "deadbeef\n").unwrap();
    let err = read_identity(&garbage).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not a JetStreamProto identity key (expected 64 hex characters, found 8); \
             generate one with `jsp keygen --out DIR`",
            garbage.display()
        )
    );
}

#[test]
fn read_key_file_detects_the_kind() {
    let provider = default_provider();
    let tmp = temp_dir();
    let path = tmp.path().join("f");

    fs::write(&path, "hello world\n").unwrap();
    assert!(matches!(
        read_key_file(&path, &*provider),
        Err(KeyFileError::NotAKeyFile { .. })
    ));

    fs::write(&path, "jsp-ed25519 abc\n").unwrap();
    assert!(matches!(
        read_key_file(&path, &*provider),
        Err(KeyFileError::NotAPublicKey {
            problem: FormatError::WrongLength { found: 3 },
            ..
        })
    ));

    fs::write(&path, "abc\n").unwrap();
    assert!(matches!(
        read_key_file(&path, &*provider),
        Err(KeyFileError::NotAnIdentityKey {
            problem: FormatError::WrongLength { found: 3 },
            ..
        })
    ));

    fs::write(&path, "").unwrap();
    assert!(matches!(
        read_key_file(&path, &*provider),
        Err(KeyFileError::NotAnIdentityKey {
            problem: FormatError::Empty,
            ..
        })
    ));

    // A long file is not read whole and is rejected.
    fs::write(&path, vec![b'a'; 1 << 20]).unwrap();
    assert!(matches!(
        read_key_file(&path, &*provider),
        Err(KeyFileError::NotAnIdentityKey {
            problem: FormatError::TooLarge,
            ..
        })
    ));
}

#[test]
fn describes_io_errors_in_plain_words() {
    let denied = io::Error::from(io::ErrorKind::PermissionDenied);
    assert_eq!(describe_io(&denied), "permission denied");
    let other = io::Error::other("something odd");
    assert_eq!(describe_io(&other), "something odd");
}
