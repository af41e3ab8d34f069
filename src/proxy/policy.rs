//! Policies on the request path (the rules themselves are `crate::policy`): access to the
//! upstream right after the bearer check, then each JSON-RPC request in the body before the
//! upstream sees it, and the list responses on their way back.
//!
//! - No access: 403 `access_denied`.
//! - A tool needing a scope the token lacks: 403 with an `insufficient_scope` challenge
//!   naming what it holds plus what is needed, so the client can step up.
//! - A call a rule denies: a JSON-RPC error with the request's id (HTTP 200), so the MCP
//!   session goes on. In a batch, every request gets an error: none is forwarded.
//! - `tools/list`, `prompts/list`, `resources/list`: items the caller may not use are taken
//!   out of the result (`list_filter`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::bearer;
use super::list_filter::{Keep, ListKind};
use super::mcp::McpCall;
use crate::config::{Config, Upstream};
use crate::metrics::metrics;
use crate::policy::{Call, ItemKind, Subject, UpstreamRules};
use crate::store::AccessRecord;
use crate::vocab::{unix_now, ErrorCode, Scope, ScopeSet};
use crate::web::Reply;

/// The JSON-RPC error code of a call refused by policy (implementation-defined server
/// error range; -32000 and -32001 are taken by the MCP SDKs).
pub const POLICY_DENIED: i64 = -32003;

fn count(upstream: &str, kind: &str, allowed: bool) {
    let result = if allowed { "allowed" } else { "denied" };
    metrics()
        .policy_decisions
        .with_label_values(&[upstream, kind, result])
        .inc();
}

/// Access to the upstream: `None` when allowed, else the 403 to answer.
pub fn access(config: &Config, upstream: &Upstream, record: &AccessRecord) -> Option<Reply> {
    let rules = config.policy.upstream(upstream.name.as_str())?;
    let who = Subject::new(
        &config.policy,
        &record.identity,
        record.client_id.as_str(),
        &record.scopes,
    );
    let decision = rules.access(&who, unix_now());
    count(upstream.name.as_str(), "access", decision.allowed);
    if decision.allowed {
        return None;
    }
    tracing::info!(
        upstream = %upstream.name,
        user = %record.identity.user_id(),
        client_id = %record.client_id,
        decision = %decision.explain(),
        "policy: access denied"
    );
    Some(
        Reply::error(
            ErrorCode::AccessDenied,
            "your account may not use this server (policy)",
        )
        .with_status(403)
        .with_cors(),
    )
}

#[derive(Deserialize)]
struct RawRequest {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<RawParams>,
}

#[derive(Deserialize)]
struct RawParams {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    uri: Option<Value>,
}

/// One JSON-RPC request of a body: its id (`None` for a notification), method and the item
/// it names (tool or prompt name, resource URI).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Option<Value>,
    pub method: String,
    pub name: Option<String>,
}

impl Request {
    /// As the MCP metrics count it (`observe::calls`): the method, and the name of a tool
    /// or prompt (resource URIs are not a bounded label).
    pub fn metered(&self) -> McpCall {
        let named = matches!(self.method.as_str(), "tools/call" | "prompts/get");
        McpCall {
            method: self.method.clone(),
            name: self.name.clone().filter(|_| named),
        }
    }

    fn call(&self) -> Call<'_> {
        Call {
            method: &self.method,
            name: self.name.as_deref(),
        }
    }
}

/// The requests in a body (one or a batch), and whether it was a batch; responses and
/// anything that is not JSON-RPC are left out.
pub fn requests(body: &[u8]) -> (Vec<Request>, bool) {
    let batch = body.trim_ascii_start().first() == Some(&b'[');
    let raw: Vec<RawRequest> = if batch {
        serde_json::from_slice(body).unwrap_or_default()
    } else {
        serde_json::from_slice(body)
            .map(|r| vec![r])
            .unwrap_or_default()
    };
    let list = raw
        .into_iter()
        .filter_map(|r| {
            let method = r.method?;
            let field = match method.as_str() {
                "tools/call" | "prompts/get" => r.params.and_then(|p| p.name),
                "resources/read" => r.params.and_then(|p| p.uri),
                _ => None,
            };
            let name = field.and_then(|v| v.as_str().map(str::to_string));
            Some(Request {
                id: r.id,
                method,
                name,
            })
        })
        .collect();
    (list, batch)
}

/// What the calls of one body come to.
pub enum Verdict {
    /// Forward; the ids of list requests whose results are to be filtered.
    Pass(Vec<(Value, ListKind)>),
    /// A tool needs scopes the token lacks: answer this 403 challenge.
    StepUp(Reply),
    /// A call is denied: answer this JSON-RPC error (or batch of them).
    Deny(Reply),
}

/// Checks every request of a body ([`requests`]) against the upstream's call rules.
pub fn calls(
    config: &Config,
    upstream: &Upstream,
    rules: &UpstreamRules,
    record: &AccessRecord,
    requests: &[Request],
    batch: bool,
) -> Verdict {
    let name = upstream.name.as_str();
    let who = Subject::new(
        &config.policy,
        &record.identity,
        record.client_id.as_str(),
        &record.scopes,
    );
    let now = unix_now();
    let mut needed: Vec<Scope> = Vec::new();
    for r in requests {
        needed.extend(rules.missing_scopes(r.call(), &record.scopes));
    }
    if !needed.is_empty() {
        count(name, "step_up", false);
        let mut held = record.scopes.clone();
        for s in needed {
            held.insert(s);
        }
        return Verdict::StepUp(step_up(config, upstream, held));
    }
    let mut denied: Vec<(Option<Value>, String)> = Vec::new();
    for r in requests {
        let decision = rules.call(&who, r.call(), now);
        count(name, "call", decision.allowed);
        if !decision.allowed {
            tracing::info!(
                upstream = name,
                user = %record.identity.user_id(),
                client_id = %record.client_id,
                method = %r.method,
                item = r.name.as_deref().unwrap_or(""),
                decision = %decision.explain(),
                "policy: call denied"
            );
            let what = match &r.name {
                Some(n) => format!("{} `{n}`", r.method),
                None => r.method.clone(),
            };
            denied.push((r.id.clone(), what));
        }
    }
    if denied.is_empty() {
        let targets = match rules.filters_lists() {
            true => requests
                .iter()
                .filter_map(|r| Some((r.id.clone()?, ListKind::of_method(&r.method)?)))
                .collect(),
            false => Vec::new(),
        };
        return Verdict::Pass(targets);
    }
    Verdict::Deny(denial(requests, &denied, batch))
}

fn error(id: Value, message: &str) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": POLICY_DENIED, "message": message},
    })
}

/// The JSON-RPC answer to a body with denied calls.
fn denial(requests: &[Request], denied: &[(Option<Value>, String)], batch: bool) -> Reply {
    let message = |what: &str| format!("Forbidden: {what} is not allowed for you on this server");
    if !batch {
        let (id, what) = &denied[0];
        let Some(id) = id.clone() else {
            // A denied notification: dropped, as a server may drop any notification.
            return Reply {
                status: 202,
                headers: Vec::new(),
                body: bytes::Bytes::new(),
                reason: Some("policy"),
            }
            .with_cors();
        };
        return Reply::json(200, &error(id, &message(what))).with_cors();
    }
    let answers: Vec<Value> = requests
        .iter()
        .filter_map(|r| {
            let id = r.id.clone()?;
            let reason = match denied.iter().find(|(d, _)| d.as_ref() == Some(&id)) {
                Some((_, what)) => message(what),
                None => "Not sent: another request in this batch is not allowed".into(),
            };
            Some(error(id, &reason))
        })
        .collect();
    Reply::json(200, &Value::Array(answers)).with_cors()
}

/// 403 `insufficient_scope` with the scopes held plus those needed (MCP step-up).
fn step_up(config: &Config, upstream: &Upstream, wanted: ScopeSet) -> Reply {
    bearer::challenge(config, upstream, &bearer::Denied::InsufficientScope(wanted))
}

/// Whether the caller may see one item of a list result.
pub fn keep(snapshot: Arc<super::Snapshot>, upstream: String, record: Arc<AccessRecord>) -> Keep {
    let now = unix_now();
    Box::new(move |kind, item| {
        let config = &snapshot.config;
        let Some(rules) = config.policy.upstream(&upstream) else {
            return true;
        };
        let who = Subject::new(
            &config.policy,
            &record.identity,
            record.client_id.as_str(),
            &record.scopes,
        );
        let kind = match kind {
            ListKind::Tools => ItemKind::Tool,
            ListKind::Prompts => ItemKind::Prompt,
            ListKind::Resources => ItemKind::Resource,
        };
        let allowed = rules.may_list(&who, kind, item, now);
        count(&upstream, "list_item", allowed);
        allowed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_with_ids_methods_and_items() {
        let (one, batch) = requests(
            br#"{"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"file:///x"}}"#,
        );
        assert!(!batch);
        assert_eq!(
            one,
            vec![Request {
                id: Some(Value::from("a")),
                method: "resources/read".into(),
                name: Some("file:///x".into())
            }]
        );
        let (many, batch) = requests(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","arguments":{"name":"x"}}},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":9,"result":{}}]"#,
        );
        assert!(batch);
        assert_eq!(many.len(), 2);
        assert_eq!(many[0].name.as_deref(), Some("rm"));
        assert_eq!(many[1].id, None);
        assert!(requests(b"garbage").0.is_empty());
    }

    #[test]
    fn metered_calls_are_what_observe_counts() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm"}},{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///x"}},{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"p"}},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
        let metered: Vec<McpCall> = requests(body).0.iter().map(Request::metered).collect();
        assert_eq!(metered, super::super::observe::calls(body));
        assert_eq!(metered[1].name, None, "no resource URI as a label");
    }

    #[test]
    fn a_denied_batch_answers_every_request_and_forwards_none() {
        let (reqs, _) = requests(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm"}},{"jsonrpc":"2.0","id":2,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/x"}]"#,
        );
        let reply = denial(
            &reqs,
            &[(Some(Value::from(1)), "tools/call `rm`".into())],
            true,
        );
        assert_eq!(reply.status, 200);
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        let answers = v.as_array().unwrap();
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0]["id"], 1);
        assert_eq!(answers[0]["error"]["code"], POLICY_DENIED);
        assert!(answers[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`rm`"));
        assert_eq!(answers[1]["id"], 2);
        assert!(answers[1]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Not sent"));
    }
}
