//! End to end over real sockets with actix-web: the same scenario as the axum test, and the
//! events compared field by field with the tower path's.

mod common;
