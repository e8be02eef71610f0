//! The Recorder trait is object-safe; MemoryRecorder assigns indexes and can refuse.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use veritrail_core::event::AuditEvent;
use veritrail_core::recorder::{
    Durability, MemoryRecorder, MemoryRecorderState, Receipt, RecordError, Recorder,
};

/// MemoryRecorder's futures are ready at once; one poll completes them.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("MemoryRecorder future was not ready"),
    }
}

#[test]
fn records_in_order_with_indexes_through_a_trait_object() {
    let memory = MemoryRecorder::new();
    let recorder: Arc<dyn Recorder> = Arc::new(memory.clone());
    let twice: Arc<Arc<dyn Recorder>> = Arc::new(recorder.clone());
    let durabilities = [
        Durability::Async,
        Durability::Durable,
        Durability::WriteAhead,
    ];
    for (i, d) in durabilities.into_iter().enumerate() {
        let event = AuditEvent::http("GET", format!("/{i}")).status(200).build();
        let receipt = now(twice.record(event, d)).unwrap();
        assert_eq!(
            receipt,
            Receipt {
                index: Some(i as u64)
            }
        );
    }
    assert_eq!(memory.len(), 3);
    let entries = memory.entries();
    for (i, (event, d)) in entries.iter().enumerate() {
        assert_eq!(event.index, Some(i as u64));
        assert_eq!(*d, durabilities[i]);
        assert_eq!(
            event.as_http().unwrap().request.path.as_plain(),
            Some(format!("/{i}").as_str())
        );
    }
    let records = memory.records();
    let back = AuditEvent::from_json(&records[2]).unwrap();
    assert_eq!(back, memory.events()[2]);
}

#[test]
fn refuses_as_told() {
    let memory = MemoryRecorder::new();
    assert!(memory.is_empty());
    memory.set_state(MemoryRecorderState::Overflow);
    assert!(matches!(
        now(memory.record(AuditEvent::stop(0, 0), Durability::Async)),
        Err(RecordError::Overflow)
    ));
    memory.set_state(MemoryRecorderState::Failed("disk full".into()));
    let err = now(memory.record(AuditEvent::stop(0, 0), Durability::Durable)).unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    memory.set_state(MemoryRecorderState::Closed);
    assert!(matches!(
        now(memory.record(AuditEvent::stop(0, 0), Durability::WriteAhead)),
        Err(RecordError::Closed)
    ));
    assert!(memory.is_empty(), "refused events are not kept");
    memory.set_state(MemoryRecorderState::Open);
    assert_eq!(
        now(memory.record(AuditEvent::stop(0, 0), Durability::Async))
            .unwrap()
            .index,
        Some(0)
    );
}

#[test]
fn durability_names_are_kebab_case() {
    assert_eq!(
        serde_json::to_string(&Durability::WriteAhead).unwrap(),
        "\"write-ahead\""
    );
    assert_eq!(
        serde_json::from_str::<Durability>("\"durable\"").unwrap(),
        Durability::Durable
    );
    assert_eq!(Durability::default(), Durability::Async);
}

#[test]
fn record_future_is_send() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let memory = MemoryRecorder::new();
    let fut = memory.record(AuditEvent::stop(0, 0), Durability::Async);
    assert_send(&fut);
    assert!(now(fut).is_ok());
}
