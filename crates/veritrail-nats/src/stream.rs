//! The stream's settings for production, created idempotently.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::location::NatsLocation;
use crate::{Error, Result};

/// How the events stream and the lease bucket are created by `veritrail sequencer --init`
/// ([`ensure_stream`]).
///
/// The defaults are for a 3-node NATS cluster:
///
/// - file storage, 3 replicas: JetStream acknowledges a publish once a majority of the
///   replicas hold it, so an acknowledged event survives the loss of any one node;
/// - a duplicate window of 10 minutes: a replica retrying a publish through a broker
///   outage (same `Nats-Msg-Id`) within that window is stored once (the sequencer also
///   skips event ids it has already integrated);
/// - events kept 7 days after they were published (`max_age`), so `veritrail reconcile`
///   can check them against the log after an incident; the log, not the stream, is the
///   record of what happened;
/// - no byte or message limit, and `discard: new`: when a limit is set and reached, a
///   publish is refused (the replica sees it) rather than an older event silently removed;
/// - deletes and purges through the API refused (`deny_delete`, `deny_purge`).
///
/// A single, non-clustered server (development, tests) needs `replicas: 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamSettings {
    /// Copies JetStream keeps of each event (1 on a single server, 3 in production).
    pub replicas: usize,
    /// The window in which a publish with an already-seen `Nats-Msg-Id` is ignored.
    pub duplicate_window: Duration,
    /// How long events are kept after they were published.
    pub max_age: Duration,
    /// The lease's time to live: a standby takes over at most about this long after the
    /// active sequencer stopped renewing it.
    pub lease_ttl: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            replicas: 3,
            duplicate_window: Duration::from_secs(600),
            max_age: Duration::from_secs(7 * 24 * 3600),
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }
}

impl StreamSettings {
    /// Sets [`replicas`](Self::replicas).
    #[must_use]
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Sets [`duplicate_window`](Self::duplicate_window).
    #[must_use]
    pub fn duplicate_window(mut self, duplicate_window: Duration) -> Self {
        self.duplicate_window = duplicate_window;
        self
    }

    /// Sets [`max_age`](Self::max_age).
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Sets [`lease_ttl`](Self::lease_ttl).
    #[must_use]
    pub fn lease_ttl(mut self, lease_ttl: Duration) -> Self {
        self.lease_ttl = lease_ttl;
        self
    }
}

/// The default lease time to live.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(2);

impl StreamSettings {
    /// The stream configuration these settings give for `at`.
    pub fn stream_config(&self, at: &NatsLocation) -> stream::Config {
        stream::Config {
            name: at.stream().to_owned(),
            subjects: vec![at.events_subject()],
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            max_age: self.max_age,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            deny_delete: true,
            deny_purge: true,
            description: Some(format!(
                "veritrail audit events of {} (integrated by veritrail sequencer)",
                at.origin()
            )),
            ..Default::default()
        }
    }

    /// The lease bucket's configuration: the stream behind a key-value bucket (`KV_<bucket>`,
    /// as JetStream lays buckets out), history 1, entries expiring after the lease TTL.
    ///
    /// Created as a stream rather than through `create_key_value`, which asks the server for
    /// account details NATS 2.9 does not report.
    pub fn lease_config(&self, at: &NatsLocation) -> stream::Config {
        let bucket = at.lease_bucket();
        stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("veritrail sequencer leases".into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: self.lease_ttl,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        }
    }
}

/// Creates the stream and the lease bucket for `at` if they do not exist; an existing stream
/// is updated to `settings` (so running `--init` again is harmless, and changes what
/// JetStream allows changing). Returns the stream's info.
pub async fn ensure_stream(
    js: &jetstream::Context,
    at: &NatsLocation,
    settings: &StreamSettings,
) -> Result<stream::Info> {
    let config = settings.stream_config(at);
    let info = match js.get_stream(at.stream()).await {
        Ok(mut existing) => {
            let current = existing.info().await.map_err(Error::nats)?.config.clone();
            if current.subjects.contains(&at.events_subject())
                && current.num_replicas == config.num_replicas
                && current.duplicate_window == config.duplicate_window
                && current.max_age == config.max_age
                && current.storage == config.storage
                && current.discard == config.discard
                && current.deny_delete
                && current.deny_purge
            {
                existing.info().await.map_err(Error::nats)?.clone()
            } else {
                let mut merged = config;
                for subject in current.subjects {
                    if !merged.subjects.contains(&subject) {
                        merged.subjects.push(subject);
                    }
                }
                js.update_stream(merged).await.map_err(Error::nats)?
            }
        }
        Err(_) => js
            .create_stream(config)
            .await
            .map_err(Error::nats)?
            .cached_info()
            .clone(),
    };
    lease_bucket(js, at, settings).await?;
    Ok(info)
}

/// Opens the lease bucket, creating it if it does not exist.
pub(crate) async fn lease_bucket(
    js: &jetstream::Context,
    at: &NatsLocation,
    settings: &StreamSettings,
) -> Result<kv::Store> {
    if let Ok(store) = js.get_key_value(at.lease_bucket()).await {
        return Ok(store);
    }
    js.create_stream(settings.lease_config(at))
        .await
        .map_err(Error::nats)?;
    js.get_key_value(at.lease_bucket())
        .await
        .map_err(Error::nats)
}
