//! The gateway as a Pingora `ProxyHttp`. A request's path through the phases:
//!
//! 1. `request_filter`: take this request's config version; refuse oversized headers (431)
//!    and ambiguous framing (400, connection closed) before anything else (`limits`); then
//!    classify the path. The authorization server's endpoints, `/healthz` and `/readyz` are
//!    answered here (`Ok(true)`); unknown paths get a JSON 404. On an upstream route: the
//!    browser Origin is checked, CORS preflights answered, the bearer token checked
//!    (`bearer`) and the upstream's access policies (`policy`), the upstream's own credential
//!    obtained (`credentials`: a person who must connect their account gets a 401 here), and
//!    a body of up to 64 KiB read, so a malformed one, 2026-07-28 `Mcp-Method`/`Mcp-Name`
//!    headers that do not match it (`mcp`) or a call a policy denies never reach the upstream.
//! 2. `upstream_peer`: the route's peer; its host name is resolved on first use and again
//!    every `dns_refresh` (`router`).
//! 3. `upstream_request_filter`: rewrite path and `Host`, set forwarding headers, replace
//!    identity headers (`headers`), add the signed assertion and the upstream's own
//!    credential where configured.
//! 4. Bodies stream both ways, so SSE is never buffered; only a large request body with
//!    mirrored MCP headers, or to a route with call rules, is held in `request_body_filter`
//!    until it is checked.
//! 5. `response_filter`: CORS headers for an allowed browser origin; a list result that
//!    policies filter gets a `list_filter`, which `response_body_filter` feeds.
//! 6. `fail_to_proxy`: 502/504 (or the -32020 mismatch) with a JSON body.
//! 7. `logging`: one access-log line, for local answers and proxied ones alike.

pub mod bearer;
mod body;
mod context;
pub mod cors;
pub mod credentials;
pub mod headers;
pub mod limits;
pub mod list_filter;
pub mod local;
pub mod mcp;
pub mod observe;
pub mod policy;
pub mod replicas;
pub mod router;

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use crate::config::{Config, UpstreamAuth};
use crate::diagnose::Step;
use crate::metrics::metrics;
use crate::oauth::Authority;
use crate::store::{Store, StoreError};
use crate::vocab::paths::Endpoint;
use crate::vocab::{unix_now, ErrorCode};
use crate::web::Reply;
pub use context::{RequestCtx, Requests};
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
    /// The metric series of the gateway's own endpoints (`upstream="authgate"`).
    pub own_metrics: crate::metrics::UpstreamMetrics,
    /// Upstreams' own credentials (tokens cached; connections pending), shared with the
    /// admin API.
    pub credentials: Arc<credentials::Credentials>,
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
            Endpoint::ConnectCallback | Endpoint::Connections => {
                ctx.handler = "connect";
                match read_request(session, ctx.client_ip, config.auth.body_timeout).await {
                    Ok(request) if endpoint == Endpoint::Connections => {
                        self.credentials
                            .accounts_page(&self.authority, config, &request, unix_now())
                            .await
                    }
                    Ok(request) => {
                        self.credentials
                            .finish_connect(&self.authority, config, &request, unix_now())
                            .await
                    }
                    Err(reply) => {
                        ctx.refused = Some("unreadable_body");
                        return answer_and_close(session, reply).await;
                    }
                }
            }
            endpoint => {
                ctx.handler = "oauth";
                match read_request(session, ctx.client_ip, config.auth.body_timeout).await {
                    Ok(request) => {
                        let reply = self
                            .authority
                            .handle(config, endpoint, &request, unix_now())
                            .await;
                        if reply.status >= 400 {
                            ctx.refused = reply.reason;
                        }
                        reply
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
            let config = &snapshot.config;
            match bearer::authenticate(
                &self.authority,
                config,
                &req.headers,
                upstream,
                &route.metrics,
                unix_now(),
            )
            .await
            {
                Ok(checked) => {
                    if checked.first_use {
                        let ip = ctx.client_ip;
                        let client = Some(checked.record.client_id.as_str());
                        self.authority
                            .diagnostics
                            .note(ip, client, Step::Call, Ok(()));
                    }
                    if let Some(reply) = policy::access(config, upstream, &checked.record) {
                        ctx.refused = Some("policy");
                        ctx.access = Some(checked.record);
                        return answer(session, reply.with_origin(ctx.origin.as_deref())).await;
                    }
                    ctx.inspect_calls = config
                        .policy
                        .upstream(upstream.name.as_str())
                        .is_some_and(|r| r.inspects_calls());
                    ctx.access = Some(checked.record);
                }
                Err(denied) => {
                    ctx.refused = Some(denied.reason());
                    let (step, outcome) = match &denied {
                        bearer::Denied::Missing => (Step::Challenge, Ok(())),
                        d => (Step::Call, Err(format!("token refused: {}", d.reason()))),
                    };
                    let ip = ctx.client_ip;
                    self.authority.diagnostics.note(ip, None, step, outcome);
                    let reply = bearer::challenge(&snapshot.config, upstream, &denied)
                        .with_origin(ctx.origin.as_deref());
                    return answer(session, reply).await;
                }
            }
        }
        if let Some(credential) = &upstream.credential {
            if let Err(reply) = self
                .credential(ctx, &snapshot.config, upstream, credential)
                .await
            {
                return answer(session, reply.with_origin(ctx.origin.as_deref())).await;
            }
        }
        if let Some(reply) = self.choose_replica(session, ctx, &route) {
            return answer(session, reply.with_origin(ctx.origin.as_deref())).await;
        }
        body::preread(session, ctx).await
    }

    /// Which replica of the route serves the request (`proxy::replicas`); a reply when the
    /// session it belongs to is gone with its replica.
    fn choose_replica(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        route: &router::Route,
    ) -> Option<Reply> {
        // One URL: replica 0, and the session id passes through untouched.
        if !route.replicas.balanced() {
            return None;
        }
        let id = session
            .req_header()
            .headers
            .get(MCP_SESSION_ID)
            .and_then(|v| v.to_str().ok());
        match route.replicas.choose(id) {
            replicas::Choice::Replica { index, session } => {
                ctx.replica = index;
                ctx.upstream_session = session;
                None
            }
            replicas::Choice::SessionGone => {
                ctx.refused = Some("session_replica_down");
                Some(session_gone())
            }
        }
    }

    /// The upstream's own credential for this request, into `ctx.credential`. A person
    /// whose account at the service must be connected (again) gets a 401 challenge, and
    /// their grant is revoked, so their client's refresh fails and it authorizes again,
    /// which takes them through the connection; any other failure is a 502, never a
    /// request sent without its credential.
    async fn credential(
        &self,
        ctx: &mut RequestCtx,
        config: &crate::config::Config,
        upstream: &crate::config::Upstream,
        credential: &crate::config::UpstreamCredential,
    ) -> std::result::Result<(), Reply> {
        let name = upstream.name.as_str();
        let who = ctx.access.as_deref();
        match self
            .credentials
            .value(&self.authority, config, upstream, credential, who)
            .await
        {
            Ok(value) => {
                ctx.credential = Some(value);
                Ok(())
            }
            Err(e) if e.needs_reconnect() => {
                tracing::info!(upstream = name, error = %e, "the caller must connect their account at the upstream's service");
                if let Some(record) =
                    who.filter(|r| r.identity.provider != crate::policy::KEY_PROVIDER)
                {
                    if let Err(e) = self.authority.store.revoke_grant(&record.grant_id).await {
                        tracing::error!(error = %e, "revoking the grant of a disconnected account failed");
                    }
                    crate::audit::success("grant_revoked")
                        .identity(&record.identity)
                        .client(&record.client_id)
                        .upstream(name)
                        .reason("the person's account at the upstream's service must be connected again")
                        .emit();
                }
                ctx.refused = Some(bearer::Denied::NotConnected.reason());
                Err(bearer::challenge(
                    config,
                    upstream,
                    &bearer::Denied::NotConnected,
                ))
            }
            Err(e) => {
                tracing::error!(upstream = name, error = %e, "no credential for the upstream");
                ctx.refused = Some("upstream_credential");
                Err(Reply::error(
                    ErrorCode::UpstreamUnavailable,
                    "authgate could not obtain this server's credentials",
                )
                .with_status(502))
            }
        }
    }
}

const MCP_SESSION_ID: &str = "mcp-session-id";

/// 404 for a request of a session authgate cannot reach any more (its replica is down): MCP
/// clients then start a new session, as after a server ends one (the body is what the MCP
/// SDK servers answer).
fn session_gone() -> Reply {
    Reply::json(
        404,
        &serde_json::json!({
            "jsonrpc": "2.0",
            "error": {"code": -32001, "message": "Session not found: its server replica is down; start a new session"},
            "id": null
        }),
    )
}

/// The filter for a response to list requests policy filters; its length changes, so it is
/// sent chunked.
fn list_filter_for(
    session: &Session,
    response: &mut pingora::http::ResponseHeader,
    ctx: &mut RequestCtx,
) -> Result<Option<list_filter::ListFilter>> {
    let (Some(snapshot), Some(route), Some(record)) = (&ctx.snapshot, &ctx.route, &ctx.access)
    else {
        return Ok(None);
    };
    let content_type = response
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // MCP 2026-07-28 list results may be cached: one filtered for a caller is private.
    let private = session
        .req_header()
        .headers
        .get("mcp-protocol-version")
        .is_some_and(|v| v.as_bytes() >= b"2026-07-28".as_slice());
    let keep = policy::keep(
        snapshot.clone(),
        route.upstream.name.to_string(),
        record.clone(),
    );
    let filter =
        list_filter::ListFilter::new(content_type, std::mem::take(&mut ctx.lists), keep, private);
    if filter.is_some() {
        response.remove_header(&http::header::CONTENT_LENGTH);
        response.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(filter)
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(&self.requests)
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
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.client_ip =
            headers::client_ip(peer, &req.headers, &snapshot.config.server.trusted_proxies);
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
                ctx.rest_from = path.len() - rest.len();
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
        match route.peer(ctx.replica).await {
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
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(route), Some(snapshot)) = (&ctx.route, &ctx.snapshot) else {
            return Error::e_explain(ErrorType::InternalError, "no route chosen");
        };
        let client_ip = ctx.client_ip.map(|ip| ip.to_string());
        headers::for_upstream(
            upstream_request,
            &route.upstream,
            &route.replicas.get(ctx.replica).url,
            &ctx.path[ctx.rest_from..],
            client_ip,
            snapshot.config.server.public_url.scheme(),
        )?;
        if route.replicas.balanced() {
            match &ctx.upstream_session {
                Some(id) => upstream_request.insert_header(MCP_SESSION_ID, id.as_str())?,
                None => {
                    upstream_request.remove_header(MCP_SESSION_ID);
                }
            }
        }
        headers::identity_for_upstream(
            upstream_request,
            &route.upstream,
            &route.identity_names,
            ctx.access.as_deref(),
        )?;
        if let (Some(signed), Some(record)) = (&route.upstream.signed_identity, &ctx.access) {
            let assertion = self
                .authority
                .signer
                .assertion(
                    record,
                    snapshot.config.server.public_url.as_str(),
                    &signed.audience,
                    signed.lifetime.as_secs(),
                    unix_now(),
                )
                .map_err(|e| {
                    pingora::Error::because(ErrorType::InternalError, "signing the identity", e)
                })?;
            upstream_request.insert_header(signed.header.clone(), assertion.0.as_str())?;
        }
        if let (Some(credential), Some(value)) = (&route.upstream.credential, &ctx.credential) {
            upstream_request.insert_header(credential.header(), value.clone())?;
        }
        Ok(())
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
        session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = upstream_response.status.as_u16();
        if let Some(route) = ctx.route.as_ref().filter(|r| r.replicas.balanced()) {
            let issued = upstream_response
                .headers
                .get(MCP_SESSION_ID)
                .and_then(|v| v.to_str().ok())
                .map(|id| route.replicas.tag_session(ctx.replica, id));
            if let Some(id) = issued {
                upstream_response.insert_header(MCP_SESSION_ID, id)?;
            }
        }
        if !ctx.lists.is_empty() && ctx.status == 200 {
            ctx.list_filter = list_filter_for(session, upstream_response, ctx)?;
        }
        if !ctx.calls.is_empty() {
            let content_type = upstream_response
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            ctx.scan = observe::ResponseScan::for_content_type(content_type);
        }
        if let Some(origin) = &ctx.origin {
            cors::apply_to_response(upstream_response, origin)?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(filter) = ctx.list_filter.as_mut() {
            let out = filter.feed(body.as_deref().unwrap_or_default(), end_of_stream);
            *body = Some(out);
        }
        if !matches!(ctx.scan, observe::ResponseScan::Off) {
            let chunk = body.as_deref().unwrap_or_default();
            let errors = ctx.scan.feed(chunk, end_of_stream);
            if let (Some(route), true) = (&ctx.route, errors > 0) {
                metrics()
                    .mcp_errors
                    .with_label_values(&[route.upstream.name.as_str(), "upstream"])
                    .inc_by(errors as u64);
            }
        }
        Ok(None)
    }

    /// A reused upstream connection the upstream had already closed fails as the request is
    /// written to it: nothing reached the upstream, so the request (even a POST) is sent again
    /// on a new connection when its body is still buffered. Otherwise Pingora's rule: only
    /// idempotent requests are retried.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        _ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let truncated = session.as_ref().retry_buffer_truncated();
        if client_reused && e.etype() == &ErrorType::WriteError && !truncated {
            e.set_retry(true);
        } else if !session.req_header().method.is_idempotent() || truncated {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    /// A replica that cannot be connected to is marked down at once; a request not bound to
    /// a session on it is tried on another replica (nothing reached the failed one).
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let Some(route) = ctx.route.clone().filter(|r| r.replicas.balanced()) else {
            return e;
        };
        route
            .replicas
            .get(ctx.replica)
            .set_healthy(false, "a connection to it failed");
        ctx.failed_replicas.push(ctx.replica);
        if ctx.upstream_session.is_none() {
            if let Some(next) = route.replicas.next_healthy(&ctx.failed_replicas) {
                ctx.replica = next;
                e.set_retry(true);
            }
        }
        e
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
        // A session whose replica cannot be reached is gone: 404 starts a new one.
        let gone = ctx.upstream_session.is_some()
            && ctx.failed_replicas.contains(&ctx.replica)
            && session.response_written().is_none();
        if gone {
            ctx.refusal = Some(session_gone());
        }
        let failure = match gone {
            true => Some((404, ErrorCode::NotFound, "session not found")),
            false => failure,
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
        ctx.count(session, e, &self.own_metrics);
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
