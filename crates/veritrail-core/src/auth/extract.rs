//! Finding the token in a request: `Authorization: Bearer`, a custom header, a cookie, or a
//! query parameter, in a configured order; two tokens in one request are refused (RFC 6750 §2:
//! a client must use only one method).

use super::error::AuthError;

/// The framework-neutral view of a request that token extraction needs. The tower and actix
/// adapters implement it over their request types.
pub trait TokenRequest {
    /// Calls `visit` with every value of the header `name` (given in lower case), in order.
    /// Values that are not valid UTF-8 may be skipped.
    fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str));
    /// The raw query string, without `?`.
    fn query(&self) -> Option<&str>;
}

impl<T: TokenRequest + ?Sized> TokenRequest for &T {
    fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str)) {
        (**self).for_each_header(name, visit)
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
            TokenSource::AuthorizationBearer => req.for_each_header("authorization", &mut |v| {
                let v = v.trim();
                let (scheme, rest) = v.split_once([' ', '\t']).unwrap_or((v, ""));
                if scheme.eq_ignore_ascii_case("bearer") {
                    put(checked(rest.trim_start_matches([' ', '\t'])), source);
                }
            }),
            TokenSource::Header(name) => req
                .for_each_header(&name.to_ascii_lowercase(), &mut |v| {
                    put(checked(v.trim()), source)
                }),
            TokenSource::Cookie(name) => req.for_each_header("cookie", &mut |v| {
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
                    if let Some((n, value)) = pair.split_once('=')
                        && n == name
                    {
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
            Err(AuthError::MultipleTokens)
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
}
