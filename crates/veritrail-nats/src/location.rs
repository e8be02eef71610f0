//! [`NatsLocation`]: a `nats://HOST:PORT/STREAM?origin=ORIGIN` log location, and the subjects
//! derived from it.

use std::fmt;

/// Where a log is ingested: a JetStream stream on a NATS server, for one origin.
///
/// Written `nats://[USER:PASSWORD@]HOST[:PORT]/STREAM?origin=ORIGIN[&subject=SUBJECT]`:
///
/// - `STREAM` is the JetStream stream's name (letters, digits, `-` and `_`);
/// - `origin` is the log's origin (the checkpoint origin line), percent-encoded if needed;
/// - `subject` overrides the events subject (default [`events_subject`]`(origin)`).
///
/// The password never appears in `Display` or `Debug`.
///
/// ```
/// use veritrail_nats::NatsLocation;
///
/// let at: NatsLocation = "nats://127.0.0.1:4222/AUDIT?origin=example.com/orders".parse()?;
/// assert_eq!(at.stream(), "AUDIT");
/// assert_eq!(at.origin(), "example.com/orders");
/// assert_eq!(at.events_subject(), "veritrail.example%2Ecom%2Forders.events");
/// assert_eq!(at.to_string(), "nats://127.0.0.1:4222/AUDIT?origin=example.com%2Forders");
/// # Ok::<(), veritrail_nats::LocationError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct NatsLocation {
    host: String,
    port: u16,
    user: Option<(String, String)>,
    stream: String,
    origin: String,
    subject: Option<String>,
}

/// Why a `nats://` location was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocationError {
    /// It does not start with `nats://`.
    #[error("a NATS location starts with nats:// (nats://HOST:PORT/STREAM?origin=ORIGIN)")]
    Scheme,
    /// The host or port is missing or malformed.
    #[error("bad host or port in the NATS location (nats://HOST:PORT/STREAM?origin=ORIGIN)")]
    Address,
    /// The stream name is missing or not a valid JetStream name.
    #[error(
        "bad stream name {0:?}: JetStream stream names are letters, digits, - and _ (nats://HOST:PORT/STREAM?origin=ORIGIN)"
    )]
    Stream(String),
    /// A required query parameter is missing.
    #[error("the NATS location needs ?{0}=… (nats://HOST:PORT/STREAM?origin=ORIGIN)")]
    Missing(&'static str),
    /// A query parameter is unknown, repeated, badly encoded or invalid.
    #[error("bad query parameter in the NATS location: {0}")]
    Query(String),
}

impl NatsLocation {
    /// A location for `stream` on `host:port`, for `origin`.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        stream: impl Into<String>,
        origin: impl Into<String>,
    ) -> Result<Self, LocationError> {
        let stream = stream.into();
        if !valid_name(&stream) {
            return Err(LocationError::Stream(stream));
        }
        let origin = origin.into();
        check_origin(&origin)?;
        Ok(NatsLocation {
            host: host.into(),
            port,
            user: None,
            stream,
            origin,
            subject: None,
        })
    }

    /// The same location with another stream name.
    pub fn with_stream(mut self, stream: impl Into<String>) -> Result<Self, LocationError> {
        let stream = stream.into();
        if !valid_name(&stream) {
            return Err(LocationError::Stream(stream));
        }
        self.stream = stream;
        Ok(self)
    }

    /// The same location with another origin.
    pub fn with_origin(mut self, origin: impl Into<String>) -> Result<Self, LocationError> {
        let origin = origin.into();
        check_origin(&origin)?;
        self.origin = origin;
        Ok(self)
    }

    /// The server address, `nats://HOST:PORT` (no credentials).
    pub fn server(&self) -> String {
        format!("nats://{}:{}", host_for_url(&self.host), self.port)
    }

    /// The user name and password given in the location, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.user.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The JetStream stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The subject events are published to.
    pub fn events_subject(&self) -> String {
        self.subject
            .clone()
            .unwrap_or_else(|| events_subject(&self.origin))
    }

    /// The subject the sequencer publishes its checkpoints to.
    pub fn checkpoints_subject(&self) -> String {
        checkpoints_subject(&self.origin)
    }

    /// The name of the sequencers' durable consumer on the stream.
    pub fn consumer_name(&self) -> String {
        format!("veritrail-sequencer-{}", name_token(&self.origin))
    }

    /// The key-value bucket holding the sequencers' lease.
    pub fn lease_bucket(&self) -> String {
        format!("veritrail-lease-{}", self.stream)
    }

    /// The key of this origin's lease in [`lease_bucket`](Self::lease_bucket).
    pub fn lease_key(&self) -> String {
        name_token(&self.origin)
    }
}

/// The default events subject for `origin`: `veritrail.<origin>.events`, with every byte of
/// the origin outside `[A-Za-z0-9_-]` percent-encoded (a `.` would split the subject).
pub fn events_subject(origin: &str) -> String {
    format!("veritrail.{}.events", subject_token(origin))
}

/// The checkpoints subject for `origin`: `veritrail.<origin>.checkpoints`, encoded as in
/// [`events_subject`].
pub fn checkpoints_subject(origin: &str) -> String {
    format!("veritrail.{}.checkpoints", subject_token(origin))
}

/// `origin` as one subject token: bytes outside `[A-Za-z0-9_-]` become `%XX`.
fn subject_token(origin: &str) -> String {
    let mut out = String::with_capacity(origin.len());
    for b in origin.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `origin` as a consumer name or key-value key: `[A-Za-z0-9_-]` only; other bytes as `=XX`
/// hex, which keeps distinct origins distinct.
fn name_token(origin: &str) -> String {
    subject_token(origin).replace('%', "=")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_origin(origin: &str) -> Result<(), LocationError> {
    if origin.is_empty() || origin.len() > 500 || origin.chars().any(char::is_control) {
        return Err(LocationError::Query(
            "origin must be 1 to 500 characters, with no control characters".into(),
        ));
    }
    Ok(())
}

fn host_for_url(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+`).
fn percent_decode(s: &str) -> Result<String, LocationError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| LocationError::Query(format!("bad %-escape in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| LocationError::Query(format!("{s:?} is not UTF-8")))
}

/// Encodes what a query value cannot hold as is.
fn percent_encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl std::str::FromStr for NatsLocation {
    type Err = LocationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NatsLocation::parse(s, None)
    }
}

impl NatsLocation {
    /// Parses `s`, taking the origin from `origin` when `s` has no `?origin=` (for commands
    /// that take `--origin`). Both given and different is an error.
    pub fn parse(s: &str, default_origin: Option<&str>) -> Result<Self, LocationError> {
        let rest = s.strip_prefix("nats://").ok_or(LocationError::Scheme)?;
        let (authority, rest) = rest
            .split_once('/')
            .ok_or(LocationError::Stream(String::new()))?;
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (
                    Some((percent_decode(user)?, percent_decode(password)?)),
                    hostport,
                )
            }
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(LocationError::Address)?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        let port = match port {
            None => 4222,
            Some(p) => p.parse().map_err(|_| LocationError::Address)?,
        };
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            return Err(LocationError::Address);
        }
        let (stream, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut origin = None;
        let mut subject = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "origin" => &mut origin,
                "subject" => &mut subject,
                other => {
                    return Err(LocationError::Query(format!(
                        "unknown parameter {other:?} (known: origin, subject)"
                    )));
                }
            };
            if slot.replace(percent_decode(value)?).is_some() {
                return Err(LocationError::Query(format!("{key} given twice")));
            }
        }
        let origin = match (origin, default_origin) {
            (Some(a), Some(b)) if a != b => {
                return Err(LocationError::Query(format!(
                    "origin {a:?} in the location but {b:?} given apart"
                )));
            }
            (Some(a), _) => a,
            (None, Some(b)) => b.to_owned(),
            (None, None) => return Err(LocationError::Missing("origin")),
        };
        let mut location = NatsLocation::new(host, port, percent_decode(stream)?, origin)?;
        if let Some(subject) = subject {
            if subject.is_empty()
                || subject.split('.').any(str::is_empty)
                || subject.contains(['*', '>', ' ', '\t', '\r', '\n'])
            {
                return Err(LocationError::Query(format!(
                    "subject {subject:?} is not a literal NATS subject"
                )));
            }
            location.subject = Some(subject);
        }
        location.user = user;
        Ok(location)
    }
}

impl fmt::Display for NatsLocation {
    /// The location without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nats://")?;
        if let Some((user, _)) = &self.user {
            write!(f, "{}:***@", percent_encode_query(user))?;
        }
        write!(
            f,
            "{}:{}/{}?origin={}",
            host_for_url(&self.host),
            self.port,
            self.stream,
            percent_encode_query(&self.origin)
        )?;
        if let Some(subject) = &self.subject {
            write!(f, "&subject={}", percent_encode_query(subject))?;
        }
        Ok(())
    }
}

impl fmt::Debug for NatsLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NatsLocation({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_part_and_hides_the_password() {
        let at: NatsLocation = "nats://ops:s3cr%40t@[::1]:4333/AUDIT_1?origin=a%2Fb&subject=x.y"
            .parse()
            .unwrap();
        assert_eq!(at.server(), "nats://[::1]:4333");
        assert_eq!(at.credentials(), Some(("ops", "s3cr@t")));
        assert_eq!(at.stream(), "AUDIT_1");
        assert_eq!(at.origin(), "a/b");
        assert_eq!(at.events_subject(), "x.y");
        assert_eq!(at.checkpoints_subject(), "veritrail.a%2Fb.checkpoints");
        let shown = format!("{at} {at:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        let port_default: NatsLocation = "nats://h/S?origin=o".parse().unwrap();
        assert_eq!(port_default.server(), "nats://h:4222");
    }

    #[test]
    fn refuses_what_is_not_a_location() {
        let cases = [
            ("http://h/S?origin=o", LocationError::Scheme),
            ("nats://h:x/S?origin=o", LocationError::Address),
            ("nats://h/S", LocationError::Missing("origin")),
            ("nats://h/a.b?origin=o", LocationError::Stream("a.b".into())),
            ("nats://h/?origin=o", LocationError::Stream(String::new())),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<NatsLocation>(), Err(want), "{text}");
        }
        for text in [
            "nats://h/S?origin=o&origin=p",
            "nats://h/S?origin=o&x=1",
            "nats://h/S?origin=%zz",
            "nats://h/S?origin=o&subject=a.*",
            "nats://h/S?origin=o&subject=a..b",
            "nats://h/S?origin=%0A",
        ] {
            assert!(
                matches!(text.parse::<NatsLocation>(), Err(LocationError::Query(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn distinct_origins_get_distinct_subjects_and_keys() {
        let origins = ["a.b", "a_b", "a/b", "a%2Eb", "a-b"];
        let subjects: std::collections::HashSet<String> =
            origins.iter().map(|o| events_subject(o)).collect();
        let keys: std::collections::HashSet<String> =
            origins.iter().map(|o| name_token(o)).collect();
        assert_eq!(subjects.len(), origins.len());
        assert_eq!(keys.len(), origins.len());
        let key_byte = |b: u8| b.is_ascii_alphanumeric() || b"_-=".contains(&b);
        assert!(keys.iter().all(|k| k.bytes().all(key_byte)), "{keys:?}");
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "nats://127.0.0.1:4222/S?origin=example.com%2Faudit",
            "nats://h:1/S?origin=o&subject=a.b",
        ] {
            let at: NatsLocation = text.parse().unwrap();
            assert_eq!(at.to_string(), text);
            assert_eq!(at.to_string().parse::<NatsLocation>().unwrap(), at);
        }
    }
}
