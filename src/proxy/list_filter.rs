//! Filters `tools/list`, `prompts/list` and `resources/list` responses so a caller is not
//! offered what its policy forbids it to call. Works on a body arriving chunk by chunk, as one
//! `application/json` body (buffered, up to a cap) or as an SSE stream, where only the event
//! being assembled is held: unrelated events (progress, logs) must reach the client at once.
//!
//! Only a matching response is re-serialized; everything else passes byte for byte. Without
//! serde_json's `preserve_order` a re-serialized object may have its keys reordered, which
//! JSON readers do not notice.

use bytes::Bytes;
use serde_json::Value;

/// The most held at once: one JSON body or one SSE event. Past it, filtering stops rather than
/// let an upstream make the gateway hold without bound.
const CAP: usize = 16 << 20;

/// Which list a request asked for: the result field holding the items and each item's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

impl ListKind {
    /// The kind of list a JSON-RPC method asks for: "tools/list", "prompts/list", "resources/list".
    pub fn of_method(method: &str) -> Option<ListKind> {
        match method {
            "tools/list" => Some(Self::Tools),
            "prompts/list" => Some(Self::Prompts),
            "resources/list" => Some(Self::Resources),
            _ => None,
        }
    }

    /// The result field: "tools" / "prompts" / "resources".
    pub fn field(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
        }
    }

    /// The item key that names an item: "name" / "name" / "uri".
    pub fn item_key(self) -> &'static str {
        match self {
            Self::Resources => "uri",
            _ => "name",
        }
    }
}

/// Decides, per item name (or uri), whether the caller may see it.
pub type Keep = Box<dyn Fn(ListKind, &str) -> bool + Send + Sync>;

pub struct ListFilter {
    sse: bool,
    targets: Vec<(Value, ListKind)>,
    keep: Keep,
    mark_private: bool,
    /// The body so far (JSON) or the event being assembled (SSE).
    buf: Vec<u8>,
    /// SSE: where the first unterminated line of `buf` starts, and how far it has been searched
    /// for a line ending (so a long line arriving in small chunks is not rescanned each time).
    line_start: usize,
    scanned: usize,
    /// Past the cap: the rest passes through unchanged.
    bypass: bool,
    removed: usize,
}

impl ListFilter {
    /// A filter for the responses to the list requests `targets` (JSON-RPC id + kind; a batch
    /// may hold several). `None` when the content type is neither application/json nor
    /// text/event-stream (parameters like `; charset=utf-8` allowed): then nothing is filtered.
    /// `mark_private`: a filtered result gets `"cacheScope": "private"` (MCP 2026-07-28:
    /// a list that differs per caller must not be served from a shared cache).
    pub fn new(
        content_type: Option<&str>,
        targets: Vec<(Value, ListKind)>,
        keep: Keep,
        mark_private: bool,
    ) -> Option<Self> {
        let mime = content_type?.split(';').next()?.trim();
        let sse = match mime.to_ascii_lowercase().as_str() {
            "text/event-stream" => true,
            "application/json" => false,
            _ => return None,
        };
        Some(Self {
            sse,
            targets,
            keep,
            mark_private,
            buf: Vec::new(),
            line_start: 0,
            scanned: 0,
            bypass: false,
            removed: 0,
        })
    }

    /// Feeds one chunk of the response body (`end`: it is the last); returns what to send to
    /// the client now (possibly empty).
    pub fn feed(&mut self, chunk: &[u8], end: bool) -> Bytes {
        if self.bypass {
            return Bytes::copy_from_slice(chunk);
        }
        if self.sse {
            return self.feed_sse(chunk, end);
        }
        if self.buf.len() + chunk.len() > CAP {
            self.bypass = true;
            let mut out = std::mem::take(&mut self.buf);
            out.extend_from_slice(chunk);
            return out.into();
        }
        self.buf.extend_from_slice(chunk);
        if !end {
            return Bytes::new();
        }
        let body = std::mem::take(&mut self.buf);
        let Ok(mut msg) = serde_json::from_slice::<Value>(&body) else {
            return body.into();
        };
        match self.filter(&mut msg) {
            true => serde_json::to_vec(&msg).unwrap_or(body).into(),
            false => body.into(),
        }
    }

    /// How many items were removed so far (for logs/metrics).
    pub fn removed(&self) -> usize {
        self.removed
    }

    /// Emits every event completed by `chunk`; holds only the unfinished one.
    fn feed_sse(&mut self, chunk: &[u8], end: bool) -> Bytes {
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut event_start = 0;
        while let Some((eol, next)) = line_end(&buf, self.scanned, end) {
            if eol == self.line_start {
                // A blank line ends the event.
                let event = &buf[event_start..next];
                match self.rewrite_event(event) {
                    Some(new) => out.extend_from_slice(&new),
                    None => out.extend_from_slice(event),
                }
                event_start = next;
            }
            (self.line_start, self.scanned) = (next, next);
        }
        // Only a final `\r` may need another look.
        self.scanned = buf.len().saturating_sub(1).max(self.line_start) - event_start;
        self.line_start -= event_start;
        buf.drain(..event_start);
        if end || buf.len() > CAP {
            self.bypass = !end;
            out.append(&mut buf);
            (self.line_start, self.scanned) = (0, 0);
        }
        self.buf = buf;
        out.into()
    }

    /// A complete event with its data replaced by the filtered message, or `None` to send it as is.
    fn rewrite_event(&mut self, event: &[u8]) -> Option<Vec<u8>> {
        let mut lines = Vec::new();
        let mut at = 0;
        while let Some((eol, next)) = line_end(event, at, true) {
            lines.push((&event[at..eol], &event[eol..next]));
            at = next;
        }
        let data: Vec<&[u8]> = lines
            .iter()
            .filter_map(|(line, _)| data_value(line))
            .collect();
        let mut msg: Value = serde_json::from_slice(&data.join(&b'\n')).ok()?;
        if !self.filter(&mut msg) {
            return None;
        }
        // Compact JSON has no raw newline, so it fits one `data:` line.
        let json = serde_json::to_vec(&msg).ok()?;
        let eol = lines.last()?.1;
        let mut out = Vec::with_capacity(event.len());
        let mut wrote = false;
        for (line, term) in lines {
            if data_value(line).is_none() {
                out.extend_from_slice(line);
                out.extend_from_slice(term);
            } else if !wrote {
                wrote = true;
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&json);
                out.extend_from_slice(eol);
            }
        }
        Some(out)
    }

    /// Filters a message or each message of a batch; whether anything was changed.
    fn filter(&mut self, msg: &mut Value) -> bool {
        match msg {
            // Every element is filtered: no short-circuit.
            Value::Array(batch) => {
                let changed = batch.iter_mut().map(|m| self.filter_one(m) == Some(true));
                changed.filter(|&c| c).count() > 0
            }
            _ => self.filter_one(msg) == Some(true),
        }
    }

    /// `None` when `msg` is no target's list response, else whether it was changed.
    fn filter_one(&mut self, msg: &mut Value) -> Option<bool> {
        let obj = msg.as_object_mut()?;
        let id = obj.get("id")?;
        let &(_, kind) = self.targets.iter().find(|(t, _)| t == id)?;
        let result = obj.get_mut("result")?.as_object_mut()?;
        let items = result.get_mut(kind.field())?.as_array_mut()?;
        let before = items.len();
        let keep = &self.keep;
        // Only a well-formed item with a forbidden name goes; the client judges the rest.
        items.retain(|item| {
            item.get(kind.item_key())
                .and_then(Value::as_str)
                .is_none_or(|name| keep(kind, name))
        });
        let removed = before - items.len();
        self.removed += removed;
        if self.mark_private {
            result.insert("cacheScope".into(), "private".into());
        }
        Some(removed > 0 || self.mark_private)
    }
}

/// The first line ending in `buf` at or after `from`: (where it starts, where the next line
/// starts). `None` when there is none yet, or a final `\r` might still be followed by `\n`.
fn line_end(buf: &[u8], from: usize, end: bool) -> Option<(usize, usize)> {
    let eol = from
        + buf
            .get(from..)?
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')?;
    let len = match (buf[eol], buf.get(eol + 1)) {
        (b'\r', Some(b'\n')) => 2,
        (b'\r', None) if !end => return None,
        _ => 1,
    };
    Some((eol, eol + len))
}

/// The value of a `data` field line (one space after the colon stripped).
fn data_value(line: &[u8]) -> Option<&[u8]> {
    match line.strip_prefix(b"data")? {
        [] => Some(&[]),
        [b':', b' ', rest @ ..] | [b':', rest @ ..] => Some(rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SSE: &str = "text/event-stream";

    fn filter(ct: &str, targets: &[(Value, ListKind)], private: bool) -> ListFilter {
        let keep: Keep = Box::new(|_, name| !name.starts_with("secret"));
        ListFilter::new(Some(ct), targets.to_vec(), keep, private).unwrap()
    }

    #[test]
    fn content_types_and_methods() {
        let cts = [
            Some("application/json; charset=utf-8"),
            Some("Text/Event-Stream"),
        ];
        for (ct, some) in cts
            .map(|ct| (ct, true))
            .into_iter()
            .chain([(Some("text/html"), false), (None, false)])
        {
            let keep: Keep = Box::new(|_, _| true);
            assert_eq!(
                ListFilter::new(ct, vec![], keep, false).is_some(),
                some,
                "{ct:?}"
            );
        }
        assert_eq!(ListKind::of_method("prompts/list"), Some(ListKind::Prompts));
        assert_eq!(ListKind::of_method("tools/call"), None);
    }

    #[test]
    fn json_bodies() {
        let tools = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"secret_x"},{"b":1},"s"]}}"#;
        let kept = json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"b":1},"s"]}});
        let mut private = kept.clone();
        private["result"]["cacheScope"] = json!("private");
        let hidden = json!({"tools":[{"name":"secret"}]});
        let batch = json!([{"id":"a","result":{"tools":[{"name":"secret"},{"name":"b"}]}},{"id":"z","result":hidden}]);
        let batch_out =
            json!([{"id":"a","result":{"tools":[{"name":"b"}]}},{"id":"z","result":hidden}]);
        let both_out = json!([batch_out[0], {"id":"z","result":{"tools":[]}}]);
        let batch = batch.to_string();
        let other_id = "{ \"id\": 2, \"result\": {\"tools\": [{\"name\": \"secret\"}]} }\n";
        let error = r#"{"jsonrpc":"2.0", "id":1, "error":{"code":-32601,"message":"x"}}"#;
        let tool = |id: Value| (id, ListKind::Tools);
        let (one, str_one, a) = ([tool(json!(1))], [tool(json!("1"))], [tool(json!("a"))]);
        let both = [tool(json!("a")), tool(json!("z"))];
        // (input, targets, mark_private, expected (None: byte for byte), removed)
        let cases: [(&str, &[_], bool, Option<Value>, usize); 8] = [
            (tools, &one, false, Some(kept), 1),
            (tools, &one, true, Some(private), 1),
            (&batch, &a, false, Some(batch_out), 1),
            (&batch, &both, false, Some(both_out), 2),
            (other_id, &one, true, None, 0),
            (tools, &str_one, true, None, 0),
            (error, &one, true, None, 0),
            (r#"{"id":1,"result":"#, &one, true, None, 0),
        ];
        for (input, targets, private, expected, removed) in cases {
            let mut f = filter("application/json", targets, private);
            let (head, tail) = input.split_at(input.len() / 2);
            assert!(f.feed(head.as_bytes(), false).is_empty());
            let out = f.feed(tail.as_bytes(), true);
            match expected {
                Some(v) => assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), v, "{input}"),
                None => assert_eq!(out, input.as_bytes(), "{input}"),
            }
            assert_eq!(f.removed(), removed, "{input}");
        }
    }

    /// (stream, expected output, first event) with `eol` line endings.
    fn sse_stream(eol: &str) -> (String, String, String) {
        let first = format!(
            "event: message{eol}data: {}{eol}{eol}",
            json!({"method":"progress"})
        );
        let head = r#"{"jsonrpc":"2.0","id":1,"#;
        let tail = r#""result":{"tools":[{"name":"secret"},{"name":"a"}]}}"#;
        let listed = format!(": hi{eol}id: 8{eol}data: {head}{eol}data:{tail}{eol}{eol}");
        let last = format!(
            "data: {}{eol}{eol}",
            json!({"id":2,"result":{"tools":[{"name":"secret"}]}})
        );
        let filtered = json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}});
        let out = format!(": hi{eol}id: 8{eol}data: {filtered}{eol}{eol}");
        (
            format!("{first}{listed}{last}"),
            format!("{first}{out}{last}"),
            first,
        )
    }

    #[test]
    fn sse_split_anywhere() {
        let targets = [(json!(1), ListKind::Tools)];
        for eol in ["\n", "\r\n"] {
            let (stream, expected, first) = sse_stream(eol);
            let mut f = filter(SSE, &targets, false);
            assert_eq!(
                f.feed(first.as_bytes(), false),
                first.as_bytes(),
                "emitted at once"
            );
            for split in 0..=stream.len() {
                let mut f = filter(SSE, &targets, false);
                let mut out = f.feed(&stream.as_bytes()[..split], false).to_vec();
                out.extend_from_slice(&f.feed(&stream.as_bytes()[split..], true));
                assert_eq!(String::from_utf8_lossy(&out), expected, "split at {split}");
                assert_eq!(f.removed(), 1);
            }
            let mut f = filter(SSE, &targets, false);
            let mut out: Vec<u8> = stream.bytes().flat_map(|b| f.feed(&[b], false)).collect();
            out.extend_from_slice(&f.feed(b"", true));
            assert_eq!(String::from_utf8_lossy(&out), expected, "byte by byte");
        }
    }

    #[test]
    fn sse_kinds_and_leftovers() {
        let prompts = json!({"id":5,"result":{"prompts":[{"name":"secret"},{"name":"p"}]}});
        let resources = json!({"id":6,"result":{"resources":[
            {"uri":"secret://x","name":"ok"},{"uri":"file:///a","name":"secret"}]}});
        let cases = [
            (
                "",
                prompts,
                ListKind::Prompts,
                json!({"id":5,"result":{"prompts":[{"name":"p"}]}}),
            ),
            (
                "event: message\n",
                resources,
                ListKind::Resources,
                json!({"id":6,"result":
                {"cacheScope":"private","resources":[{"uri":"file:///a","name":"secret"}]}}),
            ),
        ];
        for (prefix, input, kind, expected) in cases {
            let mut f = filter(
                SSE,
                &[(input["id"].clone(), kind)],
                kind == ListKind::Resources,
            );
            let out = f.feed(format!("{prefix}data: {input}\n\n").as_bytes(), false);
            assert_eq!(
                String::from_utf8_lossy(&out),
                format!("{prefix}data: {expected}\n\n")
            );
            assert_eq!(f.removed(), 1);
        }
        // An unfinished event at the end passes unchanged.
        let mut f = filter(SSE, &[(json!(5), ListKind::Prompts)], true);
        let tail = r#"data: {"id":5,"result":{"prompts":[{"name":"secret"}]}}"#;
        assert!(f.feed(tail.as_bytes(), false).is_empty());
        assert_eq!(f.feed(b"\n", true), format!("{tail}\n").as_bytes());
    }

    #[test]
    fn over_cap_passes_through() {
        let big = vec![b'x'; CAP + 1];
        let targets = [(json!(5), ListKind::Prompts)];
        let later = "data: {\"id\":5,\"result\":{\"prompts\":[{\"name\":\"secret\"}]}}\n\n";
        for ct in [SSE, "application/json"] {
            let mut f = filter(ct, &targets, true);
            assert_eq!(f.feed(&big, false).len(), big.len(), "{ct}");
            assert_eq!(f.feed(later.as_bytes(), true), later.as_bytes(), "{ct}");
        }
    }
}
