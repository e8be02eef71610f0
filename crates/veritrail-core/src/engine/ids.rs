//! Correlation ids: the request id (`X-Request-Id`) and the W3C `traceparent` header.

use super::view::RequestView;

/// The longest incoming request id that is kept; longer ones are replaced by a fresh id.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The incoming request id if it is short and made of safe characters, else `None`.
///
/// Anything a client sends lands in the log, so the id is limited to visible ASCII without
/// quotes, backslashes or spaces.
pub fn incoming_request_id<'a>(req: &'a dyn RequestView, header: &str) -> Option<&'a str> {
    let id = req.header(header)?.trim();
    let ok = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    ok.then_some(id)
}

/// A request id held in place (ids are at most [`MAX_REQUEST_ID_LEN`] visible ASCII
/// characters): the exchange keeps its own copy without a second allocation.
pub(crate) struct InlineId {
    len: u8,
    bytes: [u8; MAX_REQUEST_ID_LEN],
}

impl InlineId {
    /// `id`, cut to [`MAX_REQUEST_ID_LEN`] bytes on a character boundary.
    pub(crate) fn new(id: &str) -> Self {
        let mut len = id.len().min(MAX_REQUEST_ID_LEN);
        while !id.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0u8; MAX_REQUEST_ID_LEN];
        bytes[..len].copy_from_slice(&id.as_bytes()[..len]);
        InlineId {
            len: u8::try_from(len).expect("at most 128"),
            bytes,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// A fresh request id: a UUID v7 (time-ordered), hyphenated.
pub fn new_request_id() -> String {
    request_id_from(fresh_uuid())
}

pub(crate) fn request_id_from(id: uuid::Uuid) -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf).to_owned()
}

/// Unix milliseconds of `t` (0 before 1970).
pub(crate) fn unix_millis(t: time::OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// A UUID v7 (time-ordered) without a system call for randomness: its 74 "random" bits are a
/// per-process random seed mixed with a counter, so ids are unique within the process and,
/// with overwhelming probability, across processes. They identify events; they are not
/// secrets.
pub(crate) fn fresh_uuid() -> uuid::Uuid {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    fresh_uuid_at(millis)
}

/// [`fresh_uuid`] with the time already read (Unix milliseconds): one clock read serves a
/// request's time, its request id and its event id.
pub(crate) fn fresh_uuid_at(millis: u64) -> uuid::Uuid {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: OnceLock<[u8; 10]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // The random tail of one ordinary v7 UUID seeds the process.
    let seed = SEED.get_or_init(|| {
        let bytes = uuid::Uuid::now_v7().into_bytes();
        bytes[6..].try_into().expect("10 bytes")
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut random = [0u8; 10];
    random[..2].copy_from_slice(&seed[..2]);
    let mixed = u64::from_le_bytes(seed[2..10].try_into().expect("8 bytes")) ^ n;
    random[2..].copy_from_slice(&mixed.to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// The trace and parent span ids of a W3C `traceparent` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// 32 lower-case hex digits, not all zero.
    pub trace_id: String,
    /// 16 lower-case hex digits, not all zero (the caller's span).
    pub span_id: String,
    /// The trace flags byte (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value per W3C Trace Context §3.2: version `ff` is invalid;
    /// version `00` is exactly 55 characters; a later version may append `-`-separated fields.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim().as_bytes();
        if v.len() < 55 || (v.len() > 55 && v[55] != b'-') {
            return None;
        }
        let field = |r: std::ops::Range<usize>| {
            let s = std::str::from_utf8(&v[r]).ok()?;
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                .then_some(s)
        };
        let version = field(0..2)?;
        if version == "ff" || (version == "00" && v.len() != 55) {
            return None;
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let trace_id = field(3..35)?;
        let span_id = field(36..52)?;
        let flags = u8::from_str_radix(field(53..55)?, 16).ok()?;
        if trace_id.bytes().all(|b| b == b'0') || span_id.bytes().all(|b| b == b'0') {
            return None;
        }
        Some(TraceParent {
            trace_id: trace_id.to_owned(),
            span_id: span_id.to_owned(),
            flags,
        })
    }

    /// The request's `traceparent`, if present and valid.
    pub fn from_request(req: &dyn RequestView) -> Option<Self> {
        TraceParent::parse(req.header("traceparent")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::view::SimpleRequest;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_spec_example() {
        let tp = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(tp.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id, "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
    }

    #[test]
    fn rejects_invalid_traceparents() {
        for bad in [
            "",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A future version may carry more fields.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-abc";
        assert!(TraceParent::parse(future).is_some());
    }

    #[test]
    fn request_ids_are_kept_only_when_safe() {
        let ok = SimpleRequest::new("GET", "/").header("x-request-id", "abc-123");
        assert_eq!(incoming_request_id(&ok, "x-request-id"), Some("abc-123"));
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        for bad in ["", "has space", "quo\"te", long.as_str()] {
            let req = SimpleRequest::new("GET", "/").header("x-request-id", bad);
            assert_eq!(incoming_request_id(&req, "x-request-id"), None, "{bad}");
        }
        let a = new_request_id();
        assert_eq!(a.len(), 36);
        assert_ne!(a, new_request_id());
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| fresh_uuid()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|u| u.get_version_num() == 7));
    }
}
