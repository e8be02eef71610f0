//! veritrail: JWT authentication for web services plus a tamper-evident audit log.
//!
//! This facade re-exports the workspace crates; see each for details.

#[cfg(feature = "actix")]
pub use veritrail_actix as actix;
#[cfg(feature = "axum")]
pub use veritrail_axum as axum;
pub use veritrail_log as log;
#[cfg(feature = "otel")]
pub use veritrail_otel as otel;
#[cfg(feature = "tower")]
pub use veritrail_tower as tower;
