//! veritrail-writer.
