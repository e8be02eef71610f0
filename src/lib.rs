//! veritrail: JWT authentication for web services plus a tamper-evident audit log.
//!
//! A tower `Layer` (with thin axum and actix-web adapters) authenticates each request with a
//! JWT and appends what happened — who, what, when, from where, under which authority, with
//! what outcome — to a log that anyone holding the log's public key can verify offline.
//!
//! This facade re-exports the workspace crates behind features, so a service only compiles
//! what it uses:
//!
//! | feature | module | crate |
//! | --- | --- | --- |
//! | (always) | [`log`] | `veritrail-log`: the RFC 6962 log, C2SP checkpoints, proofs, verifier |
//! | `core` | `core` | `veritrail-core`: JWT authenticator, audit event model, request engine |
//! | `remote` | `core::auth::remote` | JWKS URLs and OpenID Connect discovery as key sources |
//! | `dev-idp` | `core::dev` | a development identity provider (keys, JWKS, tokens) |
//! | `writer` | `writer` | `veritrail-writer`: batching, group-committing writer (a `Recorder`) |
//! | `tower` | `tower` | `veritrail-tower`: `AuditLayer` for any tower stack |
//! | `axum` | `axum` | `veritrail-axum`: extractors and route helpers for axum 0.8 |
//! | `actix` | `actix` | `veritrail-actix`: middleware and extractors for actix-web 4 |
//! | `otel` | `otel` | `veritrail-otel`: server spans and OTel log export tied to audit events |
//! | `postgres` | `postgres` | `veritrail-postgres`: the log in PostgreSQL (store, writer sink, verifier) |
//! | `nats` | `nats` | `veritrail-nats`: replicas publish to NATS JetStream; a sequencer integrates one log |
//!
//! [`Audit`] (feature `writer`; its layers with `axum`, `tower`, `actix`) covers the common
//! case in a few lines — keys from a JWKS file, a JWKS URL or an OpenID Connect issuer, the
//! audience, route policies, the log and its signing key (made on first use, then reused) —
//! and is the guard that shuts the writer down cleanly. The engine it builds records the key
//! sets in force in the log, so that `veritrail verify --tokens` can re-verify the stored
//! tokens from the log alone.
//!
//! [`open_writer`] (feature `writer`) starts a writer over the log a location names: a
//! directory, or with `postgres` a `postgres://USER@HOST:PORT/DB?schema=S&origin=O`, or with
//! `nats` a `nats://HOST:PORT/STREAM?origin=O` (a replica publishing to JetStream).
//!
//! Platforms: Unix only (Linux, macOS, the BSDs): the log directory is written and synced
//! through Unix file APIs (see [`log`]). Key files are created with mode 0600.
//!
//! The log alone, with no web framework:
//!
//! ```
//! use veritrail::log::verify::{VerifyOptions, verify_dir};
//! use veritrail::log::{Log, LogOptions, NoteSigner};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("audit-log");
//! let signer = NoteSigner::generate("example.com/audit")?;
//! let verifier = signer.verifier();
//! let mut log = Log::open(&dir, signer, LogOptions::default())?;
//! log.append(br#"{"v":1,"kind":"http","sub":"alice"}"#)?;
//! let checkpoint = log.checkpoint()?; // syncs, then signs
//! log.close()?;
//!
//! let opts = VerifyOptions::default().against(vec![checkpoint]);
//! assert_eq!(verify_dir(&dir, &verifier, &opts)?.records, 1);
//! # Ok(())
//! # }
//! ```
//!
//! The web integration is shown in README.md and in the repository's `examples/`
//! (`axum_quickstart`, `actix_quickstart`, `hyper_tower`, `otel`, `nats_replicas`), which run
//! against `veritrail dev-idp`'s keys and tokens.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "writer")]
mod audit;
#[cfg(feature = "writer")]
#[cfg_attr(docsrs, doc(cfg(feature = "writer")))]
pub use audit::{Audit, AuditBuilder, SHUTDOWN_TIMEOUT, StartError, load_or_create_signing_key};
#[cfg(feature = "core")]
#[cfg_attr(docsrs, doc(cfg(feature = "core")))]
pub use veritrail_core::{engine::RoutePolicy, event::EvidenceMode, recorder::Durability};

// README's Rust examples compile as doc tests (with every feature they use).
#[cfg(all(doctest, feature = "axum", feature = "actix", feature = "remote"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub use veritrail_actix as actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use veritrail_axum as axum;
#[cfg(feature = "core")]
#[cfg_attr(docsrs, doc(cfg(feature = "core")))]
pub use veritrail_core as core;
pub use veritrail_log as log;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use veritrail_nats as nats;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub use veritrail_otel as otel;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use veritrail_postgres as postgres;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use veritrail_tower as tower;
#[cfg(feature = "writer")]
#[cfg_attr(docsrs, doc(cfg(feature = "writer")))]
pub use veritrail_writer as writer;

/// Why [`open_writer`] could not start a writer.
#[cfg(feature = "writer")]
#[cfg_attr(docsrs, doc(cfg(feature = "writer")))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenWriterError {
    /// Opening the file log or starting the writer failed.
    #[error(transparent)]
    Writer(#[from] veritrail_writer::WriterError),
    /// Opening the log in PostgreSQL failed.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    #[error(transparent)]
    Postgres(#[from] veritrail_postgres::PgError),
    /// Connecting to NATS or finding the stream failed.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    #[error(transparent)]
    Nats(#[from] veritrail_nats::Error),
    /// A `nats://` location that does not parse.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    #[error(transparent)]
    NatsLocation(#[from] veritrail_nats::LocationError),
    /// The location's scheme needs a feature this build does not have.
    #[error("{location}: this build cannot write there (enable veritrail's `{feature}` feature)")]
    Unsupported {
        /// The location, as given (without its query).
        location: String,
        /// The feature that would handle it.
        feature: &'static str,
    },
}

/// Starts a writer over the log `location` names, signing with `signer`: a directory (the file
/// log, created if missing), or `postgres://USER@HOST:PORT/DB?schema=S&origin=O` (feature
/// `postgres`; the origin defaults to the key's name; schema and log are created if missing),
/// or `nats://HOST:PORT/STREAM?origin=O` (feature `nats`): a replica's writer, publishing each
/// event to the JetStream stream a `veritrail sequencer` integrates and signs — `signer` is not
/// used there (replicas hold no key), and `Durable` means acknowledged by JetStream.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("audit-log");
/// use veritrail::log::NoteSigner;
/// use veritrail::writer::WriterConfig;
///
/// let signer = NoteSigner::generate("example.com/audit")?;
/// let writer = veritrail::open_writer(dir.to_str().unwrap(), signer, WriterConfig::default())?;
/// # drop(writer);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "writer")]
#[cfg_attr(docsrs, doc(cfg(feature = "writer")))]
pub fn open_writer(
    location: &str,
    signer: veritrail_log::NoteSigner,
    config: veritrail_writer::WriterConfig,
) -> Result<veritrail_writer::Writer, OpenWriterError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            let loc: veritrail_postgres::PgLocation = location.parse()?;
            let sink = veritrail_postgres::PgSink::open(&loc, signer, Default::default())?;
            return Ok(veritrail_writer::Writer::start(sink, config)?);
        }
        #[cfg(not(feature = "postgres"))]
        return Err(OpenWriterError::Unsupported {
            location: location.split('?').next().unwrap_or_default().to_owned(),
            feature: "postgres",
        });
    }
    if location.starts_with("nats://") {
        #[cfg(feature = "nats")]
        {
            drop(signer);
            let at: veritrail_nats::NatsLocation = location.parse()?;
            let sink = veritrail_nats::NatsSink::connect_blocking(&at, Default::default())?;
            return Ok(veritrail_writer::Writer::start(sink, config)?);
        }
        #[cfg(not(feature = "nats"))]
        return Err(OpenWriterError::Unsupported {
            location: location.split('?').next().unwrap_or_default().to_owned(),
            feature: "nats",
        });
    }
    Ok(veritrail_writer::Writer::open(location, signer, config)?)
}
