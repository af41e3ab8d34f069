//! The check of a 2026-07-28 request's mirrored `Mcp-Method` / `Mcp-Name` headers against its
//! JSON-RPC body. Input: the Mcp-Method value, a newline, the Mcp-Name value, a newline, the
//! body.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (method, name, body) = (parts.next(), parts.next(), parts.next().unwrap_or(b""));
    let mut headers = HeaderMap::new();
    for (header, value) in [("mcp-method", method), ("mcp-name", name)] {
        if let Some(v) = value
            .filter(|v| !v.is_empty())
            .and_then(|v| HeaderValue::from_bytes(v).ok())
        {
            headers.insert(header, v);
        }
    }
    match authgate::proxy::mcp::check(&headers, body) {
        Ok(call) => assert!(
            headers.contains_key("mcp-method"),
            "{call:?} passed without Mcp-Method"
        ),
        Err(mismatch) => {
            // The refusal is a JSON-RPC error reply, whatever the input.
            let _ = mismatch.reply();
        }
    }
});
