//! `veritrail sequencer` and `veritrail reconcile`: many replicas publish to a NATS JetStream
//! stream; the sequencer integrates it into one signed log (see `veritrail_nats::sequencer`).

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use veritrail_log::LogOptions;
use veritrail_nats::reconcile::{reconcile as check, stream_events};
use veritrail_nats::sequencer::LogOpener;
use veritrail_nats::{
    Integrating, IntegrationLog, NatsLocation, Sequencer, SequencerOptions, StreamSettings,
    ensure_stream,
};
use veritrail_writer::{Cosigned, FileSink};

use crate::cli::{ReconcileArgs, SequencerArgs};
use crate::exit::{Reported, invalid};
use crate::keys;
use crate::logdir::refuse_non_directory;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs a sequencer until SIGTERM or Ctrl-C.
pub(crate) fn run(args: &SequencerArgs) -> Result<()> {
    let at = NatsLocation::parse(&args.from, args.origin.as_deref())
        .with_context(|| format!("bad --from {:?}", args.from))?;
    let signer = keys::read_signer(&args.key)?;
    let settings = StreamSettings::default()
        .replicas(args.replicas)
        .lease_ttl(Duration::from_millis(args.lease_ttl_ms.max(100)));
    let runtime = runtime()?;
    if args.init {
        let info = runtime.block_on(async {
            let client = veritrail_nats::connect(&at, "veritrail-sequencer-init").await?;
            ensure_stream(&async_nats_context(client), &at, &settings).await
        })?;
        eprintln!(
            "stream {} ready: subject {}, {} replica(s), {} event(s) stored",
            at.stream(),
            at.events_subject(),
            info.config.num_replicas,
            info.state.messages
        );
    }
    let options = SequencerOptions::default()
        .checkpoint_every(args.checkpoint_every.max(1))
        .checkpoint_interval(Duration::from_millis(args.checkpoint_interval_ms.max(1)))
        .settings(settings);
    let witnesses = args
        .witness
        .iter()
        .map(|w| crate::witness::WitnessTarget::parse(w))
        .collect::<Result<Vec<_>>>()?;
    // The active sequencer's sink takes the cosignatures (each term opens a new sink).
    let to_sink: Arc<Mutex<Option<Sender<Cosigned>>>> = Arc::default();
    let cosigning = (!witnesses.is_empty()).then(|| Arc::clone(&to_sink));
    if cosigning.is_some() {
        if crate::logdir::postgres_location(&args.log)?.is_some() {
            anyhow::bail!("--witness works with a log directory only, so far (not postgres://)");
        }
        let slot = Arc::clone(&to_sink);
        runtime.spawn(crate::witness::keep_cosigning(
            args.log.clone(),
            witnesses,
            move |c| {
                if let Some(tx) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    let _ = tx.send(c);
                }
                true
            },
        ));
    }
    let open_log = log_opener(&args.log, &signer, at.origin(), cosigning)?;
    let log_shown = args.log.display().to_string();
    let sequencer = Sequencer::new(at.clone(), options, open_log).on_active(move || {
        eprintln!("active: integrating into {log_shown}");
    });
    let stop = sequencer.stop_flag();
    runtime.spawn(async move {
        crate::signal::shutdown_signal().await;
        stop.store(true, Ordering::Relaxed);
    });
    eprintln!(
        "sequencer for {} (stream {}): waiting for the lease; SIGTERM or Ctrl-C stops it cleanly",
        at.origin(),
        at.stream()
    );
    let report = sequencer.run(runtime.handle())?;
    if args.json {
        let lag = report
            .lag_ms
            .map(|(p50, p99)| serde_json::json!({"p50": p50, "p99": p99}));
        println!(
            "{}",
            serde_json::json!({
                "integrated": report.integrated,
                "duplicates": report.duplicates,
                "malformed": report.malformed,
                "checkpoints": report.checkpoints,
                "terms": report.terms,
                "size": report.size,
                "lag_ms": lag,
            })
        );
    } else {
        eprintln!(
            "stopped: {} events integrated, {} duplicates skipped, {} malformed, {} checkpoints, log size {}",
            report.integrated, report.duplicates, report.malformed, report.checkpoints, report.size
        );
    }
    Ok(())
}

/// Opens the log the sequencer integrates into when it becomes active: a directory, or a
/// `postgres://` location (its origin defaults to `--origin`, and must be the same if given).
fn log_opener(
    log: &std::path::Path,
    signer: &veritrail_log::NoteSigner,
    origin: &str,
    cosigning: Option<Arc<Mutex<Option<Sender<Cosigned>>>>>,
) -> Result<LogOpener> {
    let key = signer.to_text();
    let origin = origin.to_owned();
    let state = |e: &dyn std::fmt::Display| veritrail_nats::Error::State(e.to_string());
    if let Some(loc) = crate::logdir::postgres_location(log)? {
        #[cfg(feature = "postgres")]
        {
            if loc.origin().is_some_and(|o| o != origin) {
                anyhow::bail!("the log {loc} names another origin than --origin {origin}");
            }
            let loc = loc.with_origin(Some(&origin));
            return Ok(Box::new(move || {
                let signer = veritrail_log::NoteSigner::from_text(&key).map_err(|e| state(&e))?;
                let sink = veritrail_postgres::PgSink::open(&loc, signer, Default::default())
                    .map_err(|e| state(&e))?;
                let source = veritrail_postgres::PgStore::open(&loc).map_err(|e| state(&e))?;
                Ok(Box::new(Integrating { sink, source }) as Box<dyn IntegrationLog>)
            }));
        }
        #[cfg(not(feature = "postgres"))]
        match loc {}
    }
    refuse_non_directory(log)?;
    let dir = log.to_owned();
    Ok(Box::new(move || {
        let signer = veritrail_log::NoteSigner::from_text(&key).map_err(|e| state(&e))?;
        let options = LogOptions::default().origin(Some(origin.clone()));
        let mut sink = FileSink::open(&dir, signer, options)?;
        if let Some(slot) = &cosigning {
            let (tx, rx) = std::sync::mpsc::channel();
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
            sink = sink.with_cosignatures(rx);
        }
        Ok(Box::new(sink) as Box<dyn IntegrationLog>)
    }))
}

fn async_nats_context(client: async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(client)
}

/// Checks the stream against the log; exit 1 if an acknowledged event is missing or an event
/// is in the log twice.
pub(crate) fn reconcile(args: &ReconcileArgs) -> Result<()> {
    let at = NatsLocation::parse(&args.from, args.origin.as_deref())
        .with_context(|| format!("bad location {:?}", args.from))?;
    let log = crate::logdir::open_source(&args.log)?;
    let runtime = runtime()?;
    let events = runtime.block_on(async {
        let client = veritrail_nats::connect(&at, "veritrail-reconcile").await?;
        stream_events(&async_nats_context(client), &at).await
    })?;
    let records = log.records(0).map(|r| {
        r.map(|stored| stored.record)
            .map_err(|e| veritrail_nats::Error::State(format!("reading the log: {e}")))
    });
    let report = check(events, records)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "ok": report.is_ok(),
                "in_stream": report.in_stream,
                "exactly_once": report.exactly_once,
                "pending": report.pending,
                "missing": report.missing.iter().map(|(seq, id)| serde_json::json!({"seq": seq, "id": id})).collect::<Vec<_>>(),
                "duplicated": report.duplicated.iter().map(|(id, n)| serde_json::json!({"id": id, "count": n})).collect::<Vec<_>>(),
                "malformed": report.malformed,
                "repeated": report.repeated,
            })
        );
    } else {
        println!(
            "{} events in the stream: {} in the log exactly once, {} pending (not yet integrated), {} missing, {} duplicated; {} malformed messages (refused by the sequencer)",
            report.in_stream,
            report.exactly_once,
            report.pending,
            report.missing.len(),
            report.duplicated.len(),
            report.malformed
        );
        for (seq, id) in report.missing.iter().take(20) {
            println!("MISSING  stream seq {seq}  event {id}");
        }
        for (id, n) in report.duplicated.iter().take(20) {
            println!("DUPLICATED  event {id}  {n} times in the log");
        }
    }
    if report.is_ok() {
        Ok(())
    } else if args.json {
        Err(Reported(1).into())
    } else {
        Err(invalid(format!(
            "{} missing and {} duplicated events",
            report.missing.len(),
            report.duplicated.len()
        )))
    }
}
