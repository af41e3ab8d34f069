//! What the gateway answers itself on a proxied connection: reading a request for one of its
//! own endpoints (body included, bounded) and writing a [`Reply`] so the connection stays
//! usable (a small unread body is drained; anything else closes it).

use std::time::Duration;

use pingora::proxy::Session;

use crate::vocab::ErrorCode;
use crate::web::request::MAX_BODY;
use crate::web::{Reply, Request};

/// A request for a gateway endpoint, body included (at most [`MAX_BODY`], arriving within
/// `timeout`: these bodies are small, and a stalled one must not hold the connection for
/// Pingora's minute). An `Err` is answered with the connection closed.
pub async fn read_request(
    session: &mut Session,
    client_ip: Option<std::net::IpAddr>,
    timeout: Duration,
) -> Result<Request, Reply> {
    let req = session.req_header();
    let mut request = Request::new(req.method.clone(), "/");
    request.path = req.uri.path().to_string();
    request.query = req.uri.query().map(str::to_string);
    request.headers = req.headers.clone();
    request.client_ip = client_ip;
    if matches!(request.method, http::Method::POST | http::Method::PUT) {
        request.body = tokio::time::timeout(timeout, read_body(session))
            .await
            .map_err(|_| {
                Reply::error(
                    ErrorCode::InvalidRequest,
                    "the request body did not arrive in time",
                )
                .with_status(408)
            })??;
    }
    Ok(request)
}

async fn read_body(session: &mut Session) -> Result<bytes::Bytes, Reply> {
    let mut body = bytes::BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(Reply::error(
                        ErrorCode::InvalidRequest,
                        "the request body is too large",
                    )
                    .with_status(413));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => {
                return Err(Reply::error(
                    ErrorCode::InvalidRequest,
                    "the request body could not be read",
                ))
            }
        }
    }
    Ok(body.freeze())
}

/// Writes a local answer. Unread request body would poison a kept-alive connection: a small
/// one is drained, anything else closes the connection (a refused upload is not worth
/// reading).
pub async fn answer(session: &mut Session, reply: Reply) -> pingora::Result<bool> {
    let req = session.req_header();
    let length = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let chunked = req.headers.contains_key(http::header::TRANSFER_ENCODING);
    let drain = !chunked && length.is_some_and(|l| l <= MAX_BODY);
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

/// Writes a refusal and closes the connection: what follows on it cannot be trusted.
pub async fn answer_and_close(session: &mut Session, reply: Reply) -> pingora::Result<bool> {
    session.set_keepalive(None);
    reply.write(session).await?;
    Ok(true)
}
