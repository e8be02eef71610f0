//! The records the benchmarks append: distinct JSON-ish objects of a fixed length.

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
