//! `veritrail demo` end to end (being written).
