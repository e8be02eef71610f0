//! What the benchmarks share: the records they append (distinct JSON-ish objects of a fixed
//! length) and a CPU-time clock.

#![allow(dead_code, reason = "each benchmark uses part of this")]

/// Record `i`, `len` bytes long (at least 20).
pub(crate) fn record(i: u64, len: usize) -> Vec<u8> {
    let mut r = format!("{{\"v\":1,\"i\":{i},\"pad\":\"").into_bytes();
    let mut x = i ^ 0x9e37_79b9_7f4a_7c15;
    while r.len() < len - 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.push(b'a' + (x % 26) as u8);
    }
    r.extend_from_slice(b"\"}");
    r
}

/// CPU time (user + system, all threads) this process has used, from `/proc/self/stat`.
pub(crate) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / 100.0 // USER_HZ is 100 on Linux
}
