//! The child process's side of [`crate::child`]: `jsp-bench serve --impl X`
//! starts one server, prints `READY {json}` and serves until its standard
//! input closes.

use std::io::Read;

use anyhow::Context;

use crate::child::READY_PREFIX;
use crate::peers::{
    jsp::{Jsp1452Server, JspPoolServer, JspServer},
    jsp_nofec::JspNofecServer,
    quinn::QuinnServer,
    tcp::{TcpServer, TcpTlsServer},
    udp::UdpServer,
    BenchServer, ImplKind, ServeOptions,
};

/// The child's side: starts the server, prints `READY {json}`, and runs
/// until its standard input closes (the parent exited or dropped it).
pub fn serve_main(kind: ImplKind, opts: ServeOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the server runtime")?;
    let info = runtime.block_on(async {
        match kind {
            ImplKind::Jsp => JspServer::start(&opts).await,
            ImplKind::JspPool => JspPoolServer::start(&opts).await,
            ImplKind::Jsp1452 => Jsp1452Server::start(&opts).await,
            ImplKind::Quinn => QuinnServer::start(&opts).await,
            ImplKind::TcpTls => TcpTlsServer::start(&opts).await,
            ImplKind::Tcp => TcpServer::start(&opts).await,
            ImplKind::Udp => UdpServer::start(&opts).await,
            ImplKind::JspNofec => JspNofecServer::start(&opts).await,
        }
    })?;
    println!("{READY_PREFIX}{}", serde_json::to_string(&info)?);
    // Block this thread (not the runtime's workers) until the parent goes.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(runtime);
    Ok(())
}
