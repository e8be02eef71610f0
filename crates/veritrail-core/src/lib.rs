//! veritrail-core: the framework-neutral heart of veritrail.
//!
//! - [`auth`]: the JWT authenticator (key sources, validation, RFC 8725 hardening).
//! - [`event`]: the audit event model (`AuditEvent` v1), system records, token evidence and
//!   field protection.
//! - [`recorder`]: the `Recorder` trait the writer implements, and `Durability`.
//! - `dev` (feature `dev-idp`): a development identity provider for trying things out.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
#[cfg(feature = "dev-idp")]
pub mod dev;
pub mod engine;
pub mod event;
pub mod recorder;
