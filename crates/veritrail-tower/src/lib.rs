//! veritrail-tower.
