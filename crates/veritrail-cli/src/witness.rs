//! `veritrail witness`: a C2SP tlog-witness server (`POST /add-checkpoint`), and the log's side
//! of the protocol: `--witness URL=WKEY` submits the latest checkpoint to each witness, with
//! the consistency proof from the size the witness holds, and stores the cosignatures it
//! gets back in the log's checkpoint history.
//!
//! `LOGS.toml` names the logs the witness witnesses:
//!
//! ```toml
//! [[log]]
//! origin = "audit.example.com/api"
//! key = "audit.example.com/api+1a2b3c4d+AQ…"   # the log's verifier key (`veritrail keygen`)
//! ```
//!
//! The state directory holds, per log, the latest checkpoint the witness cosigned; it is made
//! durable (fsync, rename, fsync of the directory) before the witness answers, so a witness
//! killed at any moment never cosigns both sides of a fork.
//!
//! Each submission counts in `veritrail_witness_submissions_total{witness, result}`
//! (`cosigned` or `failed`): a checkpoint that gathered fewer cosignatures than there are
//! witnesses shows there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{AuditContext, Engine, RoutePolicy};
use veritrail_log::proof::ConsistencyBody;
use veritrail_log::witness::{AddCheckpointError, CosignatureVerifier, Witness, cosignatures};
use veritrail_log::{Log, NoteVerifier};

use crate::cli::WitnessArgs;
use crate::keys;

/// The most bytes of an `add-checkpoint` body (63 proof lines and a checkpoint with many
/// signatures fit in far less).
const MAX_BODY: usize = 64 * 1024;
/// How long a log waits for one witness before going on without its cosignature.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsFile {
    #[serde(default)]
    log: Vec<LogEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogEntry {
    origin: String,
    key: String,
}

/// Reads `LOGS.toml`: each log's verifier key, whose name must be the origin.
fn read_logs(path: &std::path::Path) -> Result<Vec<NoteVerifier>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the witnessed logs file {}", path.display()))?;
    let file: LogsFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid LOGS.toml", path.display()))?;
    if file.log.is_empty() {
        bail!(
            "{} names no [[log]]: the witness would witness nothing",
            path.display()
        );
    }
    let mut out: Vec<NoteVerifier> = Vec::new();
    for entry in file.log {
        let key = NoteVerifier::from_text(&entry.key)
            .with_context(|| format!("[[log]] {:?}: its key", entry.origin))?;
        if key.name() != entry.origin {
            bail!(
                "[[log]] {:?}: its key is named {:?}; a log's checkpoints are signed under its \
                 origin",
                entry.origin,
                key.name()
            );
        }
        if out.iter().any(|k| k.name() == entry.origin) {
            bail!("[[log]] {:?} is listed twice", entry.origin);
        }
        out.push(key);
    }
    Ok(out)
}

/// Runs the witness server until SIGINT or SIGTERM.
pub(crate) fn run(args: &WitnessArgs) -> Result<()> {
    let key = keys::read_cosigner(&args.key)?;
    let logs = read_logs(&args.logs)?;
    let count = logs.len();
    let witness = Witness::open(&args.state, key, logs)
        .with_context(|| format!("cannot open the witness state {}", args.state.display()))?;
    let verifier = witness.verifier();
    let listen: SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen {:?} is not an address like 127.0.0.1:7380",
            args.listen
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let telemetry = crate::telemetry::Telemetry::from_env("veritrail-witness")?;
        let writer = match (&args.access_log, &args.access_key) {
            (Some(dir), Some(key)) => {
                Some(telemetry.open_writer(dir, keys::read_signer(key)?, false)?)
            }
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        // The first stdout line, as `proxy` and `serve` print theirs (scripts read it).
        println!(
            "veritrail witness listening on http://{}",
            listener.local_addr()?
        );
        eprintln!("witness {verifier} witnesses {count} log(s): POST /add-checkpoint");
        let mut app = Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            .with_state(Arc::new(witness));
        if let Some(writer) = &writer {
            // tlog-witness authenticates nothing but the checkpoint's signature: every
            // request is public, and recorded.
            let engine = Engine::builder(nobody()?, writer.handle())
                .default_policy(RoutePolicy::public())
                .build();
            app = app.layer(veritrail_axum::layer(engine));
        }
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(crate::signal::shutdown_signal())
        .await
        .context("the witness server failed");
        if let Some(writer) = writer {
            let report = writer
                .shutdown(std::time::Instant::now() + Duration::from_secs(10))
                .await;
            if let Some(why) = report.error {
                bail!("the access log failed: {why}");
            }
        }
        telemetry.shutdown().await;
        served
    })
}

/// The access log's engine records through an authenticator that is never asked (every
/// route is public).
fn nobody() -> Result<Authenticator> {
    Authenticator::builder()
        .issuer(
            Issuer::new("urn:veritrail:witness:public")
                .keys(KeySet::empty())
                .audience("urn:veritrail:witness:public"),
        )
        .build()
        .context("cannot set up the access log's recorder")
}

async fn add_checkpoint(
    State(witness): State<Arc<Witness>>,
    audit: Option<Extension<AuditContext>>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(Extension(audit)) = &audit {
        audit.set_action("witness.add_checkpoint");
        // The origin line, for the record (the checkpoint follows the first blank line).
        if let Some(origin) = std::str::from_utf8(&body)
            .ok()
            .and_then(|t| t.split_once("\n\n"))
            .and_then(|(_, c)| c.lines().next())
        {
            audit.set_target(crate::output::for_terminal(origin, false).into_owned());
        }
    }
    let plain = |status: StatusCode, text: String| {
        let mut r = (status, text).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if body.len() > MAX_BODY {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is too large\n".into(),
        );
    }
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "the body is not UTF-8 text\n".into(),
        );
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    // Checking and persisting fsyncs: off the async workers.
    let answer = tokio::task::spawn_blocking(move || witness.add_checkpoint(&text, now)).await;
    match answer {
        Ok(Ok(lines)) => plain(StatusCode::OK, lines),
        Ok(Err(AddCheckpointError::Conflict { size })) => {
            let mut r = (StatusCode::CONFLICT, format!("{size}\n")).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/x.tlog.size"),
            );
            r
        }
        Ok(Err(e)) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                eprintln!("witness: {e}");
            }
            plain(status, format!("{e}\n"))
        }
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// A witness a log submits its checkpoints to: `URL=WKEY` (the submission prefix, and the
/// witness's verifier key as text or a file).
#[derive(Clone, Debug)]
pub(crate) struct WitnessTarget {
    url: String,
    key: CosignatureVerifier,
}

impl WitnessTarget {
    /// Parses `URL=WKEY`.
    pub(crate) fn parse(arg: &str) -> Result<Self> {
        let (url, key) = arg.split_once('=').with_context(|| {
            format!("--witness {arg:?}: expected URL=WKEY (the witness's URL and verifier key)")
        })?;
        if !url.starts_with("http://") && !url.starts_with("https://") {
            bail!("--witness {arg:?}: the URL must start with http:// or https://");
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            key: keys::read_witness_verifier(key)?,
        })
    }
}

/// What one witness did with the latest checkpoint.
pub(crate) enum Outcome {
    /// It cosigned (the line was verified and stored).
    Cosigned(String),
    /// It did not: why (the log carries on without this cosignature).
    Failed(String),
}

/// Submits the log's latest checkpoint to every witness, verifies each cosignature and stores
/// those that verify in the log. A witness that is down, slow or refuses never fails the
/// caller: the checkpoint carries fewer cosignatures, and the outcome says why.
pub(crate) fn cosign_latest(log: &mut Log, witnesses: &[WitnessTarget]) -> Result<Vec<Outcome>> {
    let Some(note) = log.latest_checkpoint()? else {
        return Ok(Vec::new());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (lines, outcomes) = runtime.block_on(collect(log, &note, witnesses))?;
    if !lines.is_empty() {
        log.add_cosignatures(&lines)?;
    }
    Ok(outcomes)
}

/// Asks every witness to cosign `note` (a checkpoint `log` signed); returns the cosignature
/// lines that verify, and what each witness did.
async fn collect(
    log: &Log,
    note: &str,
    witnesses: &[WitnessTarget],
) -> Result<(String, Vec<Outcome>)> {
    let size = veritrail_log::Checkpoint::open(note, log.verifier())?.size;
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut lines = String::new();
    let mut outcomes = Vec::new();
    for w in witnesses {
        let outcome = match submit(&client, log, note, size, w).await {
            Ok(answer) => {
                match cosignatures(&format!("{note}{answer}"), std::slice::from_ref(&w.key)) {
                    Ok(found) if !found.is_empty() => {
                        lines.push_str(&found[0].line);
                        lines.push('\n');
                        Outcome::Cosigned(w.key.name().to_owned())
                    }
                    Ok(_) => Outcome::Failed(format!(
                        "{}: the answer holds no cosignature by {}",
                        w.url,
                        w.key.name()
                    )),
                    Err(e) => Outcome::Failed(format!("{}: {e}", w.url)),
                }
            }
            Err(e) => Outcome::Failed(format!("{}: {e:#}", w.url)),
        };
        // A checkpoint with fewer cosignatures than witnesses shows here.
        let result = match outcome {
            Outcome::Cosigned(_) => "cosigned",
            Outcome::Failed(_) => "failed",
        };
        metrics::counter!(
            "veritrail_witness_submissions_total",
            "witness" => w.key.name().to_owned(),
            "result" => result,
        )
        .increment(1);
        outcomes.push(outcome);
    }
    Ok((lines, outcomes))
}

/// For `veritrail proxy --witness`: every second, submits the log's latest checkpoint (read
/// from the directory, off the writer's thread) to the witnesses when it is new, and hands
/// the cosignatures that verify to the writer's [`FileSink`](veritrail_writer::FileSink),
/// which stores them (`to_writer` returns `false` once there is no writer any more). Also
/// used by `veritrail sequencer --witness`. Witness failures are printed once per change of state.
pub(crate) async fn keep_cosigning(
    dir: std::path::PathBuf,
    witnesses: Vec<WitnessTarget>,
    to_writer: impl Fn(veritrail_writer::Cosigned) -> bool + Send + 'static,
) {
    let mut last: Option<String> = None;
    let mut last_failures: Vec<String> = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let dir = dir.clone();
        let witnesses = witnesses.clone();
        let previous = last.clone();
        let round = tokio::task::spawn_blocking(
            move || -> Result<Option<(String, String, Vec<Outcome>)>> {
                let log = Log::open_read_only(&dir)?;
                let Some(note) = log.latest_checkpoint()? else {
                    return Ok(None);
                };
                if previous.as_deref() == Some(note.as_str()) {
                    return Ok(None);
                }
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let (lines, outcomes) = runtime.block_on(collect(&log, &note, &witnesses))?;
                Ok(Some((note, lines, outcomes)))
            },
        )
        .await;
        let failures: Vec<String> = match round {
            Ok(Ok(Some((note, lines, outcomes)))) => {
                if !lines.is_empty()
                    && !to_writer(veritrail_writer::Cosigned {
                        checkpoint: note.clone(),
                        lines,
                    })
                {
                    return; // the writer is gone
                }
                last = Some(note);
                outcomes
                    .into_iter()
                    .filter_map(|o| match o {
                        Outcome::Failed(why) => Some(why),
                        Outcome::Cosigned(_) => None,
                    })
                    .collect()
            }
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => vec![format!("{e:#}")],
            Err(e) => vec![e.to_string()],
        };
        if failures != last_failures {
            for why in &failures {
                eprintln!(
                    "warning: no cosignature from witness {}",
                    crate::output::for_terminal(why, false)
                );
            }
            last_failures = failures;
        }
    }
}

/// One `add-checkpoint` exchange: from size 0 first, then, on a 409, from the size the witness
/// holds with the consistency proof to it.
async fn submit<C>(
    client: &Client<C, Full<bytes::Bytes>>,
    log: &Log,
    note: &str,
    size: u64,
    w: &WitnessTarget,
) -> Result<String>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let mut old = 0;
    for _ in 0..2 {
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            log.consistency_proof(old, size)?
        };
        let body = ConsistencyBody {
            old_size: old,
            proof,
            checkpoint: note.to_owned(),
        }
        .to_text();
        let request = http::Request::post(format!("{}/add-checkpoint", w.url))
            .body(Full::new(bytes::Bytes::from(body)))?;
        let response = tokio::time::timeout(CLIENT_TIMEOUT, client.request(request))
            .await
            .context("no answer in time")??;
        let status = response.status();
        let body = tokio::time::timeout(CLIENT_TIMEOUT, response.into_body().collect())
            .await
            .context("no answer in time")??
            .to_bytes();
        if body.len() > MAX_BODY {
            bail!("the answer is too large");
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        match status.as_u16() {
            200 => return Ok(text),
            409 => {
                let held: u64 = text
                    .trim_end_matches('\n')
                    .parse()
                    .with_context(|| format!("409 without a size: {text:?}"))?;
                if held > size {
                    bail!(
                        "the witness holds size {held}, larger than this log's {size}: it saw \
                         another history of this log (a fork), or the log was truncated"
                    );
                }
                if held == old {
                    bail!("409 at the size it holds ({held}): it holds another root (a fork)");
                }
                old = held;
            }
            code => bail!(
                "{code}: {}",
                crate::output::for_terminal(text.trim(), false)
            ),
        }
    }
    bail!("the witness kept answering 409")
}
