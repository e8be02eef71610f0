//! The command-line grammar (clap derive). Names and flags are fixed by DESIGN.md.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// veritrail: a tamper-evident audit log you can verify offline.
///
/// Exit codes: 0 success, 1 verification failure or invalid input data, 2 usage or I/O error.
#[derive(Debug, Parser)]
#[command(name = "veritrail", version, about, long_about = None)]
pub(crate) struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// One subcommand per job.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Writes a new signed-note Ed25519 private key (mode 0600) and prints its verifier key.
    Keygen(KeygenArgs),
    /// Appends each stdin line (one JSON object) as one record, then signs a checkpoint.
    Append(AppendArgs),
    /// Prints the latest signed checkpoint, verbatim.
    Checkpoint(CheckpointArgs),
    /// Prints a c2sp.org/tlog-proof@v1 file for one record against the latest checkpoint.
    Prove(ProveArgs),
    /// Prints a consistency proof from an older checkpoint to the latest one.
    Consistency(ConsistencyArgs),
    /// Verifies a whole log: records, tree, every checkpoint, and --against checkpoints.
    Verify(VerifyArgs),
    /// Verifies a .tlog-proof file offline and prints the record it carries.
    VerifyProof(VerifyProofArgs),
    /// Lists the audit events of a log as a table (or the stored records with --json).
    Events(EventsArgs),
    /// Follows a log: prints events as they are appended, until interrupted.
    Tail(TailArgs),
    /// Exports the audit events as OCSF JSON (one object per line) for a SIEM.
    Export(ExportArgs),
    /// Copies a log between stores (directory ↔ PostgreSQL), verifying as it goes.
    #[cfg(feature = "postgres")]
    Copy(CopyArgs),
    /// The quick start: a real server, real tokens, real traffic, then verification.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// A development identity provider: keys kept in DIR (made on first use, then reused),
    /// their JWKS, the issuer name, and tokens for chosen subjects and scopes.
    #[cfg(feature = "demo")]
    DevIdp(DevIdpArgs),
    /// An authenticating, auditing reverse proxy in front of any HTTP service.
    #[cfg(feature = "proxy")]
    Proxy(Box<ProxyArgs>),
    /// The auditor's web view of a log and its JSON API (`/api/v1`), read-only: search the
    /// events, and verify any of them in the browser without trusting the server.
    #[cfg(feature = "serve")]
    Serve(Box<ServeArgs>),
    /// A C2SP tlog-witness: cosigns the checkpoints of the logs it is given, each only if it
    /// extends the last one it cosigned (POST /add-checkpoint).
    #[cfg(feature = "witness")]
    Witness(WitnessArgs),
    /// Works with JWTs: `token verify` checks one as the proxy would.
    #[cfg(feature = "token")]
    Token(TokenArgs),
    /// Integrates a NATS JetStream stream of events into one signed log; one active per
    /// origin (a lease), standbys take over.
    #[cfg(feature = "nats")]
    Sequencer(SequencerArgs),
    /// Checks that every event still in a JetStream stream is in the log exactly once.
    #[cfg(feature = "nats")]
    Reconcile(ReconcileArgs),
}

/// `veritrail sequencer --from nats://HOST:PORT/STREAM --origin ORIGIN --log DIR --key KEYFILE
/// [--init [--replicas N]]`.
#[cfg(feature = "nats")]
#[derive(Debug, clap::Args)]
pub(crate) struct SequencerArgs {
    /// The stream: `nats://HOST:PORT/STREAM` (`?origin=` may stand in for --origin).
    #[arg(long, value_name = "URL")]
    pub(crate) from: String,
    /// The log's origin (its checkpoints' origin line); the events subject is
    /// `veritrail.<origin>.events`.
    #[arg(long, value_name = "ORIGIN")]
    pub(crate) origin: Option<String>,
    /// The log: a directory (created if needed) or `postgres://USER@HOST:PORT/DB?schema=S`
    /// (its origin is --origin).
    #[arg(long, value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// The log's signing key (only the sequencers hold it).
    #[arg(long, value_name = "KEYFILE")]
    pub(crate) key: PathBuf,
    /// Create the stream and the lease bucket (or bring them to these settings) first.
    #[arg(long)]
    pub(crate) init: bool,
    /// With --init: copies of each event in the cluster (3 in production; 1 on a single
    /// server).
    #[arg(long, value_name = "N", default_value_t = 3, requires = "init")]
    pub(crate) replicas: usize,
    /// Sign a checkpoint after this many events…
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub(crate) checkpoint_every: u64,
    /// …and at least this often, in milliseconds, while events arrive.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub(crate) checkpoint_interval_ms: u64,
    /// The lease's time to live in milliseconds: a standby takes over about this long after
    /// the active sequencer dies (used when the lease bucket is created).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub(crate) lease_ttl_ms: u64,
    /// Print the final report as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Submit each new checkpoint to this witness (`URL=WKEY`) and store its cosignature in
    /// the log (a directory log), off the integration path. Repeatable.
    #[arg(long = "witness", value_name = "URL=WKEY")]
    pub(crate) witness: Vec<String>,
}

/// `veritrail reconcile nats://HOST:PORT/STREAM?origin=ORIGIN --log LOG`.
#[cfg(feature = "nats")]
#[derive(Debug, clap::Args)]
pub(crate) struct ReconcileArgs {
    /// The stream: `nats://HOST:PORT/STREAM?origin=ORIGIN`.
    #[arg(value_name = "URL")]
    pub(crate) from: String,
    /// The origin, if the URL does not give it.
    #[arg(long, value_name = "ORIGIN")]
    pub(crate) origin: Option<String>,
    /// The log the sequencer writes (a directory or `postgres://…&origin=O`).
    #[arg(long, value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `veritrail copy SRC DST --key KEYFILE`.
#[cfg(feature = "postgres")]
#[derive(Debug, clap::Args)]
pub(crate) struct CopyArgs {
    /// The log to copy: a directory, or `postgres://…?origin=O`.
    #[arg(value_name = "SRC")]
    pub(crate) src: PathBuf,
    /// Where to: a directory that does not exist yet (or is empty), or `postgres://…` (the
    /// origin defaults to the source's; the log must not exist there yet).
    #[arg(value_name = "DST")]
    pub(crate) dst: PathBuf,
    /// The log's private key. The copy is signed again with it at each of the source's
    /// checkpoint sizes, and Ed25519 signatures are deterministic, so the copy's checkpoints
    /// are the source's byte for byte (checked as it goes): checkpoints held elsewhere
    /// verify against either store.
    #[arg(long, value_name = "KEYFILE")]
    pub(crate) key: PathBuf,
}

/// `veritrail demo [--dir DIR]`.
#[cfg(feature = "demo")]
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Where the demo writes its log, keys and proof. A directory made by an earlier demo is
    /// cleared; any other non-empty directory is refused.
    #[arg(long, value_name = "DIR", default_value = "veritrail-demo")]
    pub(crate) dir: PathBuf,
}

/// `veritrail dev-idp --dir DIR [--token SUB[=SCOPES]]... [--audience AUD] [--ttl SECS]`.
#[cfg(feature = "demo")]
#[derive(Debug, clap::Args)]
pub(crate) struct DevIdpArgs {
    /// Where the keys (idp-keys.json, mode 0600), jwks.json, issuer.txt and tokens/ go.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// A token to mint into DIR/tokens/SUB.jwt: the subject, then `=` and space- or
    /// comma-separated scopes (repeatable).
    #[arg(long = "token", value_name = "SUB[=SCOPES]")]
    pub(crate) tokens: Vec<String>,
    /// The audience (`aud`) of the tokens.
    #[arg(long, value_name = "AUD", default_value = "orders-api")]
    pub(crate) audience: String,
    /// How long the tokens are valid, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub(crate) ttl: u64,
}

/// `veritrail proxy --listen ADDR --upstream URL (--jwks FILE|URL | --oidc ISSUER_URL |
/// --hs-secret-file FILE) --issuer ISS --audience AUD --log LOG --key KEYFILE
/// [--durability D] [--config FILE]`. Flags override the config file.
#[cfg(feature = "proxy")]
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ProxyArgs {
    /// A TOML file with any of these settings plus per-route policy (`[[route]]` tables:
    /// `prefix`, `scopes`, `roles`, `public`, `optional`, `durability`).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The address to listen on, e.g. `127.0.0.1:8080`.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// The service to forward to, e.g. `http://127.0.0.1:3000` (a path is prefixed to every
    /// request's path).
    #[arg(long, value_name = "URL")]
    pub(crate) upstream: Option<String>,
    /// Which tokens are accepted.
    #[command(flatten)]
    pub(crate) tokens: TokenRulesArgs,
    /// The audit log: a directory (created if missing), or
    /// `postgres://USER@HOST:PORT/DB?schema=S&origin=O` (the origin defaults to the key's
    /// name; schema and log are created if missing).
    #[arg(long, value_name = "LOG")]
    pub(crate) log: Option<PathBuf>,
    /// The log's private key file (`veritrail keygen`).
    #[arg(long, value_name = "KEYFILE")]
    pub(crate) key: Option<PathBuf>,
    /// How durably events are recorded by default (routes may override it).
    #[arg(long, value_enum, value_name = "D")]
    pub(crate) durability: Option<DurabilityArg>,
    /// Send the caller's identity to the upstream in `X-Auth-Subject`, `X-Auth-Issuer`,
    /// `X-Auth-Scopes` and `X-Auth-Request-Id` (always stripped from incoming requests).
    #[arg(long)]
    pub(crate) identity_headers: bool,
    /// Seconds to wait for the upstream's response head before answering 504.
    #[arg(long, value_name = "SECS")]
    pub(crate) upstream_timeout: Option<u64>,
    /// Seconds that requests in flight get to finish after SIGTERM or Ctrl-C.
    #[arg(long, value_name = "SECS")]
    pub(crate) shutdown_grace: Option<u64>,
    /// The one header the trusted proxies (`trusted_proxies` in the config file) write the
    /// client's address into: `x-forwarded-for` (the default) or `forwarded`. The other is
    /// never believed.
    #[arg(long, value_name = "HEADER")]
    pub(crate) forwarded_header: Option<String>,
    /// Keep a client's `X-Request-Id` as the request id (by default each request gets a fresh
    /// one: a client could otherwise name its events as it likes).
    #[arg(long)]
    pub(crate) trust_request_id: bool,
    /// What to do with incoming headers whose names hold `_` (many servers read
    /// `X-Auth_Subject` as `X-Auth-Subject`): `drop` them (the default, as nginx does) or
    /// `keep` them. Look-alikes of the headers the proxy sets are dropped either way.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub(crate) underscores_in_headers: Option<UnderscoresArg>,
    /// Open client connections at most (default 10000, and no more than the open-file limit
    /// allows); more are closed at once with a 503.
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<usize>,
    /// Open client connections at most from one address, an IPv6 /64 counting as one
    /// (default 256; trusted proxies are exempt).
    #[arg(long, value_name = "N")]
    pub(crate) max_connections_per_ip: Option<usize>,
    /// Open a log that holds records but no checkpoint history (its `checkpoints` file is
    /// missing or empty), adopting those records instead of refusing the log. Nothing signed
    /// vouches for them, so use this only when you know why the history is gone; a
    /// `recovered` record in the log says how many records were adopted. Records that
    /// disagree with their stored hashes are refused all the same.
    #[arg(long)]
    pub(crate) recover: bool,
    /// Submit each new checkpoint to this witness (`URL=WKEY`: its submission URL and
    /// verifier key) and store its cosignature in the log, off the request path. Repeatable.
    /// A witness that is down or refuses is reported on stderr; requests go on.
    #[arg(long = "witness", value_name = "URL=WKEY")]
    pub(crate) witness: Vec<String>,
    /// Serve `/metrics` (Prometheus text format), `/healthz` and `/readyz` on this address,
    /// e.g. `127.0.0.1:9090` (off unless given). Keep it off the public network.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_listen: Option<String>,
    /// Serve TLS (1.2 and 1.3 only) with this certificate chain (PEM); needs --tls-key. The
    /// files are read again on SIGHUP and when they change, without dropping connections.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Require client certificates issued by these CAs (PEM) on TLS connections (mTLS): a
    /// client without one is refused at the handshake; the subject is recorded in each event
    /// and sent upstream in `X-Client-Cert-Subject`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_client_ca: Option<PathBuf>,
    /// Trust these CAs (PEM) for an `https://` upstream instead of the system's.
    #[arg(long, value_name = "FILE")]
    pub(crate) upstream_ca: Option<PathBuf>,
    /// Do not verify an `https://` upstream's certificate. Anyone on the path can then read
    /// and change the traffic: for tests only. Logged loudly at start.
    #[arg(long)]
    pub(crate) upstream_insecure: bool,
    /// Speak HTTP/2 with prior knowledge (h2c) to an `http://` upstream, as gRPC servers expect.
    #[arg(long)]
    pub(crate) upstream_h2c: bool,
}

/// `veritrail serve LOG --listen ADDR (--no-auth | (--jwks FILE|URL | --oidc ISSUER_URL |
/// --hs-secret-file FILE) --issuer ISS --audience AUD [--scope S]... [--role R]...
/// --access-log DIR --access-key KEYFILE)`.
#[cfg(feature = "serve")]
#[derive(Debug, Default, clap::Args)]
pub(crate) struct ServeArgs {
    /// The log to show (read-only: nothing in it changes).
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) listen: String,
    /// Which tokens are accepted (as by `veritrail proxy`).
    #[command(flatten)]
    pub(crate) tokens: TokenRulesArgs,
    /// A scope every reader's token must hold (repeatable: all of them). Default `audit:read`,
    /// unless --role is given.
    #[arg(long, value_name = "SCOPE")]
    pub(crate) scope: Vec<String>,
    /// A role every reader's token must hold (repeatable: all of them).
    #[arg(long, value_name = "ROLE")]
    pub(crate) role: Vec<String>,
    /// Serve without checking tokens, for local use: anyone who can reach ADDR reads the log.
    #[arg(long, conflicts_with_all = ["jwks", "oidc", "hs_secret_file", "issuer", "audience", "scope", "role"])]
    pub(crate) no_auth: bool,
    /// The log that records every use of the view (who searched for what, who downloaded which
    /// proof): created if missing. Required unless --no-auth.
    #[arg(long, value_name = "DIR", requires = "access_key")]
    pub(crate) access_log: Option<PathBuf>,
    /// The access log's private key file (`veritrail keygen`).
    #[arg(long, value_name = "KEYFILE", requires = "access_log")]
    pub(crate) access_key: Option<PathBuf>,
    /// The key the overview's full verification checks the log with: its text
    /// (`name+hexid+base64`) or a file holding it. Default: the key stored in the log, which
    /// proves the log intact but not that it is the log you think.
    #[arg(long, value_name = "VKEY")]
    pub(crate) verify_key: Option<String>,
}

/// `--underscores-in-headers drop|keep`.
#[cfg(feature = "proxy")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum UnderscoresArg {
    /// Drop incoming headers whose names hold `_`.
    Drop,
    /// Forward them (identity-header look-alikes are still dropped).
    Keep,
}

/// The token rules `proxy` and `serve` share: the key source, `--issuer`, `--audience`.
#[cfg(any(feature = "proxy", feature = "serve"))]
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct TokenRulesArgs {
    /// Where the token-checking keys come from.
    #[command(flatten)]
    pub(crate) keys: KeySourceArgs,
    /// The tokens' required issuer (`iss`); with --oidc, defaults to that URL.
    #[arg(long, value_name = "ISS")]
    pub(crate) issuer: Option<String>,
    /// The tokens' required audience (`aud`).
    #[arg(long, value_name = "AUD")]
    pub(crate) audience: Option<String>,
}

/// `--jwks FILE|URL | --oidc ISSUER_URL | --hs-secret-file FILE`: at most one.
#[cfg(feature = "token")]
#[derive(Debug, Clone, Default, clap::Args)]
#[group(id = "key_source", multiple = false)]
pub(crate) struct KeySourceArgs {
    /// The identity provider's public keys: a JWKS file, or an http(s) URL to fetch and
    /// refresh them from.
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) jwks: Option<String>,
    /// An OpenID Connect issuer whose discovery document names the JWKS.
    #[arg(long, value_name = "ISSUER_URL")]
    pub(crate) oidc: Option<String>,
    /// A file holding a shared HMAC secret (HS256/384/512 tokens).
    #[arg(long, value_name = "FILE")]
    pub(crate) hs_secret_file: Option<PathBuf>,
}

/// `veritrail token SUBCOMMAND`.
#[cfg(feature = "token")]
#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// What to do with a token.
    #[command(subcommand)]
    pub(crate) command: TokenCommand,
}

/// The `token` subcommands.
#[cfg(feature = "token")]
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Checks a token exactly as `veritrail proxy` would: prints its claims and exits 0 when
    /// it would be accepted, prints the reason code and exits 1 when not.
    Verify(TokenVerifyArgs),
}

/// `veritrail token verify TOKEN (--jwks FILE|URL | --oidc ISSUER_URL | --hs-secret-file FILE)
/// --issuer ISS --audience AUD [--json]`.
#[cfg(feature = "token")]
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("required_key_source")
        .args(["jwks", "oidc", "hs_secret_file"])
        .required(true)
))]
pub(crate) struct TokenVerifyArgs {
    /// The token (the JWT itself), or `-` to read it from stdin, which keeps it out of the
    /// shell history and the process list.
    #[arg(value_name = "TOKEN")]
    pub(crate) token: String,
    /// Where the token-checking keys come from.
    #[command(flatten)]
    pub(crate) keys: KeySourceArgs,
    /// The required issuer (`iss`); with --oidc, defaults to that URL.
    #[arg(long, value_name = "ISS", required_unless_present = "oidc")]
    pub(crate) issuer: Option<String>,
    /// The required audience (`aud`).
    #[arg(long, value_name = "AUD")]
    pub(crate) audience: String,
    /// Print the verdict as one JSON object: `{"accepted":true,"claims":{...},...}` or
    /// `{"accepted":false,"code":...,"message":...}`.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The `--durability` values.
#[cfg(feature = "proxy")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum DurabilityArg {
    /// The answer does not wait for the event to be written.
    Async,
    /// The answer waits until the event is fsynced.
    Durable,
    /// An intent event is fsynced before the request is forwarded; then the event, durably.
    WriteAhead,
}

/// `veritrail keygen NAME --out KEYFILE`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// The key name (also the default origin of logs signed with it), e.g. `audit.example.com/api`.
    pub(crate) name: String,
    /// Where to write the private key (created with mode 0600). The verifier key is also
    /// written to KEYFILE.pub.
    #[arg(long, value_name = "KEYFILE")]
    pub(crate) out: PathBuf,
    /// Overwrite KEYFILE and KEYFILE.pub if they exist.
    #[arg(long)]
    pub(crate) force: bool,
    /// Make a witness key (C2SP cosignature/v1, signature type 0x04) for `veritrail witness`,
    /// instead of a log key.
    #[arg(long)]
    pub(crate) witness: bool,
}

/// `veritrail append LOG --key KEYFILE`.
#[derive(Debug, clap::Args)]
pub(crate) struct AppendArgs {
    /// The log directory (created if missing).
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// The private key file written by `veritrail keygen`.
    #[arg(long, value_name = "KEYFILE")]
    pub(crate) key: PathBuf,
    /// The origin line of a new log's checkpoints (default: the key's name). Fixed at creation.
    #[arg(long)]
    pub(crate) origin: Option<String>,
    /// Open a log that holds records but no checkpoint history (its `checkpoints` file is
    /// missing or empty), adopting those records instead of refusing the log. Nothing signed
    /// vouches for them, so use this only when you know why the history is gone; a
    /// `recovered` record in the log says how many records were adopted. Records that
    /// disagree with their stored hashes are refused all the same.
    #[arg(long)]
    pub(crate) recover: bool,
    /// After signing, submit the checkpoint to this witness (`URL=WKEY`: its submission URL
    /// and verifier key) and store its cosignature. Repeatable. A witness that is down or
    /// refuses is reported; the append still succeeds.
    #[cfg(feature = "witness")]
    #[arg(long = "witness", value_name = "URL=WKEY")]
    pub(crate) witness: Vec<String>,
}

/// `veritrail checkpoint LOG`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointArgs {
    /// The log: a directory, or `postgres://USER@HOST:PORT/DB?schema=S&origin=O`.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
}

/// `veritrail prove LOG INDEX [--out FILE]`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProveArgs {
    /// The log: a directory, or `postgres://USER@HOST:PORT/DB?schema=S&origin=O`.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// The record's index (0-based).
    #[arg(value_name = "INDEX")]
    pub(crate) index: u64,
    /// Write the proof to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

/// `veritrail consistency LOG --from OLD_CHECKPOINT`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsistencyArgs {
    /// The log: a directory, or `postgres://USER@HOST:PORT/DB?schema=S&origin=O`.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// A file holding an earlier signed checkpoint of this log.
    #[arg(long, value_name = "OLD_CHECKPOINT")]
    pub(crate) from: PathBuf,
}

/// `veritrail verify LOG --key VKEY [--against CHECKPOINT]... [--json] [--tokens]`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The log: a directory, or `postgres://USER@HOST:PORT/DB?schema=S&origin=O`.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// The verifier key: its text (`name+hexid+base64`) or a file holding it. Repeatable:
    /// each log is checked with the key it names (a PostgreSQL store may hold logs of
    /// several keys); a log whose key is not given fails.
    #[arg(long, value_name = "VKEY", required = true)]
    pub(crate) key: Vec<String>,
    /// A signed checkpoint held elsewhere (a file); the log must extend it. Repeatable.
    /// This is what catches a truncated or rewritten log.
    #[arg(long, value_name = "CHECKPOINT")]
    pub(crate) against: Vec<PathBuf>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also re-verify every stored full token against the key set the log recorded (its
    /// `keyset` records) as in force when the token was used, as of the event's time, and
    /// check that the event's actor fields match the token's claims.
    #[arg(long)]
    pub(crate) tokens: bool,
    /// With --tokens: accept only tokens of this issuer (default: the issuer each token names,
    /// checked against that issuer's archived keys).
    #[arg(long, value_name = "ISS", requires = "tokens")]
    pub(crate) issuer: Option<String>,
    /// With --tokens: require this audience in each token (repeatable: any of them). Without
    /// it the audience is not checked against a policy, only against the event's actor.
    #[arg(long, value_name = "AUD", requires = "tokens")]
    pub(crate) audience: Vec<String>,
    /// A witness's verifier key (its text, or a file holding it, from `veritrail keygen
    /// --witness`): the checkpoint must carry a valid cosignature by it. Repeatable.
    #[arg(long = "witness", value_name = "WKEY")]
    pub(crate) witness: Vec<String>,
    /// How many of the `--witness` keys must have cosigned (default: all of them).
    #[arg(long, value_name = "K", requires = "witness")]
    pub(crate) min_witnesses: Option<usize>,
}

/// Which events `events`, `tail` and `export` select. Time bounds apply to every record; the
/// other filters select `http` events (system records are shown only when none is given).
#[derive(Debug, Default, clap::Args)]
pub(crate) struct EventFilterArgs {
    /// Only the record with this event id (a span's `audit.event.id`); its INDEX is what
    /// `veritrail prove` takes.
    #[arg(long, value_name = "EVENT_ID")]
    pub(crate) id: Option<String>,
    /// Only events of this subject (the actor's `sub`).
    #[arg(long, value_name = "SUB")]
    pub(crate) sub: Option<String>,
    /// Only records at or after TIME: RFC 3339 (`2026-11-27T12:00:00Z`), a date
    /// (`2026-11-27`, midnight UTC), or a duration before now (`90s`, `15m`, `1h`, `2d`, `1w`).
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,
    /// Only records before TIME (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,
    /// Only requests to this route template (`/orders/{id}`) or, failing that, this path.
    #[arg(long, value_name = "ROUTE")]
    pub(crate) route: Option<String>,
    /// Only events whose handler named this action (`order.refund`).
    #[arg(long, value_name = "ACTION")]
    pub(crate) action: Option<String>,
    /// Only events with this outcome.
    #[arg(long, value_enum, value_name = "OUTCOME")]
    pub(crate) outcome: Option<OutcomeArg>,
    /// Only responses with this status: a code (`404`) or a class (`4xx`).
    #[arg(long, value_name = "N")]
    pub(crate) status: Option<String>,
}

/// The `--outcome` values (the event's `outcome` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutcomeArg {
    /// The handler succeeded (1xx-3xx).
    Success,
    /// The request failed on the client's side (4xx other than 401/403).
    Failure,
    /// Authentication or authorization refused the request.
    Denied,
    /// The server failed (5xx).
    Error,
    /// The client went away before a response.
    Cancelled,
}

/// `veritrail events LOG [filters] [--json]`.
#[derive(Debug, clap::Args)]
pub(crate) struct EventsArgs {
    /// The log: a directory, or `postgres://USER@HOST:PORT/DB?schema=S&origin=O`.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// Which events to list.
    #[command(flatten)]
    pub(crate) filter: EventFilterArgs,
    /// Print the selected records exactly as stored, one per line, instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `veritrail tail LOG [filters] [--json] [--from-start | -n N]`.
#[derive(Debug, clap::Args)]
pub(crate) struct TailArgs {
    /// The log: a directory, or `postgres://USER@HOST:PORT/DB?schema=S&origin=O`.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// Which events to print.
    #[command(flatten)]
    pub(crate) filter: EventFilterArgs,
    /// Print the records exactly as stored, one per line, instead of table rows.
    #[arg(long)]
    pub(crate) json: bool,
    /// Start with the first record of the log instead of its end.
    #[arg(long, conflicts_with = "lines")]
    pub(crate) from_start: bool,
    /// Start with the last N records of the log.
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub(crate) lines: Option<u64>,
    /// How often to look for new records, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub(crate) interval: u64,
}

/// `veritrail export LOG --format ocsf [--out FILE] [filters]`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The log: a directory, or `postgres://USER@HOST:PORT/DB?schema=S&origin=O`.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// The output format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) format: ExportFormat,
    /// Write to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Which events to export.
    #[command(flatten)]
    pub(crate) filter: EventFilterArgs,
}

/// The `--format` values of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// OCSF 1.3.0: API Activity (6003) per request, Authentication (3002) per authentication
    /// decision; one JSON object per line.
    Ocsf,
}

/// `veritrail verify-proof PROOF --key VKEY`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyProofArgs {
    /// The .tlog-proof file written by `veritrail prove`.
    #[arg(value_name = "PROOF")]
    pub(crate) proof: PathBuf,
    /// The verifier key: its text (`name+hexid+base64`) or a file holding it.
    #[arg(long, value_name = "VKEY")]
    pub(crate) key: String,
    /// A witness's verifier key (its text, or a file holding it, from `veritrail keygen
    /// --witness`): the checkpoint must carry a valid cosignature by it. Repeatable.
    #[arg(long = "witness", value_name = "WKEY")]
    pub(crate) witness: Vec<String>,
    /// How many of the `--witness` keys must have cosigned (default: all of them).
    #[arg(long, value_name = "K", requires = "witness")]
    pub(crate) min_witnesses: Option<usize>,
}

/// `veritrail witness --listen ADDR --key KEYFILE --logs LOGS.toml --state DIR`.
#[derive(Debug, clap::Args)]
pub(crate) struct WitnessArgs {
    /// The address to listen on, e.g. `127.0.0.1:7380`.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: String,
    /// The witness's private key (`veritrail keygen NAME --witness --out KEYFILE`).
    #[arg(long, value_name = "KEYFILE")]
    pub(crate) key: PathBuf,
    /// The logs to witness: a TOML file with one `[[log]]` table (`origin`, `key`) each.
    #[arg(long, value_name = "LOGS.toml")]
    pub(crate) logs: PathBuf,
    /// Where the witness keeps the latest checkpoint it cosigned for each log.
    #[arg(long, value_name = "DIR")]
    pub(crate) state: PathBuf,
    /// Record every request to the witness (from where, which log, the answer) in this
    /// veritrail log, through the project's own audit layer.
    #[arg(long, value_name = "DIR", requires = "access_key")]
    pub(crate) access_log: Option<PathBuf>,
    /// The access log's private key file (`veritrail keygen`).
    #[arg(long, value_name = "KEYFILE", requires = "access_log")]
    pub(crate) access_key: Option<PathBuf>,
}
