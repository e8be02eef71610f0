//! [`PgLog`]: writing one origin's log into PostgreSQL.

use std::ops::Range;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Statement;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use veritrail_log::merkle::{self, CompactRange, Hash};
use veritrail_log::source::LogSource;
use veritrail_log::{Checkpoint, NoteSigner};

use crate::columns::Columns;
use crate::db::Db;
use crate::schema::{self, HASH_STRIDE};
use crate::store::{PgStore, stored_size};
use crate::{PgError, PgLocation, lock_key};

/// The largest record accepted (as the file log's).
const MAX_RECORD_LEN: usize = 16 << 20;

/// How a [`PgLog`] behaves when the database is slow or away.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PgLogOptions {
    /// How long [`PgLog::commit`] keeps retrying (reconnecting as needed) before it returns
    /// [`PgError::Unavailable`] with the batch kept. Default 5 s.
    pub commit_timeout: Duration,
    /// The pause between two attempts. Default 100 ms.
    pub retry_interval: Duration,
}

impl Default for PgLogOptions {
    fn default() -> Self {
        Self {
            commit_timeout: Duration::from_secs(5),
            retry_interval: Duration::from_millis(100),
        }
    }
}

impl PgLogOptions {
    /// Sets [`commit_timeout`](Self::commit_timeout).
    #[must_use]
    pub fn commit_timeout(mut self, commit_timeout: Duration) -> Self {
        self.commit_timeout = commit_timeout;
        self
    }

    /// Sets [`retry_interval`](Self::retry_interval).
    #[must_use]
    pub fn retry_interval(mut self, retry_interval: Duration) -> Self {
        self.retry_interval = retry_interval;
        self
    }
}

/// One row of `records`.
#[derive(Clone)]
struct Row {
    idx: i64,
    record: Vec<u8>,
    leaf: Hash,
    cols: Columns,
}

/// What was appended and not yet committed.
#[derive(Clone, Default)]
struct Pending {
    rows: Vec<Row>,
    hashes: Vec<(i16, i64, Hash)>,
}

/// One origin's log in PostgreSQL, opened for writing (see the [crate docs](crate)): appends
/// go to memory, each [`commit`](Self::commit) is one transaction holding them, the hashes
/// they complete and a checkpoint over the new size.
pub struct PgLog {
    db: Db,
    origin: String,
    schema: String,
    signer: NoteSigner,
    key: i64,
    opts: PgLogOptions,
    /// The tree over committed and pending records.
    range: CompactRange,
    committed: u64,
    latest: String,
    pending: Arc<Pending>,
    /// The checkpoint signed for the pending records (kept across retries).
    pending_note: Option<String>,
    /// After a lost connection: what the database holds must be read before writing again.
    reconnected: bool,
    /// The commit's statements, prepared on the current connection.
    statements: Option<Arc<Statements>>,
    failed: Option<String>,
}

impl std::fmt::Debug for PgLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLog")
            .field("location", &self.db.loc)
            .field("origin", &self.origin)
            .field("committed", &self.committed)
            .finish_non_exhaustive()
    }
}

impl PgLog {
    /// Opens (creating the schema and the log if needed) the log of `loc`'s origin — or,
    /// when `loc` names none, of the signer's key name — for writing.
    ///
    /// Takes the origin's advisory lock ([`PgError::Locked`] if another writer holds it),
    /// checks the stored key ([`PgError::KeyMismatch`]), and resumes the tree from the stored
    /// hashes after checking them against the latest checkpoint: its signature, its size
    /// (every record must be covered), its root (from the stored hashes), and the last
    /// record against its leaf hash. Anything else is [`PgError::Damaged`].
    pub fn open(
        loc: &PgLocation,
        signer: NoteSigner,
        opts: PgLogOptions,
    ) -> Result<PgLog, PgError> {
        let origin = loc
            .origin()
            .map_or_else(|| signer.name().to_owned(), str::to_owned);
        let loc = loc.with_origin(Some(&origin));
        let schema = loc.schema().to_owned();
        let key = lock_key("writer", &schema, &origin);
        let mut db = Db::connect(&loc)?;
        let s = schema.clone();
        db.call(Duration::from_secs(60), move |c| {
            Box::pin(async move { schema::migrate(c, &s).await })
        })?;
        take_lock(&mut db, key, &origin)?;
        let verifier = signer.verifier();
        let (s, o, vkey) = (schema.clone(), origin.clone(), verifier.to_text());
        let empty = Checkpoint {
            origin: origin.clone(),
            size: 0,
            root: merkle::empty_root(),
            extensions: Vec::new(),
        }
        .sign(&signer)?;
        let stored_key = db.call(Duration::from_secs(30), move |c| {
            Box::pin(async move {
                let tx = c
                    .transaction()
                    .await
                    .map_err(|e| PgError::db("creating the log", e))?;
                let row = tx
                    .query_opt(
                        &format!("SELECT verifier_key FROM {s}.logs WHERE origin = $1"),
                        &[&o],
                    )
                    .await
                    .map_err(|e| PgError::db("reading the log's key", e))?;
                if let Some(row) = row {
                    return Ok(row.get::<_, String>(0));
                }
                // A new log: its key, and the signed empty tree (as the file log signs it).
                tx.execute(
                    &format!("INSERT INTO {s}.logs (origin, verifier_key) VALUES ($1, $2)"),
                    &[&o, &vkey],
                )
                .await
                .map_err(|e| PgError::db("creating the log", e))?;
                tx.execute(
                    &format!("INSERT INTO {s}.checkpoints (origin, size, note) VALUES ($1, 0, $2)"),
                    &[&o, &empty],
                )
                .await
                .map_err(|e| PgError::db("creating the log", e))?;
                tx.commit()
                    .await
                    .map_err(|e| PgError::db("creating the log", e))?;
                Ok(vkey)
            })
        })?;
        if stored_key != verifier.to_text() {
            return Err(PgError::KeyMismatch {
                origin,
                stored: stored_key,
                given: verifier.to_text(),
            });
        }
        let (range, latest) = resume(&loc, &signer)?;
        Ok(PgLog {
            db,
            origin,
            schema,
            signer,
            key,
            opts,
            committed: range.size(),
            range,
            latest,
            pending: Arc::default(),
            pending_note: None,
            reconnected: false,
            statements: None,
            failed: None,
        })
    }

    /// The origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Records committed and pending: the index of the next record.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// Records committed.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The latest committed checkpoint (signed note text).
    pub fn latest_checkpoint(&self) -> &str {
        &self.latest
    }

    /// Whether the log stopped for good (see [`PgError::Failed`]).
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Hashes and keeps records for the next commit; returns their indexes.
    pub fn append_batch<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Range<u64>, PgError> {
        self.check_open()?;
        let start = self.size();
        let records: Vec<&[u8]> = records.into_iter().collect();
        if let Some(r) = records.iter().find(|r| r.len() > MAX_RECORD_LEN) {
            return Err(PgError::Log(format!(
                "a record of {} bytes is larger than the largest accepted, {MAX_RECORD_LEN}",
                r.len()
            )));
        }
        // Unshared once the previous commit attempt has returned, so this copies nothing.
        let pending = Arc::make_mut(&mut self.pending);
        for record in records {
            let leaf = merkle::leaf_hash(record);
            let idx = self.range.size() as i64;
            pending.rows.push(Row {
                idx,
                record: record.to_vec(),
                leaf,
                cols: Columns::of(record),
            });
            let hashes = &mut pending.hashes;
            self.range.append(leaf, |level, index, hash| {
                if level > 0 && level.is_multiple_of(HASH_STRIDE) {
                    hashes.push((i16::from(level), index as i64, *hash));
                }
            });
        }
        self.pending_note = None;
        Ok(start..self.size())
    }

    /// Commits the pending records in one transaction with the hashes they complete and a
    /// checkpoint signed over the new size. Retries through a lost connection until
    /// [`PgLogOptions::commit_timeout`], then returns [`PgError::Unavailable`] keeping the
    /// records for the next call. Any other error stops the log for good.
    pub fn commit(&mut self) -> Result<(), PgError> {
        self.check_open()?;
        if self.pending.rows.is_empty() {
            return Ok(());
        }
        let end = self.size();
        let note = match &self.pending_note {
            Some(note) => note.clone(),
            None => {
                let note = Checkpoint {
                    origin: self.origin.clone(),
                    size: end,
                    root: self.range.root(),
                    extensions: Vec::new(),
                }
                .sign(&self.signer)?;
                self.pending_note = Some(note.clone());
                note
            }
        };
        let deadline = Instant::now() + self.opts.commit_timeout;
        loop {
            match self.attempt(end, &note, deadline) {
                Ok(()) => {
                    self.committed = end;
                    self.latest = note;
                    self.pending = Arc::default();
                    self.pending_note = None;
                    return Ok(());
                }
                Err(e) if e.is_unavailable() => {
                    let last = e.to_string();
                    self.db.disconnect();
                    self.reconnected = true;
                    if Instant::now() + self.opts.retry_interval >= deadline {
                        return Err(PgError::Unavailable {
                            reason: format!(
                                "{} records not committed after {} ms ({last}); they are kept \
                                 and sent again with the next commit",
                                end - self.committed,
                                self.opts.commit_timeout.as_millis()
                            ),
                        });
                    }
                    std::thread::sleep(self.opts.retry_interval);
                }
                Err(e) => {
                    self.db.disconnect();
                    return Err(self.fail(e));
                }
            }
        }
    }

    fn attempt(&mut self, end: u64, note: &str, deadline: Instant) -> Result<(), PgError> {
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        if !self.db.is_connected() {
            self.statements = None;
            self.db.reconnect()?;
            self.reconnected = true;
        }
        if self.reconnected {
            // The session (and its lock) is new: take the lock again, then see whether the
            // commit that was in flight when the connection dropped went through.
            take_lock(&mut self.db, self.key, &self.origin)?;
            let (s, o) = (self.schema.clone(), self.origin.clone());
            let (size, latest) = self.db.call(limit, move |c| {
                Box::pin(async move {
                    let size = stored_size(c, &s, &o).await?;
                    let latest = c
                        .query_opt(
                            &format!(
                                "SELECT note FROM {s}.checkpoints WHERE origin = $1 \
                                 ORDER BY size DESC LIMIT 1"
                            ),
                            &[&o],
                        )
                        .await
                        .map_err(|e| PgError::db("reading the latest checkpoint", e))?
                        .map(|r| r.get::<_, String>(0));
                    Ok((size, latest))
                })
            })?;
            self.reconnected = false;
            if size == end && latest.as_deref() == Some(note) {
                return Ok(()); // it was committed before the connection dropped
            }
            if size != self.committed || latest.as_deref() != Some(self.latest.as_str()) {
                return Err(PgError::Failed {
                    cause: format!(
                        "after reconnecting, the log {:?} holds {size} records where this writer \
                         committed {}: another writer wrote to it",
                        self.origin, self.committed
                    ),
                });
            }
        }
        let statements = match &self.statements {
            Some(st) => st.clone(),
            None => {
                let s = self.schema.clone();
                let st = Arc::new(self.db.call(limit, move |c| {
                    Box::pin(async move { Statements::prepare(c, &s).await })
                })?);
                self.statements = Some(st.clone());
                st
            }
        };
        let pending = self.pending.clone();
        let (o, note) = (self.origin.clone(), note.to_owned());
        self.db.call(limit, move |c| {
            Box::pin(async move { write_batch(c, &statements, &o, &pending, end, &note).await })
        })
    }

    fn check_open(&self) -> Result<(), PgError> {
        match &self.failed {
            Some(cause) => Err(PgError::Failed {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: PgError) -> PgError {
        if self.failed.is_none() {
            self.failed = Some(e.to_string());
        }
        e
    }
}

impl Drop for PgLog {
    /// Gives the origin's lock back at once (closing the session would too, once the server
    /// notices), so that a writer reopening right after finds it free.
    fn drop(&mut self) {
        if self.db.is_connected() {
            let _ = self.db.call(Duration::from_secs(1), |c| {
                Box::pin(async move {
                    c.batch_execute("SELECT pg_advisory_unlock_all()")
                        .await
                        .map_err(|e| PgError::db("unlocking", e))
                })
            });
        }
    }
}

/// The statements of a commit, prepared once per connection.
struct Statements {
    records: String,
    hashes: Statement,
    checkpoint: Statement,
}

impl Statements {
    async fn prepare(c: &tokio_postgres::Client, schema: &str) -> Result<Statements, PgError> {
        let prepare = |sql: String| async move {
            c.prepare(&sql)
                .await
                .map_err(|e| PgError::db("preparing the commit", e))
        };
        Ok(Statements {
            records: format!(
                "COPY {schema}.records (origin, idx, record, leaf_hash, time, kind, sub, iss, \
                 method, route, status, outcome, action, request_id) FROM STDIN (FORMAT binary)"
            ),
            hashes: prepare(format!(
                "INSERT INTO {schema}.hashes (origin, level, idx, hash) \
                 SELECT $1, * FROM unnest($2::smallint[], $3::bigint[], $4::bytea[])"
            ))
            .await?,
            checkpoint: prepare(format!(
                "INSERT INTO {schema}.checkpoints (origin, size, note) VALUES ($1, $2, $3)"
            ))
            .await?,
        })
    }
}

/// One transaction in three round trips: `BEGIN` pipelined with the start of the records'
/// binary `COPY`; the rows; then the hashes they complete, the checkpoint and `COMMIT`,
/// pipelined. Every statement's result is checked, so a failed insert is never taken for a
/// commit (the server turns that `COMMIT` into a rollback). After any error the caller drops
/// the connection, so no half-done transaction is ever reused.
async fn write_batch(
    c: &mut tokio_postgres::Client,
    st: &Statements,
    origin: &str,
    pending: &Pending,
    size: u64,
    note: &str,
) -> Result<(), PgError> {
    use futures_util::future::{try_join, try_join3};
    let db = |what: &'static str| move |e| PgError::db(what, e);
    let (_, sink) = try_join(c.batch_execute("BEGIN"), c.copy_in(st.records.as_str()))
        .await
        .map_err(db("writing records"))?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &RECORD_TYPES));
    for row in &pending.rows {
        let leaf: &[u8] = &row.leaf;
        let c = &row.cols;
        let values: [&(dyn ToSql + Sync); 14] = [
            &origin,
            &row.idx,
            &row.record,
            &leaf,
            &c.time,
            &c.kind,
            &c.sub,
            &c.iss,
            &c.method,
            &c.route,
            &c.status,
            &c.outcome,
            &c.action,
            &c.request_id,
        ];
        writer
            .as_mut()
            .write(&values)
            .await
            .map_err(db("writing records"))?;
    }
    writer.finish().await.map_err(db("writing records"))?;
    let levels: Vec<i16> = pending.hashes.iter().map(|h| h.0).collect();
    let indexes: Vec<i64> = pending.hashes.iter().map(|h| h.1).collect();
    let hashes: Vec<&[u8]> = pending.hashes.iter().map(|h| &h.2[..]).collect();
    let size = size as i64;
    let hashes_written = async {
        if levels.is_empty() {
            return Ok(0);
        }
        c.execute(&st.hashes, &[&origin, &levels, &indexes, &hashes])
            .await
    };
    let params: [&(dyn ToSql + Sync); 3] = [&origin, &size, &note];
    let checkpoint_written = c.execute(&st.checkpoint, &params);
    try_join3(
        hashes_written,
        checkpoint_written,
        c.batch_execute("COMMIT"),
    )
    .await
    .map_err(db("committing the batch, its hashes and its checkpoint"))?;
    Ok(())
}

/// The column types of a `records` row in the order a writer copies them: `origin`, `idx`,
/// `record`, `leaf_hash`, `time`, `kind`, `sub`, `iss`, `method`, `route`, `status`,
/// `outcome`, `action`, `request_id` (for a binary `COPY` of rows of the same shape).
pub const RECORD_TYPES: [Type; 14] = [
    Type::TEXT,
    Type::INT8,
    Type::BYTEA,
    Type::BYTEA,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
];

/// Takes the origin's advisory lock on this session, or says who holds it.
fn take_lock(db: &mut Db, key: i64, origin: &str) -> Result<(), PgError> {
    let got = db.call(Duration::from_secs(30), move |c| {
        Box::pin(async move {
            let row = c
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await
                .map_err(|e| PgError::db("taking the writer's lock", e))?;
            Ok(row.get::<_, bool>(0))
        })
    })?;
    if got {
        Ok(())
    } else {
        Err(PgError::Locked {
            origin: origin.to_owned(),
            location: db.loc.to_string(),
            key,
        })
    }
}

/// Reads the stored state back and checks it before anything is appended: the latest
/// checkpoint is signed by this key, covers exactly the stored records, and its root is the
/// stored hashes' root; the last record matches its leaf hash; no hash is stored beyond the
/// records. Returns the tree (from the stored hashes) and the latest checkpoint.
fn resume(loc: &PgLocation, signer: &NoteSigner) -> Result<(CompactRange, String), PgError> {
    let origin = loc.origin().expect("origin set").to_owned();
    let damaged = |reason: String| PgError::Damaged {
        origin: origin.clone(),
        location: loc.to_string(),
        reason,
    };
    let store = PgStore::open(loc)?;
    let rows = store.checkpoint_rows()?;
    let Some((row_size, note)) = rows.last().cloned() else {
        return Err(damaged(
            "it has no checkpoint, not even the empty tree's".into(),
        ));
    };
    let cp = Checkpoint::open(&note, &signer.verifier()).map_err(|e| {
        damaged(format!(
            "its latest checkpoint (size {row_size}) does not verify with the key: {e}"
        ))
    })?;
    if cp.size != row_size || cp.origin != origin {
        return Err(damaged(format!(
            "the checkpoint row of size {row_size} holds a checkpoint of size {} for {:?}",
            cp.size, cp.origin
        )));
    }
    let size = store.size();
    if size != cp.size {
        return Err(damaged(format!(
            "it holds {size} records but its latest checkpoint covers {}",
            cp.size
        )));
    }
    let mut wanted = Vec::new();
    let mut start = 0u64;
    for level in (0..64u8).rev() {
        if size & (1 << level) != 0 {
            wanted.push((level, start >> level));
            start += 1 << level;
        }
    }
    let parts = store.nodes(&wanted).map_err(|e| damaged(e.to_string()))?;
    let range = CompactRange::from_parts(size, parts).map_err(|e| damaged(e.to_string()))?;
    if range.root() != cp.root {
        return Err(damaged(format!(
            "the stored hashes' root at size {size} is not its latest checkpoint's root"
        )));
    }
    if size > 0 {
        store.read(size - 1).map_err(|e| damaged(e.to_string()))?;
    }
    let covered = store.hashes_cover()?;
    if covered > size {
        return Err(damaged(format!(
            "it stores hashes over records up to {covered} but holds {size} records: hash rows \
             were added"
        )));
    }
    Ok((range, note))
}
