//! [`EnduserPolicy`]: whether, and how, the caller's identity reaches telemetry.

use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute::{ENDUSER_ID, ENDUSER_PSEUDO_ID};
use veritrail_core::event::{FieldKeys, ProtectError, Text};

/// Whether spans and log records carry the caller's `sub`.
///
/// Telemetry backends are read by more people, and kept under other rules, than the audit
/// log; so the identity is left out unless configured:
///
/// - [`Omit`](Self::Omit) (the default): no identity attribute.
/// - [`Plain`](Self::Plain): `enduser.id` = the `sub` claim.
/// - [`Pseudonymised`](Self::Pseudonymised): `enduser.pseudo.id` = the keyed HMAC of the
///   `sub` — the same value the audit log holds when it pseudonymises `actor.sub` with the
///   same key, so a person can search one for the other by equality.
///
/// A `sub` the event already holds pseudonymised is reported as `enduser.pseudo.id` under
/// `Plain` and `Pseudonymised`; an encrypted one is never reported.
#[derive(Clone, Debug, Default)]
pub enum EnduserPolicy {
    /// No identity attribute.
    #[default]
    Omit,
    /// `enduser.id` in clear.
    Plain,
    /// `enduser.pseudo.id`, the HMAC of the `sub` under this pseudonym key.
    Pseudonymised {
        /// Holds the pseudonym key `kid`.
        keys: FieldKeys,
        /// The pseudonym key id.
        kid: String,
    },
}

impl EnduserPolicy {
    /// [`Pseudonymised`](Self::Pseudonymised) under key `kid` of `keys`; fails when `keys`
    /// holds no pseudonym key of that id.
    pub fn pseudonymised(keys: FieldKeys, kid: impl Into<String>) -> Result<Self, ProtectError> {
        let kid = kid.into();
        keys.pseudonym(&kid, &serde_json::Value::Null)?;
        Ok(EnduserPolicy::Pseudonymised { keys, kid })
    }

    /// The attribute for a caller whose `sub` is `subject` in clear.
    pub(crate) fn plain(&self, subject: &str) -> Option<KeyValue> {
        match self {
            EnduserPolicy::Omit => None,
            EnduserPolicy::Plain => Some(KeyValue::new(ENDUSER_ID, subject.to_owned())),
            EnduserPolicy::Pseudonymised { keys, kid } => keys
                .pseudonym(kid, &serde_json::Value::String(subject.to_owned()))
                .ok()
                .map(|p| KeyValue::new(ENDUSER_PSEUDO_ID, p.v)),
        }
    }

    /// The attribute for a `sub` as an event holds it (clear, pseudonymised or encrypted).
    pub(crate) fn text(&self, subject: &Text) -> Option<KeyValue> {
        match (self, subject) {
            (EnduserPolicy::Omit, _) | (_, Text::Encrypted(_)) => None,
            (_, Text::Plain(sub)) => self.plain(sub),
            (_, Text::Pseudonym(p)) => Some(KeyValue::new(ENDUSER_PSEUDO_ID, p.v.clone())),
        }
    }
}
