//! Request bodies on upstream routes. Up to [`PREREAD_LIMIT`] is read before the upstream is
//! contacted (Pingora's retry buffer replays it), so a malformed body or 2026-07-28
//! `Mcp-Method`/`Mcp-Name` headers that do not match it never reach the upstream; larger
//! bodies stream, and with mirrored headers are held until complete and checked at their end.
//! A body larger than the route's `max_body_size` gets 413: before the upstream is contacted
//! when its `Content-Length` says so, else (chunked) as soon as the count passes it, the
//! upstream request then aborted.

use pingora::prelude::*;
use pingora::proxy::Session;

use super::local::{answer, answer_and_close};
use super::{mcp, observe, policy, RequestCtx};
use crate::vocab::ErrorCode;
use crate::web::Reply;

/// Bodies up to this size are read before the upstream is contacted.
const PREREAD_LIMIT: usize = 64 * 1024;
/// How long a refused upload is still read so the client sees the 413.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);
/// The largest MCP request body authgate will hold for header validation.
const MAX_HELD_BODY: usize = 16 * 1024 * 1024;

/// `request_filter`'s last step on an upstream route: reads a small body and checks it, or
/// arranges for a large one to be held or sent on.
pub async fn preread(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let req = session.req_header();
    let post = req.method == http::Method::POST;
    let mirrored = post && mcp::has_mirrored_headers(&req.headers);
    // Held until complete when something must read the whole body before it goes on.
    let inspect = mirrored || (post && ctx.inspect_calls);
    let chunked = req.headers.contains_key(http::header::TRANSFER_ENCODING);
    let length = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    let cap = ctx.max_body();
    if length > cap {
        return refuse_too_large(session, ctx).await;
    }
    if length > PREREAD_LIMIT {
        if inspect {
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
                    if body.len() > cap {
                        return refuse_too_large(session, ctx).await;
                    }
                    if body.len() > PREREAD_LIMIT {
                        // Sent on (or held) through `filter`, which counts only what follows.
                        ctx.body_bytes = body.len();
                        // A long chunked body: what was read goes on ahead of the rest
                        // (Pingora's retry buffer only replays 64 KiB).
                        if inspect {
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
                    let reply =
                        Reply::error(ErrorCode::InvalidRequest, "the request body is malformed")
                            .with_origin(ctx.origin.as_deref());
                    return answer_and_close(session, reply).await;
                }
            }
        }
    }
    let parsed = match post {
        true => read_calls(ctx, &body),
        false => None,
    };
    if mirrored {
        match mcp::check(&session.req_header().headers, &body) {
            Ok(call) => ctx.mcp = Some(call),
            Err(m) => {
                ctx.refused = Some("mcp_header_mismatch");
                return answer(session, m.reply().with_origin(ctx.origin.as_deref())).await;
            }
        }
    }
    if let Some(requests) = parsed {
        if let Some(reply) = check_calls(ctx, &requests) {
            return answer(session, reply.with_origin(ctx.origin.as_deref())).await;
        }
    }
    Ok(false)
}

/// The JSON-RPC calls of a complete request body, for metrics (`ctx.calls`); on a route with
/// call rules, also returned in full for [`check_calls`], so the body is parsed once.
fn read_calls(ctx: &mut RequestCtx, body: &[u8]) -> Option<(Vec<policy::Request>, bool)> {
    if !ctx.inspect_calls {
        ctx.calls = observe::calls(body);
        return None;
    }
    let parsed = policy::requests(body);
    ctx.calls = parsed.0.iter().map(policy::Request::metered).collect();
    Some(parsed)
}

/// The upstream's call rules over the requests of a complete body: `Some` answer when a
/// call is refused; else the list requests to filter are noted.
fn check_calls(
    ctx: &mut RequestCtx,
    (requests, batch): &(Vec<policy::Request>, bool),
) -> Option<Reply> {
    let (snapshot, route, record) = (
        ctx.snapshot.as_ref()?,
        ctx.route.as_ref()?,
        ctx.access.as_ref()?,
    );
    let config = &snapshot.config;
    let rules = config.policy.upstream(route.upstream.name.as_str())?;
    match policy::calls(config, &route.upstream, rules, record, requests, *batch) {
        policy::Verdict::Pass(lists) => {
            ctx.lists = lists;
            None
        }
        policy::Verdict::StepUp(reply) => {
            ctx.refused = Some("scope");
            Some(reply)
        }
        policy::Verdict::Deny(reply) => {
            ctx.refused = Some("policy");
            Some(reply)
        }
    }
}

fn too_large() -> Reply {
    Reply::error(
        ErrorCode::InvalidRequest,
        "the request body is larger than this route accepts",
    )
    .with_status(413)
}

/// Answers 413 and closes the connection, reading (and dropping) what the client is still
/// sending for up to a second first: a client that writes its whole body before reading
/// (most HTTP libraries) would otherwise get a reset instead of the answer.
async fn refuse_too_large(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    ctx.refused = Some("body_too_large");
    answer_and_close(session, too_large().with_origin(ctx.origin.as_deref())).await?;
    let _ = tokio::time::timeout(LINGER, session.drain_request_body()).await;
    Ok(true)
}

/// `request_body_filter`: counts the body against the route's cap, sends a pre-read start
/// ahead of the rest, and holds a large body with mirrored headers until it is complete and
/// checked.
pub fn filter(
    session: &mut Session,
    body: &mut Option<bytes::Bytes>,
    end_of_stream: bool,
    ctx: &mut RequestCtx,
) -> Result<()> {
    if let Some(chunk) = body.as_ref() {
        ctx.body_bytes += chunk.len();
        if ctx.body_bytes > ctx.max_body() {
            ctx.refused = Some("body_too_large");
            ctx.refusal = Some(too_large());
            return Error::e_explain(ErrorType::HTTPStatus(413), "request body too large");
        }
    }
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
    let parsed = read_calls(ctx, &all);
    if mcp::has_mirrored_headers(&session.req_header().headers) {
        match mcp::check(&session.req_header().headers, &all) {
            Ok(call) => ctx.mcp = Some(call),
            Err(m) => {
                ctx.refused = Some("mcp_header_mismatch");
                ctx.refusal = Some(m.reply());
                return Error::e_explain(ErrorType::HTTPStatus(400), "MCP header mismatch");
            }
        }
    }
    if let Some(requests) = parsed {
        if let Some(reply) = check_calls(ctx, &requests) {
            let status = reply.status;
            ctx.refusal = Some(reply);
            return Error::e_explain(ErrorType::HTTPStatus(status), "refused by policy");
        }
    }
    *body = Some(all);
    Ok(())
}
