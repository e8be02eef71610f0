//! The search columns of a record: taken from the audit event it holds, if it holds one.

use time::OffsetDateTime;
use veritrail_core::event::AuditEvent;

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
    pub(crate) fn of(record: &[u8]) -> Columns {
        let Ok(event) = AuditEvent::from_json(record) else {
            return Columns::default();
        };
        let mut cols = Columns {
            time: Some(event.time),
            kind: Some(event.kind().as_str()),
            ..Columns::default()
        };
        if let Some(http) = event.as_http() {
            if let Some(actor) = &http.actor {
                cols.sub = actor
                    .sub
                    .as_ref()
                    .and_then(|s| s.as_plain())
                    .map(str::to_owned);
                cols.iss.clone_from(&actor.iss);
            }
            cols.method = Some(http.request.method.clone());
            cols.route.clone_from(&http.request.route);
            cols.status = http.status.map(i32::from);
            cols.outcome = http.outcome.map(|o| o.as_str());
            cols.action.clone_from(&http.action);
            cols.request_id.clone_from(&http.request.request_id);
        }
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
