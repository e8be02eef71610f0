//! Upgrades through the proxy (a tokio-tungstenite client to a tokio-tungstenite echo server),
//! the ways a client can try to slip an upgrade past the route policy, response body digests,
//! and HTTP/2 connections broken by the client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::*;

/// A WebSocket echo server: every text or binary message is sent back. Counts the TCP
/// connections it accepted.
async fn start_echo() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// The bytes a WebSocket frame with `payload` bytes takes on the wire (RFC 6455 §5.2); a
/// client's frames are masked (4 bytes more).
fn frame_len(payload: usize, masked: bool) -> u64 {
    let header = match payload {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    (header + if masked { 4 } else { 0 } + payload) as u64
}

/// Opens a WebSocket through the proxy to `path` (request id `id`, with `auth` as its
/// `Authorization`): the handshake's result.
async fn ws_open(
    proxy: SocketAddr,
    path: &str,
    auth: Option<String>,
    id: &str,
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, tungstenite::Error> {
    let mut request = format!("ws://{proxy}{path}").into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("x-request-id", id.parse().unwrap());
    if let Some(auth) = auth {
        headers.insert("authorization", auth.parse().unwrap());
    }
    let stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .expect("the handshake ended in time")
    .map(|(ws, _)| ws)
}

/// The HTTP status a refused handshake got.
fn refused_status(result: Result<impl std::fmt::Debug, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

const WS_ROUTES: &str = r#"
[[route]]
prefix = "/ws/"
scopes = ["live"]
upgrades = ["websocket"]

[[route]]
prefix = "/plain/"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_echo_through_the_proxy_and_the_close_is_recorded_with_the_bytes() {
    let (echo, accepted) = start_echo().await;
    let mut proxy = Proxy::start(Env::new(), &format!("http://{echo}"), WS_ROUTES, &[], None);
    let bearer = |scope: &str| format!("Bearer {}", token(scope, 300));

    // No token: 401 before any upgrade, the upstream never contacted.
    let refused = ws_open(proxy.addr, "/ws/echo", None, "no-token").await;
    assert_eq!(refused_status(refused), 401);
    // A token without the route's scope: 403.
    let refused = ws_open(
        proxy.addr,
        "/ws/echo",
        Some(bearer("orders:read")),
        "no-scope",
    )
    .await;
    assert_eq!(refused_status(refused), 403);
    // A route that allows no upgrade: refused (403 upgrade_not_allowed), good token or not.
    let refused = ws_open(
        proxy.addr,
        "/plain/echo",
        Some(bearer("live")),
        "not-allowed",
    )
    .await;
    assert_eq!(refused_status(refused), 403);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "nothing reached the upstream"
    );

    // Allowed: messages of each frame-length class echo back.
    let mut ws = ws_open(proxy.addr, "/ws/echo", Some(bearer("live")), "echo")
        .await
        .expect("the upgrade went through");
    let messages = [
        Message::text("hello"),
        Message::binary(vec![7u8; 200]),
        Message::binary((0..70_000u32).map(|i| i as u8).collect::<Vec<u8>>()),
    ];
    let (mut from_client, mut from_upstream) = (0, 0);
    for message in &messages {
        ws.send(message.clone()).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("echoed in time")
            .unwrap()
            .unwrap();
        assert_eq!(&echoed, message);
        from_client += frame_len(message.len(), true);
        from_upstream += frame_len(message.len(), false);
    }
    // The closing handshake: an empty close frame each way.
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    // The server closed its side; the client closes its own, as clients do.
    drop(ws);
    from_client += frame_len(0, true);
    from_upstream += frame_len(0, false);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // One left open when the proxy stops: closed by the proxy, its close recorded.
    let mut open = ws_open(proxy.addr, "/ws/echo", Some(bearer("live")), "left-open")
        .await
        .unwrap();
    open.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        open.next().await.unwrap().unwrap(),
        Message::text("still here")
    );

    // The first close is recorded once both sides have closed; then stop cleanly.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, err) = proxy.stop();
    assert_eq!(code, Some(0), "{err}");
    drop(open);
    let events = proxy.events();
    let e = &events["no-token"];
    assert_eq!(
        (e["status"].as_u64(), e["authn"]["reason"].as_str()),
        (Some(401), Some("token_missing")),
        "{e}"
    );
    assert_eq!(events["no-scope"]["status"], 403);
    assert_eq!(events["no-scope"]["authz"]["reason"], "missing_scope");
    let e = &events["not-allowed"];
    assert_eq!(e["status"], 403, "{e}");
    assert_eq!(e["outcome"], "denied", "{e}");
    assert_eq!(e["extra"]["upgrade"], "websocket", "{e}");
    assert_eq!(e["extra"]["upgrade_refused"], "upgrade_not_allowed", "{e}");
    assert_eq!(e["actor"]["sub"], "alice", "the caller is known: {e}");

    let upgraded = &events["echo"];
    assert_eq!(upgraded["status"], 101, "{upgraded}");
    assert_eq!(upgraded["outcome"], "success", "{upgraded}");
    assert_eq!(upgraded["extra"]["upgrade"], "websocket", "{upgraded}");
    let follow_ups = proxy.follow_ups();
    assert_eq!(follow_ups.len(), 2, "{follow_ups:?}");
    let cut = &follow_ups["left-open"];
    assert_eq!(cut["extra"]["closed"], "shutdown", "{cut}");
    assert_eq!(cut["outcome"], "cancelled", "{cut}");
    assert_eq!(
        cut["extra"]["bytes_from_client"],
        frame_len("still here".len(), true),
        "{cut}"
    );
    let closed = &follow_ups["echo"];
    assert_eq!(closed["extra"]["follow_up"], "upgrade_closed", "{closed}");
    assert_eq!(closed["extra"]["follows"], upgraded["id"], "{closed}");
    assert_eq!(closed["extra"]["closed"], "eof", "{closed}");
    assert_eq!(closed["outcome"], "success", "{closed}");
    assert_eq!(closed["actor"]["sub"], "alice", "{closed}");
    assert_eq!(closed["request"]["path"], "/ws/echo", "{closed}");
    assert_eq!(
        closed["extra"]["bytes_from_client"], from_client,
        "every frame the client sent: {closed}"
    );
    assert_eq!(
        closed["extra"]["bytes_from_upstream"], from_upstream,
        "every frame the upstream sent: {closed}"
    );
    assert!(
        closed["extra"]["duration_ms"].as_u64().is_some(),
        "{closed}"
    );
}

/// Sends `request` on a fresh connection and reads the answer until the proxy closes it:
/// the status and the whole text.
async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let (status, head, body) = common::raw_exchange(None, addr, request.as_bytes()).await;
    (status, format!("{head}\r\n\r\n{body}"))
}

/// An upstream that answers with the upgrade-related headers it got; `/evil` answers `101`
/// to anything.
async fn start_header_echo() -> SocketAddr {
    use axum::http::{HeaderMap, StatusCode};
    async fn seen(headers: HeaderMap) -> String {
        let get = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("?").to_owned())
        };
        json!({
            "upgrade": get("upgrade"),
            "connection": get("connection"),
            "http2-settings": get("http2-settings"),
        })
        .to_string()
    }
    let app = Router::new()
        .route(
            "/ws/evil",
            axum::routing::get(|| async {
                (
                    StatusCode::SWITCHING_PROTOCOLS,
                    [("upgrade", "h2c"), ("connection", "upgrade")],
                )
            }),
        )
        .route(
            "/plain/evil",
            axum::routing::get(|| async {
                (
                    StatusCode::SWITCHING_PROTOCOLS,
                    [("upgrade", "websocket"), ("connection", "upgrade")],
                )
            }),
        )
        .fallback(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_smuggling_is_refused_or_ignored_and_recorded() {
    let upstream = start_header_echo().await;
    let mut proxy = Proxy::start(
        Env::new(),
        &format!("http://{upstream}"),
        WS_ROUTES,
        &[],
        None,
    );
    let auth = format!("authorization: Bearer {}\r\n", token("live", 300));
    let request = |path: &str, id: &str, headers: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nhost: shop.example\r\n{auth}x-request-id: {id}\r\n\
             {headers}\r\n"
        )
    };
    // h2c over HTTP/1.1 (what `curl --http2` sends): never switched; answered as HTTP/1.1,
    // the upstream seeing no upgrade, on a route that allows WebSockets and one that does not.
    for (path, id) in [("/ws/x", "h2c-ws"), ("/plain/x", "h2c-plain")] {
        let (status, text) = raw(
            proxy.addr,
            &request(
                path,
                id,
                "connection: Upgrade, HTTP2-Settings, close\r\nupgrade: h2c\r\n\
                 http2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n",
            ),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let seen: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{text}"));
        assert_eq!(
            seen,
            json!({"connection": null, "http2-settings": null, "upgrade": null}),
            "{text}"
        );
    }
    // Upgrade without `upgrade` among the Connection options: a plain request.
    let (status, text) = raw(
        proxy.addr,
        &request(
            "/ws/x",
            "unlisted",
            "upgrade: websocket\r\nconnection: close\r\n",
        ),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#""upgrade":null"#), "{text}");
    // Two protocols (the upstream could pick the one not allowed): 400.
    let (status, text) = raw(
        proxy.addr,
        &request(
            "/ws/x",
            "two",
            "connection: upgrade, close\r\nupgrade: websocket, h2c\r\n",
        ),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("upgrade_ambiguous"), "{text}");
    // Odd spellings of Connection are still an upgrade, refused where not allowed.
    for (i, connection) in [
        "connection: keep-alive, UPGRADE\r\nconnection: close\r\n",
        "connection: close\r\nConnection:   uPgRaDe  \r\n",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, text) = raw(
            proxy.addr,
            &request(
                "/plain/x",
                &format!("spelled-{i}"),
                &format!("{connection}upgrade: WebSocket\r\n"),
            ),
        )
        .await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("upgrade_not_allowed"), "{text}");
    }
    // An upstream switching to another protocol than asked, or when nothing was asked: 502.
    let ws_headers = "connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n\
                      sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nconnection: close\r\n";
    let (status, text) = raw(proxy.addr, &request("/ws/evil", "evil-ws", ws_headers)).await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("upstream_bad_upgrade"), "{text}");
    let (status, text) = raw(
        proxy.addr,
        &request("/plain/evil", "evil-plain", "connection: close\r\n"),
    )
    .await;
    assert_eq!(status, 502, "{text}");

    // HTTP/2 (prior knowledge): extended CONNECT is not offered, so no upgrade on HTTP/2.
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    assert!(
        !client.is_extended_connect_protocol_enabled(),
        "SETTINGS_ENABLE_CONNECT_PROTOCOL must not be sent"
    );
    let mut connect = http::Request::builder()
        .method("CONNECT")
        .uri(format!("http://{}/ws/x", proxy.addr))
        .header("authorization", format!("Bearer {}", token("live", 300)))
        .body(())
        .unwrap();
    connect
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    // The client library refuses to send it; were it sent, the server would reset it.
    if let Ok((response, _)) = client.send_request(connect, true) {
        let response = tokio::time::timeout(Duration::from_secs(5), response)
            .await
            .unwrap();
        assert!(
            response.as_ref().is_err() || response.as_ref().unwrap().status() != 200,
            "{response:?}"
        );
    }

    let (code, err) = proxy.stop();
    assert_eq!(code, Some(0), "{err}");
    let events = proxy.events();
    for id in ["h2c-ws", "h2c-plain"] {
        let e = &events[id];
        assert_eq!(e["status"], 200, "{e}");
        assert_eq!(e["extra"]["upgrade_ignored"], "h2c", "{e}");
        assert!(e["extra"].get("upgrade").is_none(), "{e}");
    }
    assert!(events["unlisted"]["extra"].get("upgrade").is_none());
    let e = &events["two"];
    assert_eq!(
        (e["status"].as_u64(), e["extra"]["upgrade_refused"].as_str()),
        (Some(400), Some("upgrade_ambiguous")),
        "{e}"
    );
    for id in ["spelled-0", "spelled-1"] {
        let e = &events[id];
        assert_eq!(e["status"], 403, "{e}");
        assert_eq!(e["extra"]["upgrade"], "WebSocket", "{e}");
        assert_eq!(e["extra"]["upgrade_refused"], "upgrade_not_allowed", "{e}");
    }
    for id in ["evil-ws", "evil-plain"] {
        let e = &events[id];
        assert_eq!(e["status"], 502, "{e}");
        assert_eq!(e["extra"]["upstream_error"], "upstream_bad_upgrade", "{e}");
    }
    assert!(proxy.follow_ups().is_empty(), "no tunnel was opened");
}

/// An upstream answering `GET /big/{n}` with `n` bytes of a fixed pattern, streamed in
/// 64 KiB chunks (never held whole).
async fn start_big_upstream() -> SocketAddr {
    let app = Router::new().route(
        "/big/{n}",
        axum::routing::get(
            |axum::extract::Path(n): axum::extract::Path<usize>| async move {
                let chunks = (0..n.div_ceil(65536)).map(move |i| {
                    let len = (n - i * 65536).min(65536);
                    Ok::<_, std::io::Error>(bytes::Bytes::from(pattern(i * 65536, len)))
                });
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `len` bytes of the big upstream's pattern from `offset` on.
fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len)
        .map(|i| ((i as u32).wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_response_digest_matches_sha256sum_with_flat_memory() {
    use http_body_util::BodyExt;
    let upstream = start_big_upstream().await;
    let config = r#"
[[route]]
prefix = "/big/"
response_body_digest = true
"#;
    let mut proxy = Proxy::start(Env::new(), &format!("http://{upstream}"), config, &[], None);
    let auth = format!("Bearer {}", token("orders:read", 300));
    let get = |path: String, id: &'static str| {
        let auth = auth.clone();
        let addr = proxy.addr;
        async move {
            let headers = [("authorization", auth.as_str()), ("x-request-id", id)];
            common::send_head(
                addr,
                "GET",
                &path,
                &headers,
                http_body_util::Empty::<bytes::Bytes>::new(),
            )
            .await
        }
    };
    // Warm up, then measure.
    let warm = get("/big/262144".into(), "warm").await;
    assert_eq!(
        warm.into_body().collect().await.unwrap().to_bytes().len(),
        262_144
    );
    let before = rss(proxy.child.id());

    const SIZE: usize = 64 * 1024 * 1024;
    let response = get(format!("/big/{SIZE}"), "download").await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut file = std::fs::File::create(proxy.env.path("download.bin")).unwrap();
    let mut received = 0;
    let mut peak = before;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len();
            std::io::Write::write_all(&mut file, &data).unwrap();
            if received % (8 * 1024 * 1024) < data.len() {
                peak = peak.max(rss(proxy.child.id()));
            }
        }
    }
    drop(file);
    assert_eq!(received, SIZE);
    let growth = peak.max(rss(proxy.child.id())).saturating_sub(before);
    eprintln!("RSS before {before}, peak {peak}: growth {growth} bytes for 64 MiB streamed");
    assert!(
        growth < 8 * 1024 * 1024,
        "the proxy's memory grew by {growth} bytes for a 64 MiB response: buffered?"
    );

    // A client that goes away mid-body: the digest is recorded as incomplete.
    let response = get(format!("/big/{SIZE}"), "abandoned").await;
    let mut body = response.into_body();
    let _ = body.frame().await;
    drop(body);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (code, err) = proxy.stop();
    assert_eq!(code, Some(0), "{err}");
    let expected = sha256sum(&proxy.env.path("download.bin"));
    let events = proxy.events();
    let follow_ups = proxy.follow_ups();
    let first = &events["download"];
    assert_eq!(first["status"], 200, "{first}");
    let digest = &follow_ups["download"];
    assert_eq!(digest["extra"]["follow_up"], "response_body", "{digest}");
    assert_eq!(digest["extra"]["follows"], first["id"], "{digest}");
    assert_eq!(
        digest["extra"]["response_body_sha256"], expected,
        "{digest}"
    );
    assert_eq!(digest["extra"]["response_body_bytes"], SIZE, "{digest}");
    assert_eq!(digest["outcome"], "success", "{digest}");
    let abandoned = &follow_ups["abandoned"];
    assert_eq!(
        abandoned["extra"]["response_body_sha256"], "incomplete",
        "{abandoned}"
    );
    assert_eq!(abandoned["outcome"], "cancelled", "{abandoned}");
    assert!(abandoned["extra"]["response_body_bytes"].as_u64().unwrap() < SIZE as u64);
}

/// An HTTP/2 frame: length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.extend([kind, flags]);
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

/// The frame types the proxy sent on a raw HTTP/2 connection, until it closed it or went
/// quiet.
async fn h2_exchange(addr: SocketAddr, frames: &[Vec<u8>]) -> Vec<(u8, u32)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[])); // SETTINGS
    for frame in frames {
        out.extend(frame);
    }
    stream.write_all(&out).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(1500), stream.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let mut seen = Vec::new();
    let mut at = 0;
    while at + 9 <= answer.len() {
        let len = u32::from_be_bytes([0, answer[at], answer[at + 1], answer[at + 2]]) as usize;
        let stream = u32::from_be_bytes(answer[at + 5..at + 9].try_into().unwrap()) & 0x7fff_ffff;
        seen.push((answer[at + 3], stream));
        at += 9 + len;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_broken_by_the_client_are_recorded() {
    let upstream = start_upstream().await;
    let mut proxy = Proxy::start(Env::new(), &format!("http://{upstream}"), "", &[], None);
    // A header block that cannot be decoded (HPACK index 0): a connection error, GOAWAY.
    let seen = h2_exchange(proxy.addr, &[h2_frame(0x1, 0x5, 1, &[0x80])]).await;
    assert!(seen.contains(&(0x7, 0)), "GOAWAY expected: {seen:?}");
    // A malformed request on a sound connection (no :method, :scheme): a stream error, the
    // stream reset and the connection kept — not seen by the proxy's service, not recorded.
    let path = [&[0x00, 0x05][..], b":path", &[0x02], b"/x"].concat();
    let seen = h2_exchange(proxy.addr, &[h2_frame(0x1, 0x5, 1, &path)]).await;
    assert!(
        seen.contains(&(0x3, 1)),
        "RST_STREAM on stream 1 expected: {seen:?}"
    );
    assert!(!seen.iter().any(|(kind, _)| *kind == 0x7), "{seen:?}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, err) = proxy.stop();
    assert_eq!(code, Some(0), "{err}");
    let events: Vec<Value> = proxy.events_where(|_| true).into_values().collect();
    assert_eq!(events.len(), 1, "only the broken connection: {events:?}");
    let e = &events[0];
    assert_eq!(e["authz"]["reason"], "malformed_http2", "{e}");
    assert_eq!(e["status"], 400, "{e}");
    assert_eq!(e["outcome"], "denied", "{e}");
    assert_eq!(e["request"]["client_address"], "127.0.0.1", "{e}");
    assert_eq!(e["request"]["method"], "-", "{e}");
}
