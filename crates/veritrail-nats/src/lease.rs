//! The sequencer lease: one key in a JetStream key-value bucket whose entries expire.
//!
//! A sequencer becomes active by creating the key (which succeeds only when it is absent:
//! never created, deleted, or expired after the bucket's `max_age`, the lease TTL), and stays
//! active by updating it, every quarter TTL, at the revision it last wrote (which fails once
//! someone else holds it). It counts itself active only until one TTL after it *sent* its
//! last successful renewal — before the server can have let the key expire — less a margin;
//! past that it stops integrating and signs nothing more. A clean stop deletes the key at its
//! own revision, so a standby takes over at once.
//!
//! This is the lease of an existing replicated system (JetStream's key-value store, itself a
//! Raft-replicated stream in a cluster), not consensus of our own.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use bytes::Bytes;

/// A lease held by this process.
#[derive(Debug)]
pub(crate) struct Lease {
    state: Arc<State>,
    renewer: tokio::task::JoinHandle<()>,
    store: kv::Store,
    key: String,
}

#[derive(Debug)]
struct State {
    /// Until when this holder may act (sent time of the last renewal + TTL − margin).
    valid_until: Mutex<Instant>,
    revision: Mutex<u64>,
    lost: AtomicBool,
}

impl Lease {
    /// Waits until the lease is free and takes it, polling every `poll`; `None` if `stop`
    /// is set first.
    pub(crate) async fn acquire(
        store: kv::Store,
        key: String,
        holder: String,
        ttl: Duration,
        poll: Duration,
        stop: &AtomicBool,
    ) -> Option<Lease> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let sent = Instant::now();
            if let Ok(Ok(revision)) =
                tokio::time::timeout(ttl / 2, store.create(&key, Bytes::from(holder.clone()))).await
            {
                let state = Arc::new(State {
                    valid_until: Mutex::new(sent + valid_for(ttl)),
                    revision: Mutex::new(revision),
                    lost: AtomicBool::new(false),
                });
                let renewer = tokio::spawn(renew(
                    store.clone(),
                    key.clone(),
                    Bytes::from(holder),
                    ttl,
                    state.clone(),
                ));
                return Some(Lease {
                    state,
                    renewer,
                    store,
                    key,
                });
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Whether this process may still act as the active sequencer.
    pub(crate) fn is_held(&self) -> bool {
        !self.state.lost.load(Ordering::Acquire)
            && Instant::now()
                < *self
                    .state
                    .valid_until
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
    }

    /// Stops renewing and deletes the key at our revision, so a standby takes over at once.
    pub(crate) async fn release(self) {
        self.renewer.abort();
        let revision = *self
            .state
            .revision
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.store.delete_expect_revision(&self.key, Some(revision)),
        )
        .await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// How long after sending a renewal the holder counts itself active: the TTL less a quarter
/// (margin for the server's expiry timer running early relative to our clock).
fn valid_for(ttl: Duration) -> Duration {
    ttl - ttl / 4
}

async fn renew(store: kv::Store, key: String, holder: Bytes, ttl: Duration, state: Arc<State>) {
    loop {
        tokio::time::sleep(ttl / 4).await;
        let revision = *state.revision.lock().unwrap_or_else(|e| e.into_inner());
        let sent = Instant::now();
        match tokio::time::timeout(ttl / 4, store.update(&key, holder.clone(), revision)).await {
            Ok(Ok(next)) => {
                *state.revision.lock().unwrap_or_else(|e| e.into_inner()) = next;
                *state.valid_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    sent + valid_for(ttl);
            }
            Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                state.lost.store(true, Ordering::Release);
                return;
            }
            // The server is slow or unreachable: try again while the lease may still hold.
            _ => {}
        }
        let valid_until = *state.valid_until.lock().unwrap_or_else(|e| e.into_inner());
        if Instant::now() >= valid_until {
            state.lost.store(true, Ordering::Release);
            return;
        }
    }
}
