//! System records: the log's own events, sharing the log and the schema with `http` events.
//!
//! Each is written flat after the common fields, e.g.
//! `{"v":1,"id":"..","index":0,"time":"..","kind":"stop","flushed":1200,"dropped":0}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::time_format;

/// `keyset`: the verification keys in force, written whenever they change, so that the log
/// alone can re-verify past tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeysetRecord {
    /// The issuer these keys sign for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// An id of this key set (e.g. the hex SHA-256 of the JWKS as fetched).
    pub keyset_id: String,
    /// The public keys as a JWKS object (`{"keys":[..]}`); never private or symmetric keys.
    pub jwks: Value,
}

impl KeysetRecord {
    /// A keyset record holding only public keys: symmetric (`"kty":"oct"`) keys are left out
    /// and private members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`) removed, so that no
    /// secret enters the log even if a private JWKS is passed by mistake.
    pub fn new(issuer: Option<String>, keyset_id: impl Into<String>, mut jwks: Value) -> Self {
        const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
        if let Some(keys) = jwks.get_mut("keys").and_then(Value::as_array_mut) {
            keys.retain(|key| key.get("kty").and_then(Value::as_str) != Some("oct"));
            for key in keys.iter_mut().filter_map(Value::as_object_mut) {
                for member in PRIVATE {
                    key.remove(member);
                }
            }
        }
        KeysetRecord {
            issuer,
            keyset_id: keyset_id.into(),
            jwks,
        }
    }
}

/// `start`: a writer opened the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRecord {
    /// The veritrail version that wrote the record.
    pub version: String,
    /// The log's origin (the checkpoint origin line).
    pub origin: String,
    /// The host name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The writer's process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl StartRecord {
    /// A start record for `origin` from this process: crate version, host name (from
    /// `/proc/sys/kernel/hostname` or `$HOSTNAME`), process id.
    pub fn current(origin: impl Into<String>) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty());
        StartRecord {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            origin: origin.into(),
            host,
            pid: Some(std::process::id()),
        }
    }
}

/// `recovered`: a torn tail was found after a crash, cut and fsynced before the next append;
/// or a log without checkpoint history was adopted on request (`--recover`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveredRecord {
    /// The segment file (name within the log directory) whose tail was cut.
    pub segment: String,
    /// The byte offset in that segment where the valid data ends.
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes_cut: u64,
    /// Records found in a log that had no checkpoint history (nothing signed vouched for
    /// them), adopted because the writer was started with `--recover`. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsigned_adopted: Option<u64>,
}

/// `stop`: the writer shut down cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRecord {
    /// Events written over the writer's life.
    pub flushed: u64,
    /// Events dropped by the overflow policy over the writer's life.
    pub dropped: u64,
}

/// `gap`: events an overflow policy dropped — loss is itself recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapRecord {
    /// How many events were dropped.
    pub dropped: u64,
    /// Machine-readable reason, e.g. `queue_full`.
    pub reason: String,
    /// When the first dropped event was offered.
    #[serde(with = "time_format")]
    pub first: OffsetDateTime,
    /// When the last dropped event was offered.
    #[serde(with = "time_format")]
    pub last: OffsetDateTime,
}

/// `checkpoint`: anchors a signed checkpoint in the log itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// The tree size the checkpoint commits to.
    pub size: u64,
    /// The root hash at that size, standard base64 (as in the checkpoint body).
    pub root: String,
}
