//! `veritrail::open_writer` with a `postgres://` location: the writer's records land in
//! PostgreSQL and verify (a schema of its own on 127.0.0.1:5432, dropped after).

use std::process::Command;
use std::time::{Duration, Instant};

use veritrail::core::event::AuditEvent;
use veritrail::core::recorder::{Durability, Recorder};
use veritrail::log::NoteSigner;
use veritrail::log::source::LogSource;
use veritrail::log::verify::VerifyOptions;
use veritrail::postgres::{PgStore, verify};
use veritrail::writer::WriterConfig;

struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-X",
                "-q",
                "-c",
            ])
            .arg(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0))
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_writer_writes_a_postgres_location() {
    let schema = Schema(format!("vt_facade_{}", std::process::id()));
    let url = format!(
        "postgres://postgres@127.0.0.1:5432/test?schema={}&origin=facade/pod-1",
        schema.0
    );
    let signer = NoteSigner::generate("facade").unwrap();
    let writer = veritrail::open_writer(&url, signer.clone(), WriterConfig::default())
        .unwrap_or_else(|e| panic!("this test needs PostgreSQL on 127.0.0.1:5432: {e}"));
    let receipt = writer
        .handle()
        .record(
            AuditEvent::http("GET", "/x").status(200).build(),
            Durability::Durable,
        )
        .await
        .unwrap();
    assert_eq!(receipt.index, Some(1)); // after the `start` record
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(10))
        .await;
    assert!(report.error.is_none());
    let store = PgStore::open(&url.parse().unwrap()).unwrap();
    assert_eq!(store.size(), 3); // start, the event, stop
    verify(&store, &signer.verifier(), &VerifyOptions::default()).unwrap();
}
