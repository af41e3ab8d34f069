//! The admin listener (`[admin] listen`, loopback by default; never the public port):
//! `GET /metrics` (Prometheus text, no token), and the admin API under `/admin/`, which needs
//! `Authorization: Bearer <admin.token>` (the API is off without a token). `authgate reload`,
//! `authgate admin …` and `authgate diagnose` are its clients. Every change it makes is an
//! audit event.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::reload::Reloader;
use crate::audit;
use crate::metrics::metrics;
use crate::oauth::Authority;
use crate::proxy::Snapshot;
use crate::store::{ClientRecord, GrantRecord, Store, StoreError};
use crate::vocab::{unix_now, ClientId, GrantId, SecretHash};

pub struct AdminApi {
    pub authority: Arc<Authority>,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub reloader: Arc<Reloader>,
    /// The gateway's upstream credentials (connected accounts).
    pub credentials: Arc<crate::proxy::credentials::Credentials>,
}

type Answer = (StatusCode, Value);

fn error(status: StatusCode, message: impl std::fmt::Display) -> Answer {
    (status, json!({"error": message.to_string()}))
}

/// An API key as the admin API shows it: never its hash.
fn key_view(k: &crate::store::ApiKeyRecord) -> Value {
    json!({
        "name": k.name,
        "owner": k.owner,
        "upstreams": k.upstreams,
        "scopes": k.scopes.to_string(),
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "last_used_at": k.last_used_at,
    })
}

fn store_error(e: StoreError) -> Answer {
    tracing::error!(error = %e, "admin API: store failure");
    error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"))
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .expect("a valid response")
}

#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        let query = session.req_header().uri.query().unwrap_or("").to_string();
        if method == Method::GET && path == "/metrics" {
            self.refresh_store_gauges().await;
            return reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics().render().into_bytes(),
            );
        }
        let Some(rest) = path.strip_prefix("/admin/") else {
            let (s, v) = error(StatusCode::NOT_FOUND, "not found");
            return reply(s, "application/json", v.to_string().into_bytes());
        };
        let remote = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let (status, value) = match self.authorized(session) {
            Err(a) => a,
            Ok(()) => {
                let body = read_body(session).await;
                let segments: Vec<String> = rest
                    .split('/')
                    .map(|s| {
                        percent_encoding::percent_decode_str(s)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
                    .collect();
                let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
                self.route(&method, &segments, &query, &body, remote).await
            }
        };
        reply(
            status,
            "application/json",
            serde_json::to_vec_pretty(&value).unwrap_or_default(),
        )
    }
}

async fn read_body(session: &mut ServerSession) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = session.read_request_body().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    body
}

/// A grant as the admin API shows it (the sealed provider credential stays out).
#[derive(Serialize)]
struct GrantView<'a> {
    grant_id: &'a GrantId,
    user: String,
    provider: &'a str,
    client_id: &'a ClientId,
    upstream: &'a str,
    scopes: String,
    created_at: u64,
    verified_at: u64,
    refresh: bool,
}

impl<'a> From<&'a GrantRecord> for GrantView<'a> {
    fn from(g: &'a GrantRecord) -> Self {
        GrantView {
            grant_id: &g.grant_id,
            user: g.terms.identity.user_id(),
            provider: &g.terms.identity.provider,
            client_id: &g.terms.client_id,
            upstream: g.terms.upstream.as_str(),
            scopes: g.terms.scopes.to_string(),
            created_at: g.created_at,
            verified_at: g.verified_at,
            refresh: g.refresh,
        }
    }
}

/// A registered client as the admin API shows it (no secret hash).
fn client_view(c: &ClientRecord) -> Value {
    json!({
        "client_id": c.client_id,
        "client_name": c.client_name,
        "redirect_uris": c.redirect_uris,
        "token_endpoint_auth_method": c.token_endpoint_auth_method,
        "grant_types": c.grant_types,
        "created_at": c.created_at,
        "first_used_at": c.first_used_at,
    })
}

impl AdminApi {
    fn authorized(&self, session: &ServerSession) -> Result<(), Answer> {
        let snapshot = self.snapshot.load();
        let Some(expected) = snapshot.config.admin.as_ref().and_then(|a| a.token) else {
            return Err(error(
                StatusCode::FORBIDDEN,
                "the admin API is off: set admin.token in the config",
            ));
        };
        let token = match crate::web::authorization::credentials(&session.req_header().headers) {
            Ok(Some(crate::web::authorization::Credentials::Bearer(t))) => t,
            _ => {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    "send Authorization: Bearer <admin token>",
                ))
            }
        };
        if bool::from(SecretHash::of(token).0.ct_eq(&expected.0)) {
            Ok(())
        } else {
            audit::refused("admin_auth_failed").emit();
            Err(error(StatusCode::UNAUTHORIZED, "wrong admin token"))
        }
    }

    async fn refresh_store_gauges(&self) {
        let Ok(s) = self.authority.store.stats().await else {
            return;
        };
        let g = &metrics().store_entries;
        for (kind, n) in [
            ("clients", s.clients),
            ("grants", s.grants),
            ("access_tokens", s.access_tokens),
            ("refresh_tokens", s.refresh_tokens),
            ("codes", s.codes),
            ("consents", s.consents),
            ("users", s.users),
            ("blocked_users", s.blocked_users),
        ] {
            g.with_label_values(&[kind]).set(n as i64);
        }
    }

    /// `POST /admin/keys` `{"name", "owner", "upstreams": [...], "scopes"?: "a b",
    /// "expires_in"?: "90d"}`: the key is in the answer, once.
    async fn create_key(&self, body: &[u8], remote: Option<IpAddr>) -> Answer {
        let req: crate::oauth::api_keys::NewKey = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("{e}: send {{\"name\", \"owner\", \"upstreams\": [...], \"scopes\": \"a b\" (optional), \"expires_in\": \"90d\" (optional)}}")),
        };
        let snapshot = self.snapshot.load();
        let (key, record) = match req.mint(&snapshot.config, &self.authority.tokens, unix_now()) {
            Ok(k) => k,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        };
        let store = &self.authority.store;
        match store.put_api_key(record.clone()).await {
            Ok(true) => {}
            Ok(false) => {
                return error(
                    StatusCode::CONFLICT,
                    format!(
                        "an API key named `{}` exists: revoke it first, or choose another name",
                        record.name
                    ),
                )
            }
            Err(e) => return store_error(e),
        }
        if let Err(e) = self.authority.api_keys.load(&**store).await {
            return store_error(e);
        }
        audit::success("api_key_created")
            .user(format!("key:{}", record.name))
            .reason(format_args!(
                "owner {}, upstreams {:?}",
                record.owner,
                record
                    .upstreams
                    .iter()
                    .map(|u| u.as_str())
                    .collect::<Vec<_>>()
            ))
            .remote(remote)
            .emit();
        let mut view = key_view(&record);
        view["key"] = json!(key);
        (StatusCode::CREATED, view)
    }

    async fn route(
        &self,
        method: &Method,
        path: &[&str],
        query: &str,
        body: &[u8],
        remote: Option<IpAddr>,
    ) -> Answer {
        let store = &self.authority.store;
        let q: std::collections::HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let done = |what: String| {
            audit::success("admin_action")
                .reason(&what)
                .remote(remote)
                .emit();
            (StatusCode::OK, json!({"ok": true, "done": what}))
        };
        match (method, path) {
            (&Method::POST, ["reload"]) => {
                let reloader = self.reloader.clone();
                let report = tokio::task::spawn_blocking(move || reloader.reload("admin API"))
                    .await
                    .unwrap_or_default();
                let status = if report.ok {
                    StatusCode::OK
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                (status, serde_json::to_value(report).unwrap_or_default())
            }
            (&Method::GET, ["stats"]) => match store.stats().await {
                Ok(s) => (StatusCode::OK, json!(s)),
                Err(e) => store_error(e),
            },
            (&Method::GET, ["clients"]) => match store.list_clients().await {
                Ok(list) => (StatusCode::OK, list.iter().map(client_view).collect()),
                Err(e) => store_error(e),
            },
            (&Method::GET, ["clients", id]) => match store.get_client(&ClientId::new(*id)).await {
                Ok(Some(c)) => (StatusCode::OK, client_view(&c)),
                Ok(None) => error(
                    StatusCode::NOT_FOUND,
                    format!("no registered client `{id}`"),
                ),
                Err(e) => store_error(e),
            },
            (&Method::DELETE, ["clients", id]) => {
                match store.delete_client(&ClientId::new(*id)).await {
                    Ok(Some(revoked)) => {
                        metrics().revocations.inc_by(revoked.len() as u64);
                        done(format!("deleted client {id} and revoked its grants ({} access tokens)", revoked.len()))
                    }
                    Ok(None) => error(StatusCode::NOT_FOUND, format!("no registered client `{id}` (pre-registered clients live in the config)")),
                    Err(e) => store_error(e),
                }
            }
            (&Method::GET, ["grants"]) => match store.list_grants().await {
                Ok(list) => {
                    let views: Vec<GrantView> = list
                        .iter()
                        .filter(|g| {
                            q.get("user")
                                .is_none_or(|u| g.terms.identity.user_id() == *u)
                        })
                        .filter(|g| {
                            q.get("client")
                                .is_none_or(|c| g.terms.client_id.as_str() == c)
                        })
                        .map(GrantView::from)
                        .collect();
                    (StatusCode::OK, json!(views))
                }
                Err(e) => store_error(e),
            },
            (&Method::DELETE, ["grants", id]) => {
                match store.revoke_grant(&GrantId::new(*id)).await {
                    Ok(revoked) => {
                        metrics().revocations.inc();
                        done(format!(
                            "revoked grant {id} ({} access tokens)",
                            revoked.len()
                        ))
                    }
                    Err(e) => store_error(e),
                }
            }
            (&Method::GET, ["users"]) => {
                let (users, blocked) = match (store.list_users().await, store.blocked().await) {
                    (Ok(u), Ok(b)) => (u, b),
                    (Err(e), _) | (_, Err(e)) => return store_error(e),
                };
                let blocked: std::collections::HashMap<String, u64> = blocked.into_iter().collect();
                let list: Vec<Value> = users
                    .iter()
                    .map(|u| {
                        let mut v = json!(u);
                        v["blocked_since"] = json!(blocked.get(&u.user_id));
                        v
                    })
                    .collect();
                (StatusCode::OK, json!(list))
            }
            (&Method::PUT, ["users", id, "blocked"]) => {
                match store.set_blocked(id, Some(unix_now())).await {
                    Ok(()) => done(format!("blocked {id}")),
                    Err(e) => store_error(e),
                }
            }
            (&Method::DELETE, ["users", id, "blocked"]) => {
                match store.set_blocked(id, None).await {
                    Ok(()) => done(format!("unblocked {id}")),
                    Err(e) => store_error(e),
                }
            }
            (&Method::POST, ["backup"]) => {
                let path = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v["path"].as_str().map(PathBuf::from));
                let Some(path) = path.filter(|p| p.is_absolute()) else {
                    return error(StatusCode::BAD_REQUEST, "send {\"path\": \"/absolute/path/backup.redb\"} (a file that does not exist yet, on the gateway's machine)");
                };
                match store.backup(&path).await {
                    Ok(stats) => {
                        audit::success("admin_action")
                            .reason(format_args!("backup to {}", path.display()))
                            .remote(remote)
                            .emit();
                        (
                            StatusCode::OK,
                            json!({"ok": true, "path": path, "stats": stats}),
                        )
                    }
                    Err(e) => error(StatusCode::CONFLICT, format!("backup failed: {e}")),
                }
            }
            (&Method::GET, ["diagnose"]) => {
                let diagnostics = &self.authority.diagnostics;
                let found = match (q.get("client"), q.get("ip")) {
                    (Some(c), _) => diagnostics.for_client(c),
                    (None, Some(ip)) => match ip.parse() {
                        Ok(ip) => diagnostics.for_address(ip),
                        Err(_) => return error(StatusCode::BAD_REQUEST, "ip is not an IP address"),
                    },
                    (None, None) => diagnostics.recent(),
                };
                (StatusCode::OK, json!(found))
            }
            (&Method::GET, ["keys"]) => match store.list_api_keys().await {
                Ok(list) => (StatusCode::OK, list.iter().map(key_view).collect()),
                Err(e) => store_error(e),
            },
            (&Method::POST, ["keys"]) => self.create_key(body, remote).await,
            (&Method::GET, ["connections"]) => {
                let config = &self.snapshot.load().config;
                match self.credentials.connections(&self.authority, config).await {
                    Ok(list) => (StatusCode::OK, json!(list)),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
                }
            }
            (&Method::POST, ["connections", upstream]) => {
                let config = &self.snapshot.load().config;
                match self.credentials.start_connect(config, upstream) {
                    Ok(url) => (StatusCode::OK, json!({"authorize_url": url})),
                    Err(e) => error(StatusCode::BAD_REQUEST, e),
                }
            }
            (&Method::DELETE, ["connections", upstream]) => {
                let config = &self.snapshot.load().config;
                let person = q.get("person").map(String::as_str);
                match self
                    .credentials
                    .disconnect(&self.authority, config, upstream, person)
                    .await
                {
                    Ok(()) => done(match person {
                        Some(p) => format!("disconnected {p}'s account at {upstream}"),
                        None => format!("disconnected the account of {upstream}"),
                    }),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
                }
            }
            (&Method::POST, ["signing-key", "rotate"]) => {
                // The old key stays published as long as an assertion it signed may live.
                let longest = self
                    .snapshot
                    .load()
                    .config
                    .upstreams
                    .iter()
                    .filter_map(|u| u.signed_identity.as_ref())
                    .map(|s| s.lifetime.as_secs())
                    .max()
                    .unwrap_or(0);
                let now = unix_now();
                let a = &self.authority;
                match a
                    .signer
                    .rotate(&**store, &a.sealer, now, now + longest)
                    .await
                {
                    Ok(kid) => {
                        audit::success("admin_action")
                            .reason(format_args!(
                                "rotated the identity signing key (new kid {kid})"
                            ))
                            .remote(remote)
                            .emit();
                        (
                            StatusCode::OK,
                            json!({"ok": true, "kid": kid, "previous_published_until": now + longest}),
                        )
                    }
                    Err(e) => error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("rotation failed: {e}"),
                    ),
                }
            }
            (&Method::DELETE, ["keys", name]) => match store.delete_api_key(name).await {
                Ok(true) => {
                    if let Err(e) = self.authority.api_keys.load(&**store).await {
                        return store_error(e);
                    }
                    metrics().revocations.inc();
                    audit::success("api_key_revoked")
                        .user(format!("key:{name}"))
                        .remote(remote)
                        .emit();
                    done(format!("revoked API key {name}"))
                }
                Ok(false) => error(StatusCode::NOT_FOUND, format!("no API key `{name}`")),
                Err(e) => store_error(e),
            },
            _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
        }
    }
}
