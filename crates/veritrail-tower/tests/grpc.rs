//! A real tonic server behind `AuditLayer::grpc()`, called by a real tonic client: refusals
//! are gRPC statuses the client understands, and each call's event holds the RPC and its
//! final `grpc-status` (from the trailers, or the head of a trailers-only answer).

use std::net::SocketAddr;

use serde_json::Value;
use tonic::transport::server::TcpConnectInfo;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::event::{AuditEvent, Outcome};
use veritrail_core::recorder::{Durability, MemoryRecorder};
use veritrail_tower::AuditLayer;

mod support;
use support::{authenticator, token};

const CHECK: &str = "/grpc.health.v1.Health/Check";
const WATCH: &str = "/grpc.health.v1.Health/Watch";

/// A tonic health service (with `orders.Orders` serving) behind the layer.
async fn start(recorder: &MemoryRecorder) -> SocketAddr {
    let engine = Engine::builder(authenticator(), recorder.clone())
        .route(WATCH, RoutePolicy::authenticated().scope("admin"))
        .route(
            CHECK,
            RoutePolicy::authenticated().durability(Durability::Durable),
        )
        .trust_request_id(true)
        .build();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders.Orders", ServingStatus::Serving)
        .await;
    let layer = AuditLayer::new(engine)
        .peer_addr_with(|ext| {
            ext.get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
                .map(|a| a.ip())
        })
        .grpc();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    addr
}

fn check(service: &str, auth: Option<&str>, id: &str) -> tonic::Request<HealthCheckRequest> {
    let mut req = tonic::Request::new(HealthCheckRequest {
        service: service.into(),
    });
    if let Some(auth) = auth {
        req.metadata_mut()
            .insert("authorization", auth.parse().unwrap());
    }
    req.metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    req
}

/// The event of the request `id`, as JSON.
fn event(recorder: &MemoryRecorder, id: &str) -> Value {
    let events: Vec<AuditEvent> = recorder.events();
    let found: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| {
            e.as_http()
                .is_some_and(|h| h.request.request_id.as_deref() == Some(id))
        })
        .collect();
    assert_eq!(found.len(), 1, "one event for {id}: {events:?}");
    serde_json::to_value(found[0]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_are_refused_as_grpc_and_recorded_with_their_final_status() {
    let recorder = MemoryRecorder::new();
    let addr = start(&recorder).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);

    // No token, a bad one: UNAUTHENTICATED, as a gRPC status the client reads.
    let refused = client
        .check(check("orders.Orders", None, "no-token"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("token_missing"), "{refused:?}");
    let bad = client
        .check(check(
            "orders.Orders",
            Some("Bearer not.a.token"),
            "bad-token",
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::Unauthenticated, "{bad:?}");
    for id in ["no-token", "bad-token"] {
        let e = event(&recorder, id);
        assert_eq!(e["outcome"], "denied", "{e}");
        assert_eq!(e["extra"]["grpc_status"], 16, "{e}");
        assert_eq!(e["action"], CHECK, "{e}");
        assert_eq!(e["authn"]["decision"], "denied", "{e}");
    }

    // Allowed: the event holds the RPC and grpc-status 0 from the trailers.
    let auth = format!("Bearer {}", token(&["orders:read"]));
    let ok = client
        .check(check("orders.Orders", Some(&auth), "allowed"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ok.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let e = event(&recorder, "allowed");
    assert_eq!(e["request"]["path"], CHECK, "{e}");
    assert_eq!(e["action"], CHECK, "{e}");
    assert_eq!(e["status"], 200, "{e}");
    assert_eq!(e["extra"]["grpc_status"], 0, "{e}");
    assert_eq!(e["outcome"], "success", "{e}");
    assert_eq!(e["actor"]["sub"], "alice", "{e}");

    // The handler's own error status (NOT_FOUND for an unknown service) is what is recorded.
    let missing = client
        .check(check("nobody.Nowhere", Some(&auth), "not-found"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    let e = event(&recorder, "not-found");
    assert_eq!(e["extra"]["grpc_status"], 5, "{e}");
    assert_eq!(e["outcome"], "failure", "{e}");

    // A route that needs a scope the token lacks: PERMISSION_DENIED.
    let mut watch = check("orders.Orders", Some(&auth), "no-scope");
    watch.metadata_mut().remove("x-request-id");
    watch
        .metadata_mut()
        .insert("x-request-id", "no-scope".parse().unwrap());
    let denied = client.watch(watch).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let e = event(&recorder, "no-scope");
    assert_eq!(e["extra"]["grpc_status"], 7, "{e}");
    assert_eq!(e["outcome"], "denied", "{e}");
    assert_eq!(e["action"], WATCH, "{e}");

    // A streaming call that the client abandons is recorded as cancelled when it goes.
    let admin = format!("Bearer {}", token(&["admin"]));
    let stream = client
        .watch(check("orders.Orders", Some(&admin), "watching"))
        .await
        .unwrap()
        .into_inner();
    drop(stream);
    drop(client);
    let mut waited = 0;
    while !recorder.events().iter().any(|e| {
        e.as_http()
            .is_some_and(|h| h.request.request_id.as_deref() == Some("watching"))
    }) {
        waited += 1;
        assert!(waited < 100, "the abandoned stream was never recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let e = event(&recorder, "watching");
    assert_eq!(e["outcome"], "cancelled", "{e}");
    let outcome: Option<Outcome> = serde_json::from_value(e["outcome"].clone()).ok();
    assert_eq!(outcome, Some(Outcome::Cancelled));
}
