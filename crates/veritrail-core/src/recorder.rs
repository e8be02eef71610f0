//! The `Recorder` trait.
