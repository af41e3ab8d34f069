//! Cookies the gateway sets and reads (the `cookie` crate builds and parses them). Every one
//! is `HttpOnly`, `SameSite=Lax`, `Path=/`; `Secure` (and the `__Host-` name prefix, chosen
//! by the caller) when the gateway is served over https.

use cookie::{Cookie, SameSite};

/// A `Set-Cookie` value.
pub fn set(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ))
        .build()
        .to_string()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn get(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_read() {
        let c = set("__Host-authgate_session", "abc.def", 60, true);
        for part in [
            "__Host-authgate_session=abc.def",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{part} in {c}");
        }
        assert!(!set("x", "1", 0, false).contains("Secure"));
        let mut h = http::HeaderMap::new();
        h.append(
            "cookie",
            "x=1; authgate_session=abc.def; y=2".parse().unwrap(),
        );
        h.append("cookie", "z=3".parse().unwrap());
        assert_eq!(get(&h, "authgate_session").as_deref(), Some("abc.def"));
        assert_eq!(get(&h, "z").as_deref(), Some("3"));
        assert_eq!(get(&h, "nope"), None);
    }
}
