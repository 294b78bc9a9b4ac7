//! Listeners and the gateway's life: bind, accept (with a connection cap and optional TLS),
//! serve HTTP/1.1 and HTTP/2 (ALPN over TLS, prior knowledge in clear text) with the edge limits
//! from the config, reload on request, and drain gracefully on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, ServerLimits};
use crate::proxy::ConnInfo;
use crate::state::{AppState, StartError};
use crate::{admin, router, tls};

mod connection;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
const AUDIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the gateway can be told while it runs (the binary maps signals onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Re-read the config file (SIGHUP).
    Reload,
    /// Stop accepting, drain in-flight requests, return (SIGTERM, SIGINT).
    Shutdown,
}

/// A bound, not yet running gateway.
pub struct Gateway {
    state: AppState,
    proxy_listener: TcpListener,
    admin_listener: Option<TcpListener>,
    tls: Option<TlsAcceptor>,
    limits: ServerLimits,
}

impl Gateway {
    /// Builds the state and binds the listeners (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Gateway, StartError> {
        let server = config.server.clone();
        let tls = match &server.tls {
            Some(files) => Some(TlsAcceptor::from(tls::server_config(
                &files.cert,
                &files.key,
            )?)),
            None => None,
        };
        let state = AppState::new(config).await?;
        let proxy_listener = bind(server.listen).await?;
        let admin_listener = match server.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Gateway {
            state,
            proxy_listener,
            admin_listener,
            tls,
            limits: server.limits,
        })
    }

    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.proxy_listener.local_addr().ok()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `Control::Shutdown` arrives (or every sender is dropped), then stops
    /// accepting, asks every connection to close once its requests are done, and waits up to
    /// the drain timeout for them.
    pub async fn run(self, mut control: mpsc::Receiver<Control>) {
        // Every connection task holds a receiver; when all are dropped, the drain is complete.
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = self.state.clone();
        let limits = self.limits.clone();

        let proxy_task = tokio::spawn(accept_proxy(
            self.proxy_listener,
            self.tls,
            state.clone(),
            limits.clone(),
            shutdown_rx.clone(),
        ));
        let admin_task = self.admin_listener.map(|listener| {
            tokio::spawn(accept_admin(
                listener,
                state.clone(),
                limits.clone(),
                shutdown_rx.clone(),
            ))
        });
        drop(shutdown_rx);
        state.set_ready(true);
        tracing::info!("keygate is serving");

        while let Some(command) = control.recv().await {
            match command {
                Control::Reload => match state.reload().await {
                    Ok(()) => tracing::info!("config reloaded"),
                    Err(error) => {
                        tracing::error!(%error, "config reload rejected; the previous config keeps serving")
                    }
                },
                Control::Shutdown => break,
            }
        }

        tracing::info!(drain_timeout = ?limits.drain_timeout, "shutting down: draining in-flight requests");
        state.set_ready(false);
        let _ = shutdown_tx.send(true);
        let _ = proxy_task.await;
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        match tokio::time::timeout(limits.drain_timeout, shutdown_tx.closed()).await {
            Ok(()) => tracing::info!("drained"),
            Err(_) => tracing::warn!("drain timeout reached; closing remaining connections"),
        }
        state.audit().flush(AUDIT_FLUSH_TIMEOUT).await;
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn connection_builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(Some(50))
        .keep_alive_interval(Some(H2_KEEP_ALIVE_INTERVAL))
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    builder
}

/// Waits for `stop` to become true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The next connection and the permit it holds (a connection cap), or `None` once shutdown
/// begins. A failed accept (EMFILE and friends) backs off instead of spinning.
async fn next_connection(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
    name: &str,
) -> Option<(
    tokio::sync::OwnedSemaphorePermit,
    tokio::net::TcpStream,
    SocketAddr,
)> {
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.ok()?,
            () = stopped(stop) => return None,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => return Some((permit, stream, peer)),
                Err(error) => {
                    tracing::warn!(%error, listener = name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stopped(stop) => return None,
        }
    }
}

async fn accept_proxy(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: AppState,
    limits: ServerLimits,
    shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(connection_builder(&limits));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut stop = shutdown.clone();
    while let Some((permit, stream, peer)) =
        next_connection(&listener, &permits, &mut stop, "proxy").await
    {
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            state.metrics().connections_open.inc();
            let conn = ConnInfo {
                peer,
                tls: tls.is_some(),
            };
            let handler_state = state.clone();
            let handler = move |request: Request<Incoming>| {
                let state = handler_state.clone();
                // Boxed once here, the request's future is moved as a pointer from then on
                // (hyper moves the service future a few times per request).
                Box::pin(async move { router::dispatch(&state, request, conn).await })
            };
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            connection::serve(stream, &builder, handler, shutdown, idle_timeout)
                                .await
                        }
                        Ok(Err(error)) => Err(error.into()),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
                None => connection::serve(stream, &builder, handler, shutdown, idle_timeout).await,
            };
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            state.metrics().connections_open.dec();
        });
    }
}

/// Admin connections open at once, at most: probes and a scraper or two. More wait in the
/// kernel's backlog, so the admin port can never take the file descriptors the proxy needs.
const ADMIN_MAX_CONNECTIONS: usize = 32;

/// The admin listener: HTTP/1.1 only, its own small connection cap, and the proxy's header-read
/// and idle timeouts (a connection that never finishes its request head is closed).
async fn accept_admin(
    listener: TcpListener,
    state: AppState,
    limits: ServerLimits,
    shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(connection_builder(&limits).http1_only());
    let permits = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
    let mut stop = shutdown.clone();
    while let Some((permit, stream, _)) =
        next_connection(&listener, &permits, &mut stop, "admin").await
    {
        let state = state.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let handler = move |request: Request<Incoming>| {
                let state = state.clone();
                async move { admin::handle(&state, request).await }
            };
            let _ = connection::serve(stream, &builder, handler, shutdown, idle_timeout).await;
        });
    }
}
