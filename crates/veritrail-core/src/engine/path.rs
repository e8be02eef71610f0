//! The one canonical form of a request path, used before any route policy is chosen.
//!
//! A route policy is only as good as the path it is matched against. Clients, proxies and
//! servers disagree on what `/health/../admin`, `//admin`, `/%61dmin`, `/admin;x` or
//! `/%2e%2e/admin` mean; if the engine matched one spelling and the service ran another, a
//! caller could reach `/admin` under the policy of `/health`. So the engine (for every adapter:
//! tower, axum, actix and `veritrail proxy`) matches, records and — in the proxy — forwards
//! one canonical path, and refuses with `400 invalid_path` every path that has no single
//! meaning.
//!
//! [`canonical_path`]:
//!
//! - percent-decodes the unreserved characters (`A`–`Z`, `a`–`z`, `0`–`9`, `-`, `.`, `_`,
//!   `~`; RFC 3986 §2.3) and nothing else: every other escape stays as it is, with its hex
//!   digits in upper case (§6.2.2.1). A path is decoded once: `%2561` stays `%2561`;
//! - collapses repeated `/` into one;
//! - removes `.` segments and resolves `..` segments (§5.2.4);
//! - keeps the case of everything but the escapes' hex digits: `/ADMIN` is not `/admin` (a
//!   service that folds case must be configured with every spelling it answers to);
//! - keeps a trailing `/` (`/admin/` and `/admin` are different paths).
//!
//! It refuses ([`PathError`]), because no single reading exists or because common servers
//! read them differently:
//!
//! - an empty path, and one that does not start with `/` (relative, or the asterisk-form `*`
//!   of `OPTIONS *`);
//! - an encoded separator `%2F` or `%5C` (in any case) and a literal `\`;
//! - a `.` or `..` segment spelled with escapes (`/%2e%2e/`, `/.%2E/`), and a segment ending
//!   in `.` or an encoded space (`/admin.`, `/admin%20`: Windows servers drop them);
//! - a `..` that would climb above the root;
//! - `;` and `%3B`: Tomcat, Jetty and Spring cut `;params` off every segment before routing
//!   (so `/admin;x` is their `/admin`, and `/health/..;/admin` their `/admin`), most other
//!   servers do not, and matrix parameters are too rare to be worth that ambiguity;
//! - NUL and other control characters, raw or encoded, a raw space, `?` or `#`;
//! - a malformed escape (`%` not followed by two hex digits), and escaped bytes that are not
//!   UTF-8 (overlong forms such as `%C0%AE` included).
//!
//! Non-ASCII characters sent raw are kept as they are.
//!
//! ```
//! use veritrail_core::engine::{PathError, canonical_path};
//!
//! assert_eq!(canonical_path("/orders/7")?, "/orders/7");
//! assert_eq!(canonical_path("//health/../%61dmin/./x")?, "/admin/x");
//! assert_eq!(canonical_path("/caf%c3%a9")?, "/caf%C3%A9");
//! assert_eq!(canonical_path("/health/%2e%2e/admin"), Err(PathError::EncodedDotSegment));
//! assert_eq!(canonical_path("/files/a%2Fb"), Err(PathError::EncodedSeparator));
//! assert_eq!(canonical_path("/.."), Err(PathError::AboveRoot));
//! # Ok::<(), PathError>(())
//! ```

use std::borrow::Cow;

/// Why a path has no canonical form; the request is refused with `400 invalid_path`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty.
    #[error("the request path is empty")]
    Empty,
    /// The path does not start with `/` (a relative path, or `*`).
    #[error("the request path must start with `/` (relative paths and `*` are refused)")]
    NotAbsolute,
    /// A character that has no place in a path: a control character, a space, `\`, `?` or
    /// `#`.
    #[error(
        "the request path contains a raw control character, space, `\\`, `?` or `#`; \
         percent-encode data characters"
    )]
    InvalidCharacter,
    /// A `%` not followed by two hex digits.
    #[error(
        "the request path has a malformed percent-escape (`%` must be followed by two hex digits)"
    )]
    BadEscape,
    /// `%2F` or `%5C`: an encoded `/` or `\`.
    #[error(
        "the request path contains an encoded `/` or `\\` (%2F, %5C), which servers split differently"
    )]
    EncodedSeparator,
    /// An encoded control character (`%00`–`%1F`, `%7F`).
    #[error("the request path contains an encoded NUL or control character")]
    EncodedControl,
    /// Escaped bytes that do not form UTF-8 (overlong forms included).
    #[error("the request path has percent-escaped bytes that are not valid UTF-8")]
    InvalidUtf8,
    /// A `.` or `..` segment written with escapes (`%2e%2e`).
    #[error("the request path has a `.` or `..` segment written with percent-escapes")]
    EncodedDotSegment,
    /// A segment ending in `.` or an encoded space, which Windows servers drop.
    #[error("a segment of the request path ends in `.` or an encoded space")]
    TrailingDotOrSpace,
    /// `;` or `%3B`: path parameters, which some servers strip before routing.
    #[error(
        "the request path contains `;` (path parameters are refused: servers disagree on them)"
    )]
    PathParameter,
    /// A `..` segment that would climb above the root.
    #[error("the request path climbs above the root with `..`")]
    AboveRoot,
}

impl PathError {
    /// The machine-readable reason code of the refusal.
    pub const CODE: &'static str = "invalid_path";
}

/// The canonical form of `raw`, a request path without its query (see the
/// [module docs](self) for the rules). Borrowed when `raw` already is canonical.
///
/// Canonicalising a canonical path gives it back unchanged, and a canonical path never
/// contains `//`, a `.` or `..` segment, `%2F`, `;`, `\` or NUL.
pub fn canonical_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let rest = match raw.as_bytes().first() {
        None => return Err(PathError::Empty),
        Some(b'/') => &raw[1..],
        Some(_) => return Err(PathError::NotAbsolute),
    };
    if is_canonical(rest) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut segments: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    let mut parts = rest.split('/').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let segment = Segment::parse(part)?;
        match segment.text.as_str() {
            "" | "." => trailing_slash = last,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = last;
            }
            _ => {
                segments.push(segment.text);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(raw.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    Ok(if out == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(out)
    })
}

/// Whether `path` (canonical) is `prefix` (canonical) or lies under it, on a segment
/// boundary: `/health` covers `/health` and `/health/x`, never `/healthz`. A trailing `/` on
/// the prefix does not change that: `/admin/` covers `/admin` too.
///
/// ```
/// use veritrail_core::engine::path_is_under;
///
/// assert!(path_is_under("/health", "/health"));
/// assert!(path_is_under("/health/live", "/health"));
/// assert!(!path_is_under("/healthz", "/health"));
/// assert!(path_is_under("/admin", "/admin/"));
/// assert!(path_is_under("/anything", "/"));
/// ```
pub fn path_is_under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The quick check that `rest` (the path after its first `/`) is canonical as it stands:
/// only plain characters, no empty segment but the last, no `.` or `..` segment, no segment
/// ending in `.`. Anything else takes the full pass.
fn is_canonical(rest: &str) -> bool {
    let mut parts = rest.split('/').peekable();
    while let Some(part) = parts.next() {
        if part.is_empty() {
            if parts.peek().is_some() {
                return false;
            }
        } else if part.ends_with('.') || !part.bytes().all(is_plain) {
            return false;
        }
    }
    true
}

/// A byte that stays as it is in a canonical path without further thought: unreserved,
/// sub-delimiters other than `;`, `:`, `@`, a few characters clients send unescaped, and
/// non-ASCII (UTF-8, since the path is a `str`).
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
                | b'"'
                | b'<'
                | b'>'
                | b'['
                | b']'
                | b'^'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
        )
        || b >= 0x80
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// One segment in canonical spelling.
struct Segment {
    text: String,
}

impl Segment {
    fn parse(raw: &str) -> Result<Segment, PathError> {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let bytes = raw.as_bytes();
        let mut text = String::with_capacity(raw.len());
        let mut escaped_dot = false;
        // Consecutive escaped bytes of 0x80 and above: they must spell UTF-8.
        let mut high: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b != b'%' {
                check_utf8(&mut high)?;
                if b == b';' {
                    return Err(PathError::PathParameter);
                }
                if b < 0x20 || b == 0x7f || matches!(b, b' ' | b'\\' | b'?' | b'#') {
                    return Err(PathError::InvalidCharacter);
                }
                // Copy the whole character (non-ASCII ones are several bytes).
                let len = raw[i..].chars().next().map_or(1, char::len_utf8);
                text.push_str(&raw[i..i + len]);
                i += len;
                continue;
            }
            let value = match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(&h), Some(&l)) => match (hex(h), hex(l)) {
                    (Some(h), Some(l)) => h << 4 | l,
                    _ => return Err(PathError::BadEscape),
                },
                _ => return Err(PathError::BadEscape),
            };
            i += 3;
            if value >= 0x80 {
                high.push(value);
            } else {
                check_utf8(&mut high)?;
            }
            match value {
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                b';' => return Err(PathError::PathParameter),
                0x00..=0x1f | 0x7f => return Err(PathError::EncodedControl),
                _ if is_unreserved(value) => {
                    escaped_dot |= value == b'.';
                    text.push(char::from(value));
                }
                _ => {
                    text.push('%');
                    text.push(char::from(HEX[usize::from(value >> 4)]));
                    text.push(char::from(HEX[usize::from(value & 0xf)]));
                }
            }
        }
        check_utf8(&mut high)?;
        let dots = !text.is_empty() && text.bytes().all(|b| b == b'.');
        if dots && escaped_dot && text.len() <= 2 {
            return Err(PathError::EncodedDotSegment);
        }
        // `.` and `..` are dot segments, resolved by the caller; any other segment ending in
        // `.` (`...` included) or an encoded space is a name Windows servers shorten.
        let dot_segment = text == "." || text == "..";
        if (!dot_segment && text.ends_with('.')) || text.ends_with("%20") {
            return Err(PathError::TrailingDotOrSpace);
        }
        Ok(Segment { text })
    }
}

/// Checks that the escaped bytes collected so far spell UTF-8, and starts a new run.
fn check_utf8(high: &mut Vec<u8>) -> Result<(), PathError> {
    if high.is_empty() {
        return Ok(());
    }
    let valid = std::str::from_utf8(high).is_ok();
    high.clear();
    if valid {
        Ok(())
    } else {
        Err(PathError::InvalidUtf8)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(raw: &str) -> String {
        canonical_path(raw)
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"))
            .into_owned()
    }

    fn err(raw: &str) -> PathError {
        canonical_path(raw).expect_err(raw)
    }

    #[test]
    fn canonical_paths_are_borrowed_as_they_are() {
        for raw in [
            "/",
            "/health",
            "/admin/",
            "/orders/7/items",
            "/a-b_c~d.e/f",
            "/caf%C3%A9",
            "/ADMIN",
            "/x%2561",
            "/a%20b",
            "/v1:batch",
            "/@me/x=1,2",
            "/café",
        ] {
            assert!(
                matches!(canonical_path(raw), Ok(Cow::Borrowed(p)) if p == raw),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn dot_segments_and_repeated_slashes_are_resolved() {
        for (raw, canonical) in [
            ("/health/../admin/x", "/admin/x"),
            ("//admin/x", "/admin/x"),
            ("///admin//x//", "/admin/x/"),
            ("/./admin", "/admin"),
            ("/admin/./x", "/admin/x"),
            ("/foo/../admin/x", "/admin/x"),
            ("/a/b/../../c", "/c"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/.", "/"),
            ("//", "/"),
            ("/a//../b", "/b"),
            ("/..a/b..c/.a", "/..a/b..c/.a"),
        ] {
            assert_eq!(ok(raw), canonical, "{raw:?}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        for (raw, canonical) in [
            ("/%61dmin/x", "/admin/x"),
            ("/%41%44%4D%49%4E", "/ADMIN"),
            ("/%7e%2d%5f%2E%30", "/~-_.0"),
            ("/file%2Ejson", "/file.json"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/%2561", "/%2561"),
            ("/%25%32%46", "/%252F"),
            ("/q%3f", "/q%3F"),
        ] {
            assert_eq!(ok(raw), canonical, "{raw:?}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        use PathError::*;
        for (raw, why) in [
            ("", Empty),
            ("admin", NotAbsolute),
            ("*", NotAbsolute),
            ("http://host/x", NotAbsolute),
            ("/a%2Fb", EncodedSeparator),
            ("/a%2fb", EncodedSeparator),
            ("/a%5Cb", EncodedSeparator),
            ("/a%5cb", EncodedSeparator),
            ("/a\\b", InvalidCharacter),
            ("/%2e%2e/admin", EncodedDotSegment),
            ("/health/%2E%2E/admin", EncodedDotSegment),
            ("/health/.%2E/admin", EncodedDotSegment),
            ("/health/%2e./admin", EncodedDotSegment),
            ("/%2e/admin", EncodedDotSegment),
            ("/a%00", EncodedControl),
            ("/a\0b", InvalidCharacter),
            ("/a%0d%0aX-Injected:%201", EncodedControl),
            ("/a%7f", EncodedControl),
            ("/a\tb", InvalidCharacter),
            ("/a b", InvalidCharacter),
            ("/a?b", InvalidCharacter),
            ("/a#b", InvalidCharacter),
            ("/..", AboveRoot),
            ("/../admin", AboveRoot),
            ("/a/../../admin", AboveRoot),
            ("/admin;x=1/y", PathParameter),
            ("/admin;", PathParameter),
            ("/health/..;/admin", PathParameter),
            ("/admin%3bx", PathParameter),
            ("/admin%3Bx", PathParameter),
            ("/a%", BadEscape),
            ("/a%4", BadEscape),
            ("/a%zz", BadEscape),
            ("/a%%41", BadEscape),
            ("/%C0%AE%C0%AE/admin", InvalidUtf8),
            ("/%c0%af", InvalidUtf8),
            ("/%E0%80%AE", InvalidUtf8),
            ("/%ED%A0%80", InvalidUtf8),
            ("/%C3", InvalidUtf8),
            ("/%C3x", InvalidUtf8),
            ("/%C3é", InvalidUtf8),
            ("/%FF", InvalidUtf8),
            ("/admin.", TrailingDotOrSpace),
            ("/admin%2e", TrailingDotOrSpace),
            ("/admin./x", TrailingDotOrSpace),
            ("/.../x", TrailingDotOrSpace),
            ("/admin%20", TrailingDotOrSpace),
            ("/admin%20/x", TrailingDotOrSpace),
        ] {
            assert_eq!(err(raw), why, "{raw:?}");
        }
    }

    #[test]
    fn case_is_significant() {
        assert_eq!(ok("/ADMIN/x"), "/ADMIN/x");
        assert!(!path_is_under(&ok("/ADMIN/x"), "/admin"));
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(path_is_under("/health", "/health"));
        assert!(path_is_under("/health/", "/health"));
        assert!(path_is_under("/health/x/y", "/health"));
        assert!(!path_is_under("/healthz", "/health"));
        assert!(!path_is_under("/healthz-anything", "/health"));
        assert!(!path_is_under("/health.json", "/health"));
        assert!(path_is_under("/admin", "/admin/"));
        assert!(path_is_under("/admin/", "/admin/"));
        assert!(path_is_under("/admin/x", "/admin/"));
        assert!(!path_is_under("/administrator", "/admin/"));
        assert!(path_is_under("/", "/"));
        assert!(path_is_under("/x", "/"));
    }

    /// Paths built from the characters that matter: separators, dots, escapes of every kind.
    fn path_strategy() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("a".to_owned()),
            Just("Z".to_owned()),
            Just("é".to_owned()),
            Just(";".to_owned()),
            Just("\\".to_owned()),
            Just("%".to_owned()),
            Just("~".to_owned()),
            (0u8..=255).prop_map(|b| format!("%{b:02x}")),
            (0u8..=255).prop_map(|b| format!("%{b:02X}")),
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|p| format!("/{}", p.concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn canonical_is_a_fixed_point(raw in path_strategy()) {
            if let Ok(canonical) = canonical_path(&raw) {
                let again = canonical_path(&canonical);
                prop_assert_eq!(again.as_deref(), Ok(&*canonical), "{:?}", raw);
                prop_assert!(matches!(again, Ok(Cow::Borrowed(_))), "{:?}", raw);
                prop_assert!(canonical.starts_with('/'));
                for bad in ["//", "/./", "/../", ";", "\\", "\0", "?", "#"] {
                    prop_assert!(!canonical.contains(bad), "{:?} → {:?}", raw, canonical);
                }
                for bad in ["%2F", "%2f", "%5C", "%00", "%3B", "%2E", "%41"] {
                    prop_assert!(!canonical.contains(bad), "{:?} → {:?}", raw, canonical);
                }
                prop_assert!(!canonical.ends_with("/.") && !canonical.ends_with("/.."));
            }
        }

        #[test]
        fn any_string_is_canonicalised_or_refused_without_panicking(raw in ".*") {
            let _ = canonical_path(&raw);
        }
    }
}
