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
pub mod cors;
pub mod headers;
pub mod limits;
pub mod mcp;
pub mod router;

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
use crate::store::{AccessRecord, Store};
use crate::web::{Reply, Request};
use router::{Route, Router, Target};

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
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads a request for a gateway endpoint, body included (bounded).
async fn read_request(session: &mut Session) -> std::result::Result<Request, Reply> {
    let req = session.req_header();
    let mut request = Request::new(req.method.clone(), "/");
    request.path = req.uri.path().to_string();
    request.query = req.uri.query().map(str::to_string);
    request.headers = req.headers.clone();
    request.client_ip = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    if matches!(request.method, http::Method::POST | http::Method::PUT) {
        let mut body = bytes::BytesMut::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > crate::web::request::MAX_BODY {
                        return Err(Reply::error(
                            413,
                            "invalid_request",
                            "the request body is too large",
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => {
                    return Err(Reply::error(
                        400,
                        "invalid_request",
                        "the request body could not be read",
                    ))
                }
            }
        }
        request.body = body.freeze();
    }
    Ok(request)
}

/// What one request carries between phases.
pub struct RequestCtx {
    started: Instant,
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
    /// Set when a held body did not match its mirrored headers.
    mismatch: Option<mcp::Mismatch>,
    /// Why authgate refused the request itself, for the access log.
    refused: Option<&'static str>,
}

/// Bodies up to this size are read before the upstream is contacted (Pingora's retry buffer
/// replays them), so a malformed or mismatched request never reaches it.
const PREREAD_LIMIT: usize = 64 * 1024;
/// The largest MCP request body authgate will hold for header validation.
const MAX_HELD_BODY: usize = 16 * 1024 * 1024;

impl Gateway {
    /// Reads a request body of up to [`PREREAD_LIMIT`] before the upstream is contacted, so a
    /// malformed body (a bad chunk) or 2026-07-28 `Mcp-Method`/`Mcp-Name` headers that do
    /// not match it are refused before the upstream sees anything. Larger bodies stream; with
    /// mirrored headers they are held until complete and checked at their end.
    async fn preread_body(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        let mirrored = req.method == http::Method::POST && mcp::has_mirrored_headers(&req.headers);
        let chunked = req.headers.contains_key(http::header::TRANSFER_ENCODING);
        let length = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .unwrap_or(0);
        if length > PREREAD_LIMIT {
            if mirrored {
                ctx.hold = Some(bytes::BytesMut::new());
            }
            return Ok(false);
        }
        let mut body = bytes::BytesMut::new();
        if chunked || length > 0 {
            session.enable_retry_buffering();
            loop {
                match session.read_request_body().await {
                    Ok(Some(chunk)) => {
                        body.extend_from_slice(&chunk);
                        if body.len() > PREREAD_LIMIT {
                            // A long chunked body: what was read goes on ahead of the rest
                            // (Pingora's retry buffer only replays 64 KiB).
                            if mirrored {
                                ctx.hold = Some(body);
                            } else {
                                ctx.prefix = Some(body.freeze());
                            }
                            return Ok(false);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "malformed request body");
                        ctx.refused = Some("malformed_body");
                        session.set_keepalive(None);
                        let reply =
                            Reply::error(400, "invalid_request", "the request body is malformed")
                                .with_origin(ctx.origin.as_deref());
                        reply.write(session).await?;
                        return Ok(true);
                    }
                }
            }
        }
        if !mirrored {
            return Ok(false);
        }
        match mcp::check(&session.req_header().headers, &body) {
            Ok(call) => {
                ctx.mcp = Some(call);
                Ok(false)
            }
            Err(m) => {
                ctx.refused = Some("mcp_header_mismatch");
                let reply = m.reply().with_origin(ctx.origin.as_deref());
                self.answer(session, reply).await
            }
        }
    }

    /// Writes a local answer and tells Pingora the request is done.
    async fn answer(&self, session: &mut Session, reply: Reply) -> Result<bool> {
        // Unread request body would poison a kept-alive connection: drain a small one, close
        // after anything else (a rejected upload is not worth reading).
        let req = session.req_header();
        let length = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        let chunked = req.headers.contains_key(http::header::TRANSFER_ENCODING);
        let drain = !chunked && length.is_some_and(|l| l <= crate::web::request::MAX_BODY);
        let drained = match length {
            Some(l) if drain && l > 0 => session.drain_request_body().await.is_ok(),
            _ => drain || (!chunked && length.is_none()),
        };
        if !drained {
            session.set_keepalive(None);
        }
        reply.write(session).await?;
        Ok(true)
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            snapshot: None,
            route: None,
            rest: String::new(),
            handler: "-",
            access: None,
            origin: None,
            mcp: None,
            hold: None,
            prefix: None,
            mismatch: None,
            refused: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let snapshot = self.snapshot.load_full();
        ctx.snapshot = Some(snapshot.clone());
        if let Err(refusal) =
            limits::check(session.req_header(), &snapshot.config.server.header_limits)
        {
            ctx.handler = "gateway";
            ctx.refused = Some(refusal.reason());
            if refusal.closes() {
                session.set_keepalive(None);
                refusal.reply().write(session).await?;
                return Ok(true);
            }
            return self.answer(session, refusal.reply()).await;
        }
        let req = session.req_header();
        let path = req.uri.path().to_string();
        if headers::is_ambiguous_path(&path) {
            ctx.handler = "gateway";
            let reply = Reply::error(
                400,
                "invalid_request",
                "the request path has dot segments or encoded separators",
            );
            return self.answer(session, reply).await;
        }
        if crate::oauth::is_oauth_path(&path) {
            ctx.handler = "oauth";
            let request = match read_request(session).await {
                Ok(r) => r,
                Err(reply) => return self.answer(session, reply).await,
            };
            let reply = self
                .authority
                .handle(&snapshot.config, &request, unix_now())
                .await;
            return self.answer(session, reply).await;
        }
        let host = headers::request_host(req).map(str::to_string);
        match snapshot.router.classify(host.as_deref(), &path) {
            Target::Health => {
                ctx.handler = "healthz";
                self.answer(
                    session,
                    Reply::json(200, &serde_json::json!({"status": "ok"})),
                )
                .await
            }
            Target::Ready => {
                ctx.handler = "readyz";
                let reply = match self.authority.store.ping().await {
                    Ok(()) => Reply::json(200, &serde_json::json!({"status": "ready"})),
                    Err(e) => {
                        tracing::warn!(error = %e, "readiness check failed: store");
                        Reply::error(503, "temporarily_unavailable", "the store is not answering")
                    }
                };
                self.answer(session, reply).await
            }
            Target::Upstream(route, rest) => {
                ctx.handler = "upstream";
                ctx.rest = rest.to_string();
                let route = route.clone();
                ctx.route = Some(route.clone());
                let upstream = &route.upstream;
                // DNS rebinding protection (MCP transports): a browser Origin must be allowed.
                if let Some(origin) = req.headers.get(http::header::ORIGIN) {
                    let origin = origin.to_str().unwrap_or_default().to_string();
                    if !cors::origin_allowed(&snapshot.config, &origin) {
                        return self.answer(session, cors::origin_refused()).await;
                    }
                    ctx.origin = Some(origin);
                }
                if req.method == http::Method::OPTIONS
                    && req
                        .headers
                        .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
                {
                    return self
                        .answer(session, cors::preflight(ctx.origin.as_deref()))
                        .await;
                }
                if upstream.auth == UpstreamAuth::OAuth {
                    let now = unix_now();
                    match bearer::authenticate(&self.authority.store, &req.headers, upstream, now)
                        .await
                    {
                        Ok(record) => ctx.access = Some(record),
                        Err(denied) => {
                            let held = match &denied {
                                bearer::Denied::InsufficientScope => {
                                    let token = bearer::bearer(&req.headers).unwrap_or_default();
                                    self.authority
                                        .store
                                        .cached(&crate::crypto::SecretHash::of(token), now)
                                        .map(|r| r.scopes.clone())
                                }
                                _ => None,
                            };
                            let reply = bearer::challenge(
                                &snapshot.config,
                                upstream,
                                &denied,
                                held.as_deref(),
                            )
                            .with_origin(ctx.origin.as_deref());
                            return self.answer(session, reply).await;
                        }
                    }
                }
                self.preread_body(session, ctx).await
            }
            Target::NotFound => {
                ctx.handler = "gateway";
                self.answer(
                    session,
                    Reply::error(404, "not_found", "no route serves this path"),
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
        if let Some(prefix) = ctx.prefix.take() {
            let mut joined = bytes::BytesMut::from(&prefix[..]);
            if let Some(chunk) = body.take() {
                joined.extend_from_slice(&chunk);
            }
            *body = Some(joined.freeze());
        }
        let Some(held) = ctx.hold.as_mut() else {
            return Ok(());
        };
        if let Some(chunk) = body.take() {
            held.extend_from_slice(&chunk);
            if held.len() > MAX_HELD_BODY {
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    "MCP request body too large to validate",
                );
            }
        }
        if !end_of_stream {
            // Empty, not None: None would tell Pingora the body has ended.
            *body = Some(bytes::Bytes::new());
            return Ok(());
        }
        let all = ctx.hold.take().unwrap_or_default().freeze();
        match mcp::check(&session.req_header().headers, &all) {
            Ok(call) => {
                ctx.mcp = Some(call);
                *body = Some(all);
                Ok(())
            }
            Err(m) => {
                ctx.mismatch = Some(m);
                Error::e_explain(ErrorType::HTTPStatus(400), "MCP header mismatch")
            }
        }
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
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
        let (status, code, description) = match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout => (
                504,
                "upstream_timeout",
                "the upstream server did not answer in time",
            ),
            HTTPStatus(s) => (*s, "bad_request", "the request could not be proxied"),
            _ => match e.esource() {
                ErrorSource::Upstream => (
                    502,
                    "upstream_unavailable",
                    "the upstream server could not be reached",
                ),
                ErrorSource::Downstream => match e.etype() {
                    WriteError | ReadError | ConnectionClosed => (0, "", ""),
                    _ => (400, "invalid_request", "the request could not be read"),
                },
                ErrorSource::Internal | ErrorSource::Unset => {
                    (500, "server_error", "internal error")
                }
            },
        };
        // Once the upstream's response has started, the status is gone; just end the stream.
        if status > 0 && session.response_written().is_none() {
            session.set_keepalive(None);
            let reply = match ctx.mismatch.take() {
                Some(m) => m.reply(),
                None => Reply::error(status, code, description),
            };
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
        let route = ctx.route.as_ref();
        tracing::info!(
            target: "authgate::access",
            method = %req.method,
            path = req.uri.path(),
            route = route.map_or("-", |r| r.upstream.path.as_str()),
            upstream = route.map_or(ctx.handler, |r| r.upstream.name.as_str()),
            client_id = ctx.access.as_ref().map(|a| a.client_id.as_str()),
            mcp_method = ctx.mcp.as_ref().map(|m| m.method.as_str()),
            mcp_name = ctx.mcp.as_ref().and_then(|m| m.name.as_deref()),
            user = ctx.access.as_ref().map(|a| a.identity.user_id()),
            status,
            // Microsecond precision, printed short (3.856, not 3.8556939999999997).
            duration_ms = ctx.started.elapsed().as_micros() as f64 / 1000.0,
            reason = ctx.refused,
            error = e.map(|e| e.etype().as_str()),
            "request"
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
