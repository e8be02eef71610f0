//! `veritrail demo`: the quick start. A real axum server with the veritrail layer on a loopback
//! port, an identity provider's keys made on the spot, real HTTP traffic (valid tokens of three
//! algorithms, an expired one, a forged one, none, one without the needed scope, a durable
//! route whose handler names its action), a clean stop, then the library verifier over the log,
//! a table of the events, one inclusion proof, and what to try next.
//!
//! It exits 0 only if everything it shows happened: every answer had the expected status,
//! every request's event says what the answer said, the log verifies, the number of records is
//! the number of requests plus the writer's system records, the proof verifies, and a copy of
//! the log with one byte changed fails verification at the changed record.

mod app;
mod idp;
mod traffic;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::event::{AuditEvent, EventBody, EvidenceMode};
use veritrail_log::NoteVerifier;
use veritrail_log::proof::InclusionProofFile;
use veritrail_log::verify::{VerifyOptions, verify_dir, verify_dir_with};

use crate::cli::DemoArgs;
use crate::events;
use crate::exit::{INVALID, Reported};
use crate::telemetry::Telemetry;
use idp::{AUDIENCE, Alg, ISSUER, IdentityProvider, TokenClaims};
use traffic::{Case, SUBJECT};

/// Marks a directory as made by `veritrail demo`, so that the next run may clear it.
const MARKER: &str = ".veritrail-demo";
/// The demo log's name (its checkpoints' origin line).
const LOG_NAME: &str = "demo.veritrail.test/orders";
/// The system records a clean run writes besides the requests' events: `start`, `keyset`,
/// `stop`.
const SYSTEM_RECORDS: [&str; 3] = ["start", "keyset", "stop"];

/// Runs the demo in `args.dir`.
pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(demo(&args.dir))
}

/// The files of one demo directory.
struct Paths {
    dir: PathBuf,
    log: PathBuf,
    verifier: PathBuf,
    jwks: PathBuf,
    proof: PathBuf,
    token: PathBuf,
    tamper: PathBuf,
}

impl Paths {
    fn new(dir: &Path) -> Self {
        Paths {
            dir: dir.to_path_buf(),
            log: dir.join("log"),
            verifier: dir.join("log.pub"),
            jwks: dir.join("jwks.json"),
            proof: dir.join("refund.tlog-proof"),
            token: dir.join("alice.token"),
            tamper: dir.join(".tamper-check"),
        }
    }
}

async fn demo(dir: &Path) -> Result<()> {
    let paths = Paths::new(dir);
    prepare_dir(dir)?;
    println!("veritrail demo: a real server, real tokens, real traffic, then verification\n");

    let idp = IdentityProvider::generate()?;
    let jwks = idp.jwks();
    write(&paths.jwks, format!("{jwks:#}\n"))?;
    let (keys, _) = KeySet::from_jwks(&std::fs::read(&paths.jwks)?)
        .context("the demo's own JWKS does not load")?;
    println!(
        "identity provider  3 signing keys made just now (RS256, ES256, EdDSA); public keys in {}",
        paths.jwks.display()
    );

    let signer = veritrail_log::NoteSigner::generate(LOG_NAME)?;
    let verifier = signer.verifier();
    write(&paths.verifier, format!("{}\n", verifier.to_text()))?;
    let telemetry = Telemetry::from_env("veritrail-demo")?;
    let writer = telemetry.open_writer(&paths.log, signer, false)?;
    println!(
        "audit log          {} ({LOG_NAME}); verifier key in {}",
        paths.log.display(),
        paths.verifier.display()
    );
    let authenticator = Authenticator::builder()
        .issuer(Issuer::new(ISSUER).keys(keys).audience(AUDIENCE))
        .build()?;
    let engine = Engine::builder(authenticator, writer.handle())
        .realm("orders")
        .evidence(EvidenceMode::Full)
        .route("/health", RoutePolicy::public())
        .build();
    let otel = telemetry.layer(veritrail_otel::axum::layer());
    let server = app::Server::start(app::router(engine, otel)).await?;
    println!(
        "server             axum + the veritrail layer on http://{}\n",
        server.addr
    );

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cases = traffic::cases(&idp, now)?;
    let mut failures = Vec::new();
    println!("requests");
    for case in &cases {
        let status = traffic::send(server.addr, case).await?;
        let mark = if status == case.status {
            "ok  "
        } else {
            "FAIL"
        };
        println!(
            "  {mark} {:<4} {:<18} {:<48} {status} (expected {})",
            case.method, case.path, case.what, case.status
        );
        if status != case.status {
            failures.push(format!(
                "{}: answered {status}, expected {}",
                case.id, case.status
            ));
        }
    }

    server.stop().await?;
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    telemetry.shutdown().await;
    println!(
        "\nstopped cleanly: {} events written (one per request, and the key set), {} dropped; \
         with the writer's `start` and `stop` records the log holds {} records, all signed by \
         the last checkpoint",
        report.flushed, report.dropped, report.size
    );

    let records = verify(&paths.log, &verifier, &mut failures)?;
    check_events(&cases, &records, report.size, &mut failures);

    println!(
        "\nevents (`veritrail events {}`)\n{}",
        paths.log.display(),
        events::HEADER
    );
    for (index, record) in records.iter().enumerate() {
        if let Ok(event) = AuditEvent::from_json(record) {
            println!("{}", events::row(index as u64, &event));
        }
    }

    let refund = request_index(&records, "refund").context("no event for the refund request")?;
    prove(&paths, refund, &verifier, &mut failures)?;
    let tamper = tamper_check(&paths, refund, &verifier, &mut failures)?;

    let token = idp.token(
        Alg::Rs256,
        &TokenClaims {
            sub: SUBJECT,
            scope: "orders:read orders:refund",
            iat: now,
            exp: now + 3600,
            jti: "demo-try-me",
        },
    )?;
    write(&paths.token, format!("{token}\n"))?;
    next_steps(&paths, refund, tamper.as_ref());

    if failures.is_empty() {
        println!("\ndemo passed: every answer, event, check and proof above is real");
        Ok(())
    } else {
        eprintln!("\ndemo FAILED:");
        for failure in &failures {
            eprintln!("  {failure}");
        }
        Err(Reported(INVALID).into())
    }
}

/// Creates `dir`, or clears it if a previous demo made it; refuses anything else.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!(
                "{} exists and is not a directory; choose another with --dir",
                dir.display()
            );
        }
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty {
            if !dir.join(MARKER).is_file() {
                bail!(
                    "{} exists and was not made by `veritrail demo`; refusing to clear it \
                     (choose another with --dir, or remove it)",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear the previous demo in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write(
        &dir.join(MARKER),
        "made by `veritrail demo`; the next run clears this directory\n",
    )
}

fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// Verifies the log with the library verifier; returns its records.
fn verify(log: &Path, verifier: &NoteVerifier, failures: &mut Vec<String>) -> Result<Vec<Vec<u8>>> {
    let mut records = Vec::new();
    let result = verify_dir_with(log, verifier, &VerifyOptions::default(), |_, record| {
        records.push(record.to_vec());
        Ok(())
    });
    match result {
        Ok(report) => println!(
            "verified           {} is valid: {} records, {} checkpoints checked",
            log.display(),
            report.records,
            report.checkpoints_checked
        ),
        Err(e) => failures.push(format!("the log does not verify: {e}")),
    }
    Ok(records)
}

/// The index of the complete event of the request `id`.
fn request_index(records: &[Vec<u8>], id: &str) -> Option<u64> {
    records.iter().enumerate().find_map(|(index, record)| {
        let event = AuditEvent::from_json(record).ok()?;
        let http = event.as_http()?;
        (http.request.request_id.as_deref() == Some(id)).then_some(index as u64)
    })
}

/// Checks every request's event against its case, and the number of records.
fn check_events(cases: &[Case], records: &[Vec<u8>], size: u64, failures: &mut Vec<String>) {
    let mut system = Vec::new();
    let mut http = Vec::new();
    for record in records {
        match AuditEvent::from_json(record) {
            Ok(event) => match &event.body {
                EventBody::Http(_) => http.push(event),
                _ => system.push(event.kind().as_str().to_owned()),
            },
            Err(e) => failures.push(format!("a record is not an audit event: {e}")),
        }
    }
    let mut matched = 0;
    for case in cases {
        let found: Vec<_> = http
            .iter()
            .filter_map(|e| e.as_http())
            .filter(|h| h.request.request_id.as_deref() == Some(case.id))
            .collect();
        let [event] = found.as_slice() else {
            failures.push(format!("{}: {} events, expected 1", case.id, found.len()));
            continue;
        };
        let outcome = event.outcome.map(events::outcome_name);
        let reason = event
            .authz
            .as_ref()
            .and_then(|a| a.reason.as_deref())
            .or_else(|| event.authn.as_ref().and_then(|a| a.reason.as_deref()));
        let got = (event.status, outcome, reason, event.action.as_deref());
        let want = (
            Some(case.status),
            Some(case.outcome),
            case.reason,
            case.action,
        );
        if got == want {
            matched += 1;
        } else {
            failures.push(format!(
                "{}: the event says (status, outcome, reason, action) = {got:?}, expected {want:?}",
                case.id
            ));
        }
    }
    system.sort();
    let mut expected_system: Vec<String> = SYSTEM_RECORDS.map(str::to_owned).to_vec();
    expected_system.sort();
    let expected = (cases.len() + SYSTEM_RECORDS.len()) as u64;
    if system != expected_system || http.len() != cases.len() || records.len() as u64 != expected {
        failures.push(format!(
            "the log holds {} records ({} requests, system records {system:?}); expected \
             {expected}: {} requests plus {SYSTEM_RECORDS:?}",
            records.len(),
            http.len(),
            cases.len()
        ));
    }
    if size != records.len() as u64 {
        failures.push(format!(
            "the writer reported {size} records at shutdown but the log verified {}",
            records.len()
        ));
    }
    println!(
        "                   {matched} of {} requests have an event that says what their answer said; \
         {} records = {} request events + {} system records ({})",
        cases.len(),
        records.len(),
        http.len(),
        system.len(),
        SYSTEM_RECORDS.join(", ")
    );
}

/// Writes the inclusion proof of record `index` and verifies it as a third party would.
fn prove(
    paths: &Paths,
    index: u64,
    verifier: &NoteVerifier,
    failures: &mut Vec<String>,
) -> Result<()> {
    let log = veritrail_log::Log::open_read_only(&paths.log)?;
    let checkpoint = log
        .latest_checkpoint()?
        .context("the demo log has no checkpoint")?;
    let proof = InclusionProofFile {
        index,
        record: log.read(index)?,
        proof: log.inclusion_proof(index, log.size())?,
        checkpoint,
    };
    write(&paths.proof, proof.to_text())?;
    let text = std::fs::read_to_string(&paths.proof)?;
    match InclusionProofFile::parse(&text).map(|p| p.verify(verifier)) {
        Ok(Ok(checkpoint)) => println!(
            "\ninclusion proof    record {index} (the refund) is in the log under its signed \
             checkpoint of size {}: {} verifies",
            checkpoint.size,
            paths.proof.display()
        ),
        Ok(Err(e)) | Err(e) => failures.push(format!("the inclusion proof does not verify: {e}")),
    }
    Ok(())
}

/// One byte of the log to change: the segment file and the offset.
struct Tamper {
    segment: PathBuf,
    offset: usize,
}

/// Changes one byte of record `index` in a copy of the log and checks that verification fails
/// there; returns where that byte is in the real log.
fn tamper_check(
    paths: &Paths,
    index: u64,
    verifier: &NoteVerifier,
    failures: &mut Vec<String>,
) -> Result<Option<Tamper>> {
    let record = veritrail_log::Log::open_read_only(&paths.log)?.read(index)?;
    let Some(in_record) = find(&record, b"order.refund") else {
        failures.push("the refund event does not name its action".to_owned());
        return Ok(None);
    };
    let segments = paths.log.join("segments");
    let mut target = None;
    for entry in std::fs::read_dir(&segments)? {
        let path = entry?.path();
        if let Some(at) = find(&std::fs::read(&path)?, &record) {
            target = Some(Tamper {
                segment: path,
                offset: at + in_record,
            });
        }
    }
    let Some(target) = target else {
        failures.push(format!(
            "record {index} was not found in {}",
            segments.display()
        ));
        return Ok(None);
    };
    if paths.tamper.exists() {
        std::fs::remove_dir_all(&paths.tamper)?;
    }
    copy_dir(&paths.log, &paths.tamper)?;
    let copy = paths.tamper.join(target.segment.strip_prefix(&paths.log)?);
    let mut bytes = std::fs::read(&copy)?;
    bytes[target.offset] = b'X';
    std::fs::write(&copy, bytes)?;
    let result = verify_dir(&paths.tamper, verifier, &VerifyOptions::default());
    std::fs::remove_dir_all(&paths.tamper)?;
    match result {
        Err(e) if e.index() == Some(index) => {
            println!("tamper check       a copy with one byte of record {index} changed fails: {e}")
        }
        Err(e) => failures.push(format!(
            "a changed byte in record {index} was reported elsewhere: {e}"
        )),
        Ok(_) => failures.push(format!(
            "a copy of the log with record {index} changed still verifies"
        )),
    }
    Ok(Some(target))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn next_steps(paths: &Paths, refund: u64, tamper: Option<&Tamper>) {
    let (dir, log, key) = (
        paths.dir.display(),
        paths.log.display(),
        paths.verifier.display(),
    );
    let mut steps = vec![
        (
            format!("veritrail verify {log} --key {key}"),
            "valid".to_owned(),
        ),
        (
            format!("veritrail verify {log} --key {key} --tokens"),
            "re-checks every stored token against the archived keys: the refused ones are refused again"
                .to_owned(),
        ),
        (
            format!(
                "veritrail verify-proof {} --key {key}",
                paths.proof.display()
            ),
            "what a third party checks".to_owned(),
        ),
    ];
    if let Some(t) = tamper {
        steps.push((
            format!(
                "printf X | dd of={} bs=1 seek={} conv=notrunc status=none",
                t.segment.display(),
                t.offset
            ),
            format!("changes one byte of record {refund} (the `o` of order.refund)"),
        ));
        steps.push((
            format!("veritrail verify {log} --key {key}"),
            format!("now INVALID at record {refund}"),
        ));
    }
    steps.push((
        format!("veritrail events {log} --outcome denied"),
        "who was refused, and why".to_owned(),
    ));
    steps.push((
        format!("veritrail tail {log}"),
        "follows new events as they are appended".to_owned(),
    ));
    let width = steps.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    println!("\ntry next");
    if let Ok(exe) = std::env::current_exe() {
        println!(
            "  (`veritrail` is {}; `cargo install --path crates/veritrail-cli` puts it on your PATH)",
            exe.display()
        );
    }
    for (command, why) in &steps {
        println!("  {command:<width$}  # {why}");
    }
    println!("\n  the same layer in front of any HTTP service (yours on port 3000):");
    println!("  veritrail keygen demo.example/proxy --out {dir}/proxy.key");
    println!(
        "  veritrail proxy --listen 127.0.0.1:8080 --upstream http://127.0.0.1:3000 \\\n      \
         --jwks {} --issuer {ISSUER} --audience {AUDIENCE} \\\n      \
         --log {dir}/proxy-log --key {dir}/proxy.key",
        paths.jwks.display()
    );
    println!(
        "  curl -H \"authorization: Bearer $(cat {})\" http://127.0.0.1:8080/",
        paths.token.display()
    );
    println!(
        "  ({} holds a token for alice, valid for an hour)",
        paths.token.display()
    );
}
