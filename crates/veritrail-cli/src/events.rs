//! `veritrail events`: the audit events of a log, as a table or as the stored records.
//!
//! The table has one row per record: time (RFC 3339, UTC), index, kind, subject, method and
//! route, status, outcome, the refusal's reason code, action; a system record shows a summary in place of the request.
//! Protected fields show as `[encrypted:KID]` or `hmac:KID:PREFIX…` (pseudonyms are stable, so
//! equal prefixes are the same value). With `--json` each selected record is printed exactly as
//! stored — the bytes the log hashes — one per line.

use std::path::Path;

use anyhow::{Context, Result};
use time::OffsetDateTime;
use veritrail_core::event::{AuditEvent, EventBody, HttpEvent, Outcome, Text};
use veritrail_log::source::{LogSource, Records};

use crate::cli::EventsArgs;
use crate::filter::Filter;
use crate::lines::Lines;
use crate::logdir;
use crate::output::{for_terminal, plural};
use crate::progress::{self, Results};

/// Lists the selected events of a log.
pub(crate) fn run(args: &EventsArgs) -> Result<()> {
    let filter = Filter::from_args(&args.filter, OffsetDateTime::now_utc())?;
    with_selected(&args.log, &filter, |log, records| {
        list(args, &filter, log, records)
    })
}

/// Opens the log at `path` and calls `f` with it and the records `filter` may select: all of
/// them, or — for a log in PostgreSQL — those its search columns' indexes find (the filter
/// still decides each).
pub(crate) fn with_selected<T>(
    path: &Path,
    filter: &Filter,
    f: impl FnOnce(&dyn LogSource, Records<'_>) -> Result<T>,
) -> Result<T> {
    #[cfg(feature = "postgres")]
    if let Some(loc) = logdir::postgres_location(path)? {
        let store = veritrail_postgres::PgStore::open(&loc)
            .with_context(|| format!("cannot open {loc}"))?;
        return f(&store, store.search(&filter.search()));
    }
    #[cfg(not(feature = "postgres"))]
    let _ = filter;
    let log = logdir::open_source(path)?;
    f(&*log, log.records(0))
}

/// Prints the events of `records` (of `log`) that `filter` selects.
fn list(
    args: &EventsArgs,
    filter: &Filter,
    log: &dyn LogSource,
    records: Records<'_>,
) -> Result<()> {
    let bar = progress::records(log.size(), "reading", Results::Stdout);
    let mut out = Lines::stdout();
    if !args.json {
        out.line(HEADER.as_bytes())?;
    }
    let mut scan = Scan::default();
    each_event(
        records,
        &log.location(),
        &mut scan,
        |index, record, event| {
            bar.inc(1);
            if filter.matches(event) {
                print(&mut out, args.json, index, record, event)?;
            }
            Ok(!out.is_closed())
        },
    )?;
    bar.finish_and_clear();
    out.flush()?;
    scan.report(&args.log.display().to_string());
    Ok(())
}

/// What a pass over the records found besides the events it handed on.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Records that are not v1 audit events (written by `veritrail append`, or another tool).
    pub(crate) not_events: u64,
    /// The first such record.
    pub(crate) first_not_event: Option<(u64, String)>,
}

impl Scan {
    /// Says on stderr what was not shown (nothing when every record was an event).
    pub(crate) fn report(&self, log: &str) {
        if let Some((index, why)) = &self.first_not_event {
            eprintln!(
                "note: {} of {log} not shown: not v1 audit events (the first, index {index}: {})",
                plural(self.not_events, "record"),
                for_terminal(why, false),
            );
        }
    }
}

/// Calls `each(index, record, event)` for every record from `start` that is an audit event,
/// counting the others in `scan`; stops early when `each` returns `Ok(false)`.
pub(crate) fn for_each_event(
    log: &dyn LogSource,
    start: u64,
    scan: &mut Scan,
    each: impl FnMut(u64, &[u8], &AuditEvent) -> Result<bool>,
) -> Result<()> {
    each_event(log.records(start), &log.location(), scan, each)
}

/// [`for_each_event`] over `records` (of the log at `location`).
pub(crate) fn each_event(
    records: Records<'_>,
    location: &str,
    scan: &mut Scan,
    mut each: impl FnMut(u64, &[u8], &AuditEvent) -> Result<bool>,
) -> Result<()> {
    for item in records {
        let veritrail_log::source::StoredRecord { index, record, .. } =
            item.with_context(|| {
                format!("cannot read the records of {location} — run `veritrail verify` on it")
            })?;
        match AuditEvent::from_json(&record) {
            Ok(event) => {
                if !each(index, &record, &event)? {
                    break;
                }
            }
            Err(e) => {
                scan.not_events += 1;
                scan.first_not_event.get_or_insert((index, e.to_string()));
            }
        }
    }
    Ok(())
}

/// Prints one selected event: its stored bytes (`json`) or its table row, with the characters
/// a terminal would act on escaped ([`for_terminal`]: paths, claims and names come from
/// requests and tokens).
pub(crate) fn print(
    out: &mut Lines,
    json: bool,
    index: u64,
    record: &[u8],
    event: &AuditEvent,
) -> Result<()> {
    if json {
        out.line(record)
    } else {
        out.line(for_terminal(&row(index, event), false).as_bytes())
    }
}

/// The table's header line.
pub(crate) const HEADER: &str = "TIME                         INDEX  KIND       SUB              REQUEST                           STATUS  OUTCOME    REASON                ACTION";

/// One table row for the event stored at `index`.
pub(crate) fn row(index: u64, event: &AuditEvent) -> String {
    let time = rfc3339(event.time);
    let kind = event.kind().as_str();
    match &event.body {
        EventBody::Http(http) => {
            let (sub, status) = (subject(http), status(http));
            let outcome = http.outcome.map_or("-", outcome_name);
            let action = http.action.as_deref().unwrap_or("-");
            format!(
                "{time:<27}  {index:>5}  {kind:<9}  {sub:<15}  {request:<32}  {status:>6}  {outcome:<9}  {reason:<20}  {action}",
                request = request(http),
                reason = reason(http),
            )
        }
        body => format!("{time:<27}  {index:>5}  {kind:<9}  {}", summary(body)),
    }
}

/// The actor's subject for people (`-` when anonymous).
pub(crate) fn subject(http: &HttpEvent) -> String {
    http.actor
        .as_ref()
        .and_then(|a| a.sub.as_ref())
        .map_or_else(|| "-".to_owned(), show)
}

/// Why the request was refused: the authentication reason code (`expired`, `bad_signature`,
/// …), else the authorization one (`insufficient_scope`, …); `-` when neither gave one.
pub(crate) fn reason(http: &HttpEvent) -> &str {
    http.authn
        .as_ref()
        .and_then(|a| a.reason.as_deref())
        .or_else(|| http.authz.as_ref().and_then(|a| a.reason.as_deref()))
        .unwrap_or("-")
}

/// The response status (`-` when there is none, as on an intent record).
pub(crate) fn status(http: &HttpEvent) -> String {
    http.status
        .map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// `GET /orders/{id}` (the route template, or the path when there is none).
pub(crate) fn request(http: &HttpEvent) -> String {
    let target = match &http.request.route {
        Some(route) => route.clone(),
        None => show(&http.request.path),
    };
    let phase = match http.phase {
        veritrail_core::event::Phase::Intent => " (intent)",
        veritrail_core::event::Phase::Complete => "",
    };
    format!("{} {target}{phase}", http.request.method)
}

/// A system record in a few words.
pub(crate) fn summary(body: &EventBody) -> String {
    match body {
        EventBody::Http(_) => String::new(),
        EventBody::Keyset(k) => {
            let keys = k
                .jwks
                .get("keys")
                .and_then(serde_json::Value::as_array)
                .map_or(0, Vec::len) as u64;
            let id: String = k.keyset_id.chars().take(16).collect();
            format!(
                "keys of {}: {} (keyset {id})",
                k.issuer.as_deref().unwrap_or("any issuer"),
                plural(keys, "key"),
            )
        }
        EventBody::Start(s) => format!(
            "writer {} started for {}{}{}",
            s.version,
            s.origin,
            s.host
                .as_ref()
                .map_or_else(String::new, |h| format!(" on {h}")),
            s.pid.map_or_else(String::new, |p| format!(" (pid {p})")),
        ),
        EventBody::Recovered(r) => match r.unsigned_adopted {
            Some(n) => format!(
                "recovered on request: {n} records adopted without a checkpoint history; {} \
                 bytes cut at byte {} of {}",
                r.bytes_cut, r.offset, r.segment
            ),
            None => format!(
                "after a crash: {} bytes cut at byte {} of {}",
                r.bytes_cut, r.offset, r.segment
            ),
        },
        EventBody::Stop(s) => format!(
            "writer stopped: {} written, {} dropped",
            s.flushed, s.dropped
        ),
        EventBody::Gap(g) => format!(
            "{} DROPPED ({}) between {} and {}",
            plural(g.dropped, "event"),
            g.reason,
            rfc3339(g.first),
            rfc3339(g.last)
        ),
        EventBody::Checkpoint(c) => format!("checkpoint at size {} root {}", c.size, c.root),
    }
}

/// A field for people: the clear value, or what protects it.
pub(crate) fn show(text: &Text) -> String {
    match text {
        Text::Plain(s) => s.clone(),
        Text::Encrypted(e) => format!("[encrypted:{}]", e.kid),
        Text::Pseudonym(p) => {
            let prefix: String = p.v.chars().take(10).collect();
            format!("hmac:{}:{prefix}…", p.hmac)
        }
    }
}

/// The `outcome` field's name.
pub(crate) fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Denied => "denied",
        Outcome::Error => "error",
        Outcome::Cancelled => "cancelled",
    }
}

/// RFC 3339 in UTC with exactly six fractional digits, as the events store it.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use veritrail_core::event::AuditEvent;

    /// Here rather than in veritrail-core: the test builds of core and the writer link
    /// jsonschema, which turns serde_json's `float_roundtrip` on and so hid the bug; this crate's
    /// build is the product's.
    #[test]
    fn numbers_in_records_read_back_to_the_same_value_and_bytes() {
        // Found by the `event` fuzz target: serde_json's default float parser can be one unit
        // in the last place off, so an `extra` number read back (by `events`, `export`,
        // `verify --tokens`) as another one, and writing it again gave other bytes.
        for x in [
            2.444_444_444_444_444_7e73,
            0.1,
            1e-308,
            5e-324,
            f64::MAX,
            9_007_199_254_740_993.0,
        ] {
            let event = AuditEvent::http("GET", "/x").extra("n", x).build();
            let mut first = Vec::new();
            event.write_json(0, &mut first);
            let read = AuditEvent::from_json(&first).unwrap();
            assert_eq!(
                read.as_http().unwrap().extra["n"].as_f64(),
                Some(x),
                "{x:e}"
            );
            let mut again = Vec::new();
            read.write_json(0, &mut again);
            assert_eq!(again, first, "{x:e}");
        }
    }
}
