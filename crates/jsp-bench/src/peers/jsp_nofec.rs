//! `jsp-nofec`: JetStreamProto exactly as the `jsp` peer runs it, except
//! that forward error correction is off on both sides, so lost packets are
//! recovered by retransmission alone. The loss benchmarks run it beside
//! `jsp` to show what FEC buys.
//!
//! The whole difference is [`disable_fec`]. Until the engine has an FEC
//! setting (`jsp_proto::TransportConfig::fec`, being built on a branch),
//! that function reports [`FecUnavailable`]: the server refuses to start,
//! the client refuses to connect, and the loss runner leaves `jsp-nofec`
//! out with a message instead of reporting a copy of `jsp`'s numbers.

use anyhow::Context as _;
use jsp::TransportConfig;

use super::jsp::{server_config_with, start_endpoint, transport, JspClient, JspConn};
use super::{BenchClient, BenchServer, ServeOptions, ServerInfo};

/// Why `jsp-nofec` cannot run yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FecUnavailable;

impl std::fmt::Display for FecUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "jsp-nofec is unavailable: this build of jsp-proto has no FEC setting \
             (TransportConfig::fec), so jsp-nofec would be jsp under another name; \
             see disable_fec in crates/jsp-bench/src/peers/jsp_nofec.rs",
        )
    }
}

impl std::error::Error for FecUnavailable {}

/// THE ONE DIFFERENCE between `jsp` and `jsp-nofec`: turns forward error
/// correction off in `transport`, which is otherwise the `jsp` peer's
/// (both the server's and the client's).
///
/// To enable `jsp-nofec` once FEC is on main, replace the body with the
/// engine's switch, for example:
///
/// ```text
/// transport.fec = jsp_proto::FecMode::Off;   // whatever the FEC branch names it
/// Ok(())
/// ```
///
/// Nothing else needs to change: the server, the client and the loss runner
/// all go through this function (and [`available`], which calls it).
pub fn disable_fec(transport: &mut TransportConfig) -> Result<(), FecUnavailable> {
    let _ = transport;
    Err(FecUnavailable)
}

/// Whether `jsp-nofec` can run in this build (see [`disable_fec`]).
pub fn available() -> Result<(), FecUnavailable> {
    disable_fec(&mut transport())
}

/// The `jsp` peer's transport settings with FEC off.
fn nofec_transport() -> anyhow::Result<TransportConfig> {
    let mut transport = transport();
    disable_fec(&mut transport)?;
    Ok(transport)
}

/// The `jsp` server (one endpoint) with FEC off.
pub struct JspNofecServer;

impl BenchServer for JspNofecServer {
    async fn start(opts: &ServeOptions) -> anyhow::Result<ServerInfo> {
        let transport = nofec_transport().context("starting the jsp-nofec server")?;
        start_endpoint(opts, server_config_with(transport)?).await
    }
}

/// The `jsp` client with FEC off.
pub struct JspNofecClient(JspClient);

impl BenchClient for JspNofecClient {
    type Conn = JspConn;

    async fn new(server: &ServerInfo) -> anyhow::Result<Self> {
        let transport = nofec_transport().context("preparing the jsp-nofec client")?;
        Ok(Self(JspClient::with_transport(server, transport)?))
    }

    async fn connect(&self) -> anyhow::Result<JspConn> {
        self.0.connect().await
    }

    async fn connect_resumed(&self) -> anyhow::Result<Option<JspConn>> {
        self.0.connect_resumed().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_until_the_engine_has_an_fec_setting() {
        // When FEC lands and `disable_fec` is filled in, this flips: update it then.
        assert_eq!(available(), Err(FecUnavailable));
        assert!(FecUnavailable.to_string().contains("disable_fec"));
    }
}
