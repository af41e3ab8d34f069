//! Time as the protocol counts it: Unix seconds. Handlers take `now` as an argument, so tests
//! fix the clock; only the edges (the proxy, the sweeper) read it.

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
