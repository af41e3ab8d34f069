//! What one request carries between the phases, and what happens when it ends: its access
//! line and its metrics, also when the shutdown cuts it before `logging`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pingora::prelude::*;
use pingora::proxy::Session;

use super::router::Route;
use super::{list_filter, mcp, observe, Snapshot};
use crate::metrics::{metrics, UpstreamMetrics};
use crate::store::AccessRecord;
use crate::web::Reply;

#[derive(Debug, Default)]
pub struct Requests {
    pub in_flight: AtomicUsize,
    pub cut: AtomicUsize,
}

/// Counts a request as in flight for as long as its context lives.
struct InFlight(Arc<Requests>);

impl InFlight {
    fn new(requests: &Arc<Requests>) -> Self {
        requests.in_flight.fetch_add(1, Ordering::Relaxed);
        metrics().requests_in_flight.inc();
        Self(requests.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        metrics().requests_in_flight.dec();
    }
}

/// What one request carries between phases.
pub struct RequestCtx {
    pub(super) started: Instant,
    in_flight: InFlight,
    /// The method and path, kept for the access line of a request cut by shutdown (which
    /// never reaches `logging`).
    pub(super) method: http::Method,
    pub(super) path: String,
    /// The response status once one is written upstream-side.
    pub(super) status: u16,
    pub(super) logged: bool,
    pub(super) snapshot: Option<Arc<Snapshot>>,
    pub(super) route: Option<Arc<Route>>,
    /// Where the request path below the route prefix starts in `path`.
    pub(super) rest_from: usize,
    /// Who answered, for the access log: an upstream name or a gateway endpoint.
    pub(super) handler: &'static str,
    /// The bearer token's record, for an authenticated request.
    pub(super) access: Option<Arc<AccessRecord>>,
    /// The upstream's own credential for this request (`[upstream.credential]`), resolved
    /// before the upstream is contacted; sent again if the request is retried.
    pub(super) credential: Option<http::HeaderValue>,
    /// The client's address (behind `server.trusted_proxies`, from `X-Forwarded-For`).
    pub(super) client_ip: Option<std::net::IpAddr>,
    /// The browser Origin, once allowed; proxied responses get CORS headers for it.
    pub(super) origin: Option<String>,
    /// What the request calls, from validated `Mcp-Method`/`Mcp-Name` headers.
    pub(super) mcp: Option<mcp::McpCall>,
    /// The JSON-RPC calls in the request body (for metrics).
    pub(super) calls: Vec<mcp::McpCall>,
    /// Counts JSON-RPC errors in the response of an MCP call.
    pub(super) scan: observe::ResponseScan,
    /// A body too large to pre-read, held back until it is complete and checked.
    pub(super) hold: Option<bytes::BytesMut>,
    /// The start of a long body read before the upstream was contacted, sent ahead of the rest.
    pub(super) prefix: Option<bytes::Bytes>,
    /// What to answer when the body turned out refusable after the upstream was contacted
    /// (too large, or not matching its mirrored headers).
    pub(super) refusal: Option<Reply>,
    /// Request body bytes seen so far, against the route's `max_body_size`.
    pub(super) body_bytes: usize,
    /// Why authgate refused the request itself, for the access log.
    pub(super) refused: Option<&'static str>,
    /// The upstream has call rules or tool scopes: JSON-RPC bodies are checked against them.
    pub(super) inspect_calls: bool,
    /// List requests (id, kind) whose results policy filters.
    pub(super) lists: Vec<(serde_json::Value, list_filter::ListKind)>,
    /// Filters the list results in the response, once it has started.
    pub(super) list_filter: Option<list_filter::ListFilter>,
    /// Which of the route's replicas serves the request (`proxy::replicas`).
    pub(super) replica: usize,
    /// The request's `Mcp-Session-Id` as its replica issued it (without our tag); it pins
    /// the request to that replica.
    pub(super) upstream_session: Option<String>,
    /// Replicas a connection failed to during this request (not tried again).
    pub(super) failed_replicas: Vec<usize>,
}

impl RequestCtx {
    pub fn new(requests: &Arc<Requests>) -> Self {
        RequestCtx {
            started: Instant::now(),
            in_flight: InFlight::new(requests),
            method: http::Method::GET,
            path: String::new(),
            status: 0,
            logged: false,
            snapshot: None,
            route: None,
            rest_from: 0,
            handler: "-",
            access: None,
            credential: None,
            origin: None,
            client_ip: None,
            mcp: None,
            calls: Vec::new(),
            scan: observe::ResponseScan::Off,
            hold: None,
            prefix: None,
            refusal: None,
            body_bytes: 0,
            refused: None,
            inspect_calls: false,
            lists: Vec::new(),
            list_filter: None,
            replica: 0,
            upstream_session: None,
            failed_replicas: Vec::new(),
        }
    }

    /// Counts the request in the metrics (from `logging`); `own` holds the series of the
    /// gateway's own endpoints.
    pub fn count(&self, session: &Session, e: Option<&Error>, own: &UpstreamMetrics) {
        let ctx = self;
        let req = session.req_header();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let m = metrics();
        let series = ctx.route.as_ref().map_or(own, |r| &r.metrics);
        let upstream = series.name();
        series.request(&req.method, status).inc();
        series.duration.observe(ctx.started.elapsed().as_secs_f64());
        series
            .request_bytes
            .inc_by(session.body_bytes_read() as u64);
        series
            .response_bytes
            .inc_by(session.body_bytes_sent() as u64);
        if let Some(e) = e.filter(|e| e.esource() == &ErrorSource::Upstream) {
            let kind = match e.etype() {
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                    "timeout"
                }
                ErrorType::ConnectRefused
                | ErrorType::ConnectNoRoute
                | ErrorType::ConnectError
                | ErrorType::TLSHandshakeFailure => "connect",
                _ => "other",
            };
            m.upstream_errors.with_label_values(&[upstream, kind]).inc();
        }
        for call in &ctx.calls {
            m.mcp_request(upstream, &call.method, call.name.as_deref());
        }
        if ctx.refused == Some("mcp_header_mismatch") {
            m.mcp_errors
                .with_label_values(&[upstream, "authgate"])
                .inc();
        }
    }

    /// The one access-log line of a request.
    pub(super) fn access_line(
        &self,
        method: &http::Method,
        path: &str,
        status: u16,
        error: Option<&str>,
    ) {
        let route = self.route.as_ref();
        tracing::info!(
            target: "authgate::access",
            method = %method,
            path,
            route = route.map_or("-", |r| r.upstream.path.as_str()),
            upstream = route.map_or(self.handler, |r| r.upstream.name.as_str()),
            client_id = self.access.as_ref().map(|a| a.client_id.as_str()),
            mcp_method = self.mcp.as_ref().map(|m| m.method.as_str()),
            mcp_name = self.mcp.as_ref().and_then(|m| m.name.as_deref()),
            user = self.access.as_ref().map(|a| a.identity.user_id()),
            status,
            // Microsecond precision, printed short (3.856, not 3.8556939999999997).
            duration_ms = self.started.elapsed().as_micros() as f64 / 1000.0,
            reason = self.refused,
            error,
            "request"
        );
    }

    /// The route's body cap (a request without a route has no body to forward).
    pub(super) fn max_body(&self) -> usize {
        self.route
            .as_ref()
            .map_or(usize::MAX, |r| r.upstream.max_body_size)
    }
}

/// A request whose task ends without reaching `logging` was cut: by the end of the drain on
/// shutdown (its runtime stopped), never by a client leaving (that still reaches `logging`).
impl Drop for RequestCtx {
    fn drop(&mut self) {
        if !self.logged && !self.path.is_empty() {
            self.in_flight.0.cut.fetch_add(1, Ordering::Relaxed);
            let (method, path) = (self.method.clone(), std::mem::take(&mut self.path));
            self.access_line(&method, &path, self.status, Some("cut_by_shutdown"));
        }
    }
}
