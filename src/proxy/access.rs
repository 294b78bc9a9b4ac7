//! One proxied request as the logs and metrics see it: the tracing span every log line inside
//! the request carries (`request_id`, then `route` and `workload` once known), and the guard
//! that writes the access log line and the request metrics exactly once — when the response is
//! ready, or when the client went away first and the request's future was dropped (then with
//! status 499, nginx's "client closed request").

use std::sync::Arc;
use std::time::Instant;

use http::{Method, StatusCode};
use tracing::Span;
use tracing::field::Empty;

use crate::metrics::Metrics;
use crate::runtime::Route;

/// The status logged and counted for a request whose client disconnected before its answer.
const CLIENT_CLOSED_REQUEST: u16 = 499;
const CLIENT_CLOSED_REASON: &str = "client_closed_request";

/// The span of one proxied request; `route` and `workload` are recorded once known.
pub(crate) fn request_span(request_id: &str) -> Span {
    tracing::info_span!("request", request_id, route = Empty, workload = Empty)
}

/// Writes the access log line and the request metrics when finished or dropped.
pub(crate) struct AccessLog<'a> {
    metrics: &'a Metrics,
    request_id: &'a str,
    method: Method,
    path: String,
    started: Instant,
    route: Option<Arc<Route>>,
    /// Status and error code, once the response is known.
    outcome: Option<(u16, Option<&'static str>)>,
}

impl<'a> AccessLog<'a> {
    pub(crate) fn start(
        metrics: &'a Metrics,
        request_id: &'a str,
        method: &Method,
        path: &str,
    ) -> Self {
        AccessLog {
            metrics,
            request_id,
            method: method.clone(),
            path: path.to_string(),
            started: Instant::now(),
            route: None,
            outcome: None,
        }
    }

    /// The route the request matched (also recorded on the current span).
    pub(crate) fn matched(&mut self, route: &Arc<Route>) {
        Span::current().record("route", route.name());
        self.route = Some(route.clone());
    }

    /// Writes the line for the response about to be sent.
    pub(crate) fn finish(mut self, status: StatusCode, error: Option<&'static str>) {
        self.outcome = Some((status.as_u16(), error));
    }

    fn write(&self, status: u16, error: Option<&'static str>) {
        let elapsed = self.started.elapsed();
        let route_name = self.route.as_ref().map_or("_none", |r| r.name());
        // Every u16 keygate logs is a valid status code (499 included); `as_str` allocates nothing.
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.metrics
            .requests_total
            .with_label_values(&[route_name, code.as_str()])
            .inc();
        if let Some(route) = &self.route {
            route.duration.observe(elapsed.as_secs_f64());
        }
        tracing::info!(
            target: "keygate::access",
            request_id = self.request_id,
            method = %self.method,
            path = self.path,
            route = route_name,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            error,
        );
    }
}

impl Drop for AccessLog<'_> {
    fn drop(&mut self) {
        let (status, error) = self
            .outcome
            .unwrap_or((CLIENT_CLOSED_REQUEST, Some(CLIENT_CLOSED_REASON)));
        self.write(status, error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::Captured;

    #[test]
    fn a_line_logged_inside_the_request_carries_its_id_and_what_is_known() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = request_span("req-1");
            let _entered = span.enter();
            span.record("workload", "agent");
            tracing::warn!("vault slow");
        });
        let text = captured.text();
        assert!(text.contains(r#"request_id="req-1""#), "{text}");
        assert!(text.contains(r#"workload="agent""#), "{text}");
        assert!(text.contains("vault slow"), "{text}");
    }
}
