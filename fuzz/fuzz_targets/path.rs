//! The request path canonicaliser (`engine::canonical_path`) and the segment-boundary prefix
//! match (`engine::path_is_under`) that every adapter's route policy rests on.
//!
//! Input: a request path, optionally followed by NUL and a route prefix.
//!
//! Properties: the canonical path, canonicalised again, is itself; it starts with `/` and holds
//! no `//`, `.` or `..` segment, `;`, `%2F`/`%5C`, `\` or ASCII control character; a path is under a
//! prefix exactly when it is the prefix or lies below it on a segment boundary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veritrail_core::engine::{canonical_path, path_is_under};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (raw, prefix) = text.split_once('\0').unwrap_or((text, "/admin"));
    let Ok(canonical) = canonical_path(raw) else {
        return;
    };
    let again = canonical_path(&canonical)
        .unwrap_or_else(|e| panic!("{raw:?} → {canonical:?}, which is refused: {e}"));
    assert_eq!(again, canonical, "not a fixed point: {raw:?}");
    assert!(canonical.starts_with('/'), "{raw:?} → {canonical:?}");
    assert!(!canonical.contains("//"), "{raw:?} → {canonical:?}");
    for segment in canonical.split('/') {
        assert!(segment != "." && segment != "..", "{raw:?} → {canonical:?}");
    }
    let upper = canonical.to_ascii_uppercase();
    for bad in [";", "%2F", "%5C", "\\", "%3B", "%00"] {
        assert!(!upper.contains(bad), "{raw:?} → {canonical:?} holds {bad}");
    }
    // ASCII controls only: raw non-ASCII characters are kept as sent, C1 controls (U+0080 to
    // U+009F) included; the CLI shows those escaped.
    assert!(
        !canonical.contains(|c: char| c.is_ascii_control()),
        "{raw:?} → {canonical:?}"
    );
    // A prefix covers itself and what lies below it, on a segment boundary; its trailing `/`s
    // do not count (`/admin/` covers `/admin`).
    let base = prefix.trim_end_matches('/');
    let expected = canonical == base
        || canonical
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'));
    assert_eq!(
        path_is_under(&canonical, prefix),
        expected,
        "{canonical:?} under {prefix:?}"
    );
});
