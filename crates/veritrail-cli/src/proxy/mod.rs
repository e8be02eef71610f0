//! `veritrail proxy`: an authenticating, auditing reverse proxy in front of any HTTP service.
//!
//! Each request goes through the same tower [`AuditLayer`] a Rust service would use: the
//! token is checked against the route's policy, refusals are answered here (401 / 403 with an
//! RFC 6750 challenge), and every request — forwarded or not — is recorded in the log. Bodies
//! stream through in both directions ([`forward`]); an HTTP/1.1 upgrade (a WebSocket) on a
//! route that allows it becomes a tunnel whose close is recorded too ([`upgrade`]). On
//! SIGTERM or Ctrl-C the proxy stops accepting, lets the requests in flight finish (up to
//! `shutdown_grace`), closes the tunnels, drains the writer, signs the last checkpoint and
//! exits 0.
//!
//! If the audit log fails (disk full, an I/O or fsync error), the failure is printed at once
//! and from then on every request is refused with 503 and `Retry-After` before the upstream is
//! contacted: nothing runs that cannot be recorded. At shutdown the proxy then says what was
//! lost and where the last signed checkpoint stands, and exits 2.

mod admission;
mod body;
mod config;
mod forward;
mod metrics;
mod refusal;
mod tap;
mod tls;
mod upgrade;

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt;
use veritrail_core::auth::Authenticator;
use veritrail_core::engine::{Engine, RoutePolicy, TrustedProxies, canonical_path};
use veritrail_otel::OtelLayer;
use veritrail_tower::{AuditLayer, GrpcAuditLayer, GrpcBody, PeerAddr};

use crate::cli::ProxyArgs;
use crate::keys;
use crate::keysource;
use crate::telemetry::Telemetry;
use admission::{ConnectionLimits, OverCap};
use config::Settings;
use forward::{AuthorisedPath, Forward, ForwardOptions};
use refusal::HeadCapture;
use tap::ReadTap;

/// How long a client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent HTTP/2 streams on one client connection at most.
const MAX_STREAMS: u32 = 256;

/// What the proxy answers with: the upstream's body (or one of its own), recording a gRPC
/// call's event when its trailers pass.
type ClientBody = GrpcBody<forward::ProxyBody>;

/// The route policy in force: the configured routes and the engine that applies them,
/// replaced whole when `--config` is reloaded (requests already running keep theirs).
struct Policy {
    routes: config::Routes,
    engine: Engine,
    layer: GrpcAuditLayer,
}

/// The policy in force, shared by every connection.
#[derive(Clone)]
struct CurrentPolicy(Arc<RwLock<Arc<Policy>>>);

impl CurrentPolicy {
    fn get(&self) -> Arc<Policy> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn set(&self, policy: Policy) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }
}

/// What an engine is built from, kept to build it again on reload.
struct EngineParts {
    authenticator: Authenticator,
    log: veritrail_writer::WriterHandle,
    metered: bool,
    proxies: TrustedProxies,
}

impl EngineParts {
    fn policy(&self, settings: &Settings, routes: config::Routes) -> Policy {
        let mut engine = if self.metered {
            Engine::builder(
                self.authenticator.clone(),
                metrics::Metered(self.log.clone()),
            )
        } else {
            Engine::builder(self.authenticator.clone(), self.log.clone())
        }
        .default_policy(RoutePolicy::authenticated().durability(settings.durability))
        .trusted_proxies(self.proxies.clone())
        // A client could otherwise name its own events (or another's).
        .trust_request_id(settings.trust_request_id);
        if let Some(realm) = &settings.realm {
            engine = engine.realm(realm);
        }
        if settings.tls.as_ref().is_some_and(|t| t.client_ca.is_some()) {
            engine = engine.capture(
                veritrail_core::engine::CaptureRules::new().header(tls::CLIENT_SUBJECT_HEADER),
            );
        }
        for (prefix, policy) in routes.iter() {
            engine = engine.route(prefix, policy.clone());
        }
        let engine = engine.build();
        let layer = AuditLayer::new(engine.clone()).route_with(route_of).grpc();
        Policy {
            routes,
            engine,
            layer,
        }
    }
}

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
    runtime.block_on(serve(args, settings))
}

async fn serve(args: &ProxyArgs, settings: Settings) -> Result<()> {
    let telemetry = Telemetry::from_env("veritrail-proxy")?;
    // Before the writer starts: it binds its metric handles then.
    let exporter = match &settings.metrics_listen {
        Some(_) => Some(metrics::install()?),
        None => None,
    };
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
    // The engine records the key sets in force in the audit log (`verify --tokens`).
    let keys =
        keysource::authenticator(&settings.keys, (&settings.issuer, &settings.audience), &[])
            .await?;
    let proxies = TrustedProxies::parse(&settings.trusted_proxies)
        .context("trusted_proxies: not a list of networks like 10.0.0.0/8")?
        .header(settings.forwarded_header);
    let parts = EngineParts {
        authenticator: keys.authenticator.clone(),
        log: writer.handle(),
        metered: exporter.is_some(),
        proxies: proxies.clone(),
    };
    let policy = CurrentPolicy(Arc::new(RwLock::new(Arc::new(
        parts.policy(&settings, settings.routes.clone()),
    ))));
    let otel = telemetry.layer(OtelLayer::new().route_with(route_of));
    if settings.upstream.trust == config::UpstreamTrust::Insecure {
        eprintln!(
            "WARNING: --upstream-insecure: the upstream's certificate is NOT checked; anyone \
             on the path to {} can read and change the traffic, tokens included",
            settings.upstream.authority
        );
    }
    let forward = Forward::new(
        settings.upstream.clone(),
        settings.upstream_timeout,
        ForwardOptions {
            identity_headers: settings.identity_headers,
            underscores: settings.underscores_in_headers,
            proxies: proxies.clone(),
            https: settings.tls.is_some(),
        },
    )?;
    let tunnels = forward.tunnels();
    let limits = connection_limits(&settings, proxies);
    let tls = match &settings.tls {
        Some(files) => {
            let certificate = tls::Certificate::load(files)?;
            let config = tls::server_config(Arc::clone(&certificate), files.client_ca.as_ref())?;
            Some((tokio_rustls::TlsAcceptor::from(config), certificate))
        }
        None => None,
    };
    let (hup_tx, hup_rx) = tokio::sync::watch::channel(0u64);
    let hangups = tokio::spawn(crate::signal::hangups(
        crate::signal::hangup_signal(),
        hup_tx,
    ));
    let cert_reload = tls.as_ref().map(|(_, certificate)| {
        tokio::spawn(tls::keep_reloading(Arc::clone(certificate), hup_rx.clone()))
    });
    let policy_reload = args.config.clone().map(|path| {
        tokio::spawn(keep_reloading_policy(
            args.clone(),
            path,
            parts,
            policy.clone(),
            hup_rx.clone(),
        ))
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // A client gets this long to send a request head (slow-header attacks).
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .keep_alive_interval(Duration::from_secs(30));
    let builder = Arc::new(builder);

    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    // The first line on stdout: scripts and tests read the port from it.
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("veritrail proxy listening on {scheme}://{addr}");
    let operations = match (exporter, &settings.metrics_listen) {
        (Some(exporter), Some(at)) => {
            let (listener, local) = metrics::bind(at).await?;
            // The second line, when there is a metrics address.
            println!("veritrail proxy metrics on http://{local}");
            let readiness = metrics::Readiness {
                jwks: keys.store.clone(),
                log: Arc::new(writer.handle()),
            };
            Some(tokio::spawn(metrics::serve(listener, exporter, readiness)))
        }
        _ => None,
    };
    eprintln!(
        "forwarding to {}://{}{}{}; audit log {}; SIGTERM or Ctrl-C stops it cleanly",
        if settings.upstream.https {
            "https"
        } else {
            "http"
        },
        settings.upstream.authority,
        settings.upstream.base_path,
        if settings.upstream.h2c { " (h2c)" } else { "" },
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
                ::metrics::counter!(metrics::CONNECTIONS_REFUSED).increment(1);
                turned_away.note(over, peer, &limits);
                continue;
            }
        };
        // Kept by the connection, and by a tunnel it becomes (an upgrade) while that lasts.
        let hold = upgrade::Hold::new((admitted, metrics::OpenConnection::new()));
        let connection = Connection {
            builder: Arc::clone(&builder),
            watcher: graceful.watcher(),
            otel: otel.clone(),
            policy: policy.clone(),
            forward: forward.clone(),
            peer,
            subject: None,
            hold,
        };
        let acceptor = tls.as_ref().map(|(acceptor, _)| acceptor.clone());
        connections.spawn(async move {
            match acceptor {
                None => connection.serve(stream).await,
                Some(acceptor) => {
                    // A failed or slow handshake: no request was made, nothing to record.
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        let subject = tls::client_subject(stream.get_ref().1);
                        connection.with_subject(subject).serve(stream).await;
                    }
                }
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
    // Upgraded connections (WebSockets) are closed now, each close recorded.
    let left = tunnels.close_all(Duration::from_secs(5)).await;
    if left > 0 {
        eprintln!("{left} upgraded connections did not record their close in time");
    }
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(10))
        .await;
    for task in [operations, cert_reload, policy_reload, Some(hangups)]
        .into_iter()
        .flatten()
    {
        task.abort();
    }
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

/// One client connection, served once accepted (and, with TLS, once its handshake is done).
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    otel: Option<OtelLayer>,
    policy: CurrentPolicy,
    forward: Forward,
    peer: SocketAddr,
    /// The verified client certificate's subject (mTLS).
    subject: Option<http::HeaderValue>,
    /// The connection's place under the caps.
    hold: upgrade::Hold,
}

impl Connection {
    fn with_subject(mut self, subject: Option<String>) -> Self {
        self.subject = subject.and_then(|s| http::HeaderValue::from_str(&s).ok());
        self
    }

    /// Serves HTTP/1.1 or HTTP/2 (by ALPN, or the HTTP/2 preface on plain text) on `io`.
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let capture = HeadCapture::default();
        let service = connection_service(
            self.otel,
            self.policy.clone(),
            self.forward,
            capture.clone(),
            self.peer,
            self.subject,
            self.hold,
        );
        let conn = self
            .builder
            .serve_connection_with_upgrades(
                TokioIo::new(ReadTap::new(io, capture.clone())),
                service,
            )
            .into_owned();
        // Clients that go away mid-request are recorded as `cancelled` by the audit layer; a
        // head hyper refused (and answered) before any service ran, and an HTTP/2 connection
        // closed for a protocol violation, are recorded here.
        if let Err(e) = self.watcher.watch(conn).await
            && let Some(e) = e.downcast_ref::<hyper::Error>()
        {
            let engine = self.policy.get().engine.clone();
            if let Some(refused) = refusal::refused_head(e) {
                refusal::record_refused_head(&engine, self.peer, &capture, refused).await;
            } else if let Some(broken) = refusal::broken_http2(e) {
                refusal::record_broken_http2(&engine, self.peer, broken).await;
            }
        }
    }
}

/// The response future of [`connection_service`].
type ConnectionFuture = Pin<
    Box<dyn Future<Output = Result<http::Response<ClientBody>, std::convert::Infallible>> + Send>,
>;

/// The service for one connection: `CONNECT` refused; peer address and route into the
/// request, then the OpenTelemetry layer (when on), the audit layer and the forwarder, under
/// the route policy in force when the request came.
fn connection_service(
    otel: Option<OtelLayer>,
    policy: CurrentPolicy,
    forward: Forward,
    capture: HeadCapture,
    peer: SocketAddr,
    subject: Option<http::HeaderValue>,
    hold: upgrade::Hold,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<ClientBody>,
    Error = std::convert::Infallible,
    Future = ConnectionFuture,
> + Clone
+ use<> {
    hyper::service::service_fn(
        move |mut req: http::Request<Incoming>| -> ConnectionFuture {
            capture.request_started();
            let policy = policy.get();
            if req.method() == http::Method::CONNECT {
                return Box::pin(async move {
                    let refused = refusal::refuse_connect(&policy.engine, &req, peer).await;
                    Ok(refused.map(GrpcBody::new))
                });
            }
            req.extensions_mut().insert(PeerAddr(peer));
            req.extensions_mut().insert(hold.clone());
            // Only the proxy says which client certificate was verified.
            forward::strip_spellings_of(req.headers_mut(), tls::CLIENT_SUBJECT_HEADER);
            if let Some(subject) = &subject {
                req.headers_mut()
                    .insert(tls::CLIENT_SUBJECT_HEADER, subject.clone());
            }
            // The route is chosen by the canonical path, the engine's. A path without one gets no
            // route and no path to forward: the engine refuses it (400 invalid_path).
            if let Ok(path) = canonical_path(req.uri().path()).map(Cow::into_owned) {
                let (route, body, upgrades) = policy.routes.matching_rules(&path);
                if let Some(route) = route {
                    req.extensions_mut().insert(ProxyRoute(Arc::clone(route)));
                }
                if let Some(upgrades) = upgrades {
                    req.extensions_mut().insert(upgrades.clone());
                }
                if body != config::BodyRules::default() {
                    req.extensions_mut().insert(body);
                }
                req.extensions_mut().insert(AuthorisedPath(path));
            }
            let service = tower::ServiceBuilder::new()
                .option_layer(otel.clone())
                .layer(policy.layer.clone())
                .service(forward.clone());
            Box::pin(service.oneshot(req))
        },
    )
}

/// Reloads the route policy from `path` on each SIGHUP, until the task is dropped: the new
/// file is read and checked whole, then the new policy replaces the old at once; a file that
/// does not load is refused with an error line (and a metric) and the old policy kept.
async fn keep_reloading_policy(
    args: ProxyArgs,
    path: std::path::PathBuf,
    parts: EngineParts,
    policy: CurrentPolicy,
    mut hup: tokio::sync::watch::Receiver<u64>,
) {
    while hup.changed().await.is_ok() {
        let result = match config::load(&args) {
            Ok(settings) => {
                let routes = settings.routes.iter().count();
                policy.set(parts.policy(&settings, settings.routes.clone()));
                eprintln!(
                    "route policy reloaded from {} ({routes} routes); settings other than the \
                     routes, realm, durability and request-id trust take a restart",
                    path.display()
                );
                "ok"
            }
            Err(e) => {
                eprintln!("route policy reload refused, the policy in force is kept: {e:#}");
                "refused"
            }
        };
        ::metrics::counter!(metrics::CONFIG_RELOADS, "result" => result).increment(1);
    }
}
