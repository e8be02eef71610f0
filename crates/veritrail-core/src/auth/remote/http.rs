//! The HTTP side: one client per store, bounded requests, `Cache-Control`, OIDC discovery.

use std::time::Duration;

use reqwest::{StatusCode, Url, header};

use super::config::JwksConfig;
use super::error::{JwksError, prefix};

/// A fetched document.
pub(super) struct Fetched {
    pub(super) body: Vec<u8>,
    /// Remaining freshness from `Cache-Control` (`max-age` minus `Age`; zero for `no-cache`
    /// and `no-store`), before clamping.
    pub(super) max_age: Option<Duration>,
}

/// One HTTP client, built once per store and reused for every fetch.
pub(super) struct Fetcher {
    client: reqwest::Client,
    request_timeout: Duration,
    max_response_bytes: usize,
}

impl Fetcher {
    pub(super) fn new(config: &JwksConfig) -> Result<Self, JwksError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("veritrail/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .https_only(!config.allow_insecure_http)
            .redirect(reqwest::redirect::Policy::custom(same_origin_redirects))
            .build()
            .map_err(|e| JwksError::Client(e.without_url().to_string()))?;
        Ok(Self {
            client,
            request_timeout: config.request_timeout,
            max_response_bytes: config.max_response_bytes,
        })
    }

    /// GETs `url`: 2xx only, at most `max_response_bytes`, all within the request timeout.
    pub(super) async fn get(&self, url: &Url) -> Result<Fetched, JwksError> {
        // reqwest applies the same timeout; this one also bounds our own body loop and is
        // driven by tokio's clock, so paused-time tests see it.
        tokio::time::timeout(self.request_timeout, self.get_unbounded(url))
            .await
            .unwrap_or_else(|_| {
                Err(JwksError::Timeout {
                    url: url.to_string(),
                    timeout: self.request_timeout,
                })
            })
    }

    async fn get_unbounded(&self, url: &Url) -> Result<Fetched, JwksError> {
        let mut response = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.transport_error(url, e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(JwksError::RedirectRefused {
                url: url.to_string(),
            });
        }
        let too_large = || JwksError::TooLarge {
            url: url.to_string(),
            limit: self.max_response_bytes,
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_bytes as u64)
        {
            return Err(too_large());
        }
        let max_age = freshness(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(url, e))?
        {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(status_error(url, status, &body));
        }
        Ok(Fetched { body, max_age })
    }

    fn transport_error(&self, url: &Url, error: reqwest::Error) -> JwksError {
        let url = url.to_string();
        if error.is_timeout() {
            JwksError::Timeout {
                url,
                timeout: self.request_timeout,
            }
        } else if error.is_connect() {
            JwksError::Connect {
                url,
                reason: error_chain(&error.without_url()),
            }
        } else {
            JwksError::Transport {
                url,
                reason: error_chain(&error.without_url()),
            }
        }
    }

    /// Fetches the discovery document of `issuer` and returns its `jwks_uri`.
    pub(super) async fn discover(
        &self,
        config: &JwksConfig,
        issuer: &str,
    ) -> Result<Url, JwksError> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = config.discovery_url(issuer)?;
        let fetched = self.get(&url).await?;
        let document: Discovery =
            serde_json::from_slice(&fetched.body).map_err(|e| JwksError::Discovery {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        if document.issuer != issuer {
            return Err(JwksError::IssuerMismatch {
                expected: issuer.to_owned(),
                found: prefix(&document.issuer, 200),
            });
        }
        config.check_url(&document.jwks_uri)
    }
}

/// Follows at most five redirects, and only within the origin of the first URL.
fn same_origin_redirects(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let Some(first) = attempt.previous().first() else {
        return attempt.stop();
    };
    if attempt.previous().len() > 5 || attempt.url().origin() != first.origin() {
        attempt.stop()
    } else {
        attempt.follow()
    }
}

fn status_error(url: &Url, status: StatusCode, body: &[u8]) -> JwksError {
    JwksError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        body_prefix: prefix(&String::from_utf8_lossy(&body[..body.len().min(256)]), 64),
    }
}

/// The error with its sources, which is where hyper and rustls put the useful part.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    prefix(&text, 300)
}

/// Remaining freshness of a response (RFC 9111 §4.2): `max-age` minus `Age`, zero for
/// `no-cache` / `no-store`, `None` when the response says nothing.
pub(super) fn freshness(headers: &header::HeaderMap) -> Option<Duration> {
    let mut max_age: Option<u64> = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let seconds =
                if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                    Some(0)
                } else if name.eq_ignore_ascii_case("max-age") {
                    // An invalid max-age makes the response stale (RFC 9111 §5.2.1.1).
                    Some(arg.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0))
                } else {
                    None
                };
            if let Some(s) = seconds {
                max_age = Some(max_age.map_or(s, |m| m.min(s)));
            }
        }
    }
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    max_age.map(|m| Duration::from_secs(m.saturating_sub(age)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn freshness_reads_max_age_and_age() {
        assert_eq!(freshness(&headers(&[])), None);
        assert_eq!(
            freshness(&headers(&[("cache-control", "public, max-age=300")])),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            freshness(&headers(&[
                ("cache-control", "Max-Age=\"300\""),
                ("age", "100")
            ])),
            Some(Duration::from_secs(200))
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "max-age=10"), ("age", "99")])),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn freshness_takes_the_most_restrictive_directive() {
        assert_eq!(
            freshness(&headers(&[
                ("cache-control", "max-age=600"),
                ("cache-control", "max-age=60")
            ])),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "max-age=600, no-cache")])),
            Some(Duration::ZERO)
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "max-age=soon")])),
            Some(Duration::ZERO)
        );
        assert_eq!(freshness(&headers(&[("cache-control", "private")])), None);
    }

    #[test]
    fn status_errors_keep_only_a_short_sanitised_prefix() {
        let url = Url::parse("https://idp.example/jwks").unwrap();
        let body = format!("<html>\n{}</html>", "x".repeat(5000));
        let JwksError::Status {
            status,
            body_prefix,
            ..
        } = status_error(&url, StatusCode::BAD_GATEWAY, body.as_bytes())
        else {
            panic!("not a status error")
        };
        assert_eq!(status, 502);
        assert!(body_prefix.starts_with("<html> xxx"));
        assert!(body_prefix.chars().count() <= 65, "{body_prefix}");
    }
}
