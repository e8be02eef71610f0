//! `veritrail serve`: the auditor's web view of a log and the JSON API its pages use.
//!
//! Read-only. Pages are rendered on the server from the stored indexes ([`trail`]): the events
//! with the filters of `veritrail events` and paging by position, one event with its exact
//! record and its `.tlog-proof`, an overview with charts, the checkpoint history with the
//! consistency proof between each two. The event page's Verify button checks the record in
//! the reader's browser (WebCrypto SHA-256 and Ed25519, `assets/view.js`) against a verifier
//! key the reader pinned there, so a server that serves a changed record, a wrong proof or
//! another key is caught by the page it serves.
//!
//! Access goes through the project's own layer, as in `veritrail proxy`: a token from the
//! configured issuer, with the required scopes or roles (default `audit:read`), read from the
//! `Authorization` header or, for a browser, from the cookie the login page sets. Every use of
//! the view — each page, search (with its filters), event and proof — is recorded in the access
//! log. `--no-auth` serves anyone who can connect, for local use, and says so.
//!
//! Every response carries a strict Content-Security-Policy: scripts, styles and requests only
//! from the view itself, whose assets are compiled into the binary; nothing is fetched from
//! elsewhere.

mod api;
mod html;
mod pages;
mod trail;
mod verification;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use veritrail_core::auth::{Authenticator, Issuer, KeySet, TokenSource};
use veritrail_core::engine::{AuditContext, CaptureRules, Engine, RoutePolicy};

use crate::cli::ServeArgs;
use crate::keys;
use crate::keysource::{self, KeySource};
use crate::telemetry::Telemetry;
use trail::Trail;

/// The cookie the login page sets: the bearer token, for a browser's requests.
pub(crate) const TOKEN_COOKIE: &str = "veritrail_token";

/// What every response carries: nothing runs or loads but the view's own assets.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The query parameters a search is recorded with in the access log.
const SEARCH_PARAMS: [&str; 9] = [
    "sub", "since", "until", "route", "action", "outcome", "status", "before", "from",
];

/// What the handlers share.
pub(crate) struct View {
    pub(crate) trail: Arc<Trail>,
    /// Whether readers are authenticated (the pages say when they are not).
    pub(crate) auth: bool,
    /// The overview's full verification.
    pub(crate) verification: Arc<verification::Verification>,
    /// Room for live streams (`/api/v1/events/stream`): each holds a task and reads on every
    /// change of the log, so there are at most [`MAX_LIVE_STREAMS`].
    pub(crate) live_streams: Arc<tokio::sync::Semaphore>,
}

/// Live streams open at once at most; more are refused with 503.
pub(crate) const MAX_LIVE_STREAMS: usize = 64;

/// Runs the view until SIGTERM or Ctrl-C.
pub(crate) fn run(args: &ServeArgs) -> Result<()> {
    let listen: SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen {:?} is not an address like 127.0.0.1:8080",
            args.listen
        )
    })?;
    let auth = Auth::from_args(args)?;
    let verify_key = args
        .verify_key
        .as_deref()
        .map(keys::read_verifier)
        .transpose()?;
    let trail = Trail::open(&args.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let verification = Arc::new(verification::Verification::new(verify_key));
    runtime.block_on(serve(trail, verification, listen, auth, args))
}

/// Who may read, checked before anything starts.
enum Auth {
    /// `--no-auth`.
    Nobody,
    /// Tokens of `issuer` for `audience`, holding `scopes` and `roles`.
    Tokens {
        keys: KeySource,
        issuer: String,
        audience: String,
        scopes: Vec<String>,
        roles: Vec<String>,
    },
}

impl Auth {
    fn from_args(args: &ServeArgs) -> Result<Auth> {
        if args.no_auth {
            return Ok(Auth::Nobody);
        }
        let keys = KeySource::from_args(&args.tokens.keys)?.context(
            "give the token-checking keys (--jwks, --oidc or --hs-secret-file, with --issuer \
             and --audience, as for `veritrail proxy`), or --no-auth to serve without tokens \
             on a machine only you can reach",
        )?;
        let issuer = args
            .tokens
            .issuer
            .clone()
            .or_else(|| keys.default_issuer().map(str::to_owned))
            .context("--issuer is required with --jwks or --hs-secret-file")?;
        let audience = args
            .tokens
            .audience
            .clone()
            .context("--audience is required")?;
        if args.access_log.is_none() {
            bail!(
                "--access-log DIR and --access-key KEYFILE are required: every use of the view \
                 is recorded there (make a key with `veritrail keygen NAME --out KEYFILE`)"
            );
        }
        let mut scopes = args.scope.clone();
        if scopes.is_empty() && args.role.is_empty() {
            scopes.push("audit:read".to_owned());
        }
        Ok(Auth::Tokens {
            keys,
            issuer,
            audience,
            scopes,
            roles: args.role.clone(),
        })
    }
}

async fn serve(
    trail: Arc<Trail>,
    verification: Arc<verification::Verification>,
    listen: SocketAddr,
    auth: Auth,
    args: &ServeArgs,
) -> Result<()> {
    let telemetry = Telemetry::from_env("veritrail-serve")?;
    let writer = match (&args.access_log, &args.access_key) {
        (Some(dir), Some(key)) => {
            if same_place(dir, trail.location()) {
                bail!(
                    "--access-log {} is the log being served: give the access log a directory \
                     of its own",
                    dir.display()
                );
            }
            let signer = keys::read_signer(key)?;
            Some(telemetry.open_writer(dir, signer, false)?)
        }
        _ => None,
    };
    let engine = match (&auth, &writer) {
        (Auth::Tokens { .. }, None) => unreachable!("checked by Auth::from_args"),
        (Auth::Nobody, None) => None,
        (Auth::Nobody, Some(writer)) => Some(engine(anyone()?, RoutePolicy::public(), writer)),
        (
            Auth::Tokens {
                keys,
                issuer,
                audience,
                scopes,
                roles,
            },
            Some(writer),
        ) => {
            // The engine records the key sets in force in the access log.
            let authenticator = keysource::authenticator(
                keys,
                (issuer, audience),
                &[
                    TokenSource::AuthorizationBearer,
                    TokenSource::Cookie(TOKEN_COOKIE.to_owned()),
                ],
            )
            .await?
            .authenticator;
            let mut policy = RoutePolicy::authenticated();
            policy.scopes = scopes.clone();
            policy.roles = roles.clone();
            Some(engine(authenticator, policy, writer))
        }
    };
    let view = Arc::new(View {
        trail: Arc::clone(&trail),
        auth: matches!(auth, Auth::Tokens { .. }),
        verification,
        live_streams: Arc::new(tokio::sync::Semaphore::new(MAX_LIVE_STREAMS)),
    });
    // Inside the audit layer, so that a refused cross-site POST is recorded too.
    let mut app = router(view).layer(axum::middleware::from_fn(same_site_posts));
    if let Some(engine) = engine {
        app = app.layer(veritrail_axum::layer(engine));
    }
    let app = app.layer(axum::middleware::from_fn(protect));

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    // The first line on stdout: scripts and tests read the port from it.
    println!("veritrail serve listening on http://{addr}");
    match (&auth, &args.access_log) {
        (Auth::Nobody, access) => eprintln!(
            "warning: --no-auth: anyone who can reach {addr} reads {} without a token{}",
            trail.location().display(),
            match access {
                Some(dir) => format!("; their use is recorded in {}", dir.display()),
                None => " and nothing records who did".to_owned(),
            }
        ),
        (Auth::Tokens { scopes, roles, .. }, Some(dir)) => eprintln!(
            "showing {}; readers need a token with {}; every use recorded in {}",
            trail.location().display(),
            requirement(scopes, roles),
            dir.display()
        ),
        (Auth::Tokens { .. }, None) => unreachable!("checked by Auth::from_args"),
    }
    tokio::spawn(Arc::clone(&trail).follow());
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(crate::signal::shutdown_signal())
    .await
    .context("the server failed");
    if let Some(writer) = writer {
        let report = writer
            .shutdown(Instant::now() + Duration::from_secs(10))
            .await;
        eprintln!(
            "stopped: {} uses recorded in the access log, {} dropped; last checkpoint at size {}",
            report.flushed, report.dropped, report.size
        );
        if let Some(why) = report.error {
            bail!("the access log failed: {why}");
        }
    }
    telemetry.shutdown().await;
    served
}

/// `scope audit:read`, `scopes a, b and role r`.
fn requirement(scopes: &[String], roles: &[String]) -> String {
    let scopes = scopes.iter().map(|s| format!("scope {s}"));
    let roles = roles.iter().map(|r| format!("role {r}"));
    scopes.chain(roles).collect::<Vec<_>>().join(" and ")
}

/// Whether two paths name the same directory (as far as can be told before one exists).
fn same_place(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The engine that records every use into the access log, with `policy` for the view's
/// routes; the login page and the assets are public.
fn engine(
    authenticator: Authenticator,
    policy: RoutePolicy,
    writer: &veritrail_writer::Writer,
) -> Engine {
    let mut capture = CaptureRules::new();
    for name in SEARCH_PARAMS {
        capture = capture.query_param(name);
    }
    Engine::builder(authenticator, writer.handle())
        .default_policy(policy)
        .route("/login", RoutePolicy::public())
        .route("/logout", RoutePolicy::public())
        .route("/assets/{name}", RoutePolicy::public())
        .capture(capture)
        .build()
}

/// `--no-auth` with an access log: an authenticator that is never asked (every route is
/// public), since the engine records through one.
fn anyone() -> Result<Authenticator> {
    Authenticator::builder()
        .issuer(
            Issuer::new("urn:veritrail:serve:no-auth")
                .keys(KeySet::empty())
                .audience("urn:veritrail:serve:no-auth"),
        )
        .build()
        .context("cannot set up the access log's recorder")
}

/// The view's routes.
fn router(view: Arc<View>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/events", get(pages::events))
        .route("/events/{index}", get(pages::event))
        .route("/checkpoints", get(pages::checkpoints))
        .route("/verify", post(pages::verify_log))
        .route("/login", get(pages::login).post(pages::log_in))
        .route("/logout", post(pages::log_out))
        .route("/assets/{name}", get(asset))
        .route("/api/v1/events", get(api::events))
        .route("/api/v1/events/stream", get(api::stream))
        .route("/api/v1/events/{index}", get(api::event))
        .route("/api/v1/proof/{index}", get(api::proof))
        .route("/api/v1/checkpoint", get(api::checkpoint))
        .route("/api/v1/consistency", get(api::consistency))
        .route("/api/v1/openapi.json", get(api::openapi))
        .with_state(view)
}

/// Names the action of a request in the access log (when there is one).
pub(crate) fn audit(ctx: Option<&AuditContext>, action: &str, target: Option<String>) {
    if let Some(ctx) = ctx {
        ctx.set_action(action);
        if let Some(target) = target {
            ctx.set_target(target);
        }
    }
}

/// Refuses (403) a POST (`/login`, `/logout`, `/verify`) sent by a page of another site:
/// browsers say where a request comes from in `Sec-Fetch-Site` (on localhost and HTTPS) and
/// `Origin`, which must be this view's own (`null`, what a page hiding its origin sends, is
/// refused; the view's own pages send theirs, under `Referrer-Policy: same-origin`). Without
/// this another site could log a reader in under its own token (login CSRF) or start
/// verifications. Clients that send neither header (not browsers) are not affected.
async fn same_site_posts(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() == axum::http::Method::POST {
        let headers = request.headers();
        let fetched_from_elsewhere = headers
            .get("sec-fetch-site")
            .is_some_and(|site| site != "same-origin" && site != "none");
        let other_origin = headers.get(header::ORIGIN).is_some_and(|origin| {
            let own = origin
                .as_bytes()
                .strip_prefix(b"http://")
                .or_else(|| origin.as_bytes().strip_prefix(b"https://"));
            own.is_none() || own != headers.get(header::HOST).map(HeaderValue::as_bytes)
        });
        if fetched_from_elsewhere || other_origin {
            return (
                StatusCode::FORBIDDEN,
                "refused: this form was sent from a page of another site",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// The security headers every response carries; a browser refused for want of a token is
/// shown the way to the login page (the `WWW-Authenticate` challenge stays).
async fn protect(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let browser = !request.uri().path().starts_with("/api/")
        && request
            .headers()
            .get(header::ACCEPT)
            .is_some_and(|a| a.as_bytes().windows(9).any(|w| w == b"text/html"));
    let mut response = next.run(request).await;
    if browser && response.status() == StatusCode::UNAUTHORIZED {
        let (parts, _) = response.into_parts();
        let mut page = pages::unauthorized().into_response();
        *page.status_mut() = parts.status;
        for (name, value) in &parts.headers {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                page.headers_mut().insert(name.clone(), value.clone());
            }
        }
        response = page;
    }
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Nothing leaves for other sites; the view's own forms name their origin (see
    // `same_site_posts`).
    set(header::REFERRER_POLICY, "same-origin");
    set(header::X_FRAME_OPTIONS, "DENY");
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The embedded assets: no file is read at run time, nothing is fetched from elsewhere.
async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static str, &'static str) = match name.as_str() {
        "style.css" => (include_str!("assets/style.css"), "text/css; charset=utf-8"),
        "view.js" => (
            include_str!("assets/view.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
