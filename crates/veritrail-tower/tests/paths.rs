//! Path tricks through the layer: the policy of the canonical path applies, paths without one
//! are refused with 400 and audited, and the inner service never runs for them.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::event::{AuthzDecision, Outcome};
use veritrail_core::recorder::MemoryRecorder;
use veritrail_tower::AuditLayer;

mod support;
use support::{authenticator, token};

fn engine(recorder: &MemoryRecorder) -> Engine {
    Engine::builder(authenticator(), recorder.clone())
        .route("/health", RoutePolicy::public())
        .route("/admin/x", RoutePolicy::authenticated().scope("admin"))
        .build()
}

/// Sends `req` through the layer around a handler that counts its calls.
async fn call(recorder: &MemoryRecorder, req: Request<String>) -> (Response<Full<Bytes>>, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let svc = ServiceBuilder::new()
        .layer(AuditLayer::new(engine(recorder)))
        .service(service_fn(move |_: Request<String>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("ok"))) }
        }));
    let res = svc.oneshot(req).await.unwrap();
    (res, calls.load(Ordering::SeqCst))
}

fn get(target: &str, bearer: Option<&str>) -> Request<String> {
    let mut b = Request::get(target).header("host", "api.test");
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(String::new()).unwrap()
}

#[tokio::test]
async fn ambiguous_paths_are_refused_audited_and_never_reach_the_handler() {
    let admin = token(&["admin"]);
    for target in [
        "/%2e%2e/admin/x",
        "/health/%2E%2E/admin/x",
        "/health/.%2e/admin/x",
        "/health/..%2Fadmin/x",
        "/admin%2fx",
        "/admin%5Cx",
        "/admin/x%00",
        "/../admin/x",
        "/admin;jsessionid=1/x",
        "/health/..;/admin/x",
        "/%C0%AE%C0%AE/admin/x",
        "/admin./x",
        "http://other.test/health",
        "http://api.test//health",
    ] {
        let recorder = MemoryRecorder::new();
        let (res, calls) = call(&recorder, get(target, Some(&admin))).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{target}");
        assert_eq!(calls, 0, "{target}: the handler ran");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{target}"
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "invalid_path", "{target}");
        let events = recorder.events();
        assert_eq!(events.len(), 1, "{target}: audited once");
        let http = events[0].as_http().unwrap();
        assert_eq!(http.status, Some(400));
        assert_eq!(http.outcome, Some(Outcome::Denied));
        let authz = http.authz.as_ref().unwrap();
        assert_eq!(
            (authz.decision, authz.reason.as_deref()),
            (AuthzDecision::Denied, Some("invalid_path")),
            "{target}"
        );
        assert_eq!(http.actor, None, "{target}: the token was never read");
    }
}

#[tokio::test]
async fn other_spellings_get_the_policy_of_the_canonical_path() {
    let reader = token(&["read"]);
    for target in [
        "/health/../admin/x",
        "//admin/x",
        "/%61dmin/x",
        "/foo/../admin/x",
        "/admin/./x",
    ] {
        let recorder = MemoryRecorder::new();
        let (res, calls) = call(&recorder, get(target, Some(&reader))).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{target}");
        assert_eq!(calls, 0, "{target}");
        let http = recorder.events()[0].as_http().unwrap().clone();
        assert_eq!(http.request.path.as_plain(), Some("/admin/x"));
        assert_eq!(
            http.request.raw_path.as_ref().and_then(|p| p.as_plain()),
            Some(target)
        );
    }
    // Without a token, the public route's name does not lend its policy.
    let recorder = MemoryRecorder::new();
    let (res, calls) = call(&recorder, get("/health/../admin/x", None)).await;
    assert_eq!((res.status(), calls), (StatusCode::UNAUTHORIZED, 0));

    let recorder = MemoryRecorder::new();
    let (res, calls) = call(&recorder, get("/admin/x", Some(&token(&["admin"])))).await;
    assert_eq!((res.status(), calls), (StatusCode::OK, 1));
    assert_eq!(
        recorder.events()[0].as_http().unwrap().request.raw_path,
        None
    );
}

#[tokio::test]
async fn the_inner_service_gets_the_path_the_policy_was_chosen_for() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = Arc::clone(&seen);
    let recorder = MemoryRecorder::new();
    let svc = ServiceBuilder::new()
        .layer(AuditLayer::new(engine(&recorder)))
        .service(service_fn(move |req: Request<String>| {
            noted.lock().unwrap().push(req.uri().to_string());
            async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("ok"))) }
        }));
    // Public by its canonical path: an inner router must not see `/admin/...` and run an
    // admin handler for it.
    for target in ["/admin/../health?x=%2F", "//health", "/%68ealth"] {
        let res = svc.clone().oneshot(get(target, None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{target}");
    }
    assert_eq!(
        *seen.lock().unwrap(),
        ["/health?x=%2F", "/health", "/health"]
    );

    // A route template means the framework has routed already: the URI is left alone.
    fn template(_: &http::Extensions) -> Option<&str> {
        Some("/health")
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = Arc::clone(&seen);
    let svc = ServiceBuilder::new()
        .layer(AuditLayer::new(engine(&recorder)).route_with(template))
        .service(service_fn(move |req: Request<String>| {
            noted.lock().unwrap().push(req.uri().to_string());
            async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("ok"))) }
        }));
    let res = svc.oneshot(get("//health", None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(*seen.lock().unwrap(), ["//health"]);
}
