//! [`Audit`]: the common case in a few lines — where the tokens' keys come from, the audience,
//! route policies, where the log goes and its signing key — returning the layer to add to the
//! app and a guard that shuts the writer down cleanly.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use veritrail_core::auth::{Authenticator, ConfigError, Issuer, KeyError, KeySet};
use veritrail_core::engine::{Engine, EngineBuilder, RoutePolicy};
use veritrail_core::event::EvidenceMode;
use veritrail_core::recorder::Durability;
use veritrail_log::note::NoteError;
use veritrail_log::{NoteSigner, NoteVerifier};
use veritrail_writer::{ShutdownReport, Writer, WriterConfig, WriterHandle};

use crate::OpenWriterError;

/// How long [`Audit::shutdown`] (and dropping an [`Audit`]) waits for the queue to drain.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the issuer's verification keys come from.
enum Keys {
    JwksFile(PathBuf),
    #[cfg(feature = "remote")]
    JwksUrl(String),
    #[cfg(feature = "remote")]
    Oidc(String),
    Fixed(KeySet),
}

/// A running audit: the [`Engine`] every adapter drives (with its layer for axum, tower or
/// actix-web) and the writer behind it.
///
/// It is also the guard of the writer: [`shutdown`](Self::shutdown) drains the queue, writes
/// the `stop` record and the last signed checkpoint; dropping it does the same, blocking the
/// thread up to [`SHUTDOWN_TIMEOUT`]. Keep it alive as long as the app serves.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let jwks = tmp.path().join("jwks.json");
/// # std::fs::write(&jwks, r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)?;
/// # let (log, key) = (tmp.path().join("audit-log"), tmp.path().join("audit.key"));
/// use veritrail::{Audit, Durability, RoutePolicy};
///
/// let audit = Audit::builder()
///     .jwks_file(&jwks) // or .jwks_url(URL) / .oidc(ISSUER_URL), feature `remote`
///     .issuer("https://idp.example")
///     .audience("orders-api")
///     .route("/health", RoutePolicy::public())
///     .log(log.to_str().unwrap()) // a directory, postgres://…, nats://…
///     .signing_key(&key) // made on first use (mode 0600), then reused
///     .durability(Durability::Durable)
///     .start()
///     .await?;
/// // app.layer(audit.layer()) for axum; audit.middleware() for actix-web
/// println!("give auditors this verifier key: {}", audit.verifier_key().unwrap());
/// audit.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping the Audit guard shuts its writer down"]
pub struct Audit {
    engine: Engine,
    writer: Option<Writer>,
    verifier: Option<NoteVerifier>,
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit")
            .field("engine", &self.engine)
            .field(
                "verifier",
                &self.verifier.as_ref().map(NoteVerifier::to_text),
            )
            .finish_non_exhaustive()
    }
}

impl Audit {
    /// Starts configuring an audit.
    pub fn builder() -> AuditBuilder {
        AuditBuilder {
            keys: None,
            issuer: None,
            audiences: Vec::new(),
            routes: Vec::new(),
            default_policy: RoutePolicy::authenticated(),
            durability: None,
            log: None,
            signing_key: None,
            log_name: None,
            writer_config: WriterConfig::default(),
            evidence: EvidenceMode::default(),
            issuer_with: None,
            engine_with: None,
        }
    }

    /// The request engine (cheap to clone): for adapters this type has no method for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The layer for an axum `Router` (`Router::layer`): reads the client address from
    /// `ConnectInfo` (serve with `into_make_service_with_connect_info::<SocketAddr>()`) and
    /// the route template from `MatchedPath`.
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn layer(&self) -> veritrail_tower::AuditLayer {
        veritrail_axum::layer(self.engine.clone())
    }

    /// The layer for any other tower stack (hyper, tonic): the client address comes from a
    /// [`PeerAddr`](veritrail_tower::PeerAddr) request extension.
    #[cfg(feature = "tower")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    pub fn tower_layer(&self) -> veritrail_tower::AuditLayer {
        veritrail_tower::AuditLayer::new(self.engine.clone())
    }

    /// The actix-web middleware (`App::wrap`).
    #[cfg(feature = "actix")]
    #[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
    pub fn middleware(&self) -> veritrail_actix::AuditMiddleware {
        veritrail_actix::AuditMiddleware::new(self.engine.clone())
    }

    /// The writer's handle (a [`Recorder`](veritrail_core::recorder::Recorder)), to record
    /// events of your own in the same log.
    pub fn recorder(&self) -> Option<WriterHandle> {
        self.writer.as_ref().map(Writer::handle)
    }

    /// The log's verifier key (`name+hexid+base64`), what auditors pass to `veritrail verify
    /// --key`; `None` for a `nats://` location (the sequencer signs).
    pub fn verifier_key(&self) -> Option<String> {
        self.verifier.as_ref().map(NoteVerifier::to_text)
    }

    /// Stops taking events, drains the queue (up to [`SHUTDOWN_TIMEOUT`]), writes the `stop`
    /// record and the last signed checkpoint. Requests still in flight are then refused.
    pub async fn shutdown(mut self) -> Option<ShutdownReport> {
        let writer = self.writer.take()?;
        Some(writer.shutdown(Instant::now() + SHUTDOWN_TIMEOUT).await)
    }

    /// [`shutdown`](Self::shutdown) outside async code (blocks the thread).
    pub fn shutdown_blocking(mut self) -> Option<ShutdownReport> {
        let writer = self.writer.take()?;
        Some(writer.shutdown_blocking(Instant::now() + SHUTDOWN_TIMEOUT))
    }
}

type IssuerFn = Box<dyn FnOnce(Issuer) -> Issuer + Send>;
type EngineFn = Box<dyn FnOnce(EngineBuilder) -> EngineBuilder + Send>;

/// Configures an [`Audit`]; see [`Audit::builder`]. Needs a key source, an audience (or
/// [`issuer_with`](Self::issuer_with) turning the check off) and a log location.
#[must_use = "call .start().await to get the audit"]
pub struct AuditBuilder {
    keys: Option<Keys>,
    issuer: Option<String>,
    audiences: Vec<String>,
    routes: Vec<(Option<String>, String, RoutePolicy)>,
    default_policy: RoutePolicy,
    durability: Option<Durability>,
    log: Option<String>,
    signing_key: Option<PathBuf>,
    log_name: Option<String>,
    writer_config: WriterConfig,
    evidence: EvidenceMode,
    issuer_with: Option<IssuerFn>,
    engine_with: Option<EngineFn>,
}

impl fmt::Debug for AuditBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("log", &self.log.as_deref().map(without_query))
            .field("signing_key", &self.signing_key)
            .finish_non_exhaustive()
    }
}

impl AuditBuilder {
    /// The issuer's keys from a JWKS file, read once at [`start`](Self::start). Name the
    /// issuer with [`issuer`](Self::issuer).
    pub fn jwks_file(mut self, path: impl AsRef<Path>) -> Self {
        self.keys = Some(Keys::JwksFile(path.as_ref().to_path_buf()));
        self
    }

    /// The issuer's keys from a JWKS URL, fetched at start and kept fresh (every new set is
    /// recorded in the log). Name the issuer with [`issuer`](Self::issuer). Plain `http://`
    /// is accepted only on loopback.
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.keys = Some(Keys::JwksUrl(url.into()));
        self
    }

    /// An OpenID Connect issuer: its discovery document names the JWKS URL, fetched and kept
    /// fresh as with [`jwks_url`](Self::jwks_url). The issuer (`iss`) defaults to this URL.
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn oidc(mut self, issuer_url: impl Into<String>) -> Self {
        self.keys = Some(Keys::Oidc(issuer_url.into()));
        self
    }

    /// A key set you built yourself (PEM, JWK, an HMAC secret with
    /// [`issuer_with`](Self::issuer_with)`(|i| i.allow_hmac())`).
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(Keys::Fixed(keys));
        self
    }

    /// The `iss` tokens must carry (required unless [`oidc`](Self::oidc) names it).
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuer = Some(iss.into());
        self
    }

    /// Accepts tokens whose `aud` holds `audience` (call again for more).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The policy of `route` (a route template such as `/orders/{id}`). Routes not listed
    /// need a valid token.
    pub fn route(mut self, route: impl Into<String>, policy: RoutePolicy) -> Self {
        self.routes.push((None, route.into(), policy));
        self
    }

    /// The policy of `route` for `method` only.
    pub fn route_method(
        mut self,
        method: &str,
        route: impl Into<String>,
        policy: RoutePolicy,
    ) -> Self {
        self.routes
            .push((Some(method.to_owned()), route.into(), policy));
        self
    }

    /// The policy of routes not listed with [`route`](Self::route) (default: a valid token).
    pub fn default_policy(mut self, policy: RoutePolicy) -> Self {
        self.default_policy = policy;
        self
    }

    /// How long requests of routes without their own durability wait for their event
    /// (default [`Durability::Async`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }

    /// Where the log goes: a directory (created if missing), `postgres://USER@HOST:PORT/DB?
    /// schema=S&origin=O` (feature `postgres`) or `nats://HOST:PORT/STREAM?origin=O` (feature
    /// `nats`). See [`open_writer`](crate::open_writer).
    pub fn log(mut self, location: impl Into<String>) -> Self {
        self.log = Some(location.into());
        self
    }

    /// The log's signing key: loaded from `path` if it exists, otherwise made and written
    /// there (mode 0600 on Unix, never overwritten) with its verifier key in `path.pub`, so
    /// that later runs sign the same log with the same key. Defaults to `LOG.key` beside a
    /// directory log; required for `postgres://` (a `nats://` replica signs nothing).
    pub fn signing_key(mut self, path: impl AsRef<Path>) -> Self {
        self.signing_key = Some(path.as_ref().to_path_buf());
        self
    }

    /// The name of a signing key made on first use, which becomes the log's origin (default:
    /// `veritrail/AUDIENCE`).
    pub fn log_name(mut self, name: impl Into<String>) -> Self {
        self.log_name = Some(name.into());
        self
    }

    /// The writer's queue, batching, overflow and checkpoint settings.
    pub fn writer_config(mut self, config: WriterConfig) -> Self {
        self.writer_config = config;
        self
    }

    /// What of each token the events keep (default: its SHA-256 fingerprint).
    /// [`EvidenceMode::Full`] keeps the signed token, which `veritrail verify --tokens`
    /// re-verifies against the key sets the log recorded.
    pub fn evidence(mut self, mode: EvidenceMode) -> Self {
        self.evidence = mode;
        self
    }

    /// Any other issuer setting (leeway, maximum age, algorithms, claim names, HMAC).
    pub fn issuer_with(mut self, f: impl FnOnce(Issuer) -> Issuer + Send + 'static) -> Self {
        self.issuer_with = Some(Box::new(f));
        self
    }

    /// Any other engine setting (trusted proxies, captured headers, realm, actor claims).
    pub fn engine_with(
        mut self,
        f: impl FnOnce(EngineBuilder) -> EngineBuilder + Send + 'static,
    ) -> Self {
        self.engine_with = Some(Box::new(f));
        self
    }

    /// Loads the keys (fetching them from a URL: the first fetch must succeed), loads or makes
    /// the signing key, opens the log and starts its writer, and builds the engine, which
    /// records the key sets in force in the log. Must run inside a tokio runtime.
    pub async fn start(self) -> Result<Audit, StartError> {
        let AuditBuilder {
            keys,
            issuer,
            audiences,
            routes,
            default_policy,
            durability,
            log,
            signing_key,
            log_name,
            writer_config,
            evidence,
            issuer_with,
            engine_with,
        } = self;
        let keys = keys.ok_or(StartError::Config(
            "no key source: call .jwks_file(), .jwks_url(), .oidc() or .keys()",
        ))?;
        let location = log.ok_or(StartError::Config(
            "no log location: call .log(\"audit-log\") (a directory, postgres://… or nats://…)",
        ))?;
        let mut config = match (&keys, issuer) {
            (_, Some(iss)) => Issuer::new(iss),
            #[cfg(feature = "remote")]
            (Keys::Oidc(url), None) => Issuer::new(url.clone()),
            _ => {
                return Err(StartError::Config(
                    "no issuer: call .issuer(\"https://…\") with the `iss` tokens carry",
                ));
            }
        };
        for audience in &audiences {
            config = config.audience(audience);
        }
        config = match keys {
            Keys::Fixed(keys) => config.keys(keys),
            Keys::JwksFile(path) => {
                let json = std::fs::read(&path).map_err(|source| StartError::Io {
                    path: path.clone(),
                    source,
                })?;
                let (keys, _skipped) =
                    KeySet::from_jwks(&json).map_err(|source| StartError::Jwks { path, source })?;
                config.keys(keys)
            }
            #[cfg(feature = "remote")]
            Keys::JwksUrl(url) => config.key_source(
                remote(
                    veritrail_core::auth::remote::JwksConfig::jwks_url(&url),
                    &url,
                )
                .await?,
            ),
            #[cfg(feature = "remote")]
            Keys::Oidc(url) => config.key_source(
                remote(
                    veritrail_core::auth::remote::JwksConfig::oidc_issuer(&url),
                    &url,
                )
                .await?,
            ),
        };
        if let Some(f) = issuer_with {
            config = f(config);
        }
        let authenticator = Authenticator::builder().issuer(config).build()?;

        let replica = location.starts_with("nats://");
        let key_path = match signing_key {
            Some(path) => Some(path),
            None if replica => None,
            None if location.contains("://") => {
                return Err(StartError::Config(
                    "a log in a database needs .signing_key(PATH) (made there on first use)",
                ));
            }
            None => Some(PathBuf::from(format!(
                "{}.key",
                location.trim_end_matches(['/', '\\'])
            ))),
        };
        let name = log_name.unwrap_or_else(|| {
            format!(
                "veritrail/{}",
                audiences.first().map_or("audit", String::as_str)
            )
        });
        let signer = match &key_path {
            Some(path) => load_or_create_signing_key(path, &name)?,
            None => NoteSigner::generate(&name)?, // a replica holds no key: never used
        };
        let verifier = (!replica).then(|| signer.verifier());
        let writer = tokio::task::spawn_blocking(move || {
            crate::open_writer(&location, signer, writer_config)
        })
        .await
        .map_err(|e| {
            StartError::Config(if e.is_panic() {
                "opening the log panicked"
            } else {
                "opening the log was cancelled"
            })
        })??;

        let mut policy = default_policy;
        if let Some(durability) = durability {
            policy = policy.durability(durability);
        }
        let mut engine = Engine::builder(authenticator, writer.handle())
            .default_policy(policy)
            .evidence(evidence);
        for (method, route, policy) in routes {
            engine = match method {
                Some(method) => engine.route_method(&method, route, policy),
                None => engine.route(route, policy),
            };
        }
        if let Some(f) = engine_with {
            engine = f(engine);
        }
        Ok(Audit {
            engine: engine.build(),
            writer: Some(writer),
            verifier,
        })
    }
}

#[cfg(feature = "remote")]
async fn remote(
    config: veritrail_core::auth::remote::JwksConfig,
    url: &str,
) -> Result<std::sync::Arc<veritrail_core::auth::remote::JwksStore>, StartError> {
    let loopback_http = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split(['/', '?']).next())
        .is_some_and(|authority| {
            let host = authority
                .rsplit_once(':')
                .map_or(authority, |(host, _port)| host);
            let host = host.trim_matches(['[', ']']);
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
    let store =
        veritrail_core::auth::remote::JwksStore::connect(config.allow_insecure_http(loopback_http))
            .await
            .map_err(|source| StartError::Fetch {
                url: url.to_owned(),
                source,
            })?;
    Ok(std::sync::Arc::new(store))
}

/// The log signing key in the file `path`, or — when there is none — a new one named `name`
/// (the log's origin), written there (mode 0600 on Unix, never replacing a file) with its
/// verifier key in `path.pub`. What [`AuditBuilder::signing_key`] does, for code that builds
/// its writer itself.
pub fn load_or_create_signing_key(path: &Path, name: &str) -> Result<NoteSigner, StartError> {
    let io = |source| StartError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => NoteSigner::from_text(text.trim()).map_err(|source| StartError::Key {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = NoteSigner::generate(name)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            write_new(path, signer.to_text().as_bytes(), 0o600).map_err(io)?;
            let mut public = path.as_os_str().to_owned();
            public.push(".pub");
            let public = PathBuf::from(public);
            std::fs::write(&public, format!("{}\n", signer.verifier().to_text())).map_err(
                |source| StartError::Io {
                    path: public.clone(),
                    source,
                },
            )?;
            Ok(signer)
        }
        Err(e) => Err(io(e)),
    }
}

/// Creates `path` (failing if it exists) with `mode` on Unix, writes `bytes` and a newline,
/// and syncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn without_query(location: &str) -> &str {
    location.split('?').next().unwrap_or_default()
}

/// Why [`AuditBuilder::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Something the builder needs was not given.
    #[error("{0}")]
    Config(&'static str),
    /// A file could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The JWKS file is not a usable key set.
    #[error("{}: not a usable JWKS: {source}", .path.display())]
    Jwks {
        /// The file.
        path: PathBuf,
        /// Why.
        source: KeyError,
    },
    /// The key set could not be fetched.
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    #[error("cannot load the keys from {url}: {source}")]
    Fetch {
        /// The JWKS or issuer URL.
        url: String,
        /// Why.
        source: veritrail_core::auth::remote::JwksError,
    },
    /// The signing key file does not hold a signing key.
    #[error("{}: not a veritrail signing key: {source}", .path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        source: NoteError,
    },
    /// A signing key could not be made (the log name is not a valid key name).
    #[error("cannot make a signing key: {0}")]
    NewKey(#[from] NoteError),
    /// The issuer settings are inconsistent.
    #[error(transparent)]
    Auth(#[from] ConfigError),
    /// The log could not be opened.
    #[error(transparent)]
    Writer(#[from] OpenWriterError),
}
