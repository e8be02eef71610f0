//! `veritrail serve`.
