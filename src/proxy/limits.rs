//! What a request must look like before anything else reads it: headers within the configured
//! limits (431, like nginx's `large_client_header_buffers`), and framing that no upstream could
//! read differently (400 and the connection closed: request smuggling needs two parsers that
//! disagree on where a body ends).

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use pingora::http::RequestHeader;

use crate::config::HeaderLimits;
use crate::vocab::ErrorCode;
use crate::web::Reply;

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The request line is longer than a header line may be.
    UriTooLong,
    /// Headers beyond a limit; the reason names which.
    HeadersTooLarge(String),
    /// `Content-Length`/`Transfer-Encoding` that two parsers could read differently.
    AmbiguousFraming(&'static str),
}

impl Refusal {
    pub fn reply(&self) -> Reply {
        match self {
            Self::UriTooLong => Reply::error(
                ErrorCode::InvalidRequest,
                "the request line is longer than the gateway accepts",
            )
            .with_status(414),
            Self::HeadersTooLarge(why) => {
                Reply::error(ErrorCode::InvalidRequest, why).with_status(431)
            }
            Self::AmbiguousFraming(why) => Reply::error(ErrorCode::InvalidRequest, why),
        }
    }

    /// Framing errors close the connection: what follows on it cannot be trusted.
    pub fn closes(&self) -> bool {
        matches!(self, Self::AmbiguousFraming(_))
    }

    /// A short reason for the access log.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UriTooLong => "request_line_too_long",
            Self::HeadersTooLarge(_) => "headers_too_large",
            Self::AmbiguousFraming(_) => "ambiguous_framing",
        }
    }
}

/// Checks sizes first (cheap), then framing.
pub fn check(req: &RequestHeader, limits: &HeaderLimits) -> Result<(), Refusal> {
    // "METHOD SP target SP HTTP/1.1"
    let request_line = req.method.as_str().len() + req.raw_path().len() + 10;
    if request_line > limits.max_line {
        return Err(Refusal::UriTooLong);
    }
    let mut total = 0;
    let mut count = 0;
    for (name, value) in req.headers.iter() {
        let line = name.as_str().len() + 2 + value.len();
        if line > limits.max_line {
            return Err(Refusal::HeadersTooLarge(format!(
                "the header `{}` is larger than {} bytes",
                name.as_str(),
                limits.max_line
            )));
        }
        total += line + 2;
        count += 1;
    }
    if count > limits.max_count {
        return Err(Refusal::HeadersTooLarge(format!(
            "more than {} request headers",
            limits.max_count
        )));
    }
    if total > limits.max_total {
        return Err(Refusal::HeadersTooLarge(format!(
            "the request headers are larger than {} bytes in all",
            limits.max_total
        )));
    }
    framing(req)
}

/// One `Content-Length` of digits, or one `Transfer-Encoding: chunked`; nothing else. Pingora
/// tolerates repeated equal lengths (`5, 5`) and lists ending in `chunked`
/// (`identity, chunked`), which are legal but read differently by some servers.
fn framing(req: &RequestHeader) -> Result<(), Refusal> {
    let mut lengths = req.headers.get_all(CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        if lengths.next().is_some() {
            return Err(Refusal::AmbiguousFraming("several Content-Length headers"));
        }
        let v = first.as_bytes();
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return Err(Refusal::AmbiguousFraming(
                "Content-Length must be one decimal number",
            ));
        }
    }
    let mut codings = req.headers.get_all(TRANSFER_ENCODING).iter();
    if let Some(first) = codings.next() {
        if codings.next().is_some() || !first.as_bytes().eq_ignore_ascii_case(b"chunked") {
            return Err(Refusal::AmbiguousFraming(
                "Transfer-Encoding must be exactly `chunked`",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeaderLimits = HeaderLimits {
        max_line: 1024,
        max_total: 4096,
        max_count: 10,
    };

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/mcp", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn sizes_and_counts() {
        assert_eq!(check(&req(&[("a", "b")]), &LIMITS), Ok(()));
        let long = "x".repeat(1100);
        assert!(matches!(
            check(&req(&[("cookie", &long)]), &LIMITS),
            Err(Refusal::HeadersTooLarge(m)) if m.contains("`cookie`")
        ));
        let many: Vec<(String, String)> = (0..11).map(|i| (format!("h{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert!(matches!(
            check(&req(&many), &LIMITS),
            Err(Refusal::HeadersTooLarge(_))
        ));
        let big = "y".repeat(900);
        let five: Vec<(String, &str)> = (0..5).map(|i| (format!("b{i}"), big.as_str())).collect();
        let five: Vec<(&str, &str)> = five.iter().map(|(a, b)| (a.as_str(), *b)).collect();
        assert!(
            matches!(check(&req(&five), &LIMITS), Err(Refusal::HeadersTooLarge(m)) if m.contains("in all"))
        );
        let line =
            RequestHeader::build("GET", format!("/{}", "a".repeat(1100)).as_bytes(), None).unwrap();
        assert_eq!(check(&line, &LIMITS), Err(Refusal::UriTooLong));
    }

    #[test]
    fn only_unambiguous_framing_passes() {
        let ok = |h: &[(&str, &str)]| check(&req(h), &LIMITS).is_ok();
        assert!(ok(&[("content-length", "5")]));
        assert!(ok(&[("transfer-encoding", "chunked")]));
        assert!(ok(&[("transfer-encoding", "Chunked")]));
        assert!(!ok(&[("content-length", "5, 5")]));
        assert!(!ok(&[("content-length", "5"), ("content-length", "5")]));
        assert!(!ok(&[("content-length", "+5")]));
        assert!(!ok(&[("transfer-encoding", "chunked, chunked")]));
        assert!(!ok(&[("transfer-encoding", "identity, chunked")]));
        assert!(!ok(&[("transfer-encoding", "gzip")]));
        assert!(!ok(&[
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked")
        ]));
    }
}
