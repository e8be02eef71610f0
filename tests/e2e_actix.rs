//! End to end over real sockets with actix-web: the same scenario as the axum test against a
//! real writer, the log verified and each event checked field by field; then the events are
//! compared with those the tower path (axum) produces for the same requests.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use axum::routing::{get, post};
use common::*;
use serde::Deserialize;
use serde_json::Value;
use veritrail_actix::{AuditContext, AuditMiddleware, Claims, Identity, require_scope};
use veritrail_core::engine::Engine;
use veritrail_core::event::{AuditEvent, EvidenceMode};
use veritrail_core::recorder::Durability;
use veritrail_log::NoteSigner;
use veritrail_writer::{Writer, WriterConfig};

#[derive(Deserialize)]
struct RefundClaims {
    sub: String,
    tenant: String,
}

async fn read_order(id: web::Path<u64>, audit: AuditContext, _who: Identity) -> String {
    audit.set_action("order.read");
    audit.set_target(format!("order:{id}"));
    format!("order {id}")
}

async fn refund(id: web::Path<u64>, claims: Claims<RefundClaims>, audit: AuditContext) -> String {
    audit.set_action("order.refund");
    audit.set_target(format!("order:{id}"));
    format!("refunded {id} for {} of {}", claims.0.sub, claims.0.tenant)
}

async fn me(who: Option<Identity>, audit: AuditContext) -> String {
    match who {
        Some(who) => {
            audit.set_action("me.known");
            audit.set_target(format!("user:{}", who.sub().unwrap_or("?")));
            who.sub().unwrap_or("?").to_owned()
        }
        None => {
            audit.set_action("me.anonymous");
            "anonymous".to_owned()
        }
    }
}

async fn stream(audit: AuditContext) -> HttpResponse {
    audit.set_action("report.stream");
    HttpResponse::Ok().streaming(chunks())
}

/// actix has no panic-catching middleware: the handler fails as a handler error, which is
/// what tower-http's `CatchPanic` turns a panic into.
async fn panics() -> Result<&'static str, actix_web::Error> {
    Err(actix_web::error::ErrorInternalServerError("handler bug"))
}

/// Starts the actix server on its own thread (actix runs its own runtime).
fn serve_actix(
    engine: Engine,
    transfers_run: Arc<AtomicUsize>,
    probe: Arc<SlowProbe>,
) -> (
    SocketAddr,
    actix_web::dev::ServerHandle,
    std::thread::JoinHandle<()>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let transfers_run = transfers_run.clone();
                let probe = probe.clone();
                App::new()
                    .wrap(AuditMiddleware::new(engine.clone()))
                    .service(
                        web::resource("/orders/{id}")
                            .wrap(require_scope("orders:read"))
                            .route(web::get().to(read_order)),
                    )
                    .service(
                        web::resource("/orders/{id}/refund")
                            .wrap(require_scope("orders:refund").durability(Durability::Durable))
                            .route(web::post().to(refund)),
                    )
                    .route(
                        "/transfers",
                        web::post().to(move |audit: AuditContext| {
                            transfers_run.fetch_add(1, Ordering::SeqCst);
                            async move {
                                audit.set_action("transfer.create");
                                "created"
                            }
                        }),
                    )
                    .route("/me", web::get().to(me))
                    .route("/health", web::get().to(|| async { "ok" }))
                    .route("/stream", web::get().to(stream))
                    .route(
                        "/slow",
                        web::get().to(move |audit: AuditContext| {
                            let probe = probe.clone();
                            async move {
                                audit.set_action("slow.started");
                                probe.run().await;
                                "late"
                            }
                        }),
                    )
                    .route("/panic", web::get().to(panics))
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run();
            tx.send(server.handle()).unwrap();
            server.await.unwrap();
        })
    });
    (addr, rx.recv().unwrap(), thread)
}

/// The axum twin of the actix app, for the comparison.
async fn serve_axum(engine: Engine, probe: Arc<SlowProbe>) -> SocketAddr {
    use axum::extract::Path;
    async fn read_order(Path(id): Path<u64>, audit: veritrail_axum::AuditContext) -> String {
        audit.set_action("order.read");
        audit.set_target(format!("order:{id}"));
        format!("order {id}")
    }
    async fn refund(Path(id): Path<u64>, audit: veritrail_axum::AuditContext) -> String {
        audit.set_action("order.refund");
        audit.set_target(format!("order:{id}"));
        format!("refunded {id}")
    }
    async fn me(
        who: Option<veritrail_axum::Identity>,
        audit: veritrail_axum::AuditContext,
    ) -> String {
        match who {
            Some(who) => {
                audit.set_action("me.known");
                audit.set_target(format!("user:{}", who.sub().unwrap_or("?")));
                "known".into()
            }
            None => {
                audit.set_action("me.anonymous");
                "anonymous".into()
            }
        }
    }
    async fn named(audit: veritrail_axum::AuditContext, name: &'static str) -> &'static str {
        audit.set_action(name);
        name
    }
    let app = axum::Router::new()
        .route(
            "/orders/{id}",
            get(read_order).route_layer(veritrail_axum::require_scope("orders:read")),
        )
        .route(
            "/orders/{id}/refund",
            post(refund).route_layer(
                veritrail_axum::require_scope("orders:refund").durability(Durability::Durable),
            ),
        )
        .route("/transfers", post(|a| named(a, "transfer.create")))
        .route("/me", get(me))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/stream",
            get(|a: veritrail_axum::AuditContext| async move {
                a.set_action("report.stream");
                axum::body::Body::from_stream(chunks())
            }),
        )
        .route(
            "/slow",
            get(move |a: veritrail_axum::AuditContext| async move {
                a.set_action("slow.started");
                probe.run().await;
                "late"
            }),
        )
        .route(
            "/panic",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "handler bug") }),
        )
        .layer(veritrail_axum::layer(engine));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

async fn drive(addr: SocketAddr, cases: &[Case], probe: &SlowProbe) {
    for case in cases {
        let answer = send(addr, case.request()).await;
        check_answer(case, &answer);
    }
    send_and_hang_up(addr, cancelled_case().request(), probe).await;
}

/// An event without what legitimately differs between two runs: ids, times, indexes,
/// latency.
fn shape(event: &AuditEvent) -> Value {
    let mut v = serde_json::to_value(event).unwrap();
    let o = v.as_object_mut().unwrap();
    for volatile in ["id", "time", "index", "latency_us", "intent_id"] {
        o.remove(volatile);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_events_match_the_tower_path_field_by_field() {
    let cases = scenario();
    let actix_dir = tempfile::tempdir().unwrap();
    let axum_dir = tempfile::tempdir().unwrap();
    let mut verifiers = Vec::new();
    let mut logs = Vec::new();
    let transfers_run = Arc::new(AtomicUsize::new(0));

    for (dir, is_actix) in [(actix_dir.path(), true), (axum_dir.path(), false)] {
        let signer = NoteSigner::generate("audit.test/orders").unwrap();
        verifiers.push(signer.verifier());
        let writer = Writer::open(dir, signer, WriterConfig::default()).unwrap();
        let watch = WatchCancelled::new(writer.handle());
        let engine = common::engine(watch.clone(), EvidenceMode::Fingerprint);
        if is_actix {
            let probe = Arc::new(SlowProbe::default());
            let (addr, handle, thread) = serve_actix(engine, transfers_run.clone(), probe.clone());
            drive(addr, &cases, &probe).await;
            // actix keeps running a handler whose client hung up; stopping the server
            // drops it, and the middleware records `cancelled`.
            handle.stop(false).await;
            tokio::task::spawn_blocking(move || thread.join().unwrap())
                .await
                .unwrap();
            // actix drops the handler on its worker threads, which may finish after the
            // system thread: wait for it.
            probe.wait_dropped().await;
            watch.wait().await;
        } else {
            let probe = Arc::new(SlowProbe::default());
            let addr = serve_axum(engine, probe.clone()).await;
            drive(addr, &cases, &probe).await;
            probe.wait_dropped().await;
            watch.wait().await;
        }
        let report = writer
            .shutdown(Instant::now() + Duration::from_secs(5))
            .await;
        assert_eq!(report.dropped, 0);
        logs.push(dir.to_owned());
    }
    assert_eq!(
        transfers_run.load(Ordering::SeqCst),
        1,
        "the write-ahead handler ran once"
    );

    let (actix_events, _) = read_log(&logs[0], &verifiers[0]);
    let (axum_events, _) = read_log(&logs[1], &verifiers[1]);
    let all: Vec<Case> = cases.iter().cloned().chain([cancelled_case()]).collect();
    assert_eq!(actix_events.len(), all.len());
    assert_eq!(axum_events.len(), all.len());
    for case in &all {
        check_events(case, &actix_events[case.id], EvidenceMode::Fingerprint);
        let a: Vec<Value> = actix_events[case.id].iter().map(shape).collect();
        let b: Vec<Value> = axum_events[case.id].iter().map(shape).collect();
        assert_eq!(a, b, "{}: actix and tower events differ", case.id);
    }
}
