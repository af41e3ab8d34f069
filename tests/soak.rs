//! Memory and file descriptors over time, against the real binary, for `SOAK_SECONDS`
//! (default 120; the README's figures come from `SOAK_SECONDS=600`): a login every 2 s on
//! average, in bursts of four at once (local users: argon2 with its 19 MiB memory cost), tool
//! calls and a refresh every 2 s. RSS must stay flat once warm (slope under 1 MiB/min after
//! the first quarter) and under 64 MiB + 20 MiB per concurrent login at its peak; open
//! descriptors must not grow.

mod common;

use std::time::{Duration, Instant};

use common::flow::tokens_for;
use common::{start_echo_upstream, Gateway, TestConfig};

/// Logins started together in each burst.
const BURST: usize = 4;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Least-squares slope of `(seconds, KiB)` samples, in MiB per minute.
fn slope_mib_per_min(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    let (sx, sy) = samples
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = samples.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    num / den * 60.0 / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_stays_flat_under_a_stream_of_logins() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let up = start_echo_upstream().await;
    let config = TestConfig::new()
        .auth("registration_rate_limit = 0")
        .scope("mcp:tools")
        .upstream(
            "tools",
            "/mcp",
            &format!("{up}/mcp"),
            "scopes = [\"mcp:tools\"]",
        )
        .alice("")
        .build();
    let gw = Gateway::start(&config).await;
    let pid = gw.child.id();
    let resource = gw.url("/mcp");
    let client = reqwest::Client::new();
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut peak = 0;
    let mut fds_at_start = None;
    let mut logins = 0;
    // (client id, access token, refresh token) of the people signed in so far.
    let mut sessions: Vec<(String, String, String)> = Vec::new();
    let mut tick = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        if tick.is_multiple_of(4) {
            // Every 8 s, four people sign in at once: a login every 2 s on average.
            let burst = (0..BURST).map(|_| tokens_for(&gw, &resource));
            for (client_id, tokens) in futures_util::future::join_all(burst).await {
                logins += 1;
                let token = |k: &str| tokens[k].as_str().unwrap().to_string();
                sessions.push((client_id, token("access_token"), token("refresh_token")));
            }
        }
        // Every 2 s: a tool call from each of the last few sessions, and one refresh.
        for (_, access, _) in sessions.iter().rev().take(8) {
            let r = client
                .post(&resource)
                .bearer_auth(access)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let n = sessions.len();
        let (client_id, access, refresh) = &mut sessions[tick as usize % n];
        let (status, refreshed) = common::flow::token(
            &gw,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", client_id),
                ("refresh_token", refresh),
            ],
        )
        .await;
        assert_eq!(status, 200, "{refreshed}");
        *access = refreshed["access_token"].as_str().unwrap().to_string();
        *refresh = refreshed["refresh_token"].as_str().unwrap().to_string();
        tick += 1;
        let t = start.elapsed().as_secs_f64();
        let rss = rss_kib(pid);
        peak = peak.max(rss);
        // After a quarter of the run (the password buffers, the caches and the store file
        // have their working size by then), every sample counts.
        if t >= seconds as f64 / 4.0 {
            samples.push((t, rss as f64));
            fds_at_start.get_or_insert(open_fds(pid));
        }
        let next = Duration::from_secs(2 * tick);
        tokio::time::sleep(next.saturating_sub(start.elapsed())).await;
    }
    let slope = slope_mib_per_min(&samples);
    let peak_mib = peak as f64 / 1024.0;
    let fds = (fds_at_start.unwrap(), open_fds(pid));
    eprintln!(
        "soak: {logins} logins in {seconds}s, RSS now {} MiB, peak {peak_mib:.1} MiB, slope {slope:.2} MiB/min after the first quarter, fds {fds:?}",
        rss_kib(pid) / 1024
    );
    assert!(slope < 1.0, "RSS grows by {slope:.2} MiB/min: {samples:?}");
    let limit = 64.0 + 20.0 * BURST as f64;
    assert!(
        peak_mib <= limit,
        "peak RSS {peak_mib:.1} MiB > {limit} MiB"
    );
    assert!(fds.1 <= fds.0 + 4, "file descriptors grew: {fds:?}");
}
