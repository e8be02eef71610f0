//! Finding the token in a request: `Authorization: Bearer`, a custom header, a cookie, or a
//! query parameter, in a configured order. Ambiguity is refused with a 400, never resolved by
//! picking one: two tokens in one request (RFC 6750 §2: a client must use only one method),
//! two cookies or query parameters of the token's name, more than one `Authorization` header
//! whatever the schemes, and a credentials header that is not printable ASCII (a server behind
//! us could read a credential we skipped).

use super::error::AuthError;

/// The framework-neutral view of a request that token extraction needs. The tower and actix
/// adapters implement it over their request types.
pub trait TokenRequest {
    /// Calls `visit` with every value of the header `name` (given in lower case), in order.
    /// Values that are not valid UTF-8 may be skipped.
    fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str));
    /// Calls `visit` with every value of the header `name` as raw bytes, in order, including
    /// values that are not valid UTF-8. The default goes through
    /// [`for_each_header`](Self::for_each_header); adapters whose headers may hold other bytes
    /// override it, so that such a credential is refused rather than overlooked.
    fn for_each_header_bytes(&self, name: &str, visit: &mut dyn FnMut(&[u8])) {
        self.for_each_header(name, &mut |v| visit(v.as_bytes()))
    }
    /// The raw query string, without `?`.
    fn query(&self) -> Option<&str>;
}

impl<T: TokenRequest + ?Sized> TokenRequest for &T {
    fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str)) {
        (**self).for_each_header(name, visit)
    }
    fn for_each_header_bytes(&self, name: &str, visit: &mut dyn FnMut(&[u8])) {
        (**self).for_each_header_bytes(name, visit)
    }
    fn query(&self) -> Option<&str> {
        (**self).query()
    }
}

/// Borrowed header pairs and a query string: a [`TokenRequest`] for tests and simple callers.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderPairs<'a> {
    /// `(name, value)` pairs; names are compared case-insensitively.
    pub headers: &'a [(&'a str, &'a str)],
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
}

impl TokenRequest for HeaderPairs<'_> {
    fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str)) {
        for (n, v) in self.headers {
            if n.eq_ignore_ascii_case(name) {
                visit(v);
            }
        }
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
}

/// Where a token may be carried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (the scheme compared case-insensitively).
    AuthorizationBearer,
    /// A custom header holding the bare token (name in any case).
    Header(String),
    /// A cookie holding the bare token.
    Cookie(String),
    /// A query parameter (opt-in, for WebSocket handshakes: query strings end up in logs).
    Query(String),
}

impl TokenSource {
    /// The header this source reads (lower case), if it reads one: such headers must never be
    /// recorded in audit events.
    pub fn header_name(&self) -> Option<String> {
        match self {
            TokenSource::AuthorizationBearer => Some("authorization".to_owned()),
            TokenSource::Header(h) => Some(h.to_ascii_lowercase()),
            TokenSource::Cookie(_) => Some("cookie".to_owned()),
            TokenSource::Query(_) => None,
        }
    }
}

/// A token found in a request.
#[derive(Clone, PartialEq, Eq)]
pub struct FoundToken {
    /// The token text.
    pub token: String,
    /// Which configured source carried it.
    pub source: TokenSource,
}

impl std::fmt::Debug for FoundToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoundToken")
            .field("token", &format_args!("[{} bytes]", self.token.len()))
            .field("source", &self.source)
            .finish()
    }
}

/// Whether RFC 6750's `b64token` allows `b` before its `=` padding: letters, digits and
/// `-._~+/`. Written with `&`/`|` rather than a table or early exits so that the check over a
/// whole token compiles to vector instructions: it runs over every byte of every token, on
/// every request.
fn b64token_byte(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    let symbol = (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'+') | (b == b'/');
    letter | digit | symbol
}

fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty() && body.bytes().fold(true, |ok, b| ok & b64token_byte(b))
}

fn checked(token: &str) -> Result<String, AuthError> {
    if is_b64token(token) {
        Ok(token.to_owned())
    } else {
        Err(AuthError::BearerMalformed)
    }
}

/// A header value that may carry credentials: printable ASCII, spaces and tabs only.
fn credentials_text(value: &[u8]) -> Result<&str, AuthError> {
    if value
        .iter()
        .all(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
    {
        // ASCII is UTF-8.
        std::str::from_utf8(value).map_err(|_| AuthError::CredentialsNotAscii)
    } else {
        Err(AuthError::CredentialsNotAscii)
    }
}

/// `s` with `%XX` escapes and `+` decoded, as a server decodes query parameter names; bytes
/// that do not form UTF-8 come out as U+FFFD (they never equal a configured name).
fn query_name(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return s.into();
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let (bytes, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned().into()
}

/// Finds the one token in `req` among `sources`. `Ok(None)` when there is none.
pub fn find_token(
    sources: &[TokenSource],
    req: &dyn TokenRequest,
) -> Result<Option<FoundToken>, AuthError> {
    let mut found: Option<FoundToken> = None;
    let mut error: Option<AuthError> = None;
    let mut put = |token: Result<String, AuthError>, source: &TokenSource| {
        if found.is_some() || matches!(error, Some(AuthError::BearerMalformed)) {
            error = Some(AuthError::MultipleTokens);
            return;
        }
        match token {
            Ok(token) => {
                found = Some(FoundToken {
                    token,
                    source: source.clone(),
                })
            }
            Err(e) => error = Some(e),
        }
    };
    for source in sources {
        match source {
            TokenSource::AuthorizationBearer => {
                // Every Authorization field counts, whatever its scheme or bytes: one that we
                // skipped could be the one a server behind us reads.
                let mut fields = Vec::new();
                req.for_each_header_bytes("authorization", &mut |v| {
                    fields.push(credentials_text(v).map(str::to_owned))
                });
                if fields.len() > 1 {
                    return Err(AuthError::DuplicateAuthorization);
                }
                if let Some(field) = fields.pop() {
                    let field = field?;
                    let v = field.trim();
                    let (scheme, rest) = v.split_once([' ', '\t']).unwrap_or((v, ""));
                    if scheme.eq_ignore_ascii_case("bearer") {
                        put(checked(rest.trim_start_matches([' ', '\t'])), source);
                    }
                }
            }
            TokenSource::Header(name) => req
                .for_each_header_bytes(&name.to_ascii_lowercase(), &mut |v| {
                    put(credentials_text(v).and_then(|v| checked(v.trim())), source)
                }),
            TokenSource::Cookie(name) => req.for_each_header_bytes("cookie", &mut |v| {
                // Other cookies may hold any bytes; only the token's must be clean.
                let v = String::from_utf8_lossy(v);
                for pair in v.split(';') {
                    if let Some((n, value)) = pair.split_once('=')
                        && n.trim() == name
                    {
                        put(checked(value.trim().trim_matches('"')), source);
                    }
                }
            }),
            TokenSource::Query(name) => {
                for pair in req.query().unwrap_or("").split('&') {
                    // `acc%65ss_token` is `access_token` to the server behind us.
                    let (n, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if query_name(n) == name.as_str() {
                        put(checked(value), source);
                    }
                }
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64token_bytes_are_exactly_rfc_6750s() {
        for b in 0u8..=255 {
            let expected =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(b64token_byte(b), expected, "byte {b:#x}");
        }
    }

    fn find(
        headers: &[(&str, &str)],
        query: Option<&str>,
        sources: &[TokenSource],
    ) -> Result<Option<String>, AuthError> {
        find_token(sources, &HeaderPairs { headers, query }).map(|f| f.map(|f| f.token))
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let s = [TokenSource::AuthorizationBearer];
        for h in ["Bearer a.b.c", "bearer a.b.c", "BEARER   a.b.c"] {
            assert_eq!(
                find(&[("Authorization", h)], None, &s).unwrap().as_deref(),
                Some("a.b.c")
            );
        }
        assert_eq!(
            find(&[("authorization", "Basic dXNlcg==")], None, &s).unwrap(),
            None
        );
        assert_eq!(find(&[], None, &s).unwrap(), None);
    }

    #[test]
    fn empty_or_odd_bearer_is_a_bad_request() {
        let s = [TokenSource::AuthorizationBearer];
        for h in ["Bearer", "Bearer ", "Bearer a b", "Bearer a\"b"] {
            assert_eq!(
                find(&[("authorization", h)], None, &s),
                Err(AuthError::BearerMalformed),
                "{h}"
            );
        }
    }

    #[test]
    fn two_tokens_are_refused_whatever_their_sources() {
        let all = [
            TokenSource::AuthorizationBearer,
            TokenSource::Header("X-Token".into()),
            TokenSource::Cookie("at".into()),
            TokenSource::Query("access_token".into()),
        ];
        let two_bearers = [
            ("authorization", "Bearer a.b.c"),
            ("authorization", "Bearer d.e.f"),
        ];
        assert_eq!(
            find(&two_bearers, None, &all),
            Err(AuthError::DuplicateAuthorization)
        );
        let bearer_and_cookie = [
            ("authorization", "Bearer a.b.c"),
            ("cookie", "x=1; at=a.b.c"),
        ];
        assert_eq!(
            find(&bearer_and_cookie, None, &all),
            Err(AuthError::MultipleTokens)
        );
        assert_eq!(
            find(&[("x-token", "a.b.c")], Some("access_token=d.e.f"), &all),
            Err(AuthError::MultipleTokens)
        );
        assert_eq!(
            find(&[("cookie", "x=1; at=a.b.c")], None, &all)
                .unwrap()
                .as_deref(),
            Some("a.b.c")
        );
        assert_eq!(
            find(&[], Some("a=1&access_token=a.b.c"), &all)
                .unwrap()
                .as_deref(),
            Some("a.b.c")
        );
    }

    #[test]
    fn only_configured_sources_are_read() {
        let s = [TokenSource::AuthorizationBearer];
        assert_eq!(
            find(&[("cookie", "at=a.b.c")], Some("access_token=a.b.c"), &s).unwrap(),
            None
        );
    }

    #[test]
    fn more_than_one_authorization_header_is_refused_whatever_the_schemes() {
        let s = [TokenSource::AuthorizationBearer];
        for pair in [
            [
                ("authorization", "Bearer a.b.c"),
                ("Authorization", "Bearer a.b.c"),
            ],
            [
                ("authorization", "Basic dXNlcjpwdw=="),
                ("authorization", "Bearer a.b.c"),
            ],
            [
                ("AUTHORIZATION", "Bearer a.b.c"),
                ("authorization", "Basic dXNlcjpwdw=="),
            ],
            [
                ("authorization", "Basic dXNlcjpwdw=="),
                ("authorization", ""),
            ],
        ] {
            assert_eq!(
                find(&pair, None, &s),
                Err(AuthError::DuplicateAuthorization),
                "{pair:?}"
            );
        }
        // Several credentials joined in one field are no token either.
        for joined in [
            "Bearer a.b.c, Bearer d.e.f",
            "Bearer a.b.c,Basic dXNlcjpwdw==",
        ] {
            assert_eq!(
                find(&[("authorization", joined)], None, &s),
                Err(AuthError::BearerMalformed),
                "{joined}"
            );
        }
        let e = AuthError::DuplicateAuthorization;
        assert_eq!((e.status(), e.code()), (400, "duplicate_authorization"));
        assert!(
            e.www_authenticate(None)
                .unwrap()
                .contains("error=\"invalid_request\"")
        );
    }

    /// Headers with raw byte values, as hyper and actix hold them.
    struct RawHeaders(Vec<(&'static str, Vec<u8>)>);

    impl TokenRequest for RawHeaders {
        fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str)) {
            for (n, v) in &self.0 {
                if *n == name
                    && let Ok(v) = std::str::from_utf8(v)
                {
                    visit(v);
                }
            }
        }
        fn for_each_header_bytes(&self, name: &str, visit: &mut dyn FnMut(&[u8])) {
            for (n, v) in &self.0 {
                if *n == name {
                    visit(v);
                }
            }
        }
        fn query(&self) -> Option<&str> {
            None
        }
    }

    #[test]
    fn credentials_that_are_not_ascii_are_refused_not_skipped() {
        let bearer = [TokenSource::AuthorizationBearer];
        let raw = |headers: Vec<(&'static str, Vec<u8>)>, sources: &[TokenSource]| {
            find_token(sources, &RawHeaders(headers)).map(|f| f.map(|f| f.token))
        };
        // A non-UTF-8 first field no longer hides behind a good second one.
        assert_eq!(
            raw(
                vec![
                    ("authorization", b"Basic \xff\xfe".to_vec()),
                    ("authorization", b"Bearer a.b.c".to_vec()),
                ],
                &bearer
            ),
            Err(AuthError::DuplicateAuthorization)
        );
        for alone in [
            &b"Basic \xff"[..],
            b"Bearer a.b.c\x01",
            "Bearer é".as_bytes(),
        ] {
            assert_eq!(
                raw(vec![("authorization", alone.to_vec())], &bearer),
                Err(AuthError::CredentialsNotAscii),
                "{alone:?}"
            );
        }
        let header = [TokenSource::Header("x-token".into())];
        assert_eq!(
            raw(vec![("x-token", b"a.b\xc3".to_vec())], &header),
            Err(AuthError::CredentialsNotAscii)
        );
        // Another cookie's bytes do not matter; the token cookie is found.
        let cookie = [TokenSource::Cookie("at".into())];
        assert_eq!(
            raw(vec![("cookie", b"x=\xff; at=a.b.c".to_vec())], &cookie),
            Ok(Some("a.b.c".into()))
        );
    }

    #[test]
    fn two_cookies_or_query_parameters_of_the_token_name_are_refused() {
        let cookie = [TokenSource::Cookie("at".into())];
        for headers in [
            &[("cookie", "at=a.b.c; at=d.e.f")][..],
            &[("cookie", "at=a.b.c"), ("cookie", "at=a.b.c")],
            &[("cookie", " at = a.b.c ;x=1; at=\"d.e.f\"")],
        ] {
            assert_eq!(
                find(headers, None, &cookie),
                Err(AuthError::MultipleTokens),
                "{headers:?}"
            );
        }
        let query = [TokenSource::Query("access_token".into())];
        for q in [
            "access_token=a.b.c&access_token=d.e.f",
            "access_token=a.b.c&acc%65ss_token=d.e.f",
            "access_token=a.b.c&access%5Ftoken=d.e.f",
            "acc%65ss_token=a.b.c&x=1&access_token",
        ] {
            assert_eq!(
                find(&[], Some(q), &query),
                Err(AuthError::MultipleTokens),
                "{q}"
            );
        }
        assert_eq!(
            find(&[], Some("acc%65ss_token=a.b.c"), &query)
                .unwrap()
                .as_deref(),
            Some("a.b.c")
        );
    }
}
