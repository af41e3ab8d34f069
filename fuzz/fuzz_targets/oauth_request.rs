//! Any request to the authorization server's endpoints, through the same handler the gateway
//! runs (on a real store in a temporary directory): authorize queries, token and revocation
//! forms, registration JSON, sign-in and consent forms, cookies, Authorization headers. Every
//! answer is a 2xx-4xx reply (an OAuth error as JSON where the endpoint speaks OAuth), never
//! a panic or a 500.
//!
//! Input, as text: `METHOD /path?query`, header lines `name: value`, an empty line, the body
//! (fuzz/seeds/oauth_request has real requests to start from). The config has a trusted
//! public client `cli` with redirect `http://127.0.0.1/callback`, the local user alice
//! (password "demo"), and `/mcp` with scope `mcp:tools`; metadata documents are not fetched.
#![no_main]

use std::sync::OnceLock;

use authgate::config::Config;
use authgate::testing::TestAuthority;
use authgate::vocab::paths::Endpoint;
use authgate::web::Request;
use http::{HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

struct World {
    runtime: tokio::runtime::Runtime,
    config: Config,
    auth: TestAuthority,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World {
        runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        config: authgate::testing::config(
            "[cimd]\nenabled = false\n\n[[client]]\nclient_id = \"cli\"\nname = \"CLI\"\nredirect_uris = [\"http://127.0.0.1/callback\"]\ntrusted = true",
        ),
        auth: authgate::testing::authority(),
    })
}

/// The request the text describes, or `None` when it is not one.
fn request(text: &str) -> Option<Request> {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let (method, target) = lines.next()?.split_once(' ')?;
    let mut req = Request::new(Method::from_bytes(method.as_bytes()).ok()?, target);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        req.headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    req.body = body.as_bytes().to_vec().into();
    req.client_ip = Some([127, 0, 0, 1].into());
    Some(req)
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = std::str::from_utf8(data).ok().and_then(request) else {
        return;
    };
    let Some(endpoint) = Endpoint::of(&req.path) else {
        return;
    };
    let w = world();
    let now = 1_800_000_000;
    let reply = w
        .runtime
        .block_on(w.auth.handle(&w.config, endpoint, &req, now));
    assert!(
        (200..500).contains(&reply.status),
        "{} for {} {}: {}",
        reply.status,
        req.method,
        req.path,
        String::from_utf8_lossy(&reply.body)
    );
});
