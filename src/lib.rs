//! veritrail: JWT authentication for web services plus a tamper-evident audit log.
//!
//! This facade re-exports the workspace crates; see each for details.

pub use veritrail_log as log;
