//! veritrail-actix.
