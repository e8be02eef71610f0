//! The audit event model: [`AuditEvent`] v1, system records, token evidence and field
//! protection.
//!
//! Every record in a veritrail log is one compact JSON object written by
//! [`AuditEvent::write_json`]; those bytes are stored and hashed as they are. The layout is
//! flat and versioned:
//!
//! ```text
//! {"v":1,"id":"<uuid v7>","index":42,"time":"2026-11-27T12:00:00.123456Z","kind":"http",
//!  "phase":"complete","actor":{..},"token":{..},"request":{..},"authn":{..},"authz":{..},
//!  "action":"..","target":"..","extra":{..},"status":200,"latency_us":830,"outcome":"success"}
//! ```
//!
//! - `id` is a UUID v7 (time-ordered), `index` the log index the writer assigns at append time
//!   (absent only from events not yet written), `time` is UTC RFC 3339 with exactly six
//!   fractional digits (microseconds), `latency_us` an integer count of microseconds.
//! - `kind` is `http` or one of the system kinds `keyset`, `start`, `recovered`, `stop`, `gap`,
//!   `checkpoint`; each system kind carries its own fields at the top level (see [`system`]).
//! - `phase` (http only) is `intent` for a write-ahead intent record, made durable before the
//!   handler runs, and `complete` for the final record (which names its intent in `intent_id`).
//! - Absent optional parts are left out, never written as `null`.
//!
//! The JSON Schema is `schema/audit-event-v1.schema.json` at the repository root.
//!
//! ```
//! use veritrail_core::event::{Actor, AuditEvent, Kind, Outcome, TokenEvidence};
//!
//! let actor = Actor { sub: Some("alice".into()), iss: Some("https://idp.example".into()),
//!                     scopes: vec!["orders:read".into()], ..Actor::default() };
//! let event = AuditEvent::http("GET", "/orders/7")
//!     .route("/orders/{id}")
//!     .client_address("203.0.113.9")
//!     .actor(actor)
//!     .token(TokenEvidence::fingerprint("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"))
//!     .authn_allowed()
//!     .action("order.read")
//!     .target("order:7")
//!     .status(200)
//!     .latency_us(830)
//!     .build();
//! assert_eq!(event.kind(), Kind::Http);
//! assert_eq!(event.as_http().unwrap().outcome, Some(Outcome::Success));
//!
//! let mut record = Vec::new();
//! event.write_json(42, &mut record);
//! let back = AuditEvent::from_json(&record).unwrap();
//! assert_eq!(back.index, Some(42));
//! assert_eq!(back.id, event.id);
//! ```

mod evidence;
mod http;
mod json;
pub mod protect;
pub mod system;
mod time_format;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

pub use evidence::{EvidenceMode, FullTokenRefused, TokenEvidence};
pub use http::{
    Actor, Authn, AuthnDecision, Authz, AuthzDecision, HttpEvent, HttpEventBuilder, Outcome, Phase,
    Request,
};
pub use protect::{EncryptedField, FieldKeys, ProtectError, Protection, PseudonymField, Text};
pub use system::{
    CheckpointRecord, GapRecord, KeysetRecord, RecoveredRecord, StartRecord, StopRecord,
};

/// The event format version this crate writes (`"v": 1`).
pub const VERSION: u8 = 1;

/// One record of the audit log: an HTTP event or a system record.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    /// Unique id (UUID v7, time-ordered).
    pub id: Uuid,
    /// The log index: `None` until the writer appends the event, set when read back.
    pub index: Option<u64>,
    /// When the event happened, UTC, microsecond precision.
    pub time: OffsetDateTime,
    /// What kind of event this is, with its fields.
    pub body: EventBody,
}

/// The kind-specific part of an [`AuditEvent`]; serialised flat, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// An authenticated (or refused) HTTP request.
    Http(Box<HttpEvent>),
    /// The verification keys in force.
    Keyset(KeysetRecord),
    /// The writer started.
    Start(StartRecord),
    /// A torn tail was cut after a crash.
    Recovered(RecoveredRecord),
    /// The writer shut down.
    Stop(StopRecord),
    /// Events were dropped by an overflow policy.
    Gap(GapRecord),
    /// A checkpoint was signed (anchoring).
    Checkpoint(CheckpointRecord),
}

/// The `kind` of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `http`
    Http,
    /// `keyset`
    Keyset,
    /// `start`
    Start,
    /// `recovered`
    Recovered,
    /// `stop`
    Stop,
    /// `gap`
    Gap,
    /// `checkpoint`
    Checkpoint,
}

impl Kind {
    /// Every kind, `http` first.
    pub const ALL: [Kind; 7] = [
        Kind::Http,
        Kind::Keyset,
        Kind::Start,
        Kind::Recovered,
        Kind::Stop,
        Kind::Gap,
        Kind::Checkpoint,
    ];

    /// The stable name written in the `kind` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Keyset => "keyset",
            Kind::Start => "start",
            Kind::Recovered => "recovered",
            Kind::Stop => "stop",
            Kind::Gap => "gap",
            Kind::Checkpoint => "checkpoint",
        }
    }

    /// Whether this is a system record (anything but `http`).
    pub fn is_system(self) -> bool {
        self != Kind::Http
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = EventError;

    /// Reads a stable name (`http`, `gap`, ...), e.g. from a command-line filter.
    fn from_str(name: &str) -> Result<Self, EventError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| EventError::UnknownName {
                what: "kind",
                name: name.to_owned(),
                expected: "http, keyset, start, recovered, stop, gap, checkpoint",
            })
    }
}

/// A record that is not a valid v1 audit event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The bytes are not a JSON object of the v1 event layout.
    #[error("not a v1 audit event: {0}")]
    Json(#[from] serde_json::Error),
    /// The `v` field names a version this crate does not read.
    #[error("unsupported audit event version {0} (this build reads version 1)")]
    Version(u64),
    /// A name that is not one of the stable names of a kind or outcome.
    #[error("unknown {what} `{name}` (expected one of: {expected})")]
    UnknownName {
        /// `kind` or `outcome`.
        what: &'static str,
        /// The name given.
        name: String,
        /// The names accepted.
        expected: &'static str,
    },
}

/// Now, UTC, truncated to microseconds (what the `time` field can hold).
pub(crate) fn now() -> OffsetDateTime {
    time_format::truncate(OffsetDateTime::now_utc())
}

impl AuditEvent {
    /// A new event with a fresh id and the current time.
    pub fn new(body: impl Into<EventBody>) -> Self {
        AuditEvent {
            id: Uuid::now_v7(),
            index: None,
            time: now(),
            body: body.into(),
        }
    }

    /// Starts building an HTTP event (phase `complete`).
    pub fn http(method: impl Into<String>, path: impl Into<Text>) -> HttpEventBuilder {
        HttpEventBuilder::new(method.into(), path.into())
    }

    /// A `keyset` record: the public keys in force for `issuer`, a JWKS object
    /// (`{"keys":[..]}`); any private or symmetric key material is removed
    /// ([`KeysetRecord::new`]).
    pub fn keyset(
        issuer: Option<String>,
        keyset_id: impl Into<String>,
        jwks: serde_json::Value,
    ) -> Self {
        Self::new(KeysetRecord::new(issuer, keyset_id, jwks))
    }

    /// A `start` record for the log `origin`, with this process's version, host and pid.
    pub fn start(origin: impl Into<String>) -> Self {
        Self::new(StartRecord::current(origin))
    }

    /// A `recovered` record: `bytes_cut` bytes of torn tail cut at `offset` of `segment`.
    pub fn recovered(segment: impl Into<String>, offset: u64, bytes_cut: u64) -> Self {
        Self::new(RecoveredRecord {
            segment: segment.into(),
            offset,
            bytes_cut,
            unsigned_adopted: None,
        })
    }

    /// A `stop` record: how many events were flushed and dropped over the writer's life.
    pub fn stop(flushed: u64, dropped: u64) -> Self {
        Self::new(StopRecord { flushed, dropped })
    }

    /// A `gap` record: `dropped` events lost for `reason` between `first` and `last`.
    pub fn gap(
        dropped: u64,
        reason: impl Into<String>,
        first: OffsetDateTime,
        last: OffsetDateTime,
    ) -> Self {
        Self::new(GapRecord {
            dropped,
            reason: reason.into(),
            first: time_format::truncate(first),
            last: time_format::truncate(last),
        })
    }

    /// A `checkpoint` record: the tree had `size` leaves and this `root` (base64).
    pub fn checkpoint(size: u64, root: impl Into<String>) -> Self {
        Self::new(CheckpointRecord {
            size,
            root: root.into(),
        })
    }

    /// The event's kind.
    pub fn kind(&self) -> Kind {
        match &self.body {
            EventBody::Http(_) => Kind::Http,
            EventBody::Keyset(_) => Kind::Keyset,
            EventBody::Start(_) => Kind::Start,
            EventBody::Recovered(_) => Kind::Recovered,
            EventBody::Stop(_) => Kind::Stop,
            EventBody::Gap(_) => Kind::Gap,
            EventBody::Checkpoint(_) => Kind::Checkpoint,
        }
    }

    /// The HTTP part, if this is an `http` event.
    pub fn as_http(&self) -> Option<&HttpEvent> {
        match &self.body {
            EventBody::Http(h) => Some(h),
            _ => None,
        }
    }

    /// The HTTP part, mutably, if this is an `http` event.
    pub fn as_http_mut(&mut self) -> Option<&mut HttpEvent> {
        match &mut self.body {
            EventBody::Http(h) => Some(h),
            _ => None,
        }
    }

    /// Appends the record bytes for this event at log index `index` to `out`: one compact JSON
    /// object, no trailing newline. These are the bytes the log stores and hashes.
    ///
    /// `index` replaces whatever `self.index` holds.
    pub fn write_json(&self, index: u64, out: &mut Vec<u8>) {
        if let EventBody::Http(http) = &self.body {
            return json::write_http(out, &self.id, index, &self.time, http);
        }
        let wire = Wire {
            v: VERSION,
            id: &self.id,
            index: Some(index),
            time: &self.time,
            body: &self.body,
        };
        // Writing to a Vec cannot fail, and every field serialises infallibly: maps have
        // string keys and `Value`s are valid JSON.
        serde_json::to_writer(out, &wire).expect("audit event serialises to JSON");
    }

    /// Reads one record back (the inverse of [`write_json`](Self::write_json)).
    pub fn from_json(bytes: &[u8]) -> Result<Self, EventError> {
        let wire: OwnedWire = serde_json::from_slice(bytes)?;
        if wire.v != u64::from(VERSION) {
            return Err(EventError::Version(wire.v));
        }
        Ok(AuditEvent {
            id: wire.id,
            index: wire.index,
            time: wire.time,
            body: wire.body,
        })
    }
}

/// `AuditEvent` serialises in the record layout, with `index` only when it is set.
impl Serialize for AuditEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire {
            v: VERSION,
            id: &self.id,
            index: self.index,
            time: &self.time,
            body: &self.body,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AuditEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = OwnedWire::deserialize(deserializer)?;
        if wire.v != u64::from(VERSION) {
            return Err(serde::de::Error::custom(EventError::Version(wire.v)));
        }
        Ok(AuditEvent {
            id: wire.id,
            index: wire.index,
            time: wire.time,
            body: wire.body,
        })
    }
}

#[derive(Serialize)]
struct Wire<'a> {
    v: u8,
    id: &'a Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    #[serde(with = "time_format")]
    time: &'a OffsetDateTime,
    #[serde(flatten)]
    body: &'a EventBody,
}

#[derive(Deserialize)]
struct OwnedWire {
    v: u64,
    id: Uuid,
    #[serde(default)]
    index: Option<u64>,
    #[serde(with = "time_format")]
    time: OffsetDateTime,
    #[serde(flatten)]
    body: EventBody,
}

macro_rules! into_body {
    ($($record:ident => $variant:ident),*) => {$(
        impl From<$record> for EventBody {
            fn from(record: $record) -> Self {
                EventBody::$variant(record)
            }
        }
    )*};
}
into_body!(KeysetRecord => Keyset, StartRecord => Start, RecoveredRecord => Recovered,
    StopRecord => Stop, GapRecord => Gap, CheckpointRecord => Checkpoint);

impl From<HttpEvent> for EventBody {
    fn from(event: HttpEvent) -> Self {
        EventBody::Http(Box::new(event))
    }
}
