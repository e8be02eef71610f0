//! The authenticator on a remote JWKS store (feature `remote`), end to end over a real HTTP
//! server on 127.0.0.1: rotation through an unknown `kid`, a retired key dropping cached
//! tokens, and an unreachable identity provider answered with 503.
#![cfg(feature = "remote")]

#[path = "fixtures/support.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use support::*;
use veritrail_core::auth::remote::{JwksConfig, JwksStore};
use veritrail_core::auth::{Authenticator, KeySet};

struct Idp {
    jwks: Mutex<Value>,
    fetches: AtomicUsize,
}

async fn serve(State(idp): State<Arc<Idp>>) -> String {
    idp.fetches.fetch_add(1, Ordering::SeqCst);
    idp.jwks.lock().unwrap().to_string()
}

/// The public JWKS of fixture keys, as (kid, public PEM file) pairs.
fn jwks(keys: &[(&str, &str)]) -> Value {
    let sets = keys.iter().map(|(kid, public)| {
        KeySet::from_pem(&fixture(public), Algorithm::RS256, Some((*kid).into())).unwrap()
    });
    KeySet::merge(sets).to_public_jwks()
}

async fn start(initial: Value) -> (Arc<Idp>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let idp = Arc::new(Idp {
        jwks: Mutex::new(initial),
        fetches: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/jwks.json", get(serve))
        .with_state(Arc::clone(&idp));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (idp, url)
}

fn config(url: String) -> JwksConfig {
    JwksConfig::jwks_url(url)
        .allow_insecure_http(true)
        .unknown_kid_cooldown(Duration::from_millis(1))
        .retry_backoff(Duration::from_secs(1), Duration::from_secs(5))
        .connect_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(2))
}

async fn verify(auth: &Authenticator, t: &str) -> &'static str {
    match auth.verify(t).await {
        Ok(_) => "ok",
        Err(e) => match e.code() {
            "unknown_kid" => "unknown_kid",
            "keys_unavailable" => "keys_unavailable",
            other => panic!("unexpected {other}"),
        },
    }
}

#[tokio::test]
async fn rotation_is_followed_through_an_unknown_kid() {
    let (idp, url) = start(jwks(&[("k1", "rsa.pub.pem")])).await;
    let store = Arc::new(JwksStore::connect(config(url)).await.unwrap());
    let auth = with_source(store.clone(), 0);
    let k1 = token(Algorithm::RS256, "rsa.pem", "k1", &claims());
    let k2 = token(Algorithm::RS256, "rsa2.pem", "k2", &claims());
    assert_eq!(verify(&auth, &k1).await, "ok");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);

    *idp.jwks.lock().unwrap() = jwks(&[("k1", "rsa.pub.pem"), ("k2", "rsa2.pub.pem")]);
    assert_eq!(verify(&auth, &k2).await, "ok");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // Known kids cost no fetch.
    assert_eq!(verify(&auth, &k1).await, "ok");
    assert_eq!(verify(&auth, &k2).await, "ok");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_retired_key_drops_its_cached_tokens() {
    let (idp, url) = start(jwks(&[("k1", "rsa.pub.pem"), ("k2", "rsa2.pub.pem")])).await;
    let store = Arc::new(JwksStore::connect(config(url)).await.unwrap());
    let auth = with_source(store.clone(), 100);
    let k1 = token(Algorithm::RS256, "rsa.pem", "k1", &claims());
    assert_eq!(verify(&auth, &k1).await, "ok");
    assert_eq!(auth.cached_tokens(), 1);

    *idp.jwks.lock().unwrap() = jwks(&[("k2", "rsa2.pub.pem")]);
    store.refresh_now().await.unwrap();
    assert_eq!(verify(&auth, &k1).await, "unknown_kid");
    assert_eq!(auth.cached_tokens(), 0);
}

#[tokio::test]
async fn an_unreachable_identity_provider_is_a_503() {
    // A port that was open a moment ago and is closed now.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let store = Arc::new(JwksStore::spawn(config(url)).unwrap());
    let auth = with_source(store, 100);
    let err = auth
        .verify(&token(Algorithm::RS256, "rsa.pem", "k1", &claims()))
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.status()), ("keys_unavailable", 503));
    assert!(err.retry_after_secs().is_some_and(|s| s >= 1));
}
