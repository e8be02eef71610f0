//! veritrail-core: the framework-neutral heart of veritrail.
//!
//! - [`auth`]: the JWT authenticator (key sources, validation, RFC 8725 hardening).
//! - [`event`]: the audit event model (`AuditEvent` v1), system records, token evidence and
//!   field protection.
//! - [`recorder`]: the `Recorder` trait the writer implements, and `Durability`.

pub mod auth;
pub mod engine;
pub mod event;
pub mod recorder;
