//! `/api/v1`: what the pages use, for programs too (described in `openapi.json`).
//!
//! Records are returned exactly as stored — the bytes the log hashes — so that a client can
//! check them against a proof without trusting this server.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use super::pages::{Ctx, Failure, Search, blocking, ctx, indexed, row_html};
use super::trail::{Page, Row};
use super::{MAX_LIVE_STREAMS, View, audit};
use crate::logdir::unverified_body;
use crate::proofs::{consistency_body, inclusion_file};

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn plain(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// One record as a JSON member: the stored object itself when it is an audit event (valid JSON
/// by construction), its base64 otherwise.
fn record_json(row: &Row) -> String {
    match &row.event {
        Some(_) => format!(
            "{{\"index\":{},\"record\":{}}}",
            row.index,
            String::from_utf8_lossy(&row.record)
        ),
        None => format!(
            "{{\"index\":{},\"record_base64\":\"{}\"}}",
            row.index,
            BASE64.encode(&row.record)
        ),
    }
}

fn page_json(page: &Page) -> String {
    let events: Vec<String> = page.rows.iter().map(record_json).collect();
    format!(
        "{{\"size\":{},\"searched\":{{\"from\":{},\"to\":{}}},\"older\":{},\"events\":[{}]}}",
        page.size,
        page.searched.start,
        page.searched.end,
        page.older
            .map_or_else(|| "null".to_owned(), |o| o.to_string()),
        events.join(",")
    )
}

/// `GET /api/v1/events`: a page of the selected records, newest first.
pub(crate) async fn events(
    State(view): State<Arc<View>>,
    audit_ctx: Ctx,
    Query(search): Query<Search>,
) -> Result<Response, Failure> {
    audit(ctx(&audit_ctx), "trail.search", search.described());
    let filter = search.filter().map_err(Failure::json)?;
    let before = search.before().map_err(Failure::json)?;
    let limit = search.limit().map_err(Failure::json)?;
    let snapshot = view.trail.snapshot();
    let page = blocking(move || snapshot.page(&filter, before, limit))
        .await
        .map_err(Failure::json)?;
    Ok(json(page_json(&page)))
}

/// `GET /api/v1/events/{index}`: the record exactly as stored.
pub(crate) async fn event(
    State(view): State<Arc<View>>,
    audit_ctx: Ctx,
    Path(index): Path<String>,
) -> Result<Response, Failure> {
    let index = indexed(ctx(&audit_ctx), &index, "trail.event.read").map_err(Failure::json)?;
    let snapshot = view.trail.snapshot();
    in_range(index, snapshot.size)?;
    let row = blocking(move || snapshot.row(index))
        .await
        .map_err(Failure::json)?;
    let kind = if row.event.is_some() {
        "application/json"
    } else {
        "application/octet-stream"
    };
    Ok(([(header::CONTENT_TYPE, kind)], row.record).into_response())
}

fn in_range(index: u64, size: u64) -> Result<(), Failure> {
    if index >= size {
        return Err(Failure::not_found(format!(
            "there is no record {index}: the log holds {size} records"
        ))
        .json());
    }
    Ok(())
}

/// `GET /api/v1/proof/{index}`: the record's `c2sp.org/tlog-proof@v1` file under the latest
/// checkpoint, as stored — the reader's verifier checks it, not this server.
pub(crate) async fn proof(
    State(view): State<Arc<View>>,
    audit_ctx: Ctx,
    Path(index): Path<String>,
) -> Result<Response, Failure> {
    let index = indexed(ctx(&audit_ctx), &index, "trail.proof.download").map_err(Failure::json)?;
    let snapshot = view.trail.snapshot();
    let Some((signed, checkpoint)) = snapshot.checkpoint.clone() else {
        return Err(Failure::not_found("the log has no signed checkpoint yet").json());
    };
    in_range(index, checkpoint.size)?;
    let text = blocking(move || {
        let file = snapshot
            .with(|log| inclusion_file(log, &snapshot.location, signed, &checkpoint, index))?;
        Ok(file.to_text())
    })
    .await
    .map_err(Failure::json)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"record-{index}.tlog-proof\""),
            ),
        ],
        text,
    )
        .into_response())
}

/// `GET /api/v1/checkpoint`: the latest signed checkpoint, verbatim.
pub(crate) async fn checkpoint(
    State(view): State<Arc<View>>,
    audit_ctx: Ctx,
) -> Result<Response, Failure> {
    audit(ctx(&audit_ctx), "trail.checkpoint.read", None);
    match &view.trail.snapshot().checkpoint {
        Some((signed, _)) => Ok(plain(signed.clone())),
        None => Err(Failure::not_found("the log has no signed checkpoint yet").json()),
    }
}

/// `?from=SIZE[&to=SIZE]`.
#[derive(Debug, Deserialize)]
pub(crate) struct Sizes {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/consistency?from=SIZE[&to=SIZE]`: the tlog-witness body proving that the
/// checkpoint of size `to` (default: the latest) extends the checkpoint of size `from`; both
/// must be checkpoints the log signed.
pub(crate) async fn consistency(
    State(view): State<Arc<View>>,
    audit_ctx: Ctx,
    Query(sizes): Query<Sizes>,
) -> Result<Response, Failure> {
    let size = |name: &str, v: &Option<String>| -> Result<Option<u64>, Failure> {
        v.as_deref()
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    Failure::bad_request(format!("{name} {v:?}: expected a tree size")).json()
                })
            })
            .transpose()
    };
    let from = size("from", &sizes.from)?
        .ok_or_else(|| Failure::bad_request("from=SIZE is required").json())?;
    let to = size("to", &sizes.to)?;
    audit(
        ctx(&audit_ctx),
        "trail.consistency.read",
        Some(format!(
            "sizes:{from}..{}",
            to.map_or("latest".to_owned(), |t| t.to_string())
        )),
    );
    let snapshot = view.trail.snapshot();
    let history = {
        let snapshot = Arc::clone(&snapshot);
        blocking(move || Ok(snapshot.with(|log| log.checkpoint_history())?))
            .await
            .map_err(Failure::json)?
    };
    // Both ends must be checkpoints the log signed: a size it never signed is not found.
    let find = |size: u64| {
        history
            .iter()
            .rev()
            .find_map(|signed| {
                let body = unverified_body(signed, "a stored checkpoint").ok()?;
                (body.size == size).then(|| (signed.clone(), body))
            })
            .ok_or_else(|| {
                Failure::not_found(format!("the log signed no checkpoint of size {size}")).json()
            })
    };
    let (_, old) = find(from)?;
    let (signed, new) = match to {
        Some(to) => find(to)?,
        None => snapshot
            .checkpoint
            .clone()
            .ok_or_else(|| Failure::not_found("the log has no signed checkpoint yet").json())?,
    };
    let body = blocking(move || {
        let from_name = format!("the checkpoint of size {from}");
        let body = snapshot.with(|log| {
            consistency_body(log, &snapshot.location, (&old, &from_name), (&new, signed))
        })?;
        Ok(body.to_text())
    })
    .await
    .map_err(Failure::json)?;
    Ok(plain(body))
}

/// `GET /api/v1/openapi.json`.
pub(crate) async fn openapi() -> Response {
    json(include_str!("openapi.json").to_owned())
}

/// `GET /api/v1/events/stream`: server-sent events, one `record` event per new record that
/// the filters select (`data`: `{"index":N,"html":"<tr>…</tr>"}`, the row already made safe).
pub(crate) async fn stream(
    State(view): State<Arc<View>>,
    audit_ctx: Ctx,
    Query(search): Query<Search>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, Failure> {
    audit(ctx(&audit_ctx), "trail.live", search.described());
    let filter = Arc::new(search.filter().map_err(Failure::json)?);
    let room = Arc::clone(&view.live_streams)
        .try_acquire_owned()
        .map_err(|_| {
            Failure::unavailable(format!(
                "{MAX_LIVE_STREAMS} live streams are open already: try again later"
            ))
            .json()
        })?;
    let mut sizes = view.trail.sizes();
    let mut next = *sizes.borrow_and_update();
    let stream = async_stream(move |tx| async move {
        // Held until the reader goes away.
        let _room = room;
        loop {
            // A reader that went away ends the task at once, not at the next record.
            tokio::select! {
                changed = sizes.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
            }
            let size = *sizes.borrow_and_update();
            let snapshot = view.trail.snapshot();
            let (from, filter) = (next, Arc::clone(&filter));
            // At most 10,000 records per change; the rest with the next one.
            let last = size.min(from.saturating_add(10_000));
            let rows = blocking(move || snapshot.selected(from..last, &filter)).await;
            let Ok(rows) = rows else { return };
            next = last;
            for row in rows {
                let data = serde_json::json!({"index": row.index, "html": row_html(&row)});
                if tx
                    .send(Event::default().event("record").data(data.to_string()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A stream fed by a task through a small channel; the task ends when the client goes away.
fn async_stream<F, Fut>(task: F) -> impl futures_util::Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(task(tx));
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    })
}
