//! Cookies authgate reads back: any Cookie header is either a valid sealed session or
//! nothing, and anything sealed opens to exactly what went in, under its own purpose only.
#![no_main]

use std::sync::OnceLock;

use authgate::config::Config;
use authgate::crypto::Sealer;
use authgate::login::session;
use authgate::web::Request;
use libfuzzer_sys::fuzz_target;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| authgate::testing::config(""))
}

fuzz_target!(|data: &[u8]| {
    let sealer = Sealer::new(&[7u8; 32]);
    let sealed = sealer.seal("session", data);
    assert_eq!(sealer.open("session", &sealed).as_deref(), Some(data));
    assert_eq!(
        sealer.open("login", &sealed),
        None,
        "opened under another purpose"
    );

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(sealer.open("session", text), None, "forged a sealed value");
    let Ok(value) = http::HeaderValue::from_str(text) else {
        return;
    };
    let mut req = Request::new(http::Method::GET, "/consent");
    req.headers.insert(http::header::COOKIE, value);
    assert!(
        session::session(config(), &sealer, &req, 0).is_none(),
        "forged a session: {text}"
    );
});
