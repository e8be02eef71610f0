//! PostgreSQL as a veritrail log store: the same records, the same RFC 6962 tree, the same
//! C2SP checkpoints, proofs and verifier as the file log, in the database a team already
//! runs, backs up and queries — and still checkable by someone who trusts neither the
//! service nor the database administrator.
//!
//! ```no_run
//! use veritrail_log::NoteSigner;
//! use veritrail_log::source::LogSource;
//! use veritrail_log::verify::VerifyOptions;
//! use veritrail_postgres::{PgLocation, PgLog, PgStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let loc: PgLocation = "postgres://postgres@127.0.0.1:5432/test?origin=orders-api/pod-7".parse()?;
//! let signer = NoteSigner::generate("orders-api/pod-7")?;
//! let verifier = signer.verifier();
//!
//! // One writer per origin (an advisory lock held for the writer's life).
//! let mut log = PgLog::open(&loc, signer, Default::default())?;
//! log.append_batch([br#"{"v":1,"action":"login"}"#.as_slice()])?;
//! log.commit()?; // one transaction: records, hashes, and a checkpoint over them
//! drop(log);
//!
//! // Anyone with the verifier key, later: proofs and a full verification.
//! let store = PgStore::open(&loc)?;
//! let proof = store.inclusion_proof(0, store.size())?;
//! let report = veritrail_postgres::verify(&store, &verifier, &VerifyOptions::default())?;
//! assert_eq!(report.records, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # The schema
//!
//! Schema `veritrail` by default (`?schema=` in a [`PgLocation`]), created and migrated by
//! versioned, idempotent migrations (a `schema_version` row; see [`SCHEMA_VERSION`]):
//!
//! | table | columns | what |
//! | --- | --- | --- |
//! | `logs` | `origin` PK, `verifier_key`, `created_at` | fixes each origin's key, as the `LOG` file does |
//! | `records` | `origin`, `idx` (PK together), `record bytea`, `leaf_hash bytea`, `time`, `kind`, `sub`, `iss`, `method`, `route`, `status`, `outcome`, `action`, `request_id` | the records, byte for byte, with search columns taken from the audit event (NULL for records that are not events) |
//! | `hashes` | `origin`, `level`, `idx` (PK together), `hash` | stored full-subtree hashes |
//! | `checkpoints` | `origin`, `size` (PK together), `note`, `signed_at` | every checkpoint signed |
//!
//! Indexes serve the queries `veritrail events` offers: by time, subject, route and action
//! (each within an origin, ordered by time), and by request id; [`PgStore::search`] reads the
//! records a [`Search`] selects through them.
//!
//! # How the tree maps onto the tables, and why
//!
//! Node `(level, i)` of the RFC 6962 tree covers records `[i·2^level, (i+1)·2^level)`. Level
//! 0, the leaf hashes, lives in `records.leaf_hash`, beside its record; levels that are
//! multiples of [`HASH_STRIDE`] (4, 8, 12, …) live in `hashes`. A node of another level is
//! computed from at most 8 stored nodes below it. So an append adds one `hashes` row per 15
//! records or so (not one per record, which would double the rows written), while a proof in
//! a tree of a million records needs about 20 nodes, fetched with one query — the log's
//! [`LogSource`](veritrail_log::source::LogSource) asks for all of a proof's nodes at once. This
//! is C2SP tlog-tiles' trade-off (tiles of height 4, flattened into rows).
//!
//! Each commit is one transaction holding the batch's records, the hashes it completes and a
//! checkpoint signed over the new size: a record is never committed without the checkpoint
//! that covers it, so a store's size always equals its latest checkpoint's, and any row
//! removed, added or changed shows. [`PgLog::open`] resumes from the stored hashes
//! (O(log n) reads) and refuses a store whose records, hashes and checkpoints disagree.
//!
//! # Append-only, roles, and one writer per origin
//!
//! Triggers refuse `UPDATE`, `DELETE` and `TRUNCATE` on the four log tables, whoever asks.
//! The owner runs the migrations; a service writes as a role with `SELECT` and `INSERT` only,
//! and an auditor reads as a role with `SELECT` only ([`grants_sql`] prints the statements):
//!
//! ```sql
//! CREATE ROLE audit_writer LOGIN;   -- the service (one per replica is fine)
//! CREATE ROLE audit_reader LOGIN;   -- auditors, `veritrail verify`
//! GRANT USAGE ON SCHEMA veritrail TO audit_writer, audit_reader;
//! GRANT SELECT ON veritrail.schema_version TO audit_writer, audit_reader;
//! GRANT SELECT, INSERT ON veritrail.logs, veritrail.records, veritrail.hashes,
//!     veritrail.checkpoints TO audit_writer;
//! GRANT SELECT ON veritrail.logs, veritrail.records, veritrail.hashes,
//!     veritrail.checkpoints TO audit_reader;
//! ```
//!
//! The owner (or a superuser) can still disable the triggers or set
//! `session_replication_role = replica`: the database is not trusted. That is what the
//! signed checkpoints are for — [`verify`] recomputes everything from the records and names
//! the origin and index of the first thing that disagrees.
//!
//! One writer per origin: [`PgLog::open`] takes a session advisory lock keyed by the schema
//! and origin (`pg_try_advisory_lock`) and holds it for the writer's life; a second writer of
//! the same origin is refused with [`PgError::Locked`]. Replicas each write their own origin
//! into the same schema.
//!
//! # Outages
//!
//! A commit that cannot reach the database retries (reconnecting, and taking the lock
//! again) until [`PgLogOptions::commit_timeout`], then returns [`PgError::Unavailable`] and
//! keeps the batch: the next commit sends it again. After a lost connection it first reads
//! what the database holds, so a batch whose commit succeeded just before the connection
//! dropped is not stored twice. [`PgSink`] keeps calling it until the database is back, as
//! the writer's sink contract asks: `Durable` callers get `TimedOut` after the commit
//! timeout, `Async` events wait in the writer's queue under its overflow policy, and writing
//! resumes on its own.
//!
//! # Why tokio-postgres
//!
//! `tokio-postgres` 0.7 is the maintained low-level client: binary `COPY … FROM STDIN`
//! ([`tokio_postgres::binary_copy`]) for the batch inserts and `COPY … TO STDOUT` for
//! verification's full scan, statement pipelining, and a small dependency tree (no TLS or
//! macros unless asked for). `sqlx` 0.9 needs Rust 1.94 (the workspace supports 1.89), and
//! its compile-time checked queries need a database or prepared metadata at build time. No
//! pool (`deadpool-postgres`, `bb8`): the writer needs one session for its whole life, since
//! the advisory lock belongs to the session, and the commands use one connection each.
//! The calls are synchronous, as the writer's [`Sink`](veritrail_writer::Sink) and the
//! verifier are: each store drives its connection on a single-threaded runtime of its own.

mod columns;
mod db;
mod location;
mod log;
mod schema;
mod sink;
mod store;

pub use location::{DEFAULT_SCHEMA, PgLocation};
pub use log::{PgLog, PgLogOptions, RECORD_TYPES};
pub use schema::{HASH_STRIDE, LOG_TABLES, SCHEMA_VERSION, grants_sql};
pub use sink::PgSink;
pub use store::{PgStore, Search, origins, verify, verify_with};

use sha2::{Digest, Sha256};

/// What went wrong with a PostgreSQL log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The location (URL) is malformed.
    #[error("bad PostgreSQL location: {reason}")]
    Location {
        /// What is wrong.
        reason: String,
    },
    /// The server could not be reached.
    #[error(
        "cannot connect to {location}: {reason} — is the server up (`pg_isready -h HOST -p PORT`)?"
    )]
    Connect {
        /// The location, without secrets.
        location: String,
        /// Why.
        reason: String,
    },
    /// A query failed.
    #[error("{what}: {reason}")]
    Db {
        /// What was being done.
        what: &'static str,
        /// The server's or the client's reason.
        reason: String,
        /// Whether the connection was lost (the call may be retried on a new one).
        connection_lost: bool,
    },
    /// The schema is missing, too new, or cannot be created.
    #[error("{reason}")]
    Schema {
        /// What is wrong.
        reason: String,
    },
    /// No log with this origin in the schema.
    #[error("{location} holds no log with origin {origin:?}{hint}")]
    NoSuchOrigin {
        /// The location.
        location: String,
        /// The origin asked for.
        origin: String,
        /// The origins there are, if any.
        hint: String,
    },
    /// A location without `origin=` where one log is needed.
    #[error("{location} names no origin: add ?origin=ORIGIN (the store holds: {origins})")]
    OriginNeeded {
        /// The location.
        location: String,
        /// The origins the store holds.
        origins: String,
    },
    /// Another writer holds this origin.
    #[error(
        "another writer holds the log {origin:?} in {location} (advisory lock {key}): one \
         writer per origin — give each replica its own origin"
    )]
    Locked {
        /// The origin.
        origin: String,
        /// The location.
        location: String,
        /// The advisory lock key.
        key: i64,
    },
    /// The log was created with another key.
    #[error(
        "the log {origin:?} was created with the verifier key {stored}, not {given}: wrong \
         key file for this origin"
    )]
    KeyMismatch {
        /// The origin.
        origin: String,
        /// The stored verifier key.
        stored: String,
        /// The signer's verifier key.
        given: String,
    },
    /// Opening for writing found records, hashes and checkpoints that disagree.
    #[error(
        "the log {origin:?} in {location} is damaged: {reason}; the writer will not sign over \
         it — run `veritrail verify` on it"
    )]
    Damaged {
        /// The origin.
        origin: String,
        /// The location.
        location: String,
        /// What disagrees.
        reason: String,
    },
    /// The database could not be reached in time; the batch is kept for the next commit.
    #[error("the database is unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The writer stopped for good after an error it cannot recover from.
    #[error("the PostgreSQL log stopped accepting writes: {cause}")]
    Failed {
        /// The first error.
        cause: String,
    },
    /// Signing a checkpoint failed.
    #[error("signing a checkpoint: {0}")]
    Sign(#[from] veritrail_log::note::NoteError),
    /// A record is too large or the log's own logic refused something.
    #[error("{0}")]
    Log(String),
}

impl PgError {
    pub(crate) fn db(what: &'static str, e: tokio_postgres::Error) -> PgError {
        if e.is_closed() || is_connection_error(&e) {
            return PgError::Unavailable {
                reason: format!("{what}: {}", db_reason(&e)),
            };
        }
        PgError::Db {
            what,
            reason: db_reason(&e),
            connection_lost: false,
        }
    }

    /// Whether the database could not be reached (worth retrying later).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            PgError::Unavailable { .. }
                | PgError::Connect { .. }
                | PgError::Db {
                    connection_lost: true,
                    ..
                }
        )
    }
}

/// Whether an error means the connection is gone (the server shut down, the backend was
/// terminated, the socket failed) rather than a query's own failure.
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        // Class 08 (connection exception), 57P01..03 (admin / crash shutdown, cannot connect
        // now).
        let code = db.code().code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    // No server error: an I/O error or a closed connection.
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) || e.is_closed()
}

/// The server's message (and detail) or the client's, without the connection string.
pub(crate) fn db_reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// The advisory lock key of `(purpose, schema, origin)`: the first 8 bytes of a SHA-256.
pub(crate) fn lock_key(purpose: &str, schema: &str, origin: &str) -> i64 {
    let hash = Sha256::digest(format!("veritrail {purpose}\n{schema}\n{origin}"));
    i64::from_be_bytes(hash[..8].try_into().expect("8 bytes"))
}
