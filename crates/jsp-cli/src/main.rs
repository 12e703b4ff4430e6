//! `jsp`: the JetStreamProto command-line tool.
//!
//! Every failure is one line on standard error, `error: ` followed by what went wrong and what to
//! do, and exit code 1. Command-line usage errors are clap's (exit code 2); `--help` and
//! `--version` exit 0.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use jsp_cli::keyfile::{self, KeyFileError};
use jsp_proto::crypto::{default_provider, CryptoError};
use jsp_proto::identity::Identity;

/// JetStreamProto command-line tool: server identities and fingerprints.
#[derive(Debug, Parser)]
#[command(name = "jsp", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Keygen(KeygenArgs),
    Fingerprint(FingerprintArgs),
}

/// Generate a server identity (an Ed25519 key pair).
///
/// Writes DIR/identity.key (the secret key, mode 0600: the server loads it) and DIR/identity.pub
/// (the public key, mode 0644: safe to share), creating DIR if it is missing. The last line of
/// the output is the fingerprint alone, which clients pin the server with:
///
///     FP=$(jsp keygen --out DIR | tail -n1)
#[derive(Debug, Args)]
struct KeygenArgs {
    /// Directory to write identity.key and identity.pub into
    #[arg(short, long, value_name = "DIR")]
    out: PathBuf,
    /// Replace an existing DIR/identity.key (the old identity is lost)
    #[arg(short, long)]
    force: bool,
}

/// Print the fingerprint (SHA256:...) of an identity.key or identity.pub.
///
/// The kind of file is recognised by its content. The fingerprint is printed alone on one line.
#[derive(Debug, Args)]
struct FingerprintArgs {
    /// An identity.key or identity.pub written by `jsp keygen`
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// Why a command failed. The Display message is the line printed after `error: `.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error("cannot generate a key: {0}")]
    Generate(CryptoError),
    #[error("cannot write to standard output: {}", keyfile::describe_io(.0))]
    Stdout(io::Error),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version arrive here too, with exit code 0.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    let mut stdout = io::stdout().lock();
    let result = match cli.command {
        Command::Keygen(args) => keygen(&args, &mut stdout),
        Command::Fingerprint(args) => fingerprint(&args, &mut stdout),
    };
    match result.and_then(|()| stdout.flush().map_err(CliError::Stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`jsp ... | head -n1`): nothing useful to say, like SIGPIPE.
        Err(CliError::Stdout(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(err) => {
            let _ = writeln!(io::stderr(), "error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(args: &KeygenArgs, out: &mut impl Write) -> Result<(), CliError> {
    let provider = default_provider();
    let identity = Identity::generate(&*provider).map_err(CliError::Generate)?;
    let (key_path, pub_path) = keyfile::write_identity(&args.out, &identity, args.force)?;
    writeln!(
        out,
        "Wrote the secret key to {} (keep it private) and the public key to {}.\n\
         Clients pin this server with its fingerprint:\n{}",
        key_path.display(),
        pub_path.display(),
        identity.fingerprint()
    )
    .map_err(CliError::Stdout)
}

fn fingerprint(args: &FingerprintArgs, out: &mut impl Write) -> Result<(), CliError> {
    let provider = default_provider();
    let key = keyfile::read_key_file(&args.file, &*provider)?;
    writeln!(out, "{}", key.fingerprint(&*provider)).map_err(CliError::Stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
