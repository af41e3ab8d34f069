//! The per-request costs of the gateway, next to their floor (sha256 of the token plus a
//! `HashMap` hit), so the report reads as ratios. Goals (read them here, never asserted):
//! hot validation within 1.5× the floor, cold validation under 3 µs, flat from 10k to 10M.
//!
//! `cargo bench --bench hot_path` runs 10k and 1M stored tokens; set
//! `AUTHGATE_BENCH_10M=1` to add 10M (a ~3 GB store, generated once under target/).
//! `AUTHGATE_BENCH_QUICK=1` shortens every measurement (CI smoke runs).

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};

use authgate::crypto::{random_secret, Sealer};
use authgate::store::{AccessRecord, Cached, RedbStore, Store};
use authgate::vocab::{ClientId, GrantId, Identity, ScopeSet, SecretHash, UpstreamName};

const NOW: u64 = 1_000;

fn record(i: usize) -> AccessRecord {
    AccessRecord {
        grant_id: GrantId::new(format!("grant-{i}")),
        client_id: ClientId::new("agc_benchclient0000000000"),
        identity: Identity {
            provider: "corp".into(),
            subject: format!("user-{i}"),
            email: Some(format!("user-{i}@example.com")),
            name: Some(format!("User {i}")),
            groups: vec!["eng".into()],
        },
        scopes: ScopeSet::parse("mcp:tools").unwrap(),
        upstream: UpstreamName::parse("everything").unwrap(),
        expires_at: u64::MAX,
    }
}

/// Deterministic tokens, so a store generated once can be reused across runs.
fn token(i: usize) -> String {
    format!("ag_at_bench{i:037}")
}

fn sizes() -> Vec<usize> {
    let mut v = vec![10_000, 1_000_000];
    if std::env::var_os("AUTHGATE_BENCH_10M").is_some() {
        v.push(10_000_000);
    }
    v
}

/// A redb store with `n` access tokens under target/bench-stores/, made on first use.
fn store_with(n: usize) -> RedbStore {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-stores/{n}"));
    let marker = dir.join("complete");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let store = RedbStore::open(&dir).unwrap();
        const BATCH: usize = 200_000;
        for start in (0..n).step_by(BATCH) {
            let end = (start + BATCH).min(n);
            store
                .insert_access_bulk((start..end).map(|i| (SecretHash::of(&token(i)), record(i))))
                .unwrap();
        }
        std::fs::write(&marker, b"").unwrap();
        return store;
    }
    RedbStore::open(&dir).unwrap()
}

fn configure() -> Criterion {
    let quick = std::env::var_os("AUTHGATE_BENCH_QUICK").is_some();
    Criterion::default()
        .warm_up_time(Duration::from_millis(if quick { 200 } else { 1000 }))
        .measurement_time(Duration::from_secs(if quick { 1 } else { 4 }))
        .sample_size(if quick { 10 } else { 50 })
}

fn bearer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("bearer");
    group.throughput(Throughput::Elements(1));
    for n in sizes() {
        // Lookups walk a shuffled-by-stride pool of stored tokens, so every one hits.
        let pool: Vec<String> = (0..n).step_by((n / 4096).max(1)).map(token).collect();
        let stride = 7919;

        // The floor: sha256 of the token plus a std HashMap hit.
        let floor: HashMap<SecretHash, u64> = (0..n)
            .map(|i| (SecretHash::of(&token(i)), i as u64))
            .collect();
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("floor_sha256_hashmap", n), |b| {
            b.iter(|| {
                k = (k + stride) % pool.len();
                black_box(floor.get(&SecretHash::of(black_box(&pool[k]))))
            })
        });
        drop(floor);

        let redb = store_with(n);
        let cached = Cached::new(Arc::new(redb));
        // Warm the cache with every stored token (production holds the live set).
        rt.block_on(async {
            for i in 0..n {
                cached
                    .authenticate(SecretHash::of(&token(i)), NOW)
                    .await
                    .unwrap();
            }
        });
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("cache_hit", n), |b| {
            b.iter(|| {
                k = (k + stride) % pool.len();
                let t = SecretHash::of(black_box(&pool[k]));
                black_box(cached.cached(&t, NOW))
            })
        });
        drop(cached);

        // A cache miss served from redb: the backend's lookup, as `Cached` does on a miss.
        let redb = store_with(n);
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("cache_miss_redb", n), |b| {
            b.iter(|| {
                k = (k + stride) % pool.len();
                let t = SecretHash::of(black_box(&pool[k]));
                black_box(rt.block_on(redb.find_access(t, NOW)).unwrap())
            })
        });
        // An unknown token: the cache misses and redb says no.
        let cached = Cached::new(Arc::new(redb));
        let unknown: Vec<String> = (0..4096).map(|_| random_secret("ag_at_")).collect();
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("unknown_token", n), |b| {
            b.iter(|| {
                k = (k + 1) % unknown.len();
                let t = SecretHash::of(black_box(&unknown[k]));
                black_box(rt.block_on(cached.authenticate(t, NOW)).unwrap())
            })
        });
    }
    group.finish();
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
                authgate::proxy::headers::identity_for_upstream(&mut req, &upstream, Some(&rec))
                    .unwrap();
                black_box(req)
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn main() {
    let mut c = configure().configure_from_args();
    bearer(&mut c);
    request_work(&mut c);
    c.final_summary();
}
