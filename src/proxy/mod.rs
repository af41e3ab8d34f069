//! The gateway as a Pingora `ProxyHttp`. A request's path through the phases:
//!
//! 1. `request_filter`: take this request's config version, classify the path. Gateway
//!    endpoints are answered here (`Ok(true)`); unknown paths get a JSON 404.
//! 2. `upstream_peer`: clone the route's prebuilt peer.
//! 3. `upstream_request_filter`: rewrite path and `Host`, set forwarding headers.
//! 4. The body streams both ways untouched (no body filters), so SSE is never buffered.
//! 5. `fail_to_proxy`: 502/504 with a JSON body when the upstream cannot answer.
//! 6. `logging`: one access-log line, for local answers and proxied ones alike.

pub mod bearer;
pub mod headers;
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
    pub fn new(config: Config) -> Result<Self, String> {
        let router = Router::new(&config)?;
        Ok(Self { config, router })
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

/// CORS preflight for a protected MCP route: answered without a token (browsers send none).
fn mcp_preflight() -> Reply {
    Reply {
        status: 204,
        headers: vec![
            (http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".into()),
            (http::header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, DELETE, OPTIONS".into()),
            (
                http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, Accept, MCP-Protocol-Version, Mcp-Session-Id, Mcp-Method, Mcp-Name, Last-Event-ID"
                    .into(),
            ),
            (
                http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version".into(),
            ),
            (http::header::ACCESS_CONTROL_MAX_AGE, "86400".into()),
        ],
        body: bytes::Bytes::new(),
    }
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
}

impl Gateway {
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
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let snapshot = self.snapshot.load_full();
        ctx.snapshot = Some(snapshot.clone());
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
                ctx.route = Some(route.clone());
                let upstream = &route.upstream;
                if upstream.auth == UpstreamAuth::None {
                    return Ok(false);
                }
                if req.method == http::Method::OPTIONS
                    && req
                        .headers
                        .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
                {
                    return self.answer(session, mcp_preflight()).await;
                }
                match bearer::authenticate(
                    &self.authority.store,
                    &req.headers,
                    upstream,
                    unix_now(),
                )
                .await
                {
                    Ok(record) => {
                        ctx.access = Some(record);
                        Ok(false)
                    }
                    Err(denied) => {
                        let held = match &denied {
                            bearer::Denied::InsufficientScope => {
                                let token = bearer::bearer(&req.headers).unwrap_or_default();
                                self.authority
                                    .store
                                    .authenticate(crate::crypto::SecretHash::of(token), unix_now())
                                    .await
                                    .ok()
                                    .flatten()
                                    .map(|r| r.scopes.clone())
                            }
                            _ => None,
                        };
                        let reply =
                            bearer::challenge(&snapshot.config, upstream, &denied, held.as_deref());
                        self.answer(session, reply).await
                    }
                }
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
        Ok(Box::new(route.peer.clone()))
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

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
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
            if let Err(err) = Reply::error(status, code, description).write(session).await {
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
            user = ctx.access.as_ref().map(|a| a.identity.user_id()),
            status,
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            error = e.map(|e| e.etype().as_str()),
            "request"
        );
    }

    /// Pingora logs this on errors; the default includes the query string, which may hold
    /// OAuth codes or tokens.
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }
}
