//! `postgres://USER@HOST:PORT/DB?schema=S&origin=O`: where a log lives in PostgreSQL.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::PgError;

/// The schema used when a location names none.
pub const DEFAULT_SCHEMA: &str = "veritrail";

/// A log's place in PostgreSQL: the connection (user, host, port, database), the schema of
/// the log tables, and optionally one origin (one log) within it.
///
/// Written `postgres://USER[:PASSWORD]@HOST[:PORT]/DB?schema=S&origin=O` (`postgresql://`
/// too; `schema` defaults to [`DEFAULT_SCHEMA`]; other parameters, such as
/// `connect_timeout=5` or `application_name=…`, go to the client as libpq would take them).
/// A password may also come from `PGPASSWORD`. [`Display`](fmt::Display) and `Debug` never
/// show the password.
///
/// ```
/// use veritrail_postgres::PgLocation;
///
/// let loc: PgLocation = "postgres://audit@db.internal:5432/app?origin=orders-api/pod-7"
///     .parse()
///     .unwrap();
/// assert_eq!(loc.schema(), "veritrail");
/// assert_eq!(loc.origin(), Some("orders-api/pod-7"));
/// let secret: PgLocation = "postgres://audit:hunter2@db/app?schema=audit".parse().unwrap();
/// assert!(!secret.to_string().contains("hunter2"));
/// ```
#[derive(Clone)]
pub struct PgLocation {
    config: tokio_postgres::Config,
    schema: String,
    origin: Option<String>,
    shown: String,
}

impl PgLocation {
    /// Whether `text` looks like a PostgreSQL location (and not a directory path).
    pub fn is_postgres(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// The schema holding the log tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The origin named, if any.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The same location for another origin (or for none).
    pub fn with_origin(&self, origin: Option<&str>) -> PgLocation {
        let mut loc = self.clone();
        loc.origin = origin.map(str::to_owned);
        loc.shown = shown(&loc.config, &loc.schema, loc.origin.as_deref());
        loc
    }

    /// The same location in another schema.
    pub fn with_schema(&self, schema: &str) -> Result<PgLocation, PgError> {
        check_schema(schema)?;
        let mut loc = self.clone();
        loc.schema = schema.to_owned();
        loc.shown = shown(&loc.config, &loc.schema, loc.origin.as_deref());
        Ok(loc)
    }

    /// The client configuration.
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl FromStr for PgLocation {
    type Err = PgError;

    fn from_str(text: &str) -> Result<Self, PgError> {
        let bad = |reason: String| PgError::Location {
            reason: format!("{reason} (expected postgres://USER@HOST:PORT/DB?schema=S&origin=O)"),
        };
        if !Self::is_postgres(text) {
            return Err(bad("not a postgres:// URL".into()));
        }
        let (base, query) = match text.split_once('?') {
            Some((b, q)) => (b, q),
            None => (text, ""),
        };
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let mut origin = None;
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| bad(format!("bad escape in {key}")))?;
            match key {
                "schema" => schema = value,
                "origin" if value.is_empty() => return Err(bad("origin is empty".into())),
                "origin" => origin = Some(value),
                "sslmode" if value != "disable" && value != "prefer" => {
                    return Err(bad(format!(
                        "sslmode={value}: this build connects without TLS; reach the server \
                         over a trusted network or a local socket, or through a TLS tunnel"
                    )));
                }
                _ => passed.push(pair),
            }
        }
        check_schema(&schema)?;
        let mut url = base.to_owned();
        if !passed.is_empty() {
            url.push('?');
            url.push_str(&passed.join("&"));
        }
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| PgError::Location {
            reason: format!("{e} (expected postgres://USER@HOST:PORT/DB?schema=S&origin=O)"),
        })?;
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("veritrail");
        }
        config.keepalives_idle(Duration::from_secs(30));
        let shown = shown(&config, &schema, origin.as_deref());
        Ok(PgLocation {
            config,
            schema,
            origin,
            shown,
        })
    }
}

/// Schema names go into SQL as identifiers: lower-case letters, digits and `_` only.
fn check_schema(schema: &str) -> Result<(), PgError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(PgError::Location {
            reason: format!(
                "schema {schema:?}: use lower-case letters, digits and _ (at most 63, not \
                 starting with a digit or pg_)"
            ),
        })
    }
}

fn shown(config: &tokio_postgres::Config, schema: &str, origin: Option<&str>) -> String {
    let user = config.get_user().unwrap_or("");
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("");
    let mut out = format!("postgres://{user}@{host}:{port}/{db}?schema={schema}");
    if let Some(origin) = origin {
        out.push_str("&origin=");
        out.push_str(origin);
    }
    out
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

impl fmt::Display for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgLocation({})", self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schema_origin_and_hides_the_password() {
        let loc: PgLocation =
            "postgresql://u:pw@localhost:6543/db?origin=a%2Fb&schema=s1&connect_timeout=2"
                .parse()
                .unwrap();
        assert_eq!((loc.schema(), loc.origin()), ("s1", Some("a/b")));
        assert_eq!(
            loc.to_string(),
            "postgres://u@localhost:6543/db?schema=s1&origin=a/b"
        );
        assert!(!format!("{loc:?}").contains("pw"));
        assert_eq!(
            loc.config().get_connect_timeout(),
            Some(&Duration::from_secs(2))
        );
    }

    #[test]
    fn refuses_bad_schemas_and_tls_it_cannot_do() {
        for bad in [
            "postgres://u@h/db?schema=Bad",
            "postgres://u@h/db?schema=a;drop",
            "postgres://u@h/db?schema=pg_catalog",
            "postgres://u@h/db?sslmode=require",
            "postgres://u@h/db?origin=",
            "/var/log/x",
        ] {
            assert!(bad.parse::<PgLocation>().is_err(), "{bad}");
        }
    }
}
