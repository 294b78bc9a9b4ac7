//! One client connection: optional TLS handshake, HTTP/1.1 or HTTP/2 served by hyper-util, and
//! an orderly close (GOAWAY for HTTP/2, `Connection: close` for HTTP/1.1) when the gateway shuts
//! down or when the connection has had no request in flight for the idle timeout. A response
//! counts as in flight until its body has been sent, so a long server-sent-events stream is
//! never "idle".

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::body::{Body, BoxError};

/// Requests in flight on one connection and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    last_active: std::sync::Mutex<Instant>,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            last_active: std::sync::Mutex::new(Instant::now()),
        })
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(*self.last_active.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Completes once nothing has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let wait = match self.idle_since() {
                Some(since) if since.elapsed() >= timeout => return,
                Some(since) => timeout - since.elapsed(),
                None => timeout,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Held by a response body until it has been sent (or dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last_active.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until it ends.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one connection until it ends, the gateway shuts down, or it idles out.
pub(crate) async fn serve<I, H, F>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    idle_timeout: Duration,
) -> Result<(), BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let activity = Activity::new();
    let tracked = activity.clone();
    let handler = Arc::new(handler);
    let service = service_fn(move |request: Request<Incoming>| {
        let in_flight = tracked.start();
        let response = handler(request);
        async move {
            let response = response.await;
            Ok::<_, std::convert::Infallible>(response.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            }))
        }
    });
    let mut connection = pin!(builder.serve_connection(TokioIo::new(io), service));
    tokio::select! {
        result = connection.as_mut() => return result,
        _ = shutdown.wait_for(|stop| *stop) => {}
        () = activity.idle_for(idle_timeout) => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}
