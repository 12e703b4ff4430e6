//! `jsp-nofec`: JetStreamProto exactly as the `jsp` peer runs it, except
//! that forward error correction is off on both sides, so lost packets are
//! recovered by retransmission alone. The loss benchmarks run it beside
//! `jsp` to show what FEC buys.
//!
//! The whole difference is [`disable_fec`].

use anyhow::Context as _;
use jsp::TransportConfig;

use super::jsp::{server_config_with, start_endpoint, transport, JspClient, JspConn};
use super::{BenchClient, BenchServer, ServeOptions, ServerInfo};

/// THE ONE DIFFERENCE between `jsp` and `jsp-nofec`: turns forward error
/// correction off in `transport` (`FecConfig::off()`: `fec_max_symbols` is
/// not advertised, so neither side sends FEC frames), which is otherwise the
/// `jsp` peer's, on both the server and the client.
pub fn disable_fec(transport: &mut TransportConfig) {
    transport.fec = jsp_proto::FecConfig::off();
}

/// The `jsp` peer's transport settings with FEC off.
fn nofec_transport() -> anyhow::Result<TransportConfig> {
    let mut transport = transport();
    disable_fec(&mut transport);
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
    fn only_fec_differs_from_jsp() {
        let jsp = transport();
        assert_ne!(
            jsp.fec.mode,
            jsp_proto::FecMode::Off,
            "jsp runs with FEC (auto)"
        );
        let nofec = nofec_transport().unwrap();
        assert_eq!(nofec.fec.mode, jsp_proto::FecMode::Off);
        assert_eq!(nofec.idle_timeout, jsp.idle_timeout);
        assert_eq!(nofec.max_streams, jsp.max_streams);
        assert_eq!(nofec.compression.mode, jsp.compression.mode);
    }
}
