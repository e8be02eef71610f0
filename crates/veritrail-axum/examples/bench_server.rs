//! The server `scripts/bench-http` drives with wrk: plain axum, or the same app behind the
//! veritrail layer (RS256 tokens, verified-token cache on, `Async` events into a file log).
//!
//! `bench_server plain|veritrail|veritrail-nolog PORT TOKEN_FILE LOG_DIR` — in the veritrail
//! modes it writes 1,000 distinct RS256 tokens to TOKEN_FILE (one per line) before it listens;
//! in `plain` mode it only listens. `veritrail-nolog` hands events to a recorder that drops
//! them (a diagnostic: the layer's cost without the log's).

#[path = "../benches/support/mod.rs"]
mod support;

use std::net::SocketAddr;

use support::{Discard, app, engine};
use veritrail_log::NoteSigner;
use veritrail_writer::{Writer, WriterConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, port, token_file, log_dir] = args.as_slice() else {
        return Err("usage: bench_server plain|veritrail PORT TOKEN_FILE LOG_DIR".into());
    };
    let app = app();
    let mut writer = None;
    let app = match mode.as_str() {
        "plain" => app,
        "veritrail" | "veritrail-nolog" => {
            std::fs::write(token_file, support::tokens().join("\n") + "\n")?;
            let engine = if mode == "veritrail" {
                let w = Writer::open(
                    log_dir,
                    NoteSigner::generate("bench/orders")?,
                    WriterConfig::default(),
                )?;
                let engine = engine(w.handle());
                writer = Some(w);
                engine
            } else {
                engine(Discard)
            };
            app.layer(veritrail_axum::layer(engine))
        }
        other => return Err(format!("unknown mode {other}").into()),
    };
    // One worker: the load generator and the writer thread share the other core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>()?)).await?;
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            term.recv().await;
        })
        .await?;
        if let Some(w) = writer {
            let report = w
                .shutdown(std::time::Instant::now() + std::time::Duration::from_secs(10))
                .await;
            eprintln!("log: {} records, {} dropped", report.size, report.dropped);
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
