//! veritrail-core.
