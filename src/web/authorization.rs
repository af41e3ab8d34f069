//! The `Authorization` request header, read one way everywhere: a Bearer token (the
//! protected routes, registration's initial access token) or Basic client credentials (the
//! token, revocation and introspection endpoints). Schemes are case-insensitive (RFC 9110
//! §11.1); more than one `Authorization` header is malformed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderMap;

use crate::vocab::Secret;

#[derive(Debug, PartialEq, Eq)]
pub enum Credentials<'h> {
    Bearer(&'h str),
    /// RFC 6749 §2.3.1: both parts form-urlencoded inside the base64.
    Basic {
        id: String,
        secret: Secret,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Several `Authorization` headers.
    Several,
    /// Not `Bearer <token>` or `Basic <base64 of id:secret>`.
    Unreadable,
}

/// The request's credentials; `Ok(None)` when it sends none.
pub fn credentials(headers: &HeaderMap) -> Result<Option<Credentials<'_>>, Malformed> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Malformed::Several);
    }
    let value = value.to_str().map_err(|_| Malformed::Unreadable)?;
    let (scheme, rest) = value.split_once(' ').ok_or(Malformed::Unreadable)?;
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(Malformed::Unreadable);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(Credentials::Bearer(rest)));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Malformed::Unreadable);
    }
    let raw = STANDARD.decode(rest).map_err(|_| Malformed::Unreadable)?;
    let raw = String::from_utf8(raw).map_err(|_| Malformed::Unreadable)?;
    let (id, secret) = raw.split_once(':').ok_or(Malformed::Unreadable)?;
    Ok(Some(Credentials::Basic {
        id: form_decode(id).ok_or(Malformed::Unreadable)?,
        secret: Secret::new(form_decode(secret).ok_or(Malformed::Unreadable)?),
    }))
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a space, then `%XX`.
fn form_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("authorization", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer_and_basic_read_the_same_way_everywhere() {
        assert_eq!(credentials(&headers(&[])), Ok(None));
        assert_eq!(
            credentials(&headers(&["Bearer abc"])),
            Ok(Some(Credentials::Bearer("abc")))
        );
        assert_eq!(
            credentials(&headers(&["bearer  abc "])),
            Ok(Some(Credentials::Bearer("abc")))
        );
        assert_eq!(
            credentials(&headers(&["BEARER abc"])),
            Ok(Some(Credentials::Bearer("abc")))
        );
        assert_eq!(
            credentials(&headers(&["Bearer a", "Bearer b"])),
            Err(Malformed::Several)
        );
        assert_eq!(
            credentials(&headers(&["Bearer "])),
            Err(Malformed::Unreadable)
        );
        assert_eq!(
            credentials(&headers(&["Token abc"])),
            Err(Malformed::Unreadable)
        );
        // id "my client", secret "p%ss:w+rd" (form-urlencoded, then base64).
        let basic = format!("basic {}", STANDARD.encode("my+client:p%25ss%3Aw%2Brd"));
        match credentials(&headers(&[&basic])).unwrap().unwrap() {
            Credentials::Basic { id, secret } => {
                assert_eq!(id, "my client");
                assert_eq!(secret.expose(), "p%ss:w+rd");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            credentials(&headers(&["Basic !!!"])),
            Err(Malformed::Unreadable)
        );
        let no_colon = format!("Basic {}", STANDARD.encode("nocolon"));
        assert_eq!(
            credentials(&headers(&[&no_colon])),
            Err(Malformed::Unreadable)
        );
    }
}
