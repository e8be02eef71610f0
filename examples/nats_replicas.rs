//! Many replicas, one log: two axum replicas (two ports) behind the veritrail layer publish
//! their audit events to one NATS JetStream stream; one sequencer integrates the stream into
//! one signed log, which is then verified.
//!
//! Needs NATS with JetStream at 127.0.0.1:4222 (`nats-server -js`), or the address in
//! `VERITRAIL_NATS`:
//!
//! ```sh
//! cargo run --example nats_replicas --features nats,axum
//! ```
//!
//! In production the three parts are three kinds of process — `veritrail proxy --log
//! nats://…` or your service with `veritrail::open_writer("nats://…")` on every replica, and
//! `veritrail sequencer` (two, for failover) — see README.md, "Many replicas, one log".

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::{Router, extract::Path, routing::post};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use veritrail::axum::{AuditContext, Engine, Identity};
use veritrail::core::auth::{Authenticator, Issuer, KeySet};
use veritrail::log::verify::{VerifyOptions, verify_dir};
use veritrail::log::{LogOptions, NoteSigner};
use veritrail::nats::{
    IntegrationLog, NatsLocation, Sequencer, SequencerOptions, StreamSettings, ensure_stream,
};
use veritrail::writer::{FileSink, WriterConfig};

const SECRET: &[u8] = b"an example secret, 32 bytes long!";

async fn refund(Path(id): Path<u64>, who: Identity, audit: AuditContext) -> String {
    audit.set_action("order.refund");
    audit.set_target(format!("order:{id}"));
    format!("order {id} refunded for {}\n", who.sub().unwrap_or("?"))
}

/// One replica: its own writer (publishing to the stream) and its own port.
async fn replica(
    at: &str,
) -> Result<(SocketAddr, veritrail::writer::Writer), Box<dyn std::error::Error>> {
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.example")
                .keys(KeySet::from_hmac_secret(SECRET, Algorithm::HS256, None)?)
                .allow_hmac()
                .audience("orders-api"),
        )
        .build()?;
    // A replica holds no key: the signer is not used for a nats:// location.
    let unused = NoteSigner::generate("replica")?;
    let at = at.to_owned();
    let writer = tokio::task::spawn_blocking(move || {
        veritrail::open_writer(&at, unused, WriterConfig::default())
    })
    .await??;
    let engine = Engine::builder(auth, writer.handle()).build();
    let app = Router::new()
        .route("/orders/{id}/refund", post(refund))
        .layer(veritrail::axum::layer(engine));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .ok();
    });
    Ok((addr, writer))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::env::var("VERITRAIL_NATS").unwrap_or("127.0.0.1:4222".into());
    let stream = format!("VT_EXAMPLE_{}", std::process::id());
    // One origin per run (its events subject is `veritrail.<origin>.events`).
    let origin = format!("example.veritrail/{stream}");
    let at: NatsLocation = format!("nats://{server}/{stream}?origin={origin}").parse()?;

    // The stream and the lease bucket (`veritrail sequencer --init` does this; one replica
    // of each on a single server, three in a cluster).
    let settings = StreamSettings::default().replicas(1);
    let client = veritrail::nats::connect(&at, "example").await?;
    let js = veritrail::nats::async_nats::jetstream::new(client);
    ensure_stream(&js, &at, &settings).await?;

    // The sequencer: the only holder of the log's key.
    let dir = tempfile::tempdir()?;
    let log_dir = dir.path().join("log");
    let key = NoteSigner::generate(&origin)?;
    let verifier = key.verifier();
    let key_text = key.to_text().to_string();
    let (opener_dir, log_origin) = (log_dir.clone(), origin.clone());
    let sequencer = Sequencer::new(
        at.clone(),
        SequencerOptions::default().settings(settings),
        Box::new(move || {
            let signer = NoteSigner::from_text(&key_text).expect("key");
            let options = LogOptions::default().origin(Some(log_origin.clone()));
            Ok(Box::new(FileSink::open(&opener_dir, signer, options)?) as Box<dyn IntegrationLog>)
        }),
    );
    let stop = sequencer.stop_flag();
    let handle = tokio::runtime::Handle::current();
    let sequencing = std::thread::spawn(move || sequencer.run(&handle));

    // Two replicas on two ports, one stream.
    let (a, writer_a) = replica(&at.to_string()).await?;
    let (b, writer_b) = replica(&at.to_string()).await?;
    println!("replicas listening on http://{a} and http://{b}; stream {stream}");

    veritrail::core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({"iss": "https://idp.example", "aud": "orders-api",
        "sub": "alice", "iat": now, "exp": now + 300});
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )?;
    for (i, addr) in [a, b, a, b, a, b].into_iter().enumerate() {
        let status = common::send(addr, "POST", &format!("/orders/{i}/refund"), Some(&token))
            .await
            .map_err(|e| e.to_string())?;
        println!("POST http://{addr}/orders/{i}/refund -> {status}");
    }

    // Replicas shut down (their queues drain to the stream); the sequencer catches up and
    // stops cleanly, signing a last checkpoint.
    let deadline = Instant::now() + Duration::from_secs(5);
    writer_a.shutdown(deadline).await;
    writer_b.shutdown(deadline).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let report = tokio::task::spawn_blocking(move || sequencing.join())
        .await?
        .expect("sequencer thread")?;
    println!(
        "sequencer: {} events integrated, {} checkpoints, log size {}",
        report.integrated, report.checkpoints, report.size
    );

    let verified = verify_dir(&log_dir, &verifier, &VerifyOptions::default())?;
    println!(
        "log verified: {} records, one tree, every checkpoint checked",
        verified.records
    );
    js.delete_stream(&stream).await?;
    js.delete_stream(format!("KV_{}", at.lease_bucket()))
        .await?;
    Ok(())
}
