//! The server-rendered pages: overview, events, one event, checkpoints, and the login page.
//! They read without JavaScript; the script adds the Verify button's check and live updates.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::anyhow;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use veritrail_core::engine::AuditContext;
use veritrail_core::event::{EventBody, Outcome};

use super::html::{self, Nav, block, query_value, text};
use super::trail::{Page, Row, SEARCH_BUDGET, Snapshot};
use super::{TOKEN_COOKIE, View, audit};
use crate::cli::{EventFilterArgs, OutcomeArg};
use crate::events::{outcome_name, request, rfc3339, show, status, subject, summary};
use crate::filter::Filter;
use crate::output::plural;
use crate::proofs::{check_inclusion, inclusion_file};

/// Rows per page unless `limit` says otherwise.
const PAGE_ROWS: usize = 50;
/// Rows per page at most.
const MAX_ROWS: usize = 1000;

/// Why a page or an API call could not be answered.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    detail: String,
    json: bool,
}

impl Failure {
    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Failure {
            status: StatusCode::BAD_REQUEST,
            detail: detail.into(),
            json: false,
        }
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Failure {
            status: StatusCode::NOT_FOUND,
            detail: detail.into(),
            json: false,
        }
    }

    pub(crate) fn unavailable(detail: impl Into<String>) -> Self {
        Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            detail: detail.into(),
            json: false,
        }
    }

    pub(crate) fn internal(e: &anyhow::Error) -> Self {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: format!("{e:#}"),
            json: false,
        }
    }

    /// Answered as RFC 9457 problem details (for the API).
    pub(crate) fn json(mut self) -> Self {
        self.json = true;
        self
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        if self.json {
            let body = serde_json::json!({
                "type": "about:blank",
                "title": title,
                "status": self.status.as_u16(),
                "detail": self.detail,
            });
            return (
                self.status,
                [(header::CONTENT_TYPE, "application/problem+json")],
                body.to_string(),
            )
                .into_response();
        }
        let main = format!(
            "<h1>{}</h1><p class=\"failure\">{}</p><p><a href=\"/events\">Back to the events</a></p>",
            text(title),
            text(&self.detail)
        );
        (self.status, Html(html::page(title, "", Nav::None, &main))).into_response()
    }
}

/// Runs blocking log reads off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Failure::internal(&anyhow!("a page failed: {e}")))?
        .map_err(|e| Failure::internal(&e))
}

/// The `events` filters and paging, as query parameters (empty ones are ignored, as an HTML
/// form sends them).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Search {
    sub: Option<String>,
    since: Option<String>,
    until: Option<String>,
    route: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    status: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

fn given(value: &Option<String>) -> Option<String> {
    value.as_ref().filter(|v| !v.is_empty()).cloned()
}

impl Search {
    /// The filter, as `veritrail events` would parse the same flags.
    pub(crate) fn filter(&self) -> Result<Filter, Failure> {
        let outcome = match given(&self.outcome) {
            None => None,
            Some(o) => Some(
                <OutcomeArg as clap::ValueEnum>::from_str(&o, true).map_err(|_| {
                    Failure::bad_request(format!(
                        "outcome {o:?}: expected success, failure, denied, error or cancelled"
                    ))
                })?,
            ),
        };
        let args = EventFilterArgs {
            id: None,
            sub: given(&self.sub),
            since: given(&self.since),
            until: given(&self.until),
            route: given(&self.route),
            action: given(&self.action),
            outcome,
            status: given(&self.status),
        };
        Filter::from_args(&args, OffsetDateTime::now_utc())
            .map_err(|e| Failure::bad_request(format!("{e:#}").replace("--", "")))
    }

    /// `before`: the page ends before this index.
    pub(crate) fn before(&self) -> Result<Option<u64>, Failure> {
        given(&self.before)
            .map(|b| {
                b.parse()
                    .map_err(|_| Failure::bad_request(format!("before {b:?}: expected an index")))
            })
            .transpose()
    }

    /// Rows per page.
    pub(crate) fn limit(&self) -> Result<usize, Failure> {
        match given(&self.limit) {
            None => Ok(PAGE_ROWS),
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_ROWS).contains(&n) => Ok(n),
                _ => Err(Failure::bad_request(format!(
                    "limit {l:?}: expected a number from 1 to {MAX_ROWS}"
                ))),
            },
        }
    }

    /// The filters as a query string (`&`-joined, no leading `?`), plus `before` when given.
    fn query(&self, before: Option<u64>) -> String {
        let mut parts: Vec<String> = [
            ("sub", &self.sub),
            ("since", &self.since),
            ("until", &self.until),
            ("route", &self.route),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("status", &self.status),
            ("limit", &self.limit),
        ]
        .iter()
        .filter_map(|(name, value)| given(value).map(|v| format!("{name}={}", query_value(&v))))
        .collect();
        if let Some(before) = before {
            parts.push(format!("before={before}"));
        }
        parts.join("&")
    }

    /// What the access log records as the search's target: the filters given.
    pub(crate) fn described(&self) -> Option<String> {
        let q = self.query(None);
        (!q.is_empty()).then_some(q)
    }
}

/// The request's audit context, when the access log is on.
pub(crate) type Ctx = Option<Extension<AuditContext>>;

pub(crate) fn ctx(ctx: &Ctx) -> Option<&AuditContext> {
    ctx.as_ref().map(|Extension(c)| c)
}

/// `/events`: the table, the filter form, paging by position.
pub(crate) async fn events(
    State(view): State<Arc<View>>,
    audit_ctx: Ctx,
    Query(search): Query<Search>,
) -> Result<Html<String>, Failure> {
    audit(ctx(&audit_ctx), "trail.search", search.described());
    let filter = search.filter()?;
    let (before, limit) = (search.before()?, search.limit()?);
    let snapshot = view.trail.snapshot();
    let origin = snapshot.origin.clone();
    let page = blocking(move || snapshot.page(&filter, before, limit)).await?;
    let mut main = String::from("<h1>Events</h1>");
    main.push_str(&filter_form(&search));
    main.push_str(&page_summary(&page, &search, limit));
    main.push_str(
        "<table id=\"events\"><caption>Newest first. Select an index to see the record, its \
         proof, and verify it.</caption><thead><tr><th scope=\"col\">Time (UTC)</th>\
         <th scope=\"col\">Index</th><th scope=\"col\">Kind</th><th scope=\"col\">Subject</th>\
         <th scope=\"col\">Request</th><th scope=\"col\">Status</th><th scope=\"col\">Outcome</th>\
         <th scope=\"col\">Action</th></tr></thead><tbody>",
    );
    for row in &page.rows {
        main.push_str(&row_html(row));
    }
    main.push_str("</tbody></table>");
    main.push_str(&pager(&page, &search));
    Ok(Html(html::page("Events", &origin, Nav::Events, &main)))
}

fn filter_form(search: &Search) -> String {
    let field = |name: &str, label: &str, value: &Option<String>, hint: &str| {
        format!(
            "<p><label for=\"f-{name}\">{label}</label> <input id=\"f-{name}\" name=\"{name}\" \
             value=\"{}\" placeholder=\"{hint}\" autocomplete=\"off\"></p>",
            text(value.as_deref().unwrap_or_default())
        )
    };
    let current = given(&search.outcome).unwrap_or_default();
    let mut outcomes = String::from("<option value=\"\">any</option>");
    for o in ["success", "failure", "denied", "error", "cancelled"] {
        let selected = if current.eq_ignore_ascii_case(o) {
            " selected"
        } else {
            ""
        };
        let _ = write!(outcomes, "<option value=\"{o}\"{selected}>{o}</option>");
    }
    format!(
        "<form id=\"filters\" method=\"get\" action=\"/events\" role=\"search\">\
         <fieldset><legend>Filter (as <code>veritrail events</code>)</legend>{}{}{}{}{}\
         <p><label for=\"f-outcome\">Outcome</label> <select id=\"f-outcome\" name=\"outcome\">\
         {outcomes}</select></p>{}<p class=\"actions\"><button type=\"submit\" id=\"search\">\
         Search</button> <a href=\"/events\">Clear</a> <label class=\"live js-only\" hidden>\
         <input type=\"checkbox\" id=\"live\"> Live: show new events as they are appended</label>\
         </p></fieldset></form>",
        field("sub", "Subject", &search.sub, "alice"),
        field("since", "Since", &search.since, "1h, 2026-11-27, RFC 3339"),
        field("until", "Until", &search.until, "same forms"),
        field("route", "Route", &search.route, "/orders/{id}"),
        field("action", "Action", &search.action, "order.refund"),
        field("status", "Status", &search.status, "404 or 4xx"),
    )
}

fn page_summary(page: &Page, search: &Search, limit: usize) -> String {
    let shown = plural(page.rows.len() as u64, "record");
    let searched = if page.searched.is_empty() {
        "no records".to_owned()
    } else {
        format!(
            "records {}–{}",
            page.searched.start,
            page.searched.end.saturating_sub(1)
        )
    };
    let mut out = format!(
        "<p id=\"summary\" role=\"status\">{shown} shown out of {searched} searched; the log \
         holds {}.",
        plural(page.size, "record")
    );
    if page.rows.len() < limit
        && page.searched.end - page.searched.start >= SEARCH_BUDGET
        && let Some(older) = page.older
    {
        let _ = write!(
            out,
            " A search reads at most {SEARCH_BUDGET} records per page: <a \
             href=\"/events?{}\">search older records</a>.",
            text(&search.query(Some(older)))
        );
    }
    out.push_str("</p>");
    out
}

fn pager(page: &Page, search: &Search) -> String {
    let mut out = String::from("<nav class=\"pager\" aria-label=\"Pages\">");
    let _ = write!(
        out,
        "<a href=\"/events?{}\">Newest</a>",
        text(&search.query(None))
    );
    if let Some(older) = page.older {
        let _ = write!(
            out,
            " <a href=\"/events?{}\" rel=\"next\" id=\"older\">Older →</a>",
            text(&search.query(Some(older)))
        );
    }
    out.push_str("</nav>");
    out
}

/// One table row, its text made safe ([`text`]); `data-` attributes carry what tests and the
/// live mode compare.
pub(crate) fn row_html(row: &Row) -> String {
    let index = row.index;
    let Some(event) = &row.event else {
        return format!(
            "<tr data-index=\"{index}\"><td>-</td><td><a href=\"/events/{index}\">{index}</a></td>\
             <td colspan=\"6\">not an audit event ({} bytes)</td></tr>",
            row.record.len()
        );
    };
    let time = rfc3339(event.time);
    let kind = event.kind().as_str();
    let head = format!(
        "<td><time datetime=\"{time}\">{time}</time></td><td><a href=\"/events/{index}\">{index}</a>\
         </td><td>{kind}</td>"
    );
    match &event.body {
        EventBody::Http(http) => {
            let sub = subject(http);
            let outcome = http.outcome.map_or("-", outcome_name);
            let class = match http.outcome {
                Some(Outcome::Denied) => " class=\"denied\"",
                Some(Outcome::Error) => " class=\"error\"",
                _ => "",
            };
            format!(
                "<tr data-index=\"{index}\" data-sub=\"{sub}\" data-outcome=\"{outcome}\"{class}>\
                 {head}<td>{sub}</td><td>{}</td><td>{}</td><td>{outcome}</td><td>{}</td></tr>",
                text(&request(http)),
                status(http),
                text(http.action.as_deref().unwrap_or("-")),
                sub = text(&sub),
            )
        }
        body => format!(
            "<tr data-index=\"{index}\" class=\"system\">{head}<td colspan=\"5\">{}</td></tr>",
            text(&summary(body))
        ),
    }
}

/// The fields people read, by JSON pointer into the record.
const FIELDS: [(&str, &str); 30] = [
    ("When", "/time"),
    ("Kind", "/kind"),
    ("Subject", "/actor/sub"),
    ("Issuer", "/actor/iss"),
    ("Audience", "/actor/aud"),
    ("Scopes", "/actor/scopes"),
    ("Roles", "/actor/roles"),
    ("Claims", "/actor/claims"),
    ("Token key (kid)", "/actor/kid"),
    ("Token algorithm", "/actor/alg"),
    ("Token fingerprint (SHA-256)", "/token/sha256"),
    ("Token kept", "/token/mode"),
    ("Method", "/request/method"),
    ("Route", "/request/route"),
    ("Path", "/request/path"),
    ("Client address", "/request/client_address"),
    ("User agent", "/request/user_agent"),
    ("Request id", "/request/request_id"),
    ("Authentication", "/authn/decision"),
    ("Authentication reason", "/authn/reason"),
    ("Authorization", "/authz/decision"),
    ("Authorization reason", "/authz/reason"),
    ("Required scopes", "/authz/required_scopes"),
    ("Action", "/action"),
    ("Target", "/target"),
    ("Status", "/status"),
    ("Outcome", "/outcome"),
    ("Latency (µs)", "/latency_us"),
    ("Trace id", "/request/trace_id"),
    ("Event id", "/id"),
];

/// `/events/{index}`: the record, its fields, its proof, and the Verify button.
pub(crate) async fn event(
    State(view): State<Arc<View>>,
    audit_ctx: Ctx,
    Path(index): Path<String>,
) -> Result<Html<String>, Failure> {
    let index = indexed(ctx(&audit_ctx), &index, "trail.event.view")?;
    let snapshot = view.trail.snapshot();
    let origin = snapshot.origin.clone();
    let size = snapshot.size;
    if index >= size {
        return Err(Failure::not_found(format!(
            "there is no record {index}: the log holds {}",
            plural(size, "record")
        )));
    }
    let (row, check) = blocking(move || {
        let row = snapshot.row(index)?;
        Ok((row, server_check(&snapshot, index)))
    })
    .await?;
    let mut main = format!("<h1>Record {index}</h1>");
    if let Some(problem) = check {
        let _ = write!(
            main,
            "<p class=\"warning\" role=\"alert\" id=\"server-check\">The server's own check of \
             this record failed: {}. The check your browser runs below does not depend on it.</p>",
            text(&problem)
        );
    }
    let _ = write!(
        main,
        "<section id=\"verify\" aria-labelledby=\"verify-h\" data-index=\"{index}\" \
         data-record=\"{record}\"><h2 id=\"verify-h\">Verify it yourself</h2>\
         <p>Your browser checks, without trusting this server: the record's SHA-256 leaf hash, \
         its inclusion proof up to the signed checkpoint, and the checkpoint's Ed25519 \
         signature against the verifier key you pinned. Pin the log's key once, from a source \
         you trust (not from this page); it is kept in this browser.</p>\
         <form id=\"pin-form\" class=\"js-only\" hidden><p><label for=\"pinned-key\">Pinned \
         verifier key</label> <input id=\"pinned-key\" name=\"key\" size=\"70\" \
         autocomplete=\"off\" spellcheck=\"false\" placeholder=\"name+hexid+base64\"> \
         <button type=\"submit\" id=\"pin\">Pin key</button></p></form>\
         <p class=\"js-only\" hidden><button type=\"button\" id=\"verify-button\">Verify</button></p>\
         <p id=\"verify-result\" role=\"status\" aria-live=\"polite\"></p>\
         <noscript><p>The check runs in your browser and needs JavaScript. Without it, download \
         the proof and run <code>veritrail verify-proof record-{index}.tlog-proof --key VKEY</code>.\
         </p></noscript><p><a id=\"proof-link\" href=\"/api/v1/proof/{index}\" \
         download=\"record-{index}.tlog-proof\">Download the proof (record-{index}.tlog-proof)</a></p>\
         </section>",
        record = BASE64.encode(&row.record),
    );
    main.push_str("<div class=\"columns\"><section aria-labelledby=\"fields-h\"><h2 id=\"fields-h\">What happened</h2><dl id=\"fields\">");
    let value: Option<Value> = serde_json::from_slice(&row.record).ok();
    for (label, pointer) in FIELDS {
        if let Some(v) = value.as_ref().and_then(|v| v.pointer(pointer)) {
            let shown = match v {
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            let _ = write!(main, "<div><dt>{label}</dt><dd>{}</dd></div>", text(&shown));
        }
    }
    if value.is_none() {
        main.push_str("<div><dt>Record</dt><dd>not JSON: shown as stored below</dd></div>");
    }
    main.push_str("</dl></section>");
    let exact = String::from_utf8_lossy(&row.record);
    let pretty = if value.is_some() {
        indented(&exact)
    } else {
        exact.clone().into_owned()
    };
    let _ = write!(
        main,
        "<section aria-labelledby=\"record-h\"><h2 id=\"record-h\">The stored record</h2>\
         <pre id=\"record-pretty\" tabindex=\"0\">{}</pre><details><summary>Exact stored bytes \
         ({} bytes, what the log hashes)</summary><pre id=\"record-exact\" tabindex=\"0\">{}</pre>\
         </details></section></div>",
        block(&pretty),
        row.record.len(),
        text(&exact),
    );
    let _ = write!(main, "<nav class=\"pager\" aria-label=\"Records\">");
    if index > 0 {
        let _ = write!(
            main,
            "<a href=\"/events/{}\" rel=\"prev\">← Record {}</a> ",
            index - 1,
            index - 1
        );
    }
    if index + 1 < size {
        let _ = write!(
            main,
            "<a href=\"/events/{}\" rel=\"next\">Record {} →</a>",
            index + 1,
            index + 1
        );
    }
    main.push_str("</nav>");
    Ok(Html(html::page(
        &format!("Record {index}"),
        &origin,
        Nav::Events,
        &main,
    )))
}

/// A JSON text indented for reading, its members in the stored order and its strings as
/// stored (only whitespace is added).
fn indented(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut chars = json.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                if chars.peek().is_some_and(|&n| n == '}' || n == ']') {
                    out.push(chars.next().unwrap_or(c));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// What the server finds wrong with record `index` under the latest checkpoint, if anything.
fn server_check(snapshot: &Snapshot, index: u64) -> Option<String> {
    let Some((signed, checkpoint)) = &snapshot.checkpoint else {
        return Some("the log has no signed checkpoint yet".to_owned());
    };
    if index >= checkpoint.size {
        return Some(format!(
            "no signed checkpoint covers it yet (the latest covers {})",
            plural(checkpoint.size, "record")
        ));
    }
    let file = snapshot
        .with(|log| inclusion_file(log, &snapshot.location, signed.clone(), checkpoint, index));
    match file {
        Err(e) => Some(format!("{e:#}")),
        Ok(file) => check_inclusion(&file, checkpoint)
            .err()
            .map(|e| format!("it does not match the latest checkpoint ({e})")),
    }
}

/// The record index in a path, with the request named in the access log as `action` on it.
pub(crate) fn indexed(
    ctx: Option<&AuditContext>,
    text: &str,
    action: &str,
) -> Result<u64, Failure> {
    let index = text
        .parse()
        .map_err(|_| Failure::bad_request(format!("{text:?} is not a record index")))?;
    audit(ctx, action, Some(format!("record:{index}")));
    Ok(index)
}

/// `?window=`: the overview's time window.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Window {
    window: Option<String>,
}

/// The windows offered, with their bucket width in minutes.
const WINDOWS: [(&str, i64, i64); 4] = [
    ("15m", 15, 1),
    ("1h", 60, 1),
    ("6h", 360, 6),
    ("24h", 1440, 30),
];

/// `/`: size, latest checkpoint, and charts of the chosen window.
pub(crate) async fn overview(
    State(view): State<Arc<View>>,
    audit_ctx: Ctx,
    Query(window): Query<Window>,
) -> Result<Html<String>, Failure> {
    audit(ctx(&audit_ctx), "trail.overview", None);
    let chosen = window.window.as_deref().unwrap_or("1h");
    let &(name, minutes, bucket) =
        WINDOWS
            .iter()
            .find(|(n, _, _)| *n == chosen)
            .ok_or_else(|| {
                Failure::bad_request(format!("window {chosen:?}: expected 15m, 1h, 6h or 24h"))
            })?;
    let snapshot = view.trail.snapshot();
    let now = OffsetDateTime::now_utc();
    let counts = {
        let snapshot = Arc::clone(&snapshot);
        blocking(move || Ok(Counts::over(&snapshot, now, minutes, bucket))).await?
    };
    let mut main = String::from("<h1>Overview</h1>");
    if !view.auth {
        main.push_str(
            "<p class=\"warning\" role=\"note\">This view was started with <code>--no-auth</code>: \
             anyone who can reach it reads this log.</p>",
        );
    }
    let _ = write!(
        main,
        "<dl class=\"facts\"><div><dt>Origin</dt><dd>{}</dd></div><div><dt>Records</dt>\
         <dd id=\"size\">{}</dd></div><div><dt>The log's own verifier key (as stored on this \
         server: compare it with the one you hold)</dt><dd><code>{}</code></dd></div></dl>",
        text(&snapshot.origin),
        snapshot.size,
        text(&snapshot.verifier.to_text()),
    );
    match &snapshot.checkpoint {
        Some((signed, checkpoint)) => {
            let _ = write!(
                main,
                "<h2>Latest checkpoint</h2><p>Size {}; <a href=\"/api/v1/checkpoint\">as text</a>, \
                 <a href=\"/checkpoints\">history</a>.</p><pre tabindex=\"0\">{}</pre>",
                checkpoint.size,
                block(signed)
            );
        }
        None => main.push_str("<p>No checkpoint has been signed yet.</p>"),
    }
    let _ = write!(
        main,
        "<h2>Activity</h2><form method=\"get\" action=\"/\"><p><label for=\"window\">Window</label> \
         <select id=\"window\" name=\"window\">{}</select> <button type=\"submit\">Show</button></p>\
         </form><p>{} in the last {name} (counted over {}).</p>",
        WINDOWS
            .iter()
            .map(|(n, _, _)| format!(
                "<option{}>{n}</option>",
                if *n == name { " selected" } else { "" }
            ))
            .collect::<String>(),
        plural(counts.total, "event"),
        counts.searched_text(),
    );
    main.push_str(&counts.per_minute_chart(bucket));
    main.push_str(&bar_list(
        "Refusals by route",
        "refusals-route",
        &counts.refused_routes,
    ));
    main.push_str(&bar_list(
        "Refusals by reason",
        "refusals-reason",
        &counts.refused_reasons,
    ));
    main.push_str(&view.verification.html(&snapshot.verifier));
    Ok(Html(html::page(
        "Overview",
        &snapshot.origin,
        Nav::Overview,
        &main,
    )))
}

/// What the overview counts over its window, newest records first.
struct Counts {
    total: u64,
    /// Events per bucket, oldest first.
    buckets: Vec<u64>,
    refused_routes: Vec<(String, u64)>,
    refused_reasons: Vec<(String, u64)>,
    searched: std::ops::Range<u64>,
    cut_short: bool,
}

impl Counts {
    fn over(snapshot: &Snapshot, now: OffsetDateTime, minutes: i64, bucket: i64) -> Counts {
        let start = now - time::Duration::minutes(minutes);
        let size = snapshot.size;
        let floor = size.saturating_sub(SEARCH_BUDGET);
        let mut counts = Counts {
            total: 0,
            buckets: vec![0; (minutes / bucket) as usize],
            refused_routes: Vec::new(),
            refused_reasons: Vec::new(),
            searched: size..size,
            cut_short: false,
        };
        let mut routes = std::collections::BTreeMap::<String, u64>::new();
        let mut reasons = std::collections::BTreeMap::<String, u64>::new();
        let mut cursor = size;
        // Records are appended in about time order: stop at the first chunk wholly older.
        'chunks: while cursor > floor {
            let from = cursor.saturating_sub(4096).max(floor);
            let mut any_inside = false;
            let rows = snapshot
                .selected(from..cursor, &Filter::default())
                .unwrap_or_default();
            for event in rows.into_iter().filter_map(|row| row.event) {
                if event.time < start || event.time > now {
                    continue;
                }
                any_inside = true;
                counts.total += 1;
                let minute = (event.time - start).whole_minutes() / bucket;
                if let Some(b) = counts.buckets.get_mut(minute as usize) {
                    *b += 1;
                }
                if let Some(http) = event.as_http()
                    && http.outcome == Some(Outcome::Denied)
                {
                    let route = http
                        .request
                        .route
                        .clone()
                        .unwrap_or_else(|| show(&http.request.path));
                    *routes.entry(route).or_default() += 1;
                    let reason = http
                        .authz
                        .as_ref()
                        .and_then(|a| a.reason.clone())
                        .or_else(|| http.authn.as_ref().and_then(|a| a.reason.clone()))
                        .unwrap_or_else(|| "unknown".to_owned());
                    *reasons.entry(reason).or_default() += 1;
                }
            }
            counts.searched.start = from;
            cursor = from;
            if !any_inside {
                break 'chunks;
            }
        }
        counts.cut_short = cursor == floor && floor > 0;
        let sorted = |m: std::collections::BTreeMap<String, u64>| {
            let mut v: Vec<_> = m.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(12);
            v
        };
        counts.refused_routes = sorted(routes);
        counts.refused_reasons = sorted(reasons);
        counts
    }

    fn searched_text(&self) -> String {
        let range = if self.searched.is_empty() {
            "no records".to_owned()
        } else {
            format!("records {}–{}", self.searched.start, self.searched.end - 1)
        };
        if self.cut_short {
            format!("{range}: the count stops after {SEARCH_BUDGET} records")
        } else {
            range
        }
    }

    /// Events per bucket as SVG bars (presentation attributes only: no inline style).
    fn per_minute_chart(&self, bucket: i64) -> String {
        let max = self.buckets.iter().copied().max().unwrap_or(0).max(1);
        let (width, height) = (600.0, 120.0);
        let bar = width / self.buckets.len().max(1) as f64;
        let mut svg = format!(
            "<figure><svg id=\"chart-minutes\" role=\"img\" viewBox=\"0 0 {width} {}\" \
             aria-labelledby=\"chart-minutes-t\"><title id=\"chart-minutes-t\">Events per {} \
             minute{}, oldest on the left; the highest bar is {max}</title>",
            height + 16.0,
            bucket,
            if bucket == 1 { "" } else { "s" },
        );
        for (i, &n) in self.buckets.iter().enumerate() {
            let h = n as f64 / max as f64 * height;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" class=\"bar\"><title>{n}</title></rect>",
                i as f64 * bar + 1.0,
                height - h,
                (bar - 2.0).max(1.0),
            );
        }
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" class=\"axis\">oldest</text><text x=\"{width}\" y=\"{}\" \
             class=\"axis\" text-anchor=\"end\">now</text></svg><figcaption>Events per {bucket} \
             min (highest: {max})</figcaption></figure>",
            height + 14.0,
            height + 14.0
        );
        svg
    }
}

/// A labelled horizontal bar chart (a table, for screen readers, with bars drawn in SVG).
fn bar_list(title: &str, id: &str, items: &[(String, u64)]) -> String {
    let mut out = format!("<h3>{title}</h3>");
    if items.is_empty() {
        out.push_str("<p>None in this window.</p>");
        return out;
    }
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let _ = write!(out, "<table id=\"{id}\" class=\"bars\"><tbody>");
    for (label, n) in items {
        let w = *n as f64 / max as f64 * 200.0;
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th><td><svg width=\"204\" height=\"14\" aria-hidden=\"true\">\
             <rect x=\"0\" y=\"2\" width=\"{w:.1}\" height=\"10\" class=\"bar denied\"></rect></svg> {n}</td></tr>",
            text(label)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// `POST /verify`: starts a full verification (unless one runs) and goes back to the overview.
pub(crate) async fn verify_log(State(view): State<Arc<View>>, audit_ctx: Ctx) -> Redirect {
    audit(ctx(&audit_ctx), "trail.verify.run", None);
    view.verification.start(&view.trail);
    Redirect::to("/")
}

/// `?before=`: paging the checkpoint history (a position in it).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct HistoryPage {
    before: Option<String>,
}

/// `/checkpoints`: every signed checkpoint, newest first, each with the consistency proof to
/// the next.
pub(crate) async fn checkpoints(
    State(view): State<Arc<View>>,
    audit_ctx: Ctx,
    Query(paging): Query<HistoryPage>,
) -> Result<Html<String>, Failure> {
    audit(ctx(&audit_ctx), "trail.checkpoints", None);
    let snapshot = view.trail.snapshot();
    let origin = snapshot.origin.clone();
    let history = {
        let snapshot = Arc::clone(&snapshot);
        blocking(move || Ok(snapshot.with(|log| log.checkpoint_history())?)).await?
    };
    let end = match given(&paging.before) {
        None => history.len(),
        Some(b) => b
            .parse::<usize>()
            .map_err(|_| Failure::bad_request(format!("before {b:?}: expected a number")))?
            .min(history.len()),
    };
    let start = end.saturating_sub(PAGE_ROWS);
    let mut main = format!(
        "<h1>Checkpoints</h1><p>{} signed; newest first. Each links the consistency proof to \
         the next one: the proof that the later tree extends the earlier one.</p><table \
         id=\"checkpoints\"><thead><tr><th scope=\"col\">#</th><th scope=\"col\">Size</th>\
         <th scope=\"col\">Root (base64)</th><th scope=\"col\">To the next</th>\
         <th scope=\"col\">Signed note</th></tr></thead><tbody>",
        history.len()
    );
    for position in (start..end).rev() {
        let signed = &history[position];
        let body = crate::logdir::unverified_body(signed, "a stored checkpoint").ok();
        let (size, root) = body.as_ref().map_or(("?".to_owned(), "?".to_owned()), |c| {
            (c.size.to_string(), BASE64.encode(c.root))
        });
        let next = history
            .get(position + 1)
            .and_then(|n| crate::logdir::unverified_body(n, "a stored checkpoint").ok());
        let link = match (&body, next) {
            (Some(this), Some(next)) if next.size > this.size && this.size > 0 => format!(
                "<a href=\"/api/v1/consistency?from={}&amp;to={}\">{} → {}</a>",
                this.size, next.size, this.size, next.size
            ),
            (Some(_), Some(next)) => format!("nothing to prove (→ {})", next.size),
            _ => "latest".to_owned(),
        };
        let _ = write!(
            main,
            "<tr><td>{position}</td><td>{size}</td><td><code>{}</code></td><td>{link}</td>\
             <td><details><summary>show</summary><pre>{}</pre></details></td></tr>",
            text(&root),
            block(signed)
        );
    }
    main.push_str("</tbody></table><nav class=\"pager\" aria-label=\"Pages\"><a href=\"/checkpoints\">Newest</a>");
    if start > 0 {
        let _ = write!(
            main,
            " <a href=\"/checkpoints?before={start}\" rel=\"next\">Older →</a>"
        );
    }
    main.push_str("</nav>");
    Ok(Html(html::page(
        "Checkpoints",
        &origin,
        Nav::Checkpoints,
        &main,
    )))
}

/// The page a browser gets instead of a bare 401.
pub(crate) fn unauthorized() -> Html<String> {
    Html(html::page(
        "Log in",
        "",
        Nav::None,
        "<h1>A token is needed</h1><p>This view shows an audit log to readers with a token \
         from its identity provider. <a href=\"/login\">Log in with a token</a>.</p>",
    ))
}

/// `/login`: a form for a bearer token (kept in an HttpOnly, SameSite=Strict cookie).
pub(crate) async fn login() -> Html<String> {
    Html(html::page(
        "Log in",
        "",
        Nav::None,
        "<h1>Log in</h1><form method=\"post\" action=\"/login\"><p><label for=\"token\">Your \
         access token (a JWT from the identity provider)</label></p><p><textarea id=\"token\" \
         name=\"token\" rows=\"6\" cols=\"70\" autocomplete=\"off\" spellcheck=\"false\" \
         required></textarea></p><p><button type=\"submit\" id=\"login\">Log in</button></p>\
         </form><p>The token is kept in a cookie only this site can read, for this browser \
         session; <a href=\"/\">the view</a> checks it on every request.</p>",
    ))
}

/// The login form's body.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

/// `POST /login`: sets the token cookie (a JWT's characters only) and goes to the overview.
pub(crate) async fn log_in(axum::Form(form): axum::Form<LoginForm>) -> Response {
    let token = form.token.trim();
    let jwt_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if token.is_empty() || token.len() > 16 * 1024 || !token.chars().all(jwt_chars) {
        return Failure::bad_request("that is not a JWT (base64url parts joined by dots)")
            .into_response();
    }
    (
        [(
            header::SET_COOKIE,
            format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

/// `POST /logout`: forgets the token cookie.
pub(crate) async fn log_out() -> Response {
    (
        [(
            header::SET_COOKIE,
            format!("{TOKEN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::indented;

    #[test]
    fn indenting_keeps_the_stored_order_and_strings() {
        let json = r#"{"b":1,"a":{"s":"x, {y}: \"z\"","e":[],"o":{}},"l":[1,2]}"#;
        assert_eq!(
            indented(json),
            "{\n  \"b\": 1,\n  \"a\": {\n    \"s\": \"x, {y}: \\\"z\\\"\",\n    \"e\": [],\n    \
             \"o\": {}\n  },\n  \"l\": [\n    1,\n    2\n  ]\n}"
        );
        let compact: String = indented(json)
            .lines()
            .map(str::trim_start)
            .collect::<String>()
            .replace("\": ", "\":");
        assert_eq!(compact, json);
    }
}
