//! The gateway as a Pingora `ProxyHttp`. A request's path through the phases:
//!
//! 1. `request_filter`: take this request's config version; refuse oversized headers (431)
//!    and ambiguous framing (400, connection closed) before anything else (`limits`); then
//!    classify the path. The authorization server's endpoints, `/healthz` and `/readyz` are
//!    answered here (`Ok(true)`); unknown paths get a JSON 404. On an upstream route: the
//!    browser Origin is checked, CORS preflights answered, the bearer token checked
//!    (`bearer`), and a body of up to 64 KiB read, so a malformed one or 2026-07-28
//!    `Mcp-Method`/`Mcp-Name` headers that do not match it (`mcp`) never reach the upstream.
//! 2. `upstream_peer`: the route's peer; its host name is resolved on first use and again
//!    every `dns_refresh` (`router`).
//! 3. `upstream_request_filter`: rewrite path and `Host`, set forwarding headers, replace
//!    identity headers (`headers`).
//! 4. Bodies stream both ways, so SSE is never buffered; only a large request body with
//!    mirrored MCP headers is held in `request_body_filter` until it is checked.
//! 5. `response_filter`: CORS headers for an allowed browser origin.
//! 6. `fail_to_proxy`: 502/504 (or the -32020 mismatch) with a JSON body.
//! 7. `logging`: one access-log line, for local answers and proxied ones alike.

pub mod bearer;
mod body;
pub mod cors;
pub mod headers;
pub mod limits;
pub mod local;
pub mod mcp;
pub mod router;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use crate::config::{Config, UpstreamAuth};
use crate::oauth::Authority;
use crate::store::{AccessRecord, Store, StoreError};
use crate::vocab::paths::Endpoint;
use crate::vocab::{unix_now, ErrorCode};
use crate::web::Reply;
use local::{answer, answer_and_close, read_request};
use router::{Route, Router};

/// One config version with everything derived from it. Swapped whole on reload; a request
/// keeps the version it started with.
pub struct Snapshot {
    pub config: Config,
    pub router: Router,
}

impl Snapshot {
    pub fn new(config: Config) -> Self {
        let router = Router::new(&config);
        Self { config, router }
    }
}

pub struct Gateway {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub authority: Arc<Authority>,
    /// Requests being served, and those cut by a shutdown, for the drain on SIGTERM.
    pub requests: Arc<Requests>,
}

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
        Self(requests.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one request carries between phases.
pub struct RequestCtx {
    started: Instant,
    in_flight: InFlight,
    /// The method and path, kept for the access line of a request cut by shutdown (which
    /// never reaches `logging`).
    method: http::Method,
    path: String,
    /// The response status once one is written upstream-side.
    status: u16,
    logged: bool,
    snapshot: Option<Arc<Snapshot>>,
    route: Option<Arc<Route>>,
    /// Request path below the route prefix.
    rest: String,
    /// Who answered, for the access log: an upstream name or a gateway endpoint.
    handler: &'static str,
    /// The bearer token's record, for an authenticated request.
    access: Option<Arc<AccessRecord>>,
    /// The browser Origin, once allowed; proxied responses get CORS headers for it.
    origin: Option<String>,
    /// What the request calls, from validated `Mcp-Method`/`Mcp-Name` headers.
    mcp: Option<mcp::McpCall>,
    /// A body too large to pre-read, held back until it is complete and checked.
    hold: Option<bytes::BytesMut>,
    /// The start of a long body read before the upstream was contacted, sent ahead of the rest.
    prefix: Option<bytes::Bytes>,
    /// What to answer when the body turned out refusable after the upstream was contacted
    /// (too large, or not matching its mirrored headers).
    refusal: Option<Reply>,
    /// Request body bytes seen so far, against the route's `max_body_size`.
    body_bytes: usize,
    /// Why authgate refused the request itself, for the access log.
    refused: Option<&'static str>,
}

impl RequestCtx {
    /// The one access-log line of a request.
    fn access_line(&self, method: &http::Method, path: &str, status: u16, error: Option<&str>) {
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
    fn max_body(&self) -> usize {
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

impl Gateway {
    /// One of the gateway's own endpoints: health, readiness, the authorization server.
    async fn endpoint(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        config: &Config,
        endpoint: Endpoint<'_>,
    ) -> Result<bool> {
        let reply = match endpoint {
            Endpoint::Health => {
                ctx.handler = "healthz";
                Reply::json(200, &serde_json::json!({"status": "ok"}))
            }
            Endpoint::Ready => {
                ctx.handler = "readyz";
                match self.authority.store.ping().await {
                    Ok(()) => Reply::json(200, &serde_json::json!({"status": "ready"})),
                    Err(e) => {
                        // The detail (paths, OS errors) goes to the log, not to the network.
                        tracing::warn!(error = %e, "readiness check failed: store");
                        let why = match e {
                            StoreError::Unavailable(_) => {
                                "the store is recovering from a storage error (writes fail)"
                            }
                            _ => "the store is not answering",
                        };
                        Reply::error(ErrorCode::TemporarilyUnavailable, why)
                            .with_header(http::header::RETRY_AFTER, "5")
                    }
                }
            }
            endpoint => {
                ctx.handler = "oauth";
                match read_request(session, config.auth.body_timeout).await {
                    Ok(request) => {
                        self.authority
                            .handle(config, endpoint, &request, unix_now())
                            .await
                    }
                    Err(reply) => {
                        ctx.refused = Some("unreadable_body");
                        return answer_and_close(session, reply).await;
                    }
                }
            }
        };
        answer(session, reply).await
    }

    /// An upstream route: the browser Origin, CORS preflights, the bearer token, the body.
    async fn upstream(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: Arc<Route>,
    ) -> Result<bool> {
        ctx.handler = "upstream";
        ctx.route = Some(route.clone());
        let Some(snapshot) = ctx.snapshot.clone() else {
            return Error::e_explain(ErrorType::InternalError, "no config snapshot");
        };
        let req = session.req_header();
        // DNS rebinding protection (MCP transports): a browser Origin must be allowed.
        if let Some(origin) = req.headers.get(http::header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default().to_string();
            if !cors::origin_allowed(&snapshot.config, &origin) {
                ctx.refused = Some("origin");
                return answer(session, cors::origin_refused()).await;
            }
            ctx.origin = Some(origin);
        }
        if req.method == http::Method::OPTIONS
            && req
                .headers
                .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return answer(session, cors::preflight(ctx.origin.as_deref())).await;
        }
        let upstream = &route.upstream;
        if upstream.auth == UpstreamAuth::OAuth {
            match bearer::authenticate(&self.authority.store, &req.headers, upstream, unix_now())
                .await
            {
                Ok(record) => ctx.access = Some(record),
                Err(denied) => {
                    ctx.refused = Some(denied.reason());
                    let reply = bearer::challenge(&snapshot.config, upstream, &denied)
                        .with_origin(ctx.origin.as_deref());
                    return answer(session, reply).await;
                }
            }
        }
        body::preread(session, ctx).await
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            in_flight: InFlight::new(&self.requests),
            method: http::Method::GET,
            path: String::new(),
            status: 0,
            logged: false,
            snapshot: None,
            route: None,
            rest: String::new(),
            handler: "-",
            access: None,
            origin: None,
            mcp: None,
            hold: None,
            prefix: None,
            refusal: None,
            body_bytes: 0,
            refused: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let snapshot = self.snapshot.load_full();
        ctx.snapshot = Some(snapshot.clone());
        ctx.handler = "gateway";
        if let Err(refusal) =
            limits::check(session.req_header(), &snapshot.config.server.header_limits)
        {
            ctx.refused = Some(refusal.reason());
            return match refusal.closes() {
                true => answer_and_close(session, refusal.reply()).await,
                false => answer(session, refusal.reply()).await,
            };
        }
        let req = session.req_header();
        let path = req.uri.path().to_string();
        ctx.method = req.method.clone();
        if headers::is_ambiguous_path(&path) {
            ctx.refused = Some("ambiguous_path");
            let reply = Reply::error(
                ErrorCode::InvalidRequest,
                "the request path has dot segments or encoded separators",
            );
            return answer(session, reply).await;
        }
        if let Some(endpoint) = Endpoint::of(&path) {
            return self
                .endpoint(session, ctx, &snapshot.config, endpoint)
                .await;
        }
        let host = headers::request_host(req);
        match snapshot.router.route(host, &path) {
            Some((route, rest)) => {
                ctx.rest = rest.to_string();
                let route = route.clone();
                ctx.path = path;
                self.upstream(session, ctx, route).await
            }
            None => {
                answer(
                    session,
                    Reply::error(ErrorCode::NotFound, "no route serves this path"),
                )
                .await
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route chosen"))?;
        match route.peer().await {
            Some(peer) => Ok(Box::new(peer)),
            None => Err(Error::explain(
                ErrorType::ConnectNoRoute,
                "the upstream host name does not resolve",
            )
            .into_up()),
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(route), Some(snapshot)) = (&ctx.route, &ctx.snapshot) else {
            return Error::e_explain(ErrorType::InternalError, "no route chosen");
        };
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string());
        headers::for_upstream(
            upstream_request,
            &route.upstream,
            &ctx.rest,
            client_ip,
            snapshot.config.server.public_url.scheme(),
        )?;
        headers::identity_for_upstream(upstream_request, &route.upstream, ctx.access.as_deref())
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        body::filter(session, body, end_of_stream, ctx)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = upstream_response.status.as_u16();
        if let Some(origin) = &ctx.origin {
            cors::apply_to_response(upstream_response, origin)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        use ErrorType::*;
        let failure = match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout => Some((
                504,
                ErrorCode::UpstreamTimeout,
                "the upstream server did not answer in time",
            )),
            HTTPStatus(s) => Some((
                *s,
                ErrorCode::InvalidRequest,
                "the request could not be proxied",
            )),
            _ => match e.esource() {
                ErrorSource::Upstream => Some((
                    502,
                    ErrorCode::UpstreamUnavailable,
                    "the upstream server could not be reached",
                )),
                ErrorSource::Downstream => match e.etype() {
                    WriteError | ReadError | ConnectionClosed => None,
                    _ => Some((
                        400,
                        ErrorCode::InvalidRequest,
                        "the request could not be read",
                    )),
                },
                ErrorSource::Internal | ErrorSource::Unset => {
                    Some((500, ErrorCode::ServerError, "internal error"))
                }
            },
        };
        let status = failure.map_or(0, |(s, _, _)| s);
        // Once the upstream's response has started, the status is gone; just end the stream.
        if let (Some((status, code, description)), None) = (failure, session.response_written()) {
            session.set_keepalive(None);
            let reply = ctx
                .refusal
                .take()
                .unwrap_or_else(|| Reply::error(code, description).with_status(status));
            if let Err(err) = reply
                .with_origin(ctx.origin.as_deref())
                .write(session)
                .await
            {
                tracing::debug!(error = %err, "could not write the error reply");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let req = session.req_header();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        ctx.logged = true;
        ctx.access_line(
            &req.method,
            req.uri.path(),
            status,
            e.map(|e| e.etype().as_str()),
        );
    }

    /// A client that goes away mid-response (a closed tab, an MCP client cancelling a stream)
    /// is normal: debug, not Pingora's ERROR line.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        let client_left = e.esource() == &ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
            );
        if client_left {
            tracing::debug!(error = %e, "the client closed its connection");
        }
        client_left
    }

    /// Pingora logs this on errors; the default includes the query string, which may hold
    /// OAuth codes or tokens.
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }
}
