//! What the examples share: the development identity provider's directory they are given,
//! files read with their path in any error, and the self-check mode that `tests/examples.rs`
//! uses (`VERITRAIL_EXAMPLE_CHECK=1`: serve on a free loopback port, send a few requests,
//! check their answers, then stop cleanly instead of serving until Ctrl-C).
#![allow(dead_code, reason = "each example uses part of it")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// An example's error type.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where a development identity provider keeps its files (`veritrail dev-idp --dir DIR`).
pub(crate) struct DevIdp {
    pub(crate) dir: PathBuf,
}

impl DevIdp {
    /// The directory named by the first argument.
    pub(crate) fn from_args(example: &str) -> Result<Self, Error> {
        let Some(dir) = std::env::args_os().nth(1) else {
            return Err(format!(
                "usage: cargo run --example {example} -- DIR\n\
                 where DIR holds a development identity provider:\n  \
                 cargo run -p veritrail-cli -- dev-idp --dir DIR --token alice=orders:read,orders:refund"
            )
            .into());
        };
        Ok(DevIdp { dir: dir.into() })
    }

    /// DIR/jwks.json: the public keys.
    pub(crate) fn jwks(&self) -> Result<PathBuf, Error> {
        let path = self.dir.join("jwks.json");
        read(&path)?;
        Ok(path)
    }

    /// The issuer name (DIR/issuer.txt).
    pub(crate) fn issuer(&self) -> Result<String, Error> {
        Ok(read(&self.dir.join("issuer.txt"))?.trim().to_owned())
    }

    /// A token minted by `veritrail dev-idp --token SUB=...` (DIR/tokens/SUB.jwt).
    pub(crate) fn token(&self, sub: &str) -> Result<String, Error> {
        Ok(read(&self.dir.join("tokens").join(format!("{sub}.jwt")))?
            .trim()
            .to_owned())
    }

    /// Where this example keeps its log and signing key: DIR/EXAMPLE/ (so that runs reuse
    /// one log and one key, and nothing lands in the working directory).
    pub(crate) fn workdir(&self, example: &str) -> PathBuf {
        self.dir.join(example)
    }
}

/// The file's text; a missing or unreadable file is reported with its path.
pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (make it with `veritrail dev-idp --dir DIR --token alice=orders:read,orders:refund`)"
        } else {
            ""
        };
        format!("{}: {e}{hint}", path.display()).into()
    })
}

/// Whether to run the self-check instead of serving until Ctrl-C.
pub(crate) fn self_check() -> bool {
    std::env::var_os("VERITRAIL_EXAMPLE_CHECK").is_some_and(|v| v == "1")
}

/// The address to listen on: a free loopback port for the self-check, else 127.0.0.1:3000.
pub(crate) fn listen_addr() -> SocketAddr {
    if self_check() {
        ([127, 0, 0, 1], 0).into()
    } else {
        ([127, 0, 0, 1], 3000).into()
    }
}

/// Sends one request over a fresh connection and returns the status code.
pub(crate) async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<u16, Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: example\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// Sends each `(method, path, token, expected status)`, printing it; fails on the first
/// unexpected answer.
pub(crate) async fn check(
    addr: SocketAddr,
    requests: &[(&str, &str, Option<&str>, u16)],
) -> Result<(), Error> {
    for (method, path, token, expected) in requests {
        let status = send(addr, method, path, *token).await?;
        println!("self-check: {method} {path} -> {status}");
        if status != *expected {
            return Err(format!("{method} {path}: {status}, expected {expected}").into());
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C, or at once in self-check mode after `checks` ran (their error is
/// printed and makes the process exit 1 once the server stopped).
pub(crate) async fn until_done(
    checks: impl std::future::Future<Output = Result<(), Error>>,
) -> Result<(), Error> {
    if self_check() {
        checks.await
    } else {
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}

/// Serves `app` on `listener` (with the client address as `ConnectInfo`) until the returned
/// sender is used or dropped; await the handle for the server's end.
pub(crate) fn serve_axum(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            stopped.await.ok();
        })
        .into_future(),
    );
    (stop, server)
}
