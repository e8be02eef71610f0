//! The view in a real browser: headless Chromium from Debian's packages (`chromium`,
//! `chromium-driver`; `.ci/run` installs them when missing), driven over WebDriver with
//! fantoccini. Screenshots of every page go to `$CARGO_TARGET_TMPDIR/serve-browser/<test>/`.

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::Value;

use super::common::{Env, events, join, stdout};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use veritrail_log::proof::InclusionProofFile;

use super::driver::Browser;
use super::{Serve, cli_events, demo_log, newest_first, token};

/// The verifier key in a `.pub` file written by `veritrail demo` or `keygen`.
fn key_in(env: &Env, file: &str) -> String {
    env.read(file).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_logs_in_searches_and_verifies_an_event_in_the_browser() {
    let env = Env::new();
    demo_log(&env);
    let serve = Serve::start_with_auth(&env, "demo/log");
    let browser = Browser::start("auditor").await;

    // Without a token the view refuses (401) and points at the login page.
    browser.goto(&serve.url("/events")).await;
    assert_eq!(browser.text("h1").await, "A token is needed");
    browser.shot("01-no-token").await;
    browser.goto(&serve.url("/login")).await;
    browser
        .fill("#token", &token("auditor", "audit:read"))
        .await;
    browser.click("#login").await;
    browser.wait_for_path("/").await;
    assert_eq!(browser.text("h1").await, "Overview");
    browser.shot("02-overview").await;

    // Filter by subject and outcome with the form, as a reader would, and compare the rows
    // with `veritrail events --json`.
    for (sub, outcome) in [("alice", "denied"), ("alice", ""), ("", "success")] {
        browser.goto(&serve.url("/events")).await;
        browser.fill("#f-sub", sub).await;
        let select = browser.client.find(Locator::Id("f-outcome")).await.unwrap();
        select.select_by_value(outcome).await.unwrap();
        browser.click("#search").await;
        browser
            .wait_for_url(&format!("sub={sub}&"), &format!("outcome={outcome}&"))
            .await;
        let mut filters = Vec::new();
        if !sub.is_empty() {
            filters.extend(["--sub", sub]);
        }
        if !outcome.is_empty() {
            filters.extend(["--outcome", outcome]);
        }
        let want = newest_first(&env, "demo/log", &filters);
        assert!(!want.is_empty(), "{filters:?}");
        assert_eq!(browser.row_indexes().await, want, "{filters:?}");
        if sub == "alice" && outcome == "denied" {
            browser.shot("03-events-alice-denied").await;
        }
    }
    browser.goto(&serve.url("/events")).await;
    browser.shot("04-events").await;

    // The refund's page: Verify with the log's key says "verified".
    let refund = cli_events(&env, "demo/log", &["--action", "order.refund"])[0].0;
    browser.goto(&serve.url(&format!("/events/{refund}"))).await;
    let load_ms = browser.load_ms().await;
    let (state, text, verify_ms) = browser.verify(&key_in(&env, "demo/log.pub")).await;
    assert_eq!(state, "verified", "{text}");
    assert!(
        text.starts_with(&format!(
            "verified: record {refund} is in demo.veritrail.test/orders"
        )),
        "{text}"
    );
    browser.shot("05-event-verified").await;
    // Everything the page loaded and fetched came from the view itself.
    let loaded = browser
        .client
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name);",
            vec![],
        )
        .await
        .unwrap();
    let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
    assert!(
        loaded.iter().any(|u| u.ends_with("/assets/view.js")),
        "{loaded:?}"
    );
    assert!(
        loaded.iter().any(|u| u.contains("/api/v1/proof/")),
        "{loaded:?}"
    );
    assert!(
        loaded.iter().all(|u| u.starts_with(&serve.url("/"))),
        "{loaded:?}"
    );
    eprintln!(
        "demo log ({} records): event page load {load_ms:.1} ms, in-browser verification {verify_ms:.1} ms",
        cli_events(&env, "demo/log", &[]).len()
    );
    // The pinned key stays in the browser: another event verifies without pinning again, and
    // with the keyboard alone: the first Tab reaches the skip link, more Tabs the Verify button.
    browser.goto(&serve.url("/events/3")).await;
    browser.press(Key::Tab).await;
    assert_eq!(browser.focused().await, "skip");
    let mut tabs = 1;
    while browser.focused().await != "verify-button" {
        assert!(tabs < 40, "Verify is not reachable with Tab");
        browser.press(Key::Tab).await;
        tabs += 1;
    }
    browser.press(Key::Enter).await;
    assert_eq!(
        browser.wait_state(&["verified", "failed"]).await,
        "verified"
    );
    browser.goto(&serve.url("/checkpoints")).await;
    browser.shot("06-checkpoints").await;
    browser.client.clone().close().await.unwrap();

    let err = serve.stop();
    assert!(err.contains("uses recorded in the access log"), "{err}");
    let access = cli_events(&env, "access", &[]);
    let records: Vec<Value> = access
        .iter()
        .map(|(_, l)| serde_json::from_str(l).unwrap())
        .collect();
    let by_auditor = |action: &str| {
        records
            .iter()
            .filter(|r| r["action"] == action && r["actor"]["sub"] == "auditor")
            .count()
    };
    assert!(
        records
            .iter()
            .any(|r| r["status"] == 401 && r["request"]["path"] == "/events")
    );
    assert!(records.iter().any(|r| r["action"] == "trail.search"
        && r["request"]["query"]["sub"] == "alice"
        && r["request"]["query"]["outcome"] == "denied"
        && r["actor"]["sub"] == "auditor"));
    assert!(by_auditor("trail.event.view") >= 2);
    assert!(records.iter().any(
        |r| r["action"] == "trail.proof.download" && r["target"] == format!("record:{refund}")
    ));
    assert!(by_auditor("trail.overview") >= 1 && by_auditor("trail.checkpoints") >= 1);
}

/// What the lying server in front of `veritrail serve` changes.
#[derive(Clone)]
enum Lie {
    /// One byte of record `index`, on its page and in its proof alike.
    ChangedRecord(u64),
    /// Every proof's checkpoint replaced by this one (another tree, signed by the same key).
    OtherCheckpoint(String),
}

/// A server that answers with what `veritrail serve` at `honest` answers, changed by `lie`:
/// what a compromised server could do. The page it serves must catch it.
async fn lying_server(honest: std::net::SocketAddr, lie: Lie) -> std::net::SocketAddr {
    use axum::extract::Request;
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move |req: Request| {
        let lie = lie.clone();
        async move {
            let path = req.uri().path_and_query().unwrap().as_str().to_owned();
            let (status, headers, body) = super::request(honest, "GET", &path, &[], "").await;
            let mut body = body.to_vec();
            match &lie {
                Lie::ChangedRecord(index) if path == format!("/events/{index}") => {
                    let page = String::from_utf8(body).unwrap();
                    let start = page.find("data-record=\"").unwrap() + 13;
                    let end = start + page[start..].find('"').unwrap();
                    let record = BASE64.decode(&page[start..end]).unwrap();
                    let changed = BASE64.encode(change_alice(&record));
                    body = format!("{}{changed}{}", &page[..start], &page[end..])
                        .replace("&quot;alice&quot;", "&quot;Alice&quot;")
                        .into_bytes();
                }
                Lie::ChangedRecord(index) if path == format!("/api/v1/proof/{index}") => {
                    let mut file =
                        InclusionProofFile::parse(std::str::from_utf8(&body).unwrap()).unwrap();
                    file.record = change_alice(&file.record);
                    body = file.to_text().into_bytes();
                }
                Lie::OtherCheckpoint(checkpoint) if path.starts_with("/api/v1/proof/") => {
                    let mut file =
                        InclusionProofFile::parse(std::str::from_utf8(&body).unwrap()).unwrap();
                    file.checkpoint = checkpoint.clone();
                    body = file.to_text().into_bytes();
                }
                _ => {}
            }
            let mut response =
                (axum::http::StatusCode::from_u16(status).unwrap(), body).into_response();
            if let Some(kind) = headers.get("content-type") {
                response.headers_mut().insert("content-type", kind.clone());
            }
            response
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The record with its first `"alice"` made `"Alice"`: one byte.
fn change_alice(record: &[u8]) -> Vec<u8> {
    let mut changed = record.to_vec();
    let at = changed
        .windows(7)
        .position(|w| w == b"\"alice\"")
        .expect("the record names alice");
    changed[at + 1] = b'A';
    changed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_catches_a_server_that_lies() {
    let browser = Browser::start("lying-server").await;

    // 1. A changed record: one byte, on the page and in the proof alike.
    let env = Env::new();
    demo_log(&env);
    let refund = cli_events(&env, "demo/log", &["--action", "order.refund"])[0].0;
    let serve = Serve::start(&env, "demo/log", &["--no-auth"]);
    let liar = lying_server(serve.addr, Lie::ChangedRecord(refund)).await;
    browser
        .goto(&format!("http://{liar}/events/{refund}"))
        .await;
    assert!(
        browser.text("#record-pretty").await.contains("\"Alice\""),
        "the changed record is shown"
    );
    let (state, text, _) = browser.verify(&key_in(&env, "demo/log.pub")).await;
    assert_eq!(state, "failed", "{text}");
    assert!(
        text.starts_with(&format!(
            "failed: inclusion: record {refund} and its proof do not lead to the root signed"
        )),
        "{text}"
    );
    browser.shot("01-changed-record").await;
    // The same page from the honest server verifies (another origin: the key is pinned there
    // anew).
    browser.goto(&serve.url(&format!("/events/{refund}"))).await;
    let (state, text, _) = browser.verify(&key_in(&env, "demo/log.pub")).await;
    assert_eq!(state, "verified", "{text}");
    drop(serve);

    // 2. A proof under another checkpoint: the same key signed another tree of that size.
    let env = Env::new();
    let key = env.keygen();
    env.append(&events(0..8));
    env.ok(
        &["append", "other", "--key", "key"],
        join(&events(100..108)).as_bytes(),
    );
    let serve = Serve::start(&env, "log", &["--no-auth"]);
    let liar = lying_server(
        serve.addr,
        Lie::OtherCheckpoint(env.read("other/checkpoint")),
    )
    .await;
    browser.goto(&format!("http://{liar}/events/2")).await;
    let (state, text, _) = browser.verify(&key).await;
    assert_eq!(state, "failed", "{text}");
    assert!(
        text.starts_with(
            "failed: inclusion: record 2 and its proof do not lead to the root signed in the \
             checkpoint of size 8"
        ),
        "{text}"
    );
    browser.shot("02-other-checkpoint").await;
    drop(serve);

    // 3. The intact log, but the key pinned is another one: the signature is refused.
    let env = Env::new();
    demo_log(&env);
    let wrong = stdout(&env.ok(
        &["keygen", "demo.veritrail.test/orders", "--out", "wrong.key"],
        b"",
    ));
    let serve = Serve::start(&env, "demo/log", &["--no-auth"]);
    browser.goto(&serve.url("/events/3")).await;
    let (state, text, _) = browser.verify(wrong.trim()).await;
    assert_eq!(state, "failed", "{text}");
    assert!(
        text.starts_with(
            "failed: signature: the checkpoint is not signed by the pinned key \
             demo.veritrail.test/orders+"
        ),
        "{text}"
    );
    browser.shot("03-wrong-key").await;
    // And a key that is not a verifier key at all is refused when pinned.
    browser.fill("#pinned-key", "not a key").await;
    browser.click("#pin").await;
    assert!(
        browser
            .text("#verify-result")
            .await
            .starts_with("failed: key:")
    );
    browser.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_mode_adds_new_events_at_the_top() {
    let env = Env::new();
    env.keygen();
    env.append(&events(0..3));
    let serve = Serve::start(&env, "log", &["--no-auth"]);
    let browser = Browser::start("live").await;
    browser.goto(&serve.url("/events")).await;
    assert_eq!(browser.row_indexes().await, [2, 1, 0]);
    browser.click("#live").await;
    // Appended once the page says its stream is open.
    browser
        .client
        .wait()
        .at_most(std::time::Duration::from_secs(15))
        .for_element(Locator::Css("#live[data-state=open]"))
        .await
        .unwrap();
    env.append(&events(3..5));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while browser.row_indexes().await != [4, 3, 2, 1, 0] {
        assert!(
            std::time::Instant::now() < deadline,
            "rows: {:?}",
            browser.row_indexes().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let fresh = browser
        .client
        .find_all(Locator::Css("#events tbody tr.fresh"))
        .await
        .unwrap();
    assert_eq!(fresh.len(), 2, "the new rows are marked");
    browser.shot("01-live").await;
    browser.client.clone().close().await.unwrap();
}
