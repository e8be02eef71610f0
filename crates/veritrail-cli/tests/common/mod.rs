//! Runs the real `veritrail` binary in a temporary directory.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A temporary working directory with a key `key` (name `test.example/log`) made on demand.
pub(crate) struct Env {
    dir: tempfile::TempDir,
}

/// A test-only key file from veritrail-core's fixtures.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../veritrail-core/tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture's public RSA key (`rsa.pub.pem`) as a JWKS document (kid `rsa1`).
pub(crate) fn jwks() -> String {
    veritrail_core::auth::KeySet::from_pem(
        &fixture("rsa.pub.pem"),
        jsonwebtoken::Algorithm::RS256,
        Some("rsa1".into()),
    )
    .unwrap()
    .to_public_jwks()
    .to_string()
}

/// `router` serving, as an identity provider would, [`jwks`] at `/jwks.json` and an OpenID
/// discovery document (issuer: the server's own `http://host`) pointing at it.
pub(crate) fn identity_provider<S>(router: axum::Router<S>) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    use axum::routing::get;
    router.route("/jwks.json", get(|| async { jwks() })).route(
        "/.well-known/openid-configuration",
        get(|headers: axum::http::HeaderMap| async move {
            let base = format!("http://{}", headers["host"].to_str().unwrap());
            serde_json::json!({"issuer": base, "jwks_uri": format!("{base}/jwks.json")}).to_string()
        }),
    )
}

/// The name `Env::keygen` gives the key.
pub(crate) const KEY_NAME: &str = "test.example/log";

impl Env {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// `rel` inside the working directory.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `veritrail args...` in the working directory with `stdin`.
    pub(crate) fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn veritrail");
        let mut input = child.stdin.take().expect("stdin");
        // The command may exit before reading all of stdin (an error): a broken pipe is fine.
        if let Err(e) = input.write_all(stdin) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
        drop(input);
        child.wait_with_output().expect("wait for veritrail")
    }

    /// Runs and asserts exit code `code`, showing the output if not.
    pub(crate) fn expect(&self, code: i32, args: &[&str], stdin: &[u8]) -> Output {
        let out = self.run(args, stdin);
        assert_eq!(
            out.status.code(),
            Some(code),
            "veritrail {args:?} exited {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        out
    }

    /// Runs and asserts success.
    pub(crate) fn ok(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.expect(0, args, stdin)
    }

    /// `keygen KEY_NAME --out <file>`; returns the printed verifier key.
    pub(crate) fn keygen_as(&self, name: &str, file: &str) -> String {
        let out = self.ok(&["keygen", name, "--out", file], b"");
        stdout(&out).trim().to_owned()
    }

    /// `keygen KEY_NAME --out key`; returns the printed verifier key.
    pub(crate) fn keygen(&self) -> String {
        self.keygen_as(KEY_NAME, "key")
    }

    /// `append log --key key` with `lines` joined by newlines; asserts success.
    pub(crate) fn append(&self, lines: &[String]) -> Output {
        self.ok(&["append", "log", "--key", "key"], join(lines).as_bytes())
    }

    /// The output of `checkpoint log`.
    pub(crate) fn checkpoint(&self) -> String {
        stdout(&self.ok(&["checkpoint", "log"], b""))
    }

    /// Writes `text` to `rel`.
    pub(crate) fn write(&self, rel: &str, text: impl AsRef<[u8]>) {
        std::fs::write(self.path(rel), text).expect("write file");
    }

    /// Reads `rel` as text.
    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).expect("read file")
    }
}

/// Event `i` as one compact JSON object.
pub(crate) fn event(i: u64) -> String {
    format!(r#"{{"v":1,"kind":"http","n":{i},"route":"/orders/{{id}}","outcome":"success"}}"#)
}

/// Events `range`.
pub(crate) fn events(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(event).collect()
}

/// Lines joined with `\n`, with a final newline.
pub(crate) fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every regular file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Copies the directory tree `from` to `to`.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

/// Starts a server (`veritrail proxy`, `veritrail serve`) from `command`, stdin closed and
/// stdout and stderr piped, and waits for the address it listens on (see [`listening_on`]).
pub(crate) fn start_server(command: &mut Command, name: &str) -> (Child, std::net::SocketAddr) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let addr = listening_on(&mut child, name);
    (child, addr)
}

/// The address a server child (`veritrail proxy`, `veritrail serve`) prints on its first stdout
/// line after `"veritrail <command> listening on http://"`; panics with its stderr when the line
/// is something else (the server did not start).
pub(crate) fn listening_on(child: &mut Child, command: &str) -> std::net::SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .expect("read the first line");
    let prefix = format!("veritrail {command} listening on http://");
    match line.trim().strip_prefix(&prefix) {
        Some(addr) => addr.parse().expect("an address"),
        None => {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{command} did not start: first line {line:?}; stderr: {err}");
        }
    }
}

/// Sends one request over a fresh connection to `addr` (`Host: shop.example`) and returns the
/// response head as soon as it arrives (within 10 seconds), its body still streaming.
pub(crate) async fn send_head<B>(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: B,
) -> http::Response<hyper::body::Incoming>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "shop.example");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    // Bounded: a proxy that buffered a streamed body would never answer here.
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sender.send_request(req.body(body).unwrap()),
    )
    .await
    .expect("the response head arrived in time")
    .unwrap()
}

/// A `veritrail witness` child, killed (SIGKILL) on drop.
pub(crate) struct WitnessProc {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `veritrail witness` named `name` (key `name.key`, made if missing; state
/// `name-state`) witnessing the log whose verifier key is in `log_key_file` (origin: the key's
/// name), on `listen` (`127.0.0.1:0` for any free port).
pub(crate) fn start_witness(
    env: &Env,
    name: &str,
    log_key_file: &str,
    listen: &str,
) -> WitnessProc {
    let key = format!("{name}.key");
    if !env.path(&key).exists() {
        env.ok(&["keygen", name, "--witness", "--out", &key], b"");
    }
    let log_key = env.read(log_key_file);
    let origin = log_key.trim().split('+').next().unwrap().to_owned();
    env.write(
        &format!("{name}-logs.toml"),
        format!(
            "[[log]]\norigin = \"{origin}\"\nkey = \"{}\"\n",
            log_key.trim()
        ),
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_veritrail"));
    command.current_dir(env.path("")).args([
        "witness",
        "--listen",
        listen,
        "--key",
        &key,
        "--logs",
        &format!("{name}-logs.toml"),
        "--state",
        &format!("{name}-state"),
    ]);
    let (child, addr) = start_server(&mut command, "witness");
    WitnessProc {
        child,
        url: format!("http://{addr}"),
    }
}

/// A realistic `http` audit event for index `i`, as a writer would store it: one a millisecond
/// from 2026-11-01 00:00 UTC, a thousand subjects (`user-N`), one in ten refused (403).
pub(crate) fn http_event(i: u64) -> String {
    let start = time::macros::datetime!(2026-11-01 00:00:00 UTC);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    let t = (start + time::Duration::milliseconds(i as i64))
        .format(&format)
        .unwrap();
    let (status, outcome, authz) = if i % 10 == 7 {
        (
            403,
            "denied",
            r#""authz":{"decision":"denied","reason":"insufficient_scope"}"#,
        )
    } else {
        (200, "success", r#""authz":{"decision":"allowed"}"#)
    };
    format!(
        r#"{{"v":1,"id":"01900000-0000-7000-8000-{i:012x}","index":{i},"time":"{t}","kind":"http","phase":"complete","actor":{{"sub":"user-{}","iss":"https://idp.example.com","aud":["orders-api"],"scopes":["orders:read"]}},"request":{{"method":"GET","route":"/orders/{{id}}","path":"/orders/{}","client_address":"10.1.2.3","request_id":"req-{i}"}},"authn":{{"decision":"allowed"}},{authz},"status":{status},"latency_us":{},"outcome":"{outcome}"}}"#,
        i % 1000,
        i % 100_000,
        200 + i % 300,
    )
}

/// Sends `request` as raw bytes and reads the answer to its end: the status, the head and the
/// body.
pub(crate) async fn raw_exchange(
    stream: impl Into<Option<tokio::net::TcpStream>>,
    addr: std::net::SocketAddr,
    request: &[u8],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = match stream.into() {
        Some(s) => s,
        None => tokio::net::TcpStream::connect(addr).await.unwrap(),
    };
    // The proxy may answer and close before it has read everything (a refused head).
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the proxy answered in time");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (status, head.to_owned(), body.to_owned())
}
