//! The search columns of a record: taken from the audit event it holds, if it holds one.

use std::borrow::Cow;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use veritrail_core::event::Outcome;

/// `records`' search columns (all NULL for a record that is not a v1 audit event). A subject
/// stored encrypted or pseudonymised stays NULL here: the column holds only what the record
/// shows in clear.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Columns {
    pub(crate) time: Option<OffsetDateTime>,
    pub(crate) kind: Option<&'static str>,
    pub(crate) sub: Option<String>,
    pub(crate) iss: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) route: Option<String>,
    pub(crate) status: Option<i32>,
    pub(crate) outcome: Option<&'static str>,
    pub(crate) action: Option<String>,
    pub(crate) request_id: Option<String>,
}

impl Columns {
    /// The columns of `record`: read from its JSON without building the whole event (the
    /// writer does this for every record), so only the fields the columns need are decoded.
    pub(crate) fn of(record: &[u8]) -> Columns {
        let Ok(lean) = serde_json::from_slice::<Lean<'_>>(record) else {
            return Columns::default();
        };
        let Some(kind) = KINDS.iter().find(|k| **k == lean.kind) else {
            return Columns::default();
        };
        if lean.v != 1 {
            return Columns::default();
        }
        let Ok(time) = OffsetDateTime::parse(&lean.time, &Rfc3339) else {
            return Columns::default();
        };
        let mut cols = Columns {
            time: Some(time),
            kind: Some(kind),
            ..Columns::default()
        };
        if *kind == "http" {
            if let Some(actor) = lean.actor {
                cols.sub = actor.sub.and_then(Text::plain);
                cols.iss = actor.iss.map(Cow::into_owned);
            }
            if let Some(request) = lean.request {
                cols.method = Some(request.method.into_owned());
                cols.route = request.route.map(Cow::into_owned);
                cols.request_id = request.request_id.map(Cow::into_owned);
            }
            cols.status = lean.status.map(i32::from);
            cols.outcome = lean
                .outcome
                .and_then(|o| Outcome::ALL.into_iter().find(|x| x.as_str() == o))
                .map(Outcome::as_str);
            cols.action = lean.action.map(Cow::into_owned);
        }
        cols
    }
}

/// The kinds a v1 event may have.
const KINDS: [&str; 7] = [
    "http",
    "keyset",
    "start",
    "recovered",
    "stop",
    "gap",
    "checkpoint",
];

/// The fields of an event the columns need; the rest is skipped unread.
#[derive(Deserialize)]
struct Lean<'a> {
    v: u64,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    actor: Option<LeanActor<'a>>,
    #[serde(borrow)]
    request: Option<LeanRequest<'a>>,
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    status: Option<u16>,
    #[serde(borrow)]
    outcome: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct LeanActor<'a> {
    #[serde(borrow)]
    sub: Option<Text<'a>>,
    #[serde(borrow)]
    iss: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct LeanRequest<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    route: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request_id: Option<Cow<'a, str>>,
}

/// A protectable text: a plain string, or an object (encrypted, pseudonymised) whose
/// content the columns do not show.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text<'a> {
    Plain(#[serde(borrow)] Cow<'a, str>),
    Protected(serde::de::IgnoredAny),
}

impl Text<'_> {
    fn plain(self) -> Option<String> {
        match self {
            Text::Plain(s) => Some(s.into_owned()),
            Text::Protected(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veritrail_core::event::{Actor, AuditEvent};

    #[test]
    fn columns_come_from_the_event() {
        let event = AuditEvent::http("DELETE", "/orders/7")
            .route("/orders/{id}")
            .status(204)
            .build();
        let mut record = Vec::new();
        event.write_json(3, &mut record);
        let cols = Columns::of(&record);
        assert_eq!(cols.kind, Some("http"));
        assert_eq!(cols.method.as_deref(), Some("DELETE"));
        assert_eq!(cols.route.as_deref(), Some("/orders/{id}"));
        assert_eq!(cols.status, Some(204));
        assert_eq!(cols.outcome, Some("success"));
        assert_eq!(Columns::of(b"not json"), Columns::default());
    }

    /// The lean reading gives what the full event gives, for every kind of record.
    #[test]
    fn lean_columns_match_the_full_event() {
        let full = |record: &[u8]| {
            let event = AuditEvent::from_json(record).unwrap();
            let http = event.as_http();
            let actor = http.and_then(|h| h.actor.as_ref());
            Columns {
                time: Some(event.time),
                kind: Some(event.kind().as_str()),
                sub: actor
                    .and_then(|a| a.sub.as_ref())
                    .and_then(|s| s.as_plain())
                    .map(str::to_owned),
                iss: actor.and_then(|a| a.iss.clone()),
                method: http.map(|h| h.request.method.clone()),
                route: http.and_then(|h| h.request.route.clone()),
                status: http.and_then(|h| h.status).map(i32::from),
                outcome: http.and_then(|h| h.outcome).map(|o| o.as_str()),
                action: http.and_then(|h| h.action.clone()),
                request_id: http.and_then(|h| h.request.request_id.clone()),
            }
        };
        let actor = Actor {
            sub: Some("alice".into()),
            iss: Some("https://idp".into()),
            ..Actor::default()
        };
        let events = [
            AuditEvent::http("GET", "/a")
                .actor(actor)
                .action("read \"quoted\" \u{e9}")
                .request_id("r-1")
                .status(403)
                .build(),
            AuditEvent::http("POST", "/b").build(),
            AuditEvent::start("o"),
            AuditEvent::stop(3, 1),
        ];
        for event in events {
            let mut record = Vec::new();
            event.write_json(9, &mut record);
            assert_eq!(Columns::of(&record), full(&record));
        }
    }
}
