//! Prometheus metrics, served on the admin listener (`/metrics`, never on the public port).
//! One registry; every label takes a bounded set of values (upstream names from the config,
//! fixed reason words, JSON-RPC methods from the MCP spec, and at most
//! [`TOOL_NAMES_PER_UPSTREAM`] tool names per upstream, the rest counted as `other`).

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Distinct tool names counted per upstream; later ones are counted as `other`.
pub const TOOL_NAMES_PER_UPSTREAM: usize = 100;

/// The JSON-RPC methods of the MCP revisions authgate serves; others are counted as `other`.
const MCP_METHODS: &[&str] = &[
    "initialize",
    "notifications/initialized",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/cancel",
    "tasks/result",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "subscriptions/listen",
];

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub requests_in_flight: IntGauge,
    pub request_bytes: IntCounterVec,
    pub response_bytes: IntCounterVec,
    pub upstream_errors: IntCounterVec,
    pub auth_decisions: IntCounterVec,
    pub token_validation: Histogram,
    pub token_cache: IntCounterVec,
    /// `token_cache` by result, resolved once (every request touches one).
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    pub cache_refused: IntCounter,
    pub authorizations: IntCounterVec,
    pub logins: IntCounterVec,
    pub consent: IntCounterVec,
    pub codes: IntCounterVec,
    pub tokens_issued: IntCounterVec,
    pub refreshes: IntCounterVec,
    pub revocations: IntCounter,
    pub registrations: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub mcp_requests: IntCounterVec,
    pub mcp_errors: IntCounterVec,
    pub policy_decisions: IntCounterVec,
    pub credential_fetches: IntCounterVec,
    pub store_entries: IntGaugeVec,
    pub store_writes: Histogram,
    pub store_failures: IntCounter,
    pub sweeps: IntCounter,
    pub swept: IntCounterVec,
    pub reloads: IntCounterVec,
    pub build_info: IntGaugeVec,
    pub upstream_replica_up: IntGaugeVec,
    tools_seen: Mutex<HashMap<String, HashSet<String>>>,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("a valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

/// Seconds, from 100 µs to a minute (requests include long streams).
fn request_buckets() -> Vec<f64> {
    vec![
        0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        10.0, 30.0, 60.0,
    ]
}

/// Seconds, from 100 ns to 10 ms (a token check is a hash and a map lookup).
fn fast_buckets() -> Vec<f64> {
    vec![
        1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 1e-3, 1e-2,
    ]
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new_custom(Some("authgate".into()), None).expect("a valid prefix");
        let requests = counter(&r, "requests_total", "Requests answered, by upstream (or `authgate` for its own endpoints), method and status class", &["upstream", "method", "status"]);
        let request_duration = histogram(
            &r,
            "request_duration_seconds",
            "Time from the request head to the end of the response, by upstream",
            &["upstream"],
            request_buckets(),
        );
        let requests_in_flight =
            IntGauge::new("requests_in_flight", "Requests being served").expect("a valid metric");
        r.register(Box::new(requests_in_flight.clone()))
            .expect("registered once");
        let request_bytes = counter(
            &r,
            "request_body_bytes_total",
            "Request body bytes read from clients, by upstream",
            &["upstream"],
        );
        let response_bytes = counter(
            &r,
            "response_body_bytes_total",
            "Response body bytes sent to clients, by upstream",
            &["upstream"],
        );
        let upstream_errors = counter(
            &r,
            "upstream_errors_total",
            "Failures reaching an upstream, by kind (connect, timeout, other)",
            &["upstream", "kind"],
        );
        let auth_decisions = counter(
            &r,
            "auth_decisions_total",
            "Bearer checks on protected routes, by result (allowed, denied) and reason",
            &["upstream", "result", "reason"],
        );
        let token_validation = histogram(
            &r,
            "token_validation_seconds",
            "Time to look a bearer token up in the store (cache misses)",
            &[],
            fast_buckets(),
        )
        .with_label_values::<&str>(&[]);
        let token_cache = counter(
            &r,
            "token_cache_lookups_total",
            "Token lookups, by result (hit, miss, negative_hit)",
            &["result"],
        );
        let authorizations = counter(
            &r,
            "authorization_requests_total",
            "Authorization requests, by result (sign_in, code, error)",
            &["result"],
        );
        let logins = counter(
            &r,
            "logins_total",
            "Sign-ins at a provider, by provider and result",
            &["provider", "result"],
        );
        let consent = counter(
            &r,
            "consent_total",
            "Consent pages, by event (shown, given, denied, remembered)",
            &["event"],
        );
        let codes = counter(
            &r,
            "authorization_codes_total",
            "Authorization codes, by event (issued, redeemed, replayed)",
            &["event"],
        );
        let tokens_issued = counter(
            &r,
            "tokens_issued_total",
            "Access tokens issued, by grant type",
            &["grant_type"],
        );
        let refreshes = counter(&r, "refreshes_total", "Refresh token presentations, by result (rotated, grace_replay, reuse_detected, refused)", &["result"]);
        let revocations = IntCounter::new(
            "revocations_total",
            "Tokens or grants revoked (RFC 7009 and admin)",
        )
        .expect("a valid metric");
        r.register(Box::new(revocations.clone()))
            .expect("registered once");
        let registrations = counter(
            &r,
            "registrations_total",
            "Clients registered or looked up, by kind (dcr, cimd, preregistered) and result",
            &["kind", "result"],
        );
        let rate_limited = counter(
            &r,
            "rate_limited_total",
            "Requests refused by a rate limit, by endpoint",
            &["endpoint"],
        );
        let mcp_requests = counter(
            &r,
            "mcp_requests_total",
            "MCP JSON-RPC requests, by upstream, method and (tools/call) tool",
            &["upstream", "method", "tool"],
        );
        let policy_decisions = counter(
            &r,
            "policy_decisions_total",
            "Policy decisions, by upstream, what was decided (access, call, list_item, step_up) and result (allowed, denied)",
            &["upstream", "kind", "result"],
        );
        let credential_fetches = counter(
            &r,
            "upstream_credential_fetches_total",
            "Client-credentials tokens fetched for upstreams, by upstream and result (ok, failed)",
            &["upstream", "result"],
        );
        let mcp_errors = counter(
            &r,
            "mcp_errors_total",
            "JSON-RPC error responses, by upstream and who answered (upstream, authgate)",
            &["upstream", "source"],
        );
        let store_entries = IntGaugeVec::new(
            Opts::new("store_entries", "Stored records, by kind (at scrape time)"),
            &["kind"],
        )
        .expect("a valid metric");
        r.register(Box::new(store_entries.clone()))
            .expect("registered once");
        let store_writes = histogram(
            &r,
            "store_write_seconds",
            "Store write transactions, including fsync",
            &[],
            request_buckets(),
        )
        .with_label_values::<&str>(&[]);
        let store_failures = IntCounter::new(
            "store_failures_total",
            "Store operations that failed with an I/O error",
        )
        .expect("a valid metric");
        r.register(Box::new(store_failures.clone()))
            .expect("registered once");
        let sweeps =
            IntCounter::new("sweeps_total", "Runs of the store sweeper").expect("a valid metric");
        r.register(Box::new(sweeps.clone()))
            .expect("registered once");
        let swept = counter(
            &r,
            "swept_records_total",
            "Expired records the sweeper removed, by kind",
            &["kind"],
        );
        let reloads = counter(
            &r,
            "config_reloads_total",
            "Config reloads, by result (ok, refused)",
            &["result"],
        );
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "Always 1; the version in a label"),
            &["version"],
        )
        .expect("a valid metric");
        r.register(Box::new(build_info.clone()))
            .expect("registered once");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let upstream_replica_up = IntGaugeVec::new(
            Opts::new(
                "upstream_replica_up",
                "1 while an upstream replica answers its health probe, 0 while it does not (upstreams with replicas)",
            ),
            &["upstream", "replica"],
        )
        .expect("a valid metric");
        r.register(Box::new(upstream_replica_up.clone()))
            .expect("registered once");
        Self {
            registry: r,
            requests,
            request_duration,
            requests_in_flight,
            request_bytes,
            response_bytes,
            upstream_errors,
            auth_decisions,
            token_validation,
            cache_hits: token_cache.with_label_values(&["hit"]),
            cache_misses: token_cache.with_label_values(&["miss"]),
            cache_refused: token_cache.with_label_values(&["refused_by_tag"]),
            token_cache,
            authorizations,
            logins,
            consent,
            codes,
            tokens_issued,
            refreshes,
            revocations,
            registrations,
            rate_limited,
            mcp_requests,
            mcp_errors,
            policy_decisions,
            credential_fetches,
            store_entries,
            store_writes,
            store_failures,
            sweeps,
            swept,
            reloads,
            build_info,
            upstream_replica_up,
            tools_seen: Mutex::new(HashMap::new()),
        }
    }

    /// Every metric's name (`/metrics` shows a labelled family once it has a sample).
    pub fn names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        let collectors: [&dyn Collector; 31] = [
            &self.requests,
            &self.request_duration,
            &self.requests_in_flight,
            &self.request_bytes,
            &self.response_bytes,
            &self.upstream_errors,
            &self.auth_decisions,
            &self.token_validation,
            &self.token_cache,
            &self.authorizations,
            &self.logins,
            &self.consent,
            &self.codes,
            &self.tokens_issued,
            &self.refreshes,
            &self.revocations,
            &self.registrations,
            &self.rate_limited,
            &self.mcp_requests,
            &self.mcp_errors,
            &self.policy_decisions,
            &self.credential_fetches,
            &self.store_entries,
            &self.store_writes,
            &self.store_failures,
            &self.sweeps,
            &self.swept,
            &self.reloads,
            &self.build_info,
            &self.requests_in_flight,
            &self.upstream_replica_up,
        ];
        let mut names: Vec<String> = collectors
            .iter()
            .flat_map(|c| {
                c.desc()
                    .into_iter()
                    .map(|d| format!("authgate_{}", d.fq_name))
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding of gathered metrics");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    /// Counts one MCP request; `tool` for `tools/call` (capped per upstream).
    pub fn mcp_request(&self, upstream: &str, method: &str, tool: Option<&str>) {
        let method = if MCP_METHODS.contains(&method) {
            method
        } else {
            "other"
        };
        let tool = match (method, tool) {
            ("tools/call", Some(name)) => self.tool_label(upstream, name),
            _ => "",
        };
        self.mcp_requests
            .with_label_values(&[upstream, method, tool])
            .inc();
    }

    /// `name` as a label value while the upstream has few distinct tool names, else "other".
    fn tool_label<'n>(&self, upstream: &str, name: &'n str) -> &'n str {
        let mut seen = self.tools_seen.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up before inserting, so a known name costs no allocation.
        if let Some(names) = seen.get(upstream) {
            if names.contains(name) {
                return name;
            }
        }
        let names = seen.entry(upstream.to_string()).or_default();
        if names.len() < TOOL_NAMES_PER_UPSTREAM && is_label_safe(name) {
            names.insert(name.to_string());
            return name;
        }
        "other"
    }
}

/// One upstream's series, resolved once (per route, rebuilt on reload) so the request path
/// increments counters without looking labels up.
pub struct UpstreamMetrics {
    name: String,
    requests: [[OnceLock<IntCounter>; STATUS_CLASSES.len()]; METHOD_CLASSES.len()],
    pub duration: Histogram,
    pub request_bytes: IntCounter,
    pub response_bytes: IntCounter,
    allowed: IntCounter,
    denied: [OnceLock<IntCounter>; DENIAL_REASONS.len()],
}

const METHOD_CLASSES: [&str; 6] = ["GET", "POST", "DELETE", "OPTIONS", "HEAD", "other"];
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];
/// The bearer check's refusal reasons (`proxy::bearer::Denied::reason`).
pub const DENIAL_REASONS: [&str; 10] = [
    "missing",
    "malformed",
    "invalid",
    "wrong_upstream",
    "blocked",
    "provider_removed",
    "scope",
    "not_connected",
    "store_unavailable",
    "other",
];

impl UpstreamMetrics {
    pub fn new(name: &str) -> Self {
        let m = metrics();
        Self {
            name: name.to_string(),
            requests: Default::default(),
            duration: m.request_duration.with_label_values(&[name]),
            request_bytes: m.request_bytes.with_label_values(&[name]),
            response_bytes: m.response_bytes.with_label_values(&[name]),
            allowed: m.auth_decisions.with_label_values(&[name, "allowed", "ok"]),
            denied: Default::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `requests_total` series of this method and status.
    pub fn request(&self, method: &http::Method, status: u16) -> &IntCounter {
        let (m, s) = (method_class(method), status_class(status));
        let mi = METHOD_CLASSES.iter().position(|c| *c == m).unwrap_or(5);
        let si = STATUS_CLASSES.iter().position(|c| *c == s).unwrap_or(5);
        self.requests[mi][si]
            .get_or_init(|| metrics().requests.with_label_values(&[&self.name, m, s]))
    }

    /// Counts a bearer check's decision.
    pub fn auth_decision(&self, denied: Option<&'static str>) {
        match denied {
            None => self.allowed.inc(),
            Some(reason) => {
                let i = DENIAL_REASONS
                    .iter()
                    .position(|r| *r == reason)
                    .unwrap_or(7);
                self.denied[i]
                    .get_or_init(|| {
                        metrics().auth_decisions.with_label_values(&[
                            &self.name,
                            "denied",
                            DENIAL_REASONS[i],
                        ])
                    })
                    .inc()
            }
        }
    }
}

/// Tool names become label values only when short and printable.
fn is_label_safe(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_graphic())
}

/// `2xx`, `4xx`…; `0` (nothing sent) is `none`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// Methods MCP uses, others as `other`.
pub fn method_class(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::HEAD => "HEAD",
        _ => "other",
    }
}

pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_bounds_tool_names() {
        let m = Metrics::new();
        m.mcp_request("a", "tools/call", Some("search"));
        m.mcp_request("a", "made/up", None);
        for i in 0..TOOL_NAMES_PER_UPSTREAM + 10 {
            m.mcp_request("b", "tools/call", Some(&format!("tool_{i}")));
        }
        m.mcp_request("b", "tools/call", Some("tool_0"));
        let text = m.render();
        assert!(
            text.contains(
                r#"authgate_mcp_requests_total{method="tools/call",tool="search",upstream="a"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"authgate_mcp_requests_total{method="other",tool="",upstream="a"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"authgate_mcp_requests_total{method="tools/call",tool="other",upstream="b"} 10"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"authgate_mcp_requests_total{method="tools/call",tool="tool_0",upstream="b"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"authgate_build_info{version=""#));
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(0), "none");
    }
}
