//! A gateway endpoint's view of a request: owned, Pingora-free, so OAuth handlers are plain
//! functions from `Request` to `Reply` and tests call them without a server.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method};

/// Request bodies the gateway reads itself (forms, registration JSON) are small.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub client_ip: Option<IpAddr>,
}

impl Request {
    pub fn new(method: Method, path_and_query: &str) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path_and_query.to_string(), None),
        };
        Self {
            method,
            path,
            query,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            client_ip: None,
        }
    }

    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Query parameters; a parameter given twice is an error per RFC 6749 §3.1, so callers
    /// can refuse it.
    pub fn query_params(&self) -> Params {
        Params::parse(self.query.as_deref().unwrap_or(""))
    }

    /// The body as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> Params {
        Params::parse(std::str::from_utf8(&self.body).unwrap_or(""))
    }

    pub fn is_form(&self) -> bool {
        self.header(http::header::CONTENT_TYPE).is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        super::cookies::get(&self.headers, name)
    }
}

/// Decoded `key=value` pairs, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// `application/x-www-form-urlencoded`, as a query string or a form body.
    pub fn parse(raw: &str) -> Self {
        Self(
            form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first key that appears more than once.
    pub fn repeated(&self) -> Option<&str> {
        self.0
            .iter()
            .enumerate()
            .find(|(i, (k, _))| self.0[..*i].iter().any(|(k2, _)| k2 == k))
            .map(|(_, (k, _))| k.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_query_form_and_cookies() {
        let mut r = Request::new(Method::GET, "/authorize?a=1&b=x%20y&a=2");
        assert_eq!(r.path, "/authorize");
        let q = r.query_params();
        assert_eq!(q.get("a"), Some("1"));
        assert_eq!(q.get("b"), Some("x y"));
        assert_eq!(q.repeated(), Some("a"));
        r.headers.insert(
            "cookie",
            "x=1; authgate_session=abc.def; y=2".parse().unwrap(),
        );
        assert_eq!(r.cookie("authgate_session").as_deref(), Some("abc.def"));
        assert_eq!(r.cookie("nope"), None);
    }
}
