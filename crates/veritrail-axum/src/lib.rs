//! veritrail-axum.
