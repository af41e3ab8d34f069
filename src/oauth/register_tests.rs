//! Registration rules (RFC 7591 §2, §3.2) and the per-address rate limit, with a fake clock.

use super::*;
use crate::testing::config;

fn metadata(v: serde_json::Value) -> Metadata {
    serde_json::from_value(v).unwrap()
}

#[test]
fn metadata_is_checked_into_a_record() {
    let cfg = config("");
    let (rec, secret) = validate(
        &cfg,
        metadata(json!({
            "redirect_uris": ["http://127.0.0.1/cb", "https://app.example/cb"],
            "token_endpoint_auth_method": "none",
            "client_name": "Inspector",
            "software_id": "ignored",
        })),
        7,
    )
    .unwrap();
    assert!(secret.is_none(), "a public client gets no secret");
    assert!(rec.client_id.as_str().starts_with("agc_"));
    assert_eq!(
        rec.grant_types,
        ["authorization_code", "refresh_token"],
        "the default"
    );
    assert!(rec.refreshes());
    assert_eq!(rec.created_at, 7);
    let (rec, secret) = validate(
        &cfg,
        metadata(json!({"redirect_uris": ["https://a.example/cb"]})),
        7,
    )
    .unwrap();
    assert_eq!(
        rec.token_endpoint_auth_method, "client_secret_basic",
        "RFC 7591's default"
    );
    let secret = secret.unwrap();
    assert!(secret.starts_with("ag_cs_"));
    assert_eq!(
        rec.secret_sha256,
        Some(SecretHash::of(&secret)),
        "only the hash is kept"
    );
    let (rec, _) = validate(
        &cfg,
        metadata(json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["authorization_code"]})),
        7,
    )
    .unwrap();
    assert!(!rec.refreshes());
}

#[test]
fn bad_metadata_gets_the_rfc_error() {
    let cfg = config("");
    let custom = config("[auth]\nallow_custom_scheme_redirects = true");
    for (cfg, v, want) in [
        (&cfg, json!({}), ErrorCode::InvalidRedirectUri),
        (
            &cfg,
            json!({"redirect_uris": []}),
            ErrorCode::InvalidRedirectUri,
        ),
        (
            &cfg,
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            ErrorCode::InvalidRedirectUri,
        ),
        (
            &cfg,
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            ErrorCode::InvalidRedirectUri,
        ),
        (
            &cfg,
            json!({"redirect_uris": ["cursor://cb"]}),
            ErrorCode::InvalidRedirectUri,
        ),
        (
            &custom,
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            ErrorCode::InvalidRedirectUri,
        ),
        (
            &cfg,
            json!({"redirect_uris": ["https://a.example/cb#f"]}),
            ErrorCode::InvalidRedirectUri,
        ),
        (
            &cfg,
            json!({"redirect_uris": vec!["https://a.example/cb"; 11]}),
            ErrorCode::InvalidRedirectUri,
        ),
        (
            &cfg,
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            ErrorCode::InvalidClientMetadata,
        ),
        (
            &cfg,
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["refresh_token"]}),
            ErrorCode::InvalidClientMetadata,
        ),
        (
            &cfg,
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["authorization_code", "implicit"]}),
            ErrorCode::InvalidClientMetadata,
        ),
        (
            &cfg,
            json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
            ErrorCode::InvalidClientMetadata,
        ),
        (
            &cfg,
            json!({"redirect_uris": ["https://a.example/cb"], "client_name": "x".repeat(201)}),
            ErrorCode::InvalidClientMetadata,
        ),
        (
            &cfg,
            json!({"redirect_uris": ["https://a.example/cb"], "client_name": "a\u{202e}b"}),
            ErrorCode::InvalidClientMetadata,
        ),
    ] {
        assert_eq!(
            validate(cfg, metadata(v.clone()), 0).unwrap_err().code,
            want,
            "{v}"
        );
    }
    assert!(validate(
        &custom,
        metadata(json!({"redirect_uris": ["cursor://cb"]})),
        0
    )
    .is_ok());
}

#[test]
fn the_rate_limit_is_a_steady_rate_per_address() {
    let clock = governor::clock::FakeRelativeClock::default();
    let limiter = RateLimiter::with_clock(clock.clone());
    let a = Some("10.0.0.1".parse().unwrap());
    let b = Some("10.0.0.2".parse().unwrap());
    for _ in 0..3 {
        assert!(limiter.check(a, 3).is_ok());
    }
    let wait = limiter.check(a, 3).unwrap_err();
    assert_eq!(wait, Duration::from_secs(20), "3 a minute: one every 20 s");
    assert!(limiter.check(b, 3).is_ok(), "addresses are counted apart");
    clock.advance(Duration::from_secs(20));
    assert!(limiter.check(a, 3).is_ok());
    assert!(
        limiter.check(a, 3).is_err(),
        "no second burst at a minute's edge"
    );
    clock.advance(Duration::from_secs(60));
    assert!(
        limiter.check(a, 3).is_ok() && limiter.check(a, 3).is_ok() && limiter.check(a, 3).is_ok()
    );
    assert!(
        limiter.check(a, 0).is_ok() && limiter.check(None, 3).is_ok(),
        "unlimited"
    );
    // A new limit from a reloaded config applies at once.
    assert!(limiter.check(a, 100).is_ok());
}
