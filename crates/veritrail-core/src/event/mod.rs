//! The audit event model.
