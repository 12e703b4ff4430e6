//! Starting the server: [`start`] runs [`jsp::Server::start`] (UDP worker pool, TCP and
//! WebSocket carriages, limits, cleanup) and turns a bind failure into one line that says which
//! address, which carriage, and what to do.

use std::io;
use std::net::SocketAddr;

use jsp::{Server, ServerSettings};

use crate::error::CliError;
use crate::keyfile::describe_io;

/// Starts a server with `settings`.
pub async fn start(settings: ServerSettings) -> Result<Server, CliError> {
    Server::start(settings).await.map_err(|e| match e {
        jsp::Error::Bind {
            addr,
            carriage,
            source,
        } => bind_error(carriage, addr, &source),
        other => CliError::new(format!("cannot start the server: {other}")),
    })
}

/// `cannot listen on ADDR (UDP): address already in use; <what to do>`.
fn bind_error(what: &str, addr: SocketAddr, e: &io::Error) -> CliError {
    let err = CliError::new(format!(
        "cannot listen on {addr} ({what}): {}",
        describe_bind(e)
    ));
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            err.hint("stop the program using that port, or choose another port")
        }
        io::ErrorKind::AddrNotAvailable => {
            err.hint("use an address of this machine, or 0.0.0.0 for all of them")
        }
        io::ErrorKind::PermissionDenied => {
            err.hint("use a port above 1023, or run with the privilege to bind low ports")
        }
        _ => err,
    }
}

fn describe_bind(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available on this machine".to_owned(),
        _ => describe_io(e),
    }
}
