//! Request bodies on their way to the upstream: counted against the route's limit and,
//! when asked, hashed (SHA-256) as they stream — nothing is buffered.
//!
//! A body over the limit is cut off where it goes over: the upstream request fails, and the
//! client gets `413` (recorded with `extra.body_too_large`, the limit). A body declared larger
//! by its `Content-Length` is refused before the upstream is contacted. The digest and the
//! byte count are put into the event (`extra.request_body_sha256`, `extra.request_body_bytes`)
//! when the body ends — before the upstream's answer for any upstream that reads the request
//! before answering; a body still streaming when the response head comes is recorded as
//! `extra.request_body_sha256 = "incomplete"`.
//!
//! Response bodies, on routes with `response_body_digest`, are hashed as they stream back
//! ([`DigestedBody`]). The request's event is recorded when the response head is ready, before
//! any of the body, so the digest goes into a follow-up event of the same request
//! (`extra.follow_up = "response_body"`, same `request_id`; see
//! [`FollowUp`](veritrail_core::engine::FollowUp)), recorded when the body ends:
//! `extra.response_body_sha256` and `extra.response_body_bytes`, outcome `success`. A body the
//! client did not take to its end (it went away) is recorded with
//! `extra.response_body_sha256 = "incomplete"`, the bytes sent so far, outcome `cancelled`.
//! The end of the body is not held back until that event is on disk.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use veritrail_core::engine::{AuditContext, FollowUp};
use veritrail_core::event::Outcome;

use super::config::BodyRules;

/// The error of a body cut off at the limit, or the client's own.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as it goes upstream.
pub(crate) enum UpstreamBody {
    /// No rules: passed through as it is.
    Plain(Incoming),
    /// Counted and perhaps hashed.
    Watched(Box<Watched>),
}

/// A body under [`BodyRules`].
pub(crate) struct Watched {
    inner: Incoming,
    seen: u64,
    max: Option<u64>,
    hasher: Option<Sha256>,
    audit: Option<AuditContext>,
    /// Set when the body went over the limit.
    over: Arc<AtomicBool>,
    /// Set when the body ended (its digest recorded).
    done: Arc<AtomicBool>,
}

impl UpstreamBody {
    /// `body` under `rules` (`None`: none apply), noting what it finds in `audit`.
    pub(crate) fn new(
        body: Incoming,
        rules: Option<BodyRules>,
        audit: Option<AuditContext>,
    ) -> Self {
        match rules {
            Some(rules) if rules.max_bytes.is_some() || rules.digest => {
                let mut watched = Watched {
                    inner: body,
                    seen: 0,
                    max: rules.max_bytes,
                    hasher: rules.digest.then(Sha256::new),
                    audit,
                    over: Arc::default(),
                    done: Arc::default(),
                };
                // An empty body may never be polled.
                if watched.inner.is_end_stream() {
                    watched.finish();
                }
                UpstreamBody::Watched(Box::new(watched))
            }
            _ => UpstreamBody::Plain(body),
        }
    }

    /// The flags that say the body went over its limit, and that it ended.
    pub(crate) fn flags(&self) -> Option<(Arc<AtomicBool>, Arc<AtomicBool>)> {
        match self {
            UpstreamBody::Plain(_) => None,
            UpstreamBody::Watched(w) => Some((Arc::clone(&w.over), Arc::clone(&w.done))),
        }
    }
}

impl Watched {
    /// The body ended: its digest and size go into the event.
    fn finish(&mut self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        if let (Some(hasher), Some(audit)) = (self.hasher.take(), &self.audit) {
            audit.insert("request_body_sha256", format!("{:x}", hasher.finalize()));
            audit.insert("request_body_bytes", self.seen);
        }
    }
}

/// Notes, when the response head comes, a digest that could not be completed.
pub(crate) fn note_incomplete(audit: Option<&AuditContext>, digest: bool, completed: bool) {
    if digest
        && !completed
        && let Some(audit) = audit
    {
        audit.insert("request_body_sha256", "incomplete");
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let w = match self.get_mut() {
            UpstreamBody::Plain(body) => {
                return Pin::new(body).poll_frame(cx).map_err(|e| e.into());
            }
            UpstreamBody::Watched(w) => w,
        };
        match ready!(Pin::new(&mut w.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    w.seen += data.len() as u64;
                    if w.max.is_some_and(|max| w.seen > max) {
                        w.over.store(true, Ordering::SeqCst);
                        return Poll::Ready(Some(Err(
                            "the request body is over the route's limit".into(),
                        )));
                    }
                    if let Some(hasher) = w.hasher.as_mut() {
                        hasher.update(data);
                    }
                }
                if w.inner.is_end_stream() {
                    w.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            None => {
                w.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Plain(body) => body.is_end_stream(),
            UpstreamBody::Watched(w) => w.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Plain(body) => body.size_hint(),
            UpstreamBody::Watched(w) => w.inner.size_hint(),
        }
    }
}

/// A response body hashed as it streams to the client; its digest recorded in a follow-up
/// event when it ends (or is abandoned).
pub(crate) struct DigestedBody {
    inner: Incoming,
    hasher: Sha256,
    seen: u64,
    status: u16,
    follow_up: Option<FollowUp>,
}

impl DigestedBody {
    /// `body`, answered with `status`, its digest to be recorded by `follow_up`.
    pub(crate) fn new(body: Incoming, status: u16, follow_up: FollowUp) -> Self {
        DigestedBody {
            inner: body,
            hasher: Sha256::new(),
            seen: 0,
            status,
            follow_up: Some(follow_up),
        }
    }

    /// Records the digest (`complete`: the body ended) once.
    fn finish(&mut self, complete: bool) {
        let Some(follow_up) = self.follow_up.take() else {
            return;
        };
        let digest = if complete {
            format!("{:x}", std::mem::take(&mut self.hasher).finalize())
        } else {
            "incomplete".to_owned()
        };
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("response_body_sha256".to_owned(), digest.into());
        fields.insert("response_body_bytes".to_owned(), self.seen.into());
        let outcome = if complete {
            Outcome::Success
        } else {
            Outcome::Cancelled
        };
        // The event is handed to the writer now; the future only waits for it to be durable.
        let recorded = follow_up.record("response_body", Some(self.status), outcome, fields);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(recorded);
        }
    }
}

impl Drop for DigestedBody {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}

impl Body for DigestedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    this.hasher.update(data);
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                this.finish(false);
                Poll::Ready(Some(Err(e)))
            }
            None => {
                this.finish(true);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
