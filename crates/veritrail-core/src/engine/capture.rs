//! Which request headers and query parameters are recorded: only those allow-listed, and never
//! credentials.

use std::collections::BTreeMap;

use super::view::RequestView;

/// Headers that are never recorded, whatever the allow-list says.
pub const NEVER_RECORDED_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Query parameters that are never recorded (they carry tokens by convention, RFC 6750 §2.3).
pub const NEVER_RECORDED_QUERY: [&str; 2] = ["access_token", "id_token"];

/// The allow-lists of headers and query parameters to record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureRules {
    headers: Vec<String>,
    query: Vec<String>,
    denied_headers: Vec<String>,
    denied_query: Vec<String>,
}

impl CaptureRules {
    /// Records nothing beyond the fixed request fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also records header `name` (case-insensitive) when present. `Authorization`,
    /// `Proxy-Authorization`, `Cookie`, `Set-Cookie` and any header a token is read from are
    /// never recorded.
    pub fn header(mut self, name: &str) -> Self {
        self.headers.push(name.to_ascii_lowercase());
        self
    }

    /// Also records query parameter `name` (exact match) when present. `access_token`,
    /// `id_token` and any parameter a token is read from are never recorded.
    pub fn query_param(mut self, name: &str) -> Self {
        self.query.push(name.to_owned());
        self
    }

    /// Never records header `name`, even if allow-listed (used for a token header).
    pub fn deny_header(mut self, name: &str) -> Self {
        self.denied_headers.push(name.to_ascii_lowercase());
        self
    }

    /// Never records query parameter `name`, even if allow-listed (used for a token parameter).
    pub fn deny_query_param(mut self, name: &str) -> Self {
        self.denied_query.push(name.to_owned());
        self
    }

    fn header_allowed(&self, name: &str) -> bool {
        !NEVER_RECORDED_HEADERS.contains(&name) && !self.denied_headers.iter().any(|d| d == name)
    }

    fn query_allowed(&self, name: &str) -> bool {
        !NEVER_RECORDED_QUERY.contains(&name) && !self.denied_query.iter().any(|d| d == name)
    }

    /// The allow-listed headers present in the request (repeated values joined by `, `).
    pub fn headers(&self, req: &dyn RequestView) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for name in self.headers.iter().filter(|n| self.header_allowed(n)) {
            let mut joined: Option<String> = None;
            req.for_each_header(name, &mut |v| match &mut joined {
                Some(j) => {
                    j.push_str(", ");
                    j.push_str(v);
                }
                None => joined = Some(v.to_owned()),
            });
            if let Some(v) = joined {
                out.insert(name.clone(), v);
            }
        }
        out
    }

    /// The allow-listed query parameters present in the request, as sent (still
    /// percent-encoded); a repeated parameter keeps its first value.
    pub fn query(&self, req: &dyn RequestView) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(query) = req.query() else {
            return out;
        };
        if self.query.is_empty() {
            return out;
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if self.query.iter().any(|q| q == k) && self.query_allowed(k) {
                out.entry(k.to_owned()).or_insert_with(|| v.to_owned());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::view::SimpleRequest;

    #[test]
    fn only_allow_listed_and_never_credentials() {
        let rules = CaptureRules::new()
            .header("X-Tenant")
            .header("authorization")
            .header("cookie")
            .header("x-api-token")
            .deny_header("X-Api-Token")
            .header("accept");
        let req = SimpleRequest::new("GET", "/")
            .header("x-tenant", "acme")
            .header("accept", "text/html")
            .header("accept", "application/json")
            .header("authorization", "Bearer secret")
            .header("cookie", "session=secret")
            .header("x-api-token", "secret")
            .header("x-other", "no");
        let got = rules.headers(&req);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got["x-tenant"], "acme");
        assert_eq!(got["accept"], "text/html, application/json");
    }

    #[test]
    fn query_allow_list() {
        let rules = CaptureRules::new()
            .query_param("page")
            .query_param("access_token")
            .query_param("ws_token")
            .deny_query_param("ws_token");
        let req = SimpleRequest::new("GET", "/x?page=2&sort=asc&access_token=s&ws_token=t&page=3");
        let got = rules.query(&req);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![("page".into(), "2".into())]
        );
        let none = CaptureRules::new().query(&req);
        assert!(none.is_empty());
    }
}
