//! The per-request costs of the gateway, next to their floors, so the report reads as ratios.
//! Goals (read them here, never asserted): the whole bearer check within 1.3× the floor
//! (sha256 of the token plus a `HashMap` hit) at 10k tokens and 1.5× at 1M, an unknown token
//! within 1.5× the floor, a cold lookup within 1.2× a bare redb get of the same key, flat from
//! 10k to 10M.
//!
//! `cargo bench --bench hot_path` runs 10k and 1M stored tokens; set
//! `AUTHGATE_BENCH_10M=1` to add 10M (a ~2 GB store, generated once under target/).
//! `AUTHGATE_BENCH_QUICK=1` shortens every measurement (CI smoke runs);
//! `AUTHGATE_BENCH_SIZES=10000,100000` picks the store sizes.

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};

use authgate::crypto::tokens::{TokenTags, RANDOM};
use authgate::crypto::Sealer;
use authgate::oauth::Authority;
use authgate::store::{AccessRecord, Cached, RedbStore, Store};
use authgate::vocab::{ClientId, GrantId, Identity, ScopeSet, SecretHash, UpstreamName};

const NOW: u64 = 1_000;
/// Lookups per measurement pool: drawn uniformly from every stored token.
const POOL: usize = 1 << 20;

fn record(i: usize) -> AccessRecord {
    AccessRecord {
        grant_id: GrantId::new(format!("grant-{i}")),
        client_id: ClientId::new("agc_benchclient0000000000"),
        identity: Identity {
            provider: "local".into(),
            subject: format!("user-{i}"),
            email: Some(format!("user-{i}@example.com")),
            name: Some(format!("User {i}")),
            groups: vec!["eng".into()],
        },
        scopes: ScopeSet::parse("mcp:tools").unwrap(),
        upstream: UpstreamName::parse("everything").unwrap(),
        expires_at: u64::MAX,
        passed: Default::default(),
    }
}

/// Stored token `i`: tagged under the store's key, from bytes fixed by `i`, so a store
/// generated once is reused across runs.
fn token(tags: &TokenTags, i: usize) -> String {
    let mut random = [0x5au8; RANDOM];
    random[..8].copy_from_slice(&(i as u64).to_le_bytes());
    tags.tagged("ag_at_", &random)
}

fn sizes() -> Vec<usize> {
    if let Ok(list) = std::env::var("AUTHGATE_BENCH_SIZES") {
        return list
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
    }
    let mut v = vec![10_000, 1_000_000];
    if std::env::var_os("AUTHGATE_BENCH_10M").is_some() {
        v.push(10_000_000);
    }
    v
}

/// A redb store with `n` access tokens under target/bench-stores/, made on first use, and
/// its token tag key.
fn store_with(n: usize) -> (RedbStore, TokenTags, u64) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-stores/v3-{n}"));
    let marker = dir.join("complete");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let store = RedbStore::open(&dir).unwrap();
    let (key, since) = store.token_tags_now().unwrap();
    let tags = TokenTags::new(key);
    if !marker.exists() {
        const BATCH: usize = 200_000;
        for start in (0..n).step_by(BATCH) {
            let end = (start + BATCH).min(n);
            store
                .insert_access_bulk(
                    (start..end).map(|i| (SecretHash::of(&token(&tags, i)), record(i))),
                )
                .unwrap();
        }
        std::fs::write(&marker, b"").unwrap();
    }
    (store, tags, since)
}

/// Runs a future that must not wait (every store read here is synchronous underneath), with
/// no runtime in the measurement.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the bearer check waited"),
    }
}

fn configure() -> Criterion {
    let quick = std::env::var_os("AUTHGATE_BENCH_QUICK").is_some();
    Criterion::default()
        .warm_up_time(Duration::from_millis(if quick { 200 } else { 1000 }))
        .measurement_time(Duration::from_secs(if quick { 1 } else { 4 }))
        .sample_size(if quick { 10 } else { 50 })
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// A small xorshift, so the pool is the same on every run.
fn draws(n: usize, count: usize) -> Vec<usize> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        })
        .collect()
}

fn bearer(c: &mut Criterion) {
    let config = authgate::config::parse(
        std::path::Path::new("bench.toml"),
        r#"
[server]
public_url = "http://127.0.0.1:8080"
[[scope]]
name = "mcp:tools"
[[upstream]]
name = "everything"
path = "/mcp"
url = "http://127.0.0.1:3001/mcp"
scopes = ["mcp:tools"]
[[provider]]
id = "local"
kind = "local"
[[provider.users]]
username = "bench"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$GZ5bcwe5pUpGzcs1vS7Ltw$lPZ6MxMfx6x/k9pOXl9gvMd1kUzYdZHgd4r+9c9mLII"
"#,
        |_| None,
    )
    .unwrap();
    let upstream = config.upstreams[0].clone();
    let counted = authgate::metrics::UpstreamMetrics::new("everything");

    let mut group = c.benchmark_group("bearer");
    group.throughput(Throughput::Elements(1));
    for n in sizes() {
        let (redb, tags, tagged_since) = store_with(n);
        // Every lookup draws a stored token uniformly at random (a pool of 2^20 draws, or all
        // of them at 10k), so cache and page misses are what they would be in service.
        let pool: Vec<String> = draws(n, POOL.min(n.max(4096) * 4))
            .into_iter()
            .map(|i| token(&tags, i))
            .collect();

        // The floor: sha256 of the token plus a std HashMap hit.
        let floor: HashMap<SecretHash, u64> = (0..n)
            .map(|i| (SecretHash::of(&token(&tags, i)), i as u64))
            .collect();
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("floor_sha256_hashmap", n), |b| {
            b.iter(|| {
                k = (k + 1) % pool.len();
                black_box(floor.get(&SecretHash::of(black_box(&pool[k]))))
            })
        });
        drop(floor);

        // The floor of a cold lookup: redb's read transaction and get, no decode.
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("redb_bare_get", n), |b| {
            b.iter(|| {
                k = (k + 1) % pool.len();
                let t = SecretHash::of(black_box(&pool[k]));
                black_box(redb.raw_access_len(&t).unwrap())
            })
        });
        // A cache miss served from redb: what `Cached` does on a miss (read, decode, expiry).
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("cold_lookup", n), |b| {
            b.iter(|| {
                k = (k + 1) % pool.len();
                let t = SecretHash::of(black_box(&pool[k]));
                black_box(now(redb.find_access(t, NOW)).unwrap())
            })
        });

        // The whole bearer check, as the proxy runs it once the token is read from its
        // header: tag (on a miss), sha256, cache, expiry, upstream binding, blocked people,
        // provider, scopes, metrics.
        let before = rss_mib();
        let key = [7u8; 32];
        let auth = Authority {
            store: Arc::new(Cached::with_capacity(Arc::new(redb), n)),
            sealer: Sealer::new(&key),
            forms: authgate::login::forms::FormTokens::new(&key),
            logins: Default::default(),
            cimd: Default::default(),
            registrations: Default::default(),
            diagnostics: Default::default(),
            tokens: tags.clone(),
            tagged_since,
            api_keys: Default::default(),
            signer: authgate::crypto::signing::IdentitySigner::ephemeral(&Sealer::new(&key)),
            discovery: Default::default(),
        };
        // Warm the cache with every stored token (production holds the live set).
        for i in 0..n {
            now(auth
                .store
                .authenticate(SecretHash::of(&token(&tags, i)), NOW))
            .unwrap();
        }
        let after = rss_mib();
        println!(
            "bearer/cache_memory/{n}: {} tokens cached, RSS {before:.0} → {after:.0} MiB ({:.0} bytes per token)",
            auth.store.cached_entries(),
            (after - before) * 1024.0 * 1024.0 / n as f64
        );
        let check = |token: &str| {
            now(authgate::proxy::bearer::authenticate_token(
                &auth, &config, token, &upstream, &counted, NOW,
            ))
        };
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("bearer_check", n), |b| {
            b.iter(|| {
                k = (k + 1) % pool.len();
                black_box(check(black_box(&pool[k])).is_ok())
            })
        });
        assert!(check(&pool[0]).is_ok(), "a stored token must pass");

        // API keys (100 of them, in memory): tag, sha256, map, the same checks as a token.
        // Store writes need a runtime; the measured check does not (its `last used` write is
        // not due: the keys were just used).
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut keys = Vec::new();
        for i in 0..100 {
            let (key, mut rec) = authgate::oauth::api_keys::mint(
                &auth.tokens,
                &format!("bot-{i}"),
                "ops@example.com",
                vec![upstream.name.clone()],
                upstream.scopes.clone(),
                NOW,
                None,
            );
            rec.last_used_at = Some(NOW);
            // The bench store is kept across runs: replace the key of an earlier run.
            rt.block_on(auth.store.delete_api_key(&rec.name)).unwrap();
            assert!(rt.block_on(auth.store.put_api_key(rec)).unwrap());
            keys.push(key);
        }
        rt.block_on(auth.api_keys.load(&*auth.store)).unwrap();
        assert!(check(&keys[0]).is_ok(), "a live key must pass");
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("api_key_check", n), |b| {
            b.iter(|| {
                k = (k + 1) % keys.len();
                black_box(check(black_box(&keys[k])).is_ok())
            })
        });

        // Tokens that are not authgate's (random, or with a wrong tag): refused from their
        // tag, without a store read.
        let forged: Vec<String> = (0..4096)
            .map(|_| TokenTags::new(rand_key()).mint("ag_at_"))
            .collect();
        assert!(check(&forged[0]).is_err());
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("forged_token", n), |b| {
            b.iter(|| {
                k = (k + 1) % forged.len();
                black_box(check(black_box(&forged[k])).is_err())
            })
        });
        // A well-tagged token the store does not hold (revoked or expired): reaches redb.
        let gone: Vec<String> = (0..4096).map(|i| token(&tags, n + i)).collect();
        assert!(check(&gone[0]).is_err());
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("revoked_token", n), |b| {
            b.iter(|| {
                k = (k + 1) % gone.len();
                black_box(check(black_box(&gone[k])).is_err())
            })
        });
        drop(auth);
    }
    group.finish();
}

fn rand_key() -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(&authgate::crypto::random_secret("").as_bytes()[..16]);
    k
}

fn request_work(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    // PKCE S256 verification at the token endpoint.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    group.bench_function("pkce_verify", |b| {
        b.iter(|| {
            black_box(authgate::oauth::pkce::verify(
                black_box(verifier),
                black_box(challenge),
            ))
        })
    });

    // Opening the sealed session cookie on every login/consent page.
    let sealer = Sealer::new(&[7u8; 32]);
    let session = authgate::login::session::Session {
        identity: record(1).identity,
        expires_at: u64::MAX,
        credential: None,
    };
    let sealed = sealer.seal_json(authgate::login::session::SESSION, &session);
    group.bench_function("session_cookie_open", |b| {
        b.iter(|| {
            black_box(sealer.open_json::<authgate::login::session::Session>(
                authgate::login::session::SESSION,
                black_box(&sealed),
            ))
        })
    });

    // Building the upstream request: strip spoofable headers, set identity headers.
    let config = authgate::config::parse(
        std::path::Path::new("bench.toml"),
        "[server]\npublic_url = \"http://127.0.0.1:8080\"\n[[upstream]]\nname = \"everything\"\npath = \"/mcp\"\nurl = \"http://127.0.0.1:3001/mcp\"\nauth = \"none\"\n",
        |_| None,
    )
    .unwrap();
    let upstream = config.upstreams[0].clone();
    let names = authgate::proxy::headers::IdentityNames::of(&upstream.identity_headers);
    let rec = record(42);
    let mut base = pingora::http::RequestHeader::build("POST", b"/mcp", None).unwrap();
    for (k, v) in [
        ("host", "127.0.0.1:8080"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        (
            "authorization",
            "Bearer ag_at_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ),
        ("mcp-protocol-version", "2025-11-25"),
        ("x-authgate-email", "spoofed@example.com"),
    ] {
        base.insert_header(k, v).unwrap();
    }
    group.bench_function("identity_headers", |b| {
        b.iter_batched(
            || base.clone(),
            |mut req| {
                authgate::proxy::headers::identity_for_upstream(
                    &mut req,
                    &upstream,
                    &names,
                    Some(&rec),
                )
                .unwrap();
                black_box(req)
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Policies (examples/policies.toml with policies/): a decision on a `tools/call` (goal
/// ≤ 1 µs), the whole per-request check (the body parsed too), and filtering a `tools/list`
/// SSE response of server-everything's size against copying it.
fn policy(c: &mut Criterion) {
    use authgate::policy::{Call, Subject};
    use authgate::proxy::list_filter::{ListFilter, ListKind};
    let mut group = c.benchmark_group("policy");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/policies.toml");
    let config = authgate::config::load(&path).expect("examples/policies.toml loads");
    let upstream = config.upstream("everything").unwrap().clone();
    let rules = config.policy.upstream("everything").unwrap();
    let mut rec = record(7);
    rec.identity.groups = vec!["demo".into()];
    group.bench_function("access_decision", |b| {
        b.iter(|| {
            let who = Subject::new(
                &config.policy,
                &rec.identity,
                rec.client_id.as_str(),
                &rec.scopes,
            );
            black_box(rules.access(&who, NOW).allowed)
        })
    });
    let call = Call {
        method: "tools/call",
        name: Some("trigger-long-running-operation"),
    };
    group.bench_function("call_decision", |b| {
        b.iter(|| {
            let who = Subject::new(
                &config.policy,
                &rec.identity,
                rec.client_id.as_str(),
                &rec.scopes,
            );
            black_box(rules.call(&who, black_box(call), NOW).allowed)
        })
    });
    let body = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello through authgate"},"_meta":{"progressToken":42}}}"#;
    group.bench_function("call_check_with_body", |b| {
        b.iter(|| {
            let (requests, batch) = authgate::proxy::policy::requests(black_box(body));
            black_box(matches!(
                authgate::proxy::policy::calls(&config, &upstream, rules, &rec, &requests, batch),
                authgate::proxy::policy::Verdict::Pass(_)
            ))
        })
    });
    // A tools/list result the size of server-everything's (13 tools with schemas), as SSE.
    let tools: Vec<serde_json::Value> = (0..13)
        .map(|i| serde_json::json!({"name": format!("tool-{i}"), "description": "Does a thing with the input it is given, at some length to be realistic", "inputSchema": {"type": "object", "properties": {"message": {"type": "string", "description": "The message"}, "count": {"type": "number"}}, "required": ["message"]}}))
        .collect();
    let event = format!(
        "event: message\ndata: {}\n\n",
        serde_json::json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": tools}})
    );
    group.throughput(Throughput::Bytes(event.len() as u64));
    group.bench_function("tools_list_copy", |b| {
        b.iter(|| black_box(bytes::Bytes::copy_from_slice(black_box(event.as_bytes()))))
    });
    group.bench_function("tools_list_filter", |b| {
        b.iter(|| {
            let keep = Box::new(|_: ListKind, name: &str| !name.ends_with('3'));
            let mut f = ListFilter::new(
                Some("text/event-stream"),
                vec![(serde_json::json!(3), ListKind::Tools)],
                keep,
                false,
            )
            .unwrap();
            black_box(f.feed(black_box(event.as_bytes()), true))
        })
    });
    group.finish();
}

#[path = "../tests/common/postgres.rs"]
mod pg_server;

/// A cache miss on each backend, through the `Store` trait on a tokio runtime (the PostgreSQL
/// lookup is a network round trip, over a unix socket here): what one replica pays for a
/// token it has not seen yet. 10k stored tokens drawn at random.
fn store_backends(c: &mut Criterion) {
    let n = 10_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (redb, tags, _) = store_with(n);
    let server = pg_server::PgServer::start();
    server.create_database("bench");
    let pg = rt
        .block_on(authgate::store::PostgresStore::open(
            &authgate::store::PgSettings {
                url: server.url("bench"),
                schema: "authgate".into(),
                pool_size: 4,
                ca_file: None,
            },
        ))
        .unwrap();
    let records: Vec<_> = (0..n)
        .map(|i| (SecretHash::of(&token(&tags, i)), record(i)))
        .collect();
    rt.block_on(pg.insert_access_bulk(records)).unwrap();
    let pool: Vec<String> = draws(n, 40_000)
        .into_iter()
        .map(|i| token(&tags, i))
        .collect();
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    for (name, store) in [
        ("cold_lookup_redb", &redb as &dyn Store),
        ("cold_lookup_postgres", &pg as &dyn Store),
    ] {
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter(|| {
                k = (k + 1) % pool.len();
                let t = SecretHash::of(black_box(&pool[k]));
                let found = rt.block_on(store.find_access(t, NOW)).unwrap();
                assert!(found.is_some());
                black_box(found)
            })
        });
    }
    group.finish();
}

fn main() {
    let mut c = configure().configure_from_args();
    store_backends(&mut c);
    bearer(&mut c);
    request_work(&mut c);
    policy(&mut c);
    c.final_summary();
}
