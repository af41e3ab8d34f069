//! What MCP traffic does, for metrics: the JSON-RPC methods (and tool names) a request body
//! calls, batches included, and the JSON-RPC errors in responses, plain JSON or SSE events.
//! Values are parsed only as far as the keys that matter; everything else is skipped
//! without being copied.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::mcp::McpCall;

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    error: Option<IgnoredAny>,
    #[serde(default)]
    id: Option<IgnoredAny>,
}

/// One JSON-RPC message or a batch of them, told apart by the first byte: serde's untagged
/// enums would first copy the whole value (arguments included) into a buffer.
fn one_or_batch<'a, T: Deserialize<'a>>(json: &'a [u8]) -> Option<Vec<T>> {
    match json.trim_ascii_start().first()? {
        b'[' => serde_json::from_slice(json).ok(),
        _ => serde_json::from_slice(json).ok().map(|one| vec![one]),
    }
}

/// The calls in a JSON-RPC request body (one object or a batch); empty when it is not one.
pub fn calls(body: &[u8]) -> Vec<McpCall> {
    let Some(list) = one_or_batch::<Request>(body) else {
        return Vec::new();
    };
    list.into_iter()
        .filter_map(|r| {
            let method = r.method?.into_owned();
            let name = match method.as_str() {
                "tools/call" | "prompts/get" => {
                    r.params.and_then(|p| p.name).map(|n| n.into_owned())
                }
                _ => None,
            };
            Some(McpCall { method, name })
        })
        .collect()
}

/// JSON-RPC error responses in one JSON value (an object or a batch of them).
pub fn errors_in(json: &[u8]) -> usize {
    one_or_batch::<Message>(json).map_or(0, |ms| {
        ms.iter()
            .filter(|m| m.error.is_some() && m.id.is_some())
            .count()
    })
}

/// Counts JSON-RPC errors in a response as it streams by.
#[derive(Debug, Default)]
pub enum ResponseScan {
    /// Not JSON or SSE: nothing to count.
    #[default]
    Off,
    /// `application/json`: the body, up to [`MAX_JSON`].
    Json(Vec<u8>),
    /// `text/event-stream`: the unfinished line.
    Sse(Vec<u8>),
}

/// Larger JSON responses are not inspected.
const MAX_JSON: usize = 256 * 1024;
/// Longer SSE lines are not inspected.
const MAX_LINE: usize = 256 * 1024;

impl ResponseScan {
    pub fn for_content_type(content_type: Option<&str>) -> Self {
        match content_type.map(|c| c.split(';').next().unwrap_or("").trim()) {
            Some("application/json") => Self::Json(Vec::new()),
            Some("text/event-stream") => Self::Sse(Vec::new()),
            _ => Self::Off,
        }
    }

    /// Feeds a chunk; returns the errors completed by it (and by the end, when `end`).
    pub fn feed(&mut self, chunk: &[u8], end: bool) -> usize {
        match self {
            Self::Off => 0,
            Self::Json(buf) => {
                if buf.len() + chunk.len() > MAX_JSON {
                    *self = Self::Off;
                    return 0;
                }
                buf.extend_from_slice(chunk);
                if end {
                    let n = errors_in(buf);
                    *self = Self::Off;
                    n
                } else {
                    0
                }
            }
            Self::Sse(line) => {
                let mut found = 0;
                let mut rest = chunk;
                while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
                    line.extend_from_slice(&rest[..pos]);
                    found += sse_line_errors(line);
                    line.clear();
                    rest = &rest[pos + 1..];
                }
                if line.len() + rest.len() <= MAX_LINE {
                    line.extend_from_slice(rest);
                } else {
                    line.clear();
                }
                found
            }
        }
    }
}

fn sse_line_errors(line: &[u8]) -> usize {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.strip_prefix(b"data:") {
        Some(data) => errors_in(data.trim_ascii_start()),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_calls_from_single_and_batched_requests() {
        let one = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}}"#;
        assert_eq!(
            calls(one),
            vec![McpCall {
                method: "tools/call".into(),
                name: Some("search".into())
            }]
        );
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"result":{}}]"#;
        let got: Vec<String> = calls(batch).into_iter().map(|c| c.method).collect();
        assert_eq!(got, ["tools/list", "notifications/initialized"]);
        assert!(calls(b"not json").is_empty());
        assert!(calls(b"").is_empty());
    }

    #[test]
    fn counts_jsonrpc_errors_in_json_and_sse_responses() {
        let mut json = ResponseScan::for_content_type(Some("application/json; charset=utf-8"));
        assert_eq!(json.feed(br#"{"jsonrpc":"2.0","id":1,"#, false), 0);
        assert_eq!(
            json.feed(br#""error":{"code":-32601,"message":"no"}}"#, true),
            1
        );
        let mut sse = ResponseScan::for_content_type(Some("text/event-stream"));
        let events = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"text\":\"\\\"error\\\":1\"}}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-1,\"message\":\"x\"}}\r\n\r\n";
        let (a, b) = events.split_at(40);
        assert_eq!(sse.feed(a, false) + sse.feed(b, true), 1);
        // A notification carrying an "error" field is no error response.
        assert_eq!(
            errors_in(br#"{"jsonrpc":"2.0","method":"x","params":{},"error":1}"#),
            0
        );
        assert_eq!(
            ResponseScan::for_content_type(Some("text/html")).feed(b"x", true),
            0
        );
    }
}
