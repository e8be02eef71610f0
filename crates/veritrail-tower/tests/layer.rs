//! The layer over tower's `oneshot`: one event per request, whatever happens to it.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use veritrail_core::engine::{AuditContext, Engine, RoutePolicy};
use veritrail_core::event::{AuthnDecision, AuthzDecision, Outcome, Phase};
use veritrail_core::recorder::{Durability, MemoryRecorder, MemoryRecorderState, Recorder};
use veritrail_tower::{AuditLayer, require_scope};

mod support;
use support::{authenticator, token};

fn engine(recorder: &MemoryRecorder) -> Engine {
    engine_with(recorder.clone())
}

fn engine_with(recorder: impl Recorder) -> Engine {
    Engine::builder(authenticator(), recorder)
        .realm("orders")
        .route("/health", RoutePolicy::public())
        .route("/maybe", RoutePolicy::optional())
        .route("/write", RoutePolicy::authenticated().scope("orders:write"))
        .route(
            "/durable",
            RoutePolicy::authenticated().durability(Durability::Durable),
        )
        .route(
            "/ahead",
            RoutePolicy::authenticated().durability(Durability::WriteAhead),
        )
        .build()
}

async fn handler(req: Request<String>) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(ctx) = req.extensions().get::<AuditContext>() {
        ctx.set_action("thing.do");
        ctx.set_target("thing:1");
    }
    match req.uri().path() {
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Response::new(Full::from("late")))
        }
        "/teapot" => Ok(Response::builder()
            .status(418)
            .body(Full::from("tea"))
            .unwrap()),
        _ => Ok(Response::new(Full::from("ok"))),
    }
}

fn get(path: &str, token: Option<&str>) -> Request<String> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(String::new()).unwrap()
}

#[tokio::test]
async fn allowed_request_records_actor_and_action() {
    let recorder = MemoryRecorder::new();
    let svc = ServiceBuilder::new()
        .layer(AuditLayer::new(engine(&recorder)))
        .service(service_fn(handler));
    let res = svc
        .oneshot(get("/x", Some(&token(&["orders:read"]))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-request-id"));
    let events = recorder.events();
    assert_eq!(events.len(), 1);
    let http = events[0].as_http().unwrap();
    assert_eq!(http.status, Some(200));
    assert_eq!(http.outcome, Some(Outcome::Success));
    assert_eq!(http.action.as_deref(), Some("thing.do"));
    assert_eq!(
        http.authn.as_ref().unwrap().decision,
        AuthnDecision::Allowed
    );
    assert_eq!(
        http.actor
            .as_ref()
            .unwrap()
            .sub
            .as_ref()
            .unwrap()
            .as_plain(),
        Some("alice")
    );
    assert_eq!(
        http.request.request_id.as_deref(),
        res.headers()["x-request-id"].to_str().ok()
    );
}

#[tokio::test]
async fn refusals_are_rendered_and_recorded() {
    let recorder = MemoryRecorder::new();
    let mut svc = ServiceBuilder::new()
        .layer(AuditLayer::new(engine(&recorder)))
        .service(service_fn(handler));
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get("/x", None))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"orders\"");
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get("/write", Some(&token(&["orders:read"]))))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"orders:write\""), "{challenge}");

    let events = recorder.events();
    assert_eq!(events.len(), 2);
    let first = events[0].as_http().unwrap();
    assert_eq!(first.outcome, Some(Outcome::Denied));
    assert_eq!(
        first.authn.as_ref().unwrap().reason.as_deref(),
        Some("token_missing")
    );
    assert_eq!(first.action, None, "the handler never ran");
    let second = events[1].as_http().unwrap();
    assert_eq!(
        second.authz.as_ref().unwrap().decision,
        AuthzDecision::Denied
    );
    assert_eq!(
        second.authz.as_ref().unwrap().reason.as_deref(),
        Some("missing_scope")
    );
}

#[tokio::test]
async fn public_optional_and_route_layer() {
    let recorder = MemoryRecorder::new();
    let inner = ServiceBuilder::new()
        .layer(require_scope("orders:admin"))
        .service(service_fn(handler));
    let mut svc = ServiceBuilder::new()
        .layer(AuditLayer::new(engine(&recorder)))
        .service(inner);
    let ok = token(&["orders:admin"]);
    for (path, tok, status) in [
        // Route requirements imply a caller, even on a route the table calls public.
        ("/health", None, 401),
        ("/maybe", None, 401), // the route layer needs a caller
        ("/maybe", Some(ok.as_str()), 200),
        ("/x", Some(token(&[]).as_str()), 403),
    ] {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(get(path, tok))
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
    }
    let events = recorder.events();
    assert_eq!(events.len(), 4);
    let public = events[0].as_http().unwrap();
    assert_eq!(
        public.authn.as_ref().unwrap().reason.as_deref(),
        Some("token_missing")
    );
    assert_eq!(
        events[1]
            .as_http()
            .unwrap()
            .authn
            .as_ref()
            .unwrap()
            .decision,
        AuthnDecision::Denied
    );
    assert_eq!(events[3].as_http().unwrap().outcome, Some(Outcome::Denied));
}

#[tokio::test]
async fn durable_and_write_ahead() {
    let recorder = MemoryRecorder::new();
    let mut svc = ServiceBuilder::new()
        .layer(AuditLayer::new(engine(&recorder)))
        .service(service_fn(handler));
    let t = token(&[]);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get("/durable", Some(&t)))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get("/ahead", Some(&t)))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let entries = recorder.entries();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].1, Durability::Durable);
    let (intent, d) = &entries[1];
    assert_eq!(*d, Durability::WriteAhead);
    assert_eq!(intent.as_http().unwrap().phase, Phase::Intent);
    let complete = entries[2].0.as_http().unwrap();
    assert_eq!(complete.intent_id, Some(intent.id));

    // A failing recorder: write-ahead refuses to run the handler, durable withholds the answer.
    recorder.set_state(MemoryRecorderState::Failed("disk".into()));
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get("/ahead", Some(&t)))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get("/durable", Some(&t)))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
}

#[tokio::test]
async fn cancelled_and_handler_outcomes() {
    let recorder = MemoryRecorder::new();
    let svc = ServiceBuilder::new()
        .layer(AuditLayer::new(engine(&recorder)))
        .service(service_fn(handler));
    let t = token(&[]);
    let slow = svc.clone().oneshot(get("/slow", Some(&t)));
    let timed_out = tokio::time::timeout(Duration::from_millis(50), slow).await;
    assert!(timed_out.is_err());
    let res = svc.oneshot(get("/teapot", Some(&t))).await.unwrap();
    assert_eq!(res.status(), 418);
    let events = recorder.events();
    assert_eq!(events.len(), 2);
    let cancelled = events[0].as_http().unwrap();
    assert_eq!(cancelled.outcome, Some(Outcome::Cancelled));
    assert_eq!(cancelled.status, None);
    assert_eq!(cancelled.action.as_deref(), Some("thing.do"));
    assert_eq!(events[1].as_http().unwrap().outcome, Some(Outcome::Failure));
}

#[tokio::test]
async fn inner_error_records_error() {
    let recorder = MemoryRecorder::new();
    let svc = ServiceBuilder::new()
        .layer(AuditLayer::new(engine(&recorder)))
        .service(service_fn(|_req: Request<String>| async {
            Err::<Response<Full<Bytes>>, _>(std::io::Error::other("backend down"))
        }));
    let err = svc.oneshot(get("/x", Some(&token(&[])))).await.unwrap_err();
    assert_eq!(err.to_string(), "backend down");
    let events = recorder.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].as_http().unwrap().outcome, Some(Outcome::Error));
}

/// An in-memory sink whose disk fills up: the append of batch `fail_at` (1 = the writer's
/// `start` record) and every later one fail with ENOSPC.
struct DiskFillsUp {
    size: u64,
    batches: u64,
    fail_at: u64,
}

impl veritrail_writer::Sink for DiskFillsUp {
    fn origin(&self) -> &str {
        "tower.test/audit"
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn append(
        &mut self,
        batch: &veritrail_writer::Batch<'_>,
    ) -> Result<(), veritrail_writer::SinkError> {
        self.batches += 1;
        if self.batches >= self.fail_at {
            let full =
                std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device");
            return Err(veritrail_writer::SinkError::Other(Box::new(full)));
        }
        self.size += batch.len() as u64;
        Ok(())
    }
    fn commit(&mut self) -> Result<(), veritrail_writer::SinkError> {
        Ok(())
    }
}

/// Hole 4: once the writer has failed, no route runs its handler — `Async` ones included
/// (they used to run and lose their event) — and each answers 503 with `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_writer_refuses_every_route_before_the_handler_runs() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use veritrail_writer::{Writer, WriterConfig};

    let sink = DiskFillsUp {
        size: 0,
        batches: 0,
        fail_at: 3,
    };
    let writer = Writer::start(sink, WriterConfig::default()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let svc = ServiceBuilder::new()
        .layer(AuditLayer::new(engine_with(writer.handle())))
        .service(service_fn(move |req| {
            counted.fetch_add(1, Ordering::SeqCst);
            handler(req)
        }));
    let t = token(&[]);
    // Async requests run until the disk fills up under their events.
    let handle = writer.handle();
    for _ in 0..500 {
        if handle.health().is_err() {
            break;
        }
        let _ = svc.clone().oneshot(get("/x", Some(&t))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(handle.health().is_err(), "the writer failed");
    let ran = calls.load(Ordering::SeqCst);
    for path in ["/x", "/health", "/maybe", "/durable", "/ahead"] {
        let res = svc.clone().oneshot(get(path, Some(&t))).await.unwrap();
        assert_eq!(res.status(), 503, "{path}");
        assert_eq!(res.headers()["retry-after"], "1", "{path}");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "audit_unavailable", "{path}");
        assert!(
            !String::from_utf8_lossy(&body).contains("space"),
            "no internals in the answer"
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        ran,
        "the handler ran after the writer had failed"
    );
    let report = writer
        .shutdown(std::time::Instant::now() + Duration::from_secs(5))
        .await;
    assert!(report.error.unwrap().contains("no space"));
    assert!(report.lost >= 1, "the failed batch's events are counted");
}

/// A first `Authorization` that the engine cannot read (not UTF-8) or would skip (another
/// scheme) no longer hides behind a good second one: 400 `invalid_request`, handler not run.
#[tokio::test]
async fn a_second_authorization_header_is_refused_whatever_the_first_holds() {
    let good = format!("Bearer {}", token(&["orders:read"]));
    let firsts = [
        http::HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
        http::HeaderValue::from_static("Basic YWRtaW46cHc="),
    ];
    for first in firsts {
        let recorder = MemoryRecorder::new();
        let svc = ServiceBuilder::new()
            .layer(AuditLayer::new(engine(&recorder)))
            .service(service_fn(handler));
        let mut req = get("/x", None);
        req.headers_mut().append("authorization", first.clone());
        req.headers_mut()
            .append("authorization", good.parse().unwrap());
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), 400, "{first:?}");
        let challenge = res.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("error=\"invalid_request\""),
            "{challenge}"
        );
        let events = recorder.events();
        let http = events[0].as_http().unwrap();
        assert_eq!(http.action, None, "the handler never ran");
        assert_eq!(
            http.authn.as_ref().unwrap().reason.as_deref(),
            Some("duplicate_authorization")
        );
    }
    // Alone, an unreadable one is refused rather than taken for no credentials.
    let recorder = MemoryRecorder::new();
    let svc = ServiceBuilder::new()
        .layer(AuditLayer::new(engine(&recorder)))
        .service(service_fn(handler));
    let mut req = get("/maybe", None);
    req.headers_mut().append(
        "authorization",
        http::HeaderValue::from_bytes(b"Bearer \xc3\xa9").unwrap(),
    );
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        recorder.events()[0]
            .as_http()
            .unwrap()
            .authn
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("credentials_not_ascii")
    );
}
