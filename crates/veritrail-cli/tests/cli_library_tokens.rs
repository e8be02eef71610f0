//! Key-set archiving is the library's: an app built with the library alone (no CLI code)
//! writes a log that `veritrail verify --tokens` re-verifies — with keys from a JWKS file, and
//! with keys fetched from a JWKS URL that rotates while the app runs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Env, stdout};
use serde_json::Value;
use veritrail_core::auth::remote::{JwksConfig, JwksStore};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::dev::DevIdp;
use veritrail_core::engine::{Engine, SimpleRequest};
use veritrail_core::event::EvidenceMode;
use veritrail_log::NoteSigner;
use veritrail_writer::{Writer, WriterConfig};

const ISS: &str = "https://idp.library.test";

/// One request with `token` through the engine, as an adapter drives it; returns its status.
async fn request(engine: &Engine, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    let request = SimpleRequest::new("GET", "/orders/7").header("authorization", &bearer);
    let exchange = engine.start(&request);
    match exchange.authenticate().await {
        Ok(()) => {
            exchange.finish(200).await.unwrap();
            200
        }
        Err(rejection) => exchange.reject(rejection).await.status(),
    }
}

fn token(idp: &DevIdp, sub: &str) -> String {
    idp.mint(sub, "api", "orders:read", 300).unwrap()
}

/// Stops the writer, then checks that `veritrail verify --tokens` verifies `verified` tokens
/// against `keysets` archived key sets, and fails none.
async fn assert_verifies(env: &Env, writer: Writer, vkey: &str, verified: u64, keysets: u64) {
    writer
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    let args = ["verify", "log", "--key", vkey, "--tokens", "--json"];
    let out = env.expect(0, &args, b"");
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    let tokens = &json["tokens"];
    assert_eq!(tokens["valid"], true, "{json}");
    assert_eq!(tokens["verified"], verified, "{json}");
    assert_eq!(tokens["keyset_records"], keysets, "{json}");
    assert_eq!(tokens["failed"], 0, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_built_apps_log_verifies_with_tokens() {
    let env = Env::new();
    let idp = DevIdp::generate(ISS).unwrap();
    let (keys, _) = KeySet::from_jwks(idp.jwks().to_string().as_bytes()).unwrap();
    let signer = NoteSigner::generate("library.test/log").unwrap();
    let vkey = signer.verifier().to_text();
    let writer = Writer::open(env.path("log"), signer, WriterConfig::default()).unwrap();
    let auth = Authenticator::builder()
        .issuer(Issuer::new(ISS).keys(keys).audience("api"))
        .build()
        .unwrap();
    let engine = Engine::builder(auth, writer.handle())
        .evidence(EvidenceMode::Full)
        .build();
    for sub in ["alice", "bob"] {
        assert_eq!(request(&engine, &token(&idp, sub)).await, 200);
    }
    assert_verifies(&env, writer, &vkey, 2, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_jwks_url_is_recorded_before_the_tokens_it_verifies() {
    let env = Env::new();
    let (old, new) = (
        DevIdp::generate(ISS).unwrap(),
        DevIdp::generate(ISS).unwrap(),
    );
    let served = Arc::new(Mutex::new(old.jwks().to_string()));
    let app = {
        let served = Arc::clone(&served);
        axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let served = Arc::clone(&served);
                async move { served.lock().unwrap().clone() }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let store = JwksStore::connect(JwksConfig::jwks_url(&url).allow_insecure_http(true))
        .await
        .unwrap();
    let signer = NoteSigner::generate("library.test/log").unwrap();
    let vkey = signer.verifier().to_text();
    let writer = Writer::open(env.path("log"), signer, WriterConfig::default()).unwrap();
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new(ISS)
                .key_source(Arc::new(store.clone()))
                .audience("api"),
        )
        .build()
        .unwrap();
    let engine = Engine::builder(auth, writer.handle())
        .evidence(EvidenceMode::Full)
        .build();
    assert_eq!(request(&engine, &token(&old, "alice")).await, 200);

    // Rotation: the URL now serves the new keys; once the store has them, the engine has
    // recorded them, before any token was verified with them.
    *served.lock().unwrap() = new.jwks().to_string();
    store.refresh_now().await.unwrap();
    assert_eq!(request(&engine, &token(&old, "carol")).await, 401);
    assert_eq!(request(&engine, &token(&new, "bob")).await, 200);
    assert_verifies(&env, writer, &vkey, 2, 2).await;
}
