//! CSRF tokens for the forms authgate serves (local login, consent). A form's token is an
//! HMAC of a random per-browser cookie, the pending flow's id and the form's name, so a page
//! on another site can neither forge one (it cannot read or set our cookie) nor reuse one
//! across flows or forms. The check does not depend on `Origin`: browsers send `Origin: null`
//! on same-origin posts under strict referrer policies, and that must not lock people out.
//! Replays are stopped one level down: a flow mints at most one authorization code.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::session;
use crate::config::Config;
use crate::web::Request;

/// Which form a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Login,
    Consent,
    /// A person's connected accounts page (bound to the person, not a flow).
    Connections,
}

impl Form {
    fn label(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Consent => "consent",
            Self::Connections => "connections",
        }
    }
}

const COOKIE: &str = "csrf";

/// Issues and checks form tokens under a key derived from the gateway's sealing key.
#[derive(Clone)]
pub struct FormTokens {
    key: [u8; 32],
}

/// A token to put in a form, and the cookie to set when this browser had none.
pub struct Issued {
    pub token: String,
    pub set_cookie: Option<String>,
}

impl FormTokens {
    pub fn new(session_key: &[u8; 32]) -> Self {
        use sha2::Digest;
        let mut h = Sha256::new();
        h.update(b"authgate form tokens\0");
        h.update(session_key);
        Self {
            key: h.finalize().into(),
        }
    }

    fn token(&self, browser: &str, flow_id: &str, form: Form) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        for part in [browser, flow_id, form.label()] {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part.as_bytes());
        }
        B64.encode(mac.finalize().into_bytes())
    }

    /// The token for `form` of flow `flow_id` in the requesting browser.
    pub fn issue(&self, config: &Config, req: &Request, flow_id: &str, form: Form) -> Issued {
        let existing = req
            .cookie(&session::cookie_name(config, COOKIE))
            .filter(|c| c.len() >= 32);
        let (browser, set_cookie) = match existing {
            Some(b) => (b, None),
            None => {
                let b = crate::crypto::random_secret("");
                let cookie =
                    session::set_cookie(config, COOKIE, &b, config.auth.session_ttl.as_secs());
                (b, Some(cookie))
            }
        };
        Issued {
            token: self.token(&browser, flow_id, form),
            set_cookie,
        }
    }

    /// Whether `presented` is the token `issue` gave this browser for this flow and form.
    pub fn verify(
        &self,
        config: &Config,
        req: &Request,
        flow_id: &str,
        form: Form,
        presented: Option<&str>,
    ) -> bool {
        let (Some(browser), Some(presented)) =
            (req.cookie(&session::cookie_name(config, COOKIE)), presented)
        else {
            return false;
        };
        let expected = self.token(&browser, flow_id, form);
        crate::vocab::SecretHash::of(&expected).ct_eq(&crate::vocab::SecretHash::of(presented))
    }
}

/// A form post's `Origin` is acceptable when absent or `null` (the token decides) or our own
/// origin; a foreign origin is refused whatever the token says.
pub fn origin_acceptable(config: &Config, req: &Request) -> bool {
    match req.header(http::header::ORIGIN) {
        None | Some("null") => true,
        Some(o) => {
            url::Url::parse(o).ok().map(|u| u.origin())
                == url::Url::parse(config.server.public_url.as_str())
                    .ok()
                    .map(|u| u.origin())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "[server]\npublic_url = \"https://gw.example\"\n[[upstream]]\nname = \"a\"\npath = \"/a\"\nurl = \"http://127.0.0.1:1\"\nauth = \"none\"\n";
        crate::config::parse(std::path::Path::new("t.toml"), text, |_| None).unwrap()
    }

    fn with_cookie(cookie: Option<&str>, origin: Option<&str>) -> Request {
        let mut r = Request::new(http::Method::POST, "/consent");
        if let Some(c) = cookie {
            r.headers.insert(
                "cookie",
                format!("__Host-authgate_csrf={c}").parse().unwrap(),
            );
        }
        if let Some(o) = origin {
            r.headers.insert("origin", o.parse().unwrap());
        }
        r
    }

    #[test]
    fn tokens_bind_browser_flow_and_form() {
        let c = config();
        let t = FormTokens::new(&[7; 32]);
        let issued = t.issue(&c, &with_cookie(None, None), "flow1", Form::Consent);
        let set = issued
            .set_cookie
            .expect("a browser without the cookie gets one");
        assert!(set.starts_with("__Host-authgate_csrf="), "{set}");
        assert!(set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Lax"));
        let browser = set
            .trim_start_matches("__Host-authgate_csrf=")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let req = with_cookie(Some(&browser), Some("null"));
        let tok = Some(issued.token.as_str());
        assert!(t.verify(&c, &req, "flow1", Form::Consent, tok));
        assert!(
            !t.verify(&c, &req, "flow2", Form::Consent, tok),
            "other flow"
        );
        assert!(!t.verify(&c, &req, "flow1", Form::Login, tok), "other form");
        let other = with_cookie(Some(&crate::crypto::random_secret("")), None);
        assert!(
            !t.verify(&c, &other, "flow1", Form::Consent, tok),
            "other browser"
        );
        assert!(!t.verify(&c, &with_cookie(None, None), "flow1", Form::Consent, tok));
        assert!(!t.verify(&c, &req, "flow1", Form::Consent, None));
        let again = t.issue(&c, &req, "flow1", Form::Consent);
        assert!(again.set_cookie.is_none(), "the browser's cookie is kept");
        assert_eq!(again.token, issued.token);
        assert!(!FormTokens::new(&[8; 32]).verify(&c, &req, "flow1", Form::Consent, tok));
    }

    #[test]
    fn origins() {
        let c = config();
        assert!(origin_acceptable(&c, &with_cookie(None, None)));
        assert!(origin_acceptable(&c, &with_cookie(None, Some("null"))));
        assert!(origin_acceptable(
            &c,
            &with_cookie(None, Some("https://gw.example"))
        ));
        assert!(!origin_acceptable(
            &c,
            &with_cookie(None, Some("https://evil.example"))
        ));
        assert!(!origin_acceptable(
            &c,
            &with_cookie(None, Some("http://gw.example"))
        ));
    }
}
