//! The audit event reader (`AuditEvent::from_json`), as `veritrail events`, `tail`, `export`
//! and `verify --tokens` read records back.
//!
//! Properties: nothing panics; an event that reads writes back to a record that reads again
//! and writes back to the same bytes (the writer's output is a fixed point of the reader).

#![no_main]

use libfuzzer_sys::fuzz_target;
use veritrail_core::event::AuditEvent;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = AuditEvent::from_json(data) else {
        return;
    };
    let index = event.index.unwrap_or(0);
    let mut first = Vec::new();
    event.write_json(index, &mut first);
    let again = AuditEvent::from_json(&first).unwrap_or_else(|e| {
        panic!(
            "the writer's own record does not read back ({e}): {}",
            String::from_utf8_lossy(&first)
        )
    });
    let mut second = Vec::new();
    again.write_json(index, &mut second);
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second),
        "writing is not stable"
    );
    let _ = serde_json::to_value(&event).expect("an event serialises");
});
