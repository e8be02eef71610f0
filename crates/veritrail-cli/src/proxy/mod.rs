//! `veritrail proxy`: an authenticating, auditing reverse proxy in front of any HTTP service.
//!
//! Each request goes through the same tower [`AuditLayer`] a Rust service would use: the
//! token is checked against the route's policy, refusals are answered here (401 / 403 with an
//! RFC 6750 challenge), and every request — forwarded or not — is recorded in the log. Bodies
//! stream through in both directions ([`forward`]). On SIGTERM or Ctrl-C the proxy stops
//! accepting, lets the requests in flight finish (up to `shutdown_grace`), drains the writer,
//! signs the last checkpoint and exits 0.
//!
//! If the audit log fails (disk full, an I/O or fsync error), the failure is printed at once
//! and from then on every request is refused with 503 and `Retry-After` before the upstream is
//! contacted: nothing runs that cannot be recorded. At shutdown the proxy then says what was
//! lost and where the last signed checkpoint stands, and exits 2.

mod admission;
mod config;
mod forward;
mod refusal;

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tower::ServiceExt;
use veritrail_core::engine::{Engine, RoutePolicy, TrustedProxies, canonical_path};
use veritrail_otel::OtelLayer;
use veritrail_tower::{AuditLayer, PeerAddr};

use crate::cli::ProxyArgs;
use crate::keys;
use crate::keysource;
use crate::telemetry::Telemetry;
use admission::{ConnectionLimits, OverCap};
use config::Settings;
use forward::{AuthorisedPath, Forward, ForwardOptions};
use refusal::{Capturing, HeadCapture};

/// How long a client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The route (configured path prefix) a request falls under, for the engine's policy lookup.
#[derive(Clone)]
struct ProxyRoute(Arc<str>);

fn route_of(ext: &http::Extensions) -> Option<&str> {
    ext.get::<ProxyRoute>().map(|r| &*r.0)
}

/// Runs the proxy until SIGTERM or Ctrl-C.
pub(crate) fn run(args: &ProxyArgs) -> Result<()> {
    let settings = config::load(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> Result<()> {
    let telemetry = Telemetry::from_env("veritrail-proxy")?;
    let writer = match crate::logdir::nats_location(&settings.log)? {
        // A replica: its events go to the JetStream stream a sequencer integrates and signs.
        Some(at) => {
            if !settings.witnesses.is_empty() {
                anyhow::bail!(
                    "--witness goes to the sequencer, which signs the log; a replica publishing to {at} signs nothing"
                );
            }
            telemetry.open_nats_writer(&at).await?
        }
        None => {
            let key = settings.key.as_ref().context("--key is required")?;
            let signer = keys::read_signer(key)?;
            let (cosigned_tx, cosigned_rx) = std::sync::mpsc::channel();
            let witnessed = !settings.witnesses.is_empty();
            let writer = telemetry.open_writer_witnessed(
                &settings.log,
                signer,
                settings.recover,
                witnessed.then_some(cosigned_rx),
            )?;
            if witnessed {
                tokio::spawn(crate::witness::keep_cosigning(
                    settings.log.clone(),
                    settings.witnesses.clone(),
                    move |c| cosigned_tx.send(c).is_ok(),
                ));
            }
            writer
        }
    };
    let authenticator = keysource::recording_authenticator(
        &settings.keys,
        (&settings.issuer, &settings.audience),
        &[],
        writer.handle(),
    )
    .await?;
    let proxies = TrustedProxies::parse(&settings.trusted_proxies)
        .context("trusted_proxies: not a list of networks like 10.0.0.0/8")?
        .header(settings.forwarded_header);
    let mut engine = Engine::builder(authenticator, writer.handle())
        .default_policy(RoutePolicy::authenticated().durability(settings.durability))
        .trusted_proxies(proxies.clone())
        // A client could otherwise name its own events (or another's).
        .trust_request_id(settings.trust_request_id);
    if let Some(realm) = &settings.realm {
        engine = engine.realm(realm);
    }
    for (prefix, policy) in settings.routes.iter() {
        engine = engine.route(prefix, policy.clone());
    }
    let engine = engine.build();
    let layer = AuditLayer::new(engine.clone()).route_with(route_of);
    let otel = telemetry.layer(OtelLayer::new().route_with(route_of));
    let forward = Forward::new(
        settings.upstream.clone(),
        settings.upstream_timeout,
        ForwardOptions {
            identity_headers: settings.identity_headers,
            underscores: settings.underscores_in_headers,
            proxies: proxies.clone(),
        },
    );
    let limits = connection_limits(&settings, proxies);

    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    // The first line on stdout: scripts and tests read the port from it.
    println!("veritrail proxy listening on http://{addr}");
    eprintln!(
        "forwarding to http://{}{}; audit log {}; SIGTERM or Ctrl-C stops it cleanly",
        settings.upstream.authority,
        settings.upstream.base_path,
        settings.log.display()
    );

    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut stop = std::pin::pin!(crate::signal::shutdown_signal());
    let mut turned_away = TurnedAway::default();
    loop {
        let (stream, peer) = tokio::select! {
            // Reap finished connections as we go.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let admitted = match limits.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(over) => {
                admission::turn_away(stream);
                turned_away.note(over, peer, &limits);
                continue;
            }
        };
        let capture = HeadCapture::default();
        let service = connection_service(
            &otel,
            &layer,
            &forward,
            &settings.routes,
            &engine,
            &capture,
            peer,
        );
        let conn = hyper::server::conn::http1::Builder::new()
            // A client gets this long to send a request head (slow-header attacks).
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(
                TokioIo::new(Capturing::new(stream, capture.clone())),
                service,
            );
        let conn = graceful.watch(conn);
        let engine = engine.clone();
        connections.spawn(async move {
            let _admitted = admitted;
            // Clients that go away mid-request are recorded as `cancelled` by the audit
            // layer; a head hyper refused (and answered) before any service ran is recorded
            // here.
            if let Err(e) = conn.await
                && let Some(refused) = refusal::refused_head(&e)
            {
                refusal::record_refused_head(&engine, peer, &capture, refused).await;
            }
        });
    }
    if limits.refused() > 0 {
        eprintln!(
            "{} connections were turned away over the connection caps (max_connections {}, \
             max_connections_per_ip {})",
            limits.refused(),
            limits.max_total(),
            limits.max_per_address()
        );
    }
    drop(listener);
    eprintln!(
        "stopping: no new connections; waiting up to {}s for requests in flight",
        settings.shutdown_grace.as_secs()
    );
    let drained = tokio::time::timeout(settings.shutdown_grace, graceful.shutdown())
        .await
        .is_ok();
    if !drained {
        // Dropping a request's future records it as `cancelled`, before the writer stops.
        connections.abort_all();
        while connections.join_next().await.is_some() {}
        eprintln!(
            "requests still in flight after the grace period were cut off (recorded as cancelled)"
        );
    }
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(10))
        .await;
    telemetry.shutdown().await;
    eprintln!("{}", stop_line(&report));
    if report.error.is_some() {
        return Err(crate::exit::Reported(crate::exit::USAGE_OR_IO).into());
    }
    Ok(())
}

/// The shutdown line: what the writer flushed and dropped and where the last checkpoint is —
/// and, when it failed, why, what was lost, and which records no signed checkpoint covers.
fn stop_line(report: &veritrail_writer::ShutdownReport) -> String {
    let Some(why) = &report.error else {
        return format!(
            "stopped: {} events written, {} dropped; last checkpoint at size {}",
            report.flushed, report.dropped, report.size
        );
    };
    let checkpoint = match report.checkpoint.as_deref().and_then(checkpoint_size) {
        Some(size) => format!(
            "the last checkpoint signed is at size {size}; records after it are covered by no signed checkpoint"
        ),
        None => "no checkpoint was signed since the proxy started".to_owned(),
    };
    format!(
        "stopped: the audit log FAILED ({why}); {} events written, {} dropped, {} lost \
         (accepted, some already answered, never made durable), {} refused after the failure; \
         {checkpoint}",
        report.flushed, report.dropped, report.lost, report.refused_after_failure
    )
}

/// The tree size of a checkpoint (its second line).
fn checkpoint_size(note: &str) -> Option<u64> {
    note.lines().nth(1)?.parse().ok()
}

/// The connection caps: the configured ones, the total lowered to what the open-file limit
/// leaves room for.
fn connection_limits(settings: &Settings, proxies: TrustedProxies) -> ConnectionLimits {
    let mut max_total = settings.max_connections;
    if let Some(budget) = admission::descriptor_budget()
        && budget < max_total
    {
        eprintln!(
            "max_connections lowered from {max_total} to {budget}: the open-file limit \
             (ulimit -n) leaves room for no more"
        );
        max_total = budget;
    }
    ConnectionLimits::new(max_total, settings.max_connections_per_ip, proxies)
}

/// Reports connections turned away over a cap: the first at once, then at most one line
/// every ten seconds with the count, so that a flood cannot flood stderr too.
#[derive(Default)]
struct TurnedAway {
    last: Option<Instant>,
    reported: u64,
}

impl TurnedAway {
    fn note(&mut self, over: OverCap, peer: SocketAddr, limits: &ConnectionLimits) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        let cap = match over {
            OverCap::Total => format!("max_connections {}", limits.max_total()),
            OverCap::PerAddress => format!(
                "max_connections_per_ip {} for {}",
                limits.max_per_address(),
                peer.ip()
            ),
        };
        let total = limits.refused();
        eprintln!(
            "connection from {peer} turned away (503): over {cap}; {} turned away since the \
             last report, {total} in all",
            total - self.reported
        );
        self.last = Some(Instant::now());
        self.reported = total;
    }
}

/// The response future of [`connection_service`].
type ConnectionFuture = Pin<
    Box<
        dyn Future<Output = Result<http::Response<forward::ProxyBody>, std::convert::Infallible>>
            + Send,
    >,
>;

/// The service for one connection: `CONNECT` refused; peer address and route into the
/// request, then the OpenTelemetry layer (when on), the audit layer and the forwarder.
fn connection_service(
    otel: &Option<OtelLayer>,
    layer: &AuditLayer,
    forward: &Forward,
    routes: &config::Routes,
    engine: &Engine,
    capture: &HeadCapture,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<forward::ProxyBody>,
    Error = std::convert::Infallible,
    Future = ConnectionFuture,
> + Clone
+ use<> {
    let service = tower::ServiceBuilder::new()
        .option_layer(otel.clone())
        .layer(layer.clone())
        .service(forward.clone());
    let routes = routes.clone();
    let (engine, capture) = (engine.clone(), capture.clone());
    hyper::service::service_fn(
        move |mut req: http::Request<Incoming>| -> ConnectionFuture {
            capture.request_started();
            if req.method() == http::Method::CONNECT {
                let engine = engine.clone();
                return Box::pin(
                    async move { Ok(refusal::refuse_connect(&engine, &req, peer).await) },
                );
            }
            req.extensions_mut().insert(PeerAddr(peer));
            // The route is chosen by the canonical path, the engine's. A path without one gets no
            // route and no path to forward: the engine refuses it (400 invalid_path).
            if let Ok(path) = canonical_path(req.uri().path()).map(Cow::into_owned) {
                if let Some(route) = routes.matching(&path) {
                    req.extensions_mut().insert(ProxyRoute(Arc::clone(route)));
                }
                req.extensions_mut().insert(AuthorisedPath(path));
            }
            Box::pin(service.clone().oneshot(req))
        },
    )
}
