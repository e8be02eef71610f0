//! The client address: read from `ConnectInfo` when the app is served with it, and when it is
//! not, one warning naming the fix instead of silence. (Its own test binary: the warning is
//! given once per process.)

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::routing::get;
use tower::ServiceExt;
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::recorder::MemoryRecorder;

#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn client_address(recorder: &MemoryRecorder) -> Option<String> {
    let event = recorder.events().pop().unwrap();
    let http = event.as_http().unwrap().clone();
    http.request
        .client_address
        .and_then(|a| a.as_plain().map(str::to_owned))
}

#[tokio::test]
async fn a_missing_connect_info_is_warned_about_once_and_a_present_one_is_recorded() {
    let output = Captured(Arc::new(Mutex::new(Vec::new())));
    let writer = output.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let keys = KeySet::from_hmac_secret(&[7; 32], jsonwebtoken::Algorithm::HS256, None).unwrap();
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.test")
                .keys(keys)
                .allow_hmac()
                .audience("api"),
        )
        .build()
        .unwrap();
    let recorder = MemoryRecorder::new();
    let engine = Engine::builder(auth, recorder.clone())
        .route("/health", RoutePolicy::public())
        .build();
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .layer(veritrail_axum::layer(engine));

    for _ in 0..3 {
        let request = Request::get("/health").body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(request).await.unwrap().status(), 200);
        assert_eq!(client_address(&recorder), None);
    }
    let text = String::from_utf8(output.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("into_make_service_with_connect_info").count(),
        1,
        "{text}"
    );
    assert!(text.contains("WARN"), "{text}");

    let mut request = Request::get("/health").body(Body::empty()).unwrap();
    let peer: SocketAddr = "192.0.2.7:4711".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    assert_eq!(app.oneshot(request).await.unwrap().status(), 200);
    assert_eq!(client_address(&recorder).as_deref(), Some("192.0.2.7"));
    let text = String::from_utf8(output.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("into_make_service_with_connect_info").count(),
        1,
        "{text}"
    );
}
