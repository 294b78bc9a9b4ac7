//! Listeners and the gateway's life: bind, accept (with a connection cap and optional TLS),
//! serve HTTP/1.1 and HTTP/2 (ALPN over TLS, prior knowledge in clear text) with the edge limits
//! from the config, reload on request, and drain gracefully on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::body::Body;
use crate::config::{Config, ServerLimits};
use crate::proxy::ConnInfo;
use crate::state::{AppState, StartError};
use crate::{admin, router, tls};

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
        let state = AppState::new(config)?;
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
    /// accepting and waits up to the drain timeout for in-flight requests.
    pub async fn run(self, mut control: mpsc::Receiver<Control>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let graceful = Arc::new(GracefulShutdown::new());
        let state = self.state.clone();
        let limits = self.limits.clone();

        let proxy_task = tokio::spawn(accept_proxy(
            self.proxy_listener,
            self.tls,
            state.clone(),
            limits.clone(),
            graceful.clone(),
            stop_rx.clone(),
        ));
        let admin_task = self.admin_listener.map(|listener| {
            tokio::spawn(accept_admin(
                listener,
                state.clone(),
                graceful.clone(),
                stop_rx,
            ))
        });
        state.set_ready(true);
        tracing::info!("keygate is serving");

        while let Some(command) = control.recv().await {
            match command {
                Control::Reload => match state.reload() {
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
        let _ = stop_tx.send(true);
        let _ = proxy_task.await;
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        // The accept loops have ended, so this is the last reference.
        let Ok(graceful) = Arc::try_unwrap(graceful) else {
            tracing::warn!("connections still being accepted; not draining");
            return;
        };
        match tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await {
            Ok(()) => tracing::info!("drained"),
            Err(_) => tracing::warn!("drain timeout reached; closing remaining connections"),
        }
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
        .keep_alive_interval(Some(limits.idle_timeout / 4))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

async fn accept_proxy(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: AppState,
    limits: ServerLimits,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    let builder = Arc::new(connection_builder(&limits));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let metrics = state.metrics();
            metrics.connections_open.inc();
            serve_proxy_connection(stream, peer, tls, state.clone(), &builder, watcher).await;
            state.metrics().connections_open.dec();
        });
    }
}

async fn serve_proxy_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    state: AppState,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let conn = ConnInfo {
        peer,
        tls: tls.is_some(),
    };
    let service = service_fn(move |request: Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<Response<Body>, Infallible>(router::dispatch(&state, request, conn).await) }
    });
    let result = match tls {
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let connection = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    watcher.watch(connection).await
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
        None => {
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            watcher.watch(connection).await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "connection ended with an error");
    }
}

async fn accept_admin(
    listener: TcpListener,
    state: AppState,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()).http1_only());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let state = state.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<Response<Body>, Infallible>(admin::handle(&state, request).await) }
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let _ = watcher.watch(connection).await;
        });
    }
}
