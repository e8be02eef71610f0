//! Reading a log in PostgreSQL: [`PgStore`] (a [`LogSource`]), [`verify`], [`origins`].

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use tokio_postgres::Statement;
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::Type;
use veritrail_log::Checkpoint;
use veritrail_log::merkle::{self, Hash};
use veritrail_log::note::NoteVerifier;
use veritrail_log::source::{LogSource, Records, SourceError, StoredRecord, verify_source_with};
use veritrail_log::verify::{VerifyError, VerifyOptions, VerifyReport};

use crate::db::Db;
use crate::schema::{self, HASH_STRIDE};
use crate::{PgError, PgLocation};

/// How long a read may take before it is abandoned.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Records sent at once from the reading thread.
const CHUNK: usize = 2048;

/// One log (one origin) in PostgreSQL, opened for reading: records, proofs, checkpoints.
/// Nothing is written.
pub struct PgStore {
    db: RefCell<Db>,
    origin: String,
    verifier: NoteVerifier,
    size: u64,
    statements: Statements,
}

#[derive(Clone)]
struct Statements {
    leaves: Statement,
    hashes: Statement,
    hash_range: Statement,
    read: Statement,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.db.borrow().loc)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The origins of the logs stored at `loc` (its `origin=` is ignored), sorted.
pub fn origins(loc: &PgLocation) -> Result<Vec<String>, PgError> {
    let mut db = Db::connect(loc)?;
    let schema = loc.schema().to_owned();
    let location = loc.to_string();
    db.call(READ_TIMEOUT, move |c| {
        Box::pin(async move {
            if schema::current_version(c, &schema).await?.is_none() {
                return Err(no_schema(&location, &schema));
            }
            list_origins(c, &schema).await
        })
    })
}

async fn list_origins(c: &tokio_postgres::Client, schema: &str) -> Result<Vec<String>, PgError> {
    let rows = c
        .query(
            &format!("SELECT origin FROM {schema}.logs ORDER BY origin"),
            &[],
        )
        .await
        .map_err(|e| PgError::db("listing the origins", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn no_schema(location: &str, schema: &str) -> PgError {
    PgError::Schema {
        reason: format!(
            "{location}: there is no veritrail schema {schema:?} in this database — a writer \
             creates it (`veritrail proxy --log postgres://…`, `veritrail copy DIR \
             postgres://…`), or check ?schema="
        ),
    }
}

impl PgStore {
    /// Opens the log `loc` names (its `origin=` is required).
    pub fn open(loc: &PgLocation) -> Result<PgStore, PgError> {
        let Some(origin) = loc.origin().map(str::to_owned) else {
            return Err(PgError::OriginNeeded {
                location: loc.to_string(),
                origins: origins(loc)?.join(", "),
            });
        };
        let mut db = Db::connect(loc)?;
        let schema = loc.schema().to_owned();
        let location = loc.to_string();
        let o = origin.clone();
        let (key, size, statements) = db.call(READ_TIMEOUT, move |c| {
            Box::pin(async move {
                if schema::current_version(c, &schema).await?.is_none() {
                    return Err(no_schema(&location, &schema));
                }
                let row = c
                    .query_opt(
                        &format!("SELECT verifier_key FROM {schema}.logs WHERE origin = $1"),
                        &[&o],
                    )
                    .await
                    .map_err(|e| PgError::db("reading the log's key", e))?;
                let Some(row) = row else {
                    let there = list_origins(c, &schema).await?;
                    return Err(PgError::NoSuchOrigin {
                        location,
                        origin: o,
                        hint: if there.is_empty() {
                            " (it holds none yet)".into()
                        } else {
                            format!(" (it holds: {})", there.join(", "))
                        },
                    });
                };
                let key: String = row.get(0);
                let size = stored_size(c, &schema, &o).await?;
                let statements = prepare(c, &schema).await?;
                Ok((key, size, statements))
            })
        })?;
        let verifier = NoteVerifier::from_text(&key).map_err(|e| PgError::Damaged {
            origin: origin.clone(),
            location: loc.to_string(),
            reason: format!("its stored verifier key does not parse: {e}"),
        })?;
        Ok(PgStore {
            db: RefCell::new(db),
            origin,
            verifier,
            size,
            statements,
        })
    }

    /// Reads the size again (records appended since opening become readable).
    pub fn refresh(&mut self) -> Result<u64, PgError> {
        let schema = self.schema();
        let origin = self.origin.clone();
        self.size = self.db.get_mut().call(READ_TIMEOUT, move |c| {
            Box::pin(async move { stored_size(c, &schema, &origin).await })
        })?;
        Ok(self.size)
    }

    /// Every `checkpoints` row: the size it is stored under and its note, by size.
    pub fn checkpoint_rows(&self) -> Result<Vec<(u64, String)>, PgError> {
        let schema = self.schema();
        let origin = self.origin.clone();
        self.db.borrow_mut().call(READ_TIMEOUT, move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        &format!(
                            "SELECT size, note FROM {schema}.checkpoints WHERE origin = $1 \
                             ORDER BY size"
                        ),
                        &[&origin],
                    )
                    .await
                    .map_err(|e| PgError::db("reading the checkpoints", e))?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
                    .collect())
            })
        })
    }

    /// How many records the stored interior hashes cover: one index lookup per stored level.
    pub(crate) fn hashes_cover(&self) -> Result<u64, PgError> {
        let schema = self.schema();
        let origin = self.origin.clone();
        self.db.borrow_mut().call(READ_TIMEOUT, move |c| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        &format!(
                            "SELECT coalesce(max((h.idx + 1) << l), 0) \
                             FROM generate_series(4, 60, 4) AS l, LATERAL ( \
                                 SELECT idx FROM {schema}.hashes \
                                 WHERE origin = $1 AND level = l ORDER BY idx DESC LIMIT 1 \
                             ) AS h"
                        ),
                        &[&origin],
                    )
                    .await
                    .map_err(|e| PgError::db("reading the stored hashes' extent", e))?;
                Ok(row.get::<_, i64>(0) as u64)
            })
        })
    }

    fn schema(&self) -> String {
        self.db.borrow().loc.schema().to_owned()
    }

    fn fetch_nodes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, PgError> {
        let mut leaves: HashSet<i64> = HashSet::new();
        let mut stored: HashSet<(i16, i64)> = HashSet::new();
        for &(level, index) in wanted {
            let base = level - level % HASH_STRIDE;
            for i in (index << (level - base))..((index + 1) << (level - base)) {
                if base == 0 {
                    leaves.insert(i as i64);
                } else {
                    stored.insert((i16::from(base), i as i64));
                }
            }
        }
        let leaves: Vec<i64> = leaves.into_iter().collect();
        // Many nodes close together on one level (the verifier asks for those) are read as a
        // range; scattered ones (a proof's) by their keys.
        let mut by_level: HashMap<i16, Vec<i64>> = HashMap::new();
        for (level, index) in stored {
            by_level.entry(level).or_default().push(index);
        }
        let (mut levels, mut indexes, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
        for (level, list) in by_level {
            let (min, max) = (list.iter().min().copied(), list.iter().max().copied());
            match (min, max) {
                (Some(min), Some(max)) if list.len() >= 64 && max - min < 2 * list.len() as i64 => {
                    ranges.push((level, min, max));
                }
                _ => {
                    levels.extend(std::iter::repeat_n(level, list.len()));
                    indexes.extend(list);
                }
            }
        }
        let origin = self.origin.clone();
        let st = self.statements.clone();
        let found = self.db.borrow_mut().call(READ_TIMEOUT, move |c| {
            Box::pin(async move {
                let db = |e| PgError::db("reading stored hashes", e);
                let ranged = ranges.iter().map(|(level, min, max)| async {
                    c.query(&st.hash_range, &[&origin, level, min, max]).await
                });
                let (a, b, c) = futures_util::future::try_join3(
                    c.query(&st.leaves, &[&origin, &leaves]),
                    c.query(&st.hashes, &[&origin, &levels, &indexes]),
                    futures_util::future::try_join_all(ranged),
                )
                .await
                .map_err(db)?;
                let mut found: HashMap<(u8, u64), Hash> = HashMap::new();
                for row in a {
                    found.insert((0, row.get::<_, i64>(0) as u64), to_hash(row.get(1))?);
                }
                for row in b.iter().chain(c.iter().flatten()) {
                    found.insert(
                        (row.get::<_, i16>(0) as u8, row.get::<_, i64>(1) as u64),
                        to_hash(row.get(2))?,
                    );
                }
                Ok(found)
            })
        })?;
        wanted
            .iter()
            .map(|&(level, index)| {
                let base = level - level % HASH_STRIDE;
                let d = level - base;
                let below: Option<Vec<Hash>> = ((index << d)..((index + 1) << d))
                    .map(|i| found.get(&(base, i)).copied())
                    .collect();
                let below = below.ok_or_else(|| PgError::Damaged {
                    origin: self.origin.clone(),
                    location: self.location(),
                    reason: format!("no stored hash for node at level {level}, index {index}"),
                })?;
                Ok(merkle::root_of_leaves(&below))
            })
            .collect()
    }
}

fn to_hash(bytes: &[u8]) -> Result<Hash, PgError> {
    bytes.try_into().map_err(|_| PgError::Db {
        what: "reading stored hashes",
        reason: format!("a stored hash is {} bytes long, not 32", bytes.len()),
        connection_lost: false,
    })
}

async fn prepare(c: &tokio_postgres::Client, schema: &str) -> Result<Statements, PgError> {
    let p = |sql: String| async move {
        c.prepare(&sql)
            .await
            .map_err(|e| PgError::db("preparing the queries", e))
    };
    Ok(Statements {
        leaves: p(format!(
            "SELECT idx, leaf_hash FROM {schema}.records WHERE origin = $1 AND idx = ANY($2)"
        ))
        .await?,
        hashes: p(format!(
            "SELECT h.level, h.idx, h.hash FROM {schema}.hashes h \
             JOIN unnest($2::smallint[], $3::bigint[]) AS w(level, idx) \
             ON h.level = w.level AND h.idx = w.idx WHERE h.origin = $1"
        ))
        .await?,
        hash_range: p(format!(
            "SELECT level, idx, hash FROM {schema}.hashes \
             WHERE origin = $1 AND level = $2 AND idx BETWEEN $3 AND $4"
        ))
        .await?,
        read: p(format!(
            "SELECT record, leaf_hash FROM {schema}.records WHERE origin = $1 AND idx = $2"
        ))
        .await?,
    })
}

/// The number of records of `origin`: one past the largest index (an index-only lookup).
pub(crate) async fn stored_size(
    c: &tokio_postgres::Client,
    schema: &str,
    origin: &str,
) -> Result<u64, PgError> {
    let row = c
        .query_opt(
            &format!(
                "SELECT idx FROM {schema}.records WHERE origin = $1 ORDER BY idx DESC LIMIT 1"
            ),
            &[&origin],
        )
        .await
        .map_err(|e| PgError::db("reading the log's size", e))?;
    Ok(row.map_or(0, |row| row.get::<_, i64>(0) as u64 + 1))
}

impl LogSource for PgStore {
    fn origin(&self) -> &str {
        &self.origin
    }

    fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    fn location(&self) -> String {
        self.db.borrow().loc.to_string()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, index: u64) -> Result<Vec<u8>, SourceError> {
        if index >= self.size {
            return Err(SourceError::new(format!(
                "there is no record {index}: the log holds {}",
                self.size
            )));
        }
        let origin = self.origin.clone();
        let st = self.statements.read.clone();
        let (record, leaf) = self
            .db
            .borrow_mut()
            .call(READ_TIMEOUT, move |c| {
                Box::pin(async move {
                    let row = c
                        .query_opt(&st, &[&origin, &(index as i64)])
                        .await
                        .map_err(|e| PgError::db("reading a record", e))?;
                    Ok(row.map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1))))
                })
            })
            .map_err(SourceError::new)?
            .ok_or_else(|| SourceError::new(format!("record {index} is missing")))?;
        if merkle::leaf_hash(&record)[..] != leaf[..] {
            return Err(SourceError::new(format!(
                "record {index} does not match its stored leaf hash: it was altered — run \
                 `veritrail verify`"
            )));
        }
        Ok(record)
    }

    fn records(&self, start: u64) -> Records<'_> {
        let loc = self.db.borrow().loc.clone();
        let origin = self.origin.clone();
        let end = self.size;
        let (tx, rx) = mpsc::sync_channel::<Result<Vec<StoredRecord>, PgError>>(8);
        // A connection of its own, on a thread of its own: the caller may read stored hashes
        // while it iterates (the verifier does), and fetching overlaps hashing.
        std::thread::spawn(move || {
            if let Err(e) = stream_records(&loc, &origin, start..end, &tx) {
                let _ = tx.send(Err(e));
            }
        });
        chunks(rx)
    }

    fn node(&self, level: u8, index: u64) -> Result<Hash, SourceError> {
        Ok(self.nodes(&[(level, index)])?[0])
    }

    fn nodes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, SourceError> {
        self.fetch_nodes(wanted).map_err(SourceError::new)
    }

    fn stores_level(&self, level: u8) -> bool {
        level.is_multiple_of(HASH_STRIDE)
    }

    fn latest_checkpoint(&self) -> Result<Option<String>, SourceError> {
        Ok(self
            .checkpoint_rows()
            .map_err(SourceError::new)?
            .pop()
            .map(|(_, note)| note))
    }

    fn checkpoint_history(&self) -> Result<Vec<String>, SourceError> {
        Ok(self
            .checkpoint_rows()
            .map_err(SourceError::new)?
            .into_iter()
            .map(|(_, note)| note)
            .collect())
    }
}

/// Which records [`PgStore::search`] reads, through the search columns and their indexes
/// (each `None` selects everything). A record that is not an audit event has no search
/// columns, so any condition leaves it out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Search {
    /// Records at or after this time.
    pub since: Option<time::OffsetDateTime>,
    /// Records before this time.
    pub until: Option<time::OffsetDateTime>,
    /// Requests of this subject (as shown in clear).
    pub sub: Option<String>,
    /// Requests whose handler named this action.
    pub action: Option<String>,
    /// Requests with this outcome (`success`, `failure`, `denied`, `error`, `cancelled`).
    pub outcome: Option<String>,
    /// Requests whose status is in this range.
    pub status: Option<std::ops::RangeInclusive<u16>>,
}

impl PgStore {
    /// The records `search` selects, in index order, up to [`size`](LogSource::size): a query
    /// on the search columns (the indexes on time, subject and action serve it), streamed.
    /// The records are as stored, with their stored leaf hashes; nothing here is verified.
    pub fn search(&self, search: &Search) -> Records<'_> {
        let loc = self.db.borrow().loc.clone();
        let (origin, end, search) = (self.origin.clone(), self.size, search.clone());
        let (tx, rx) = mpsc::sync_channel::<Result<Vec<StoredRecord>, PgError>>(8);
        std::thread::spawn(move || {
            if let Err(e) = stream_search(&loc, &origin, end, &search, &tx) {
                let _ = tx.send(Err(e));
            }
        });
        chunks(rx)
    }
}

/// The records of the chunks a reading thread sends.
fn chunks<'a>(rx: mpsc::Receiver<Result<Vec<StoredRecord>, PgError>>) -> Records<'a> {
    Box::new(
        rx.into_iter()
            .flat_map(|chunk| -> Box<dyn Iterator<Item = _>> {
                match chunk {
                    Ok(records) => Box::new(records.into_iter().map(Ok)),
                    Err(e) => Box::new(std::iter::once(Err(SourceError::new(e)))),
                }
            }),
    )
}

fn stream_search(
    loc: &PgLocation,
    origin: &str,
    end: u64,
    search: &Search,
    tx: &mpsc::SyncSender<Result<Vec<StoredRecord>, PgError>>,
) -> Result<(), PgError> {
    use tokio_postgres::types::ToSql;
    let mut db = Db::connect(loc)?;
    let schema = loc.schema().to_owned();
    let mut sql = format!(
        "SELECT idx, record, leaf_hash FROM {schema}.records WHERE origin = $1 AND idx < $2"
    );
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> =
        vec![Box::new(origin.to_owned()), Box::new(end as i64)];
    let mut cond = |column: &str, op: &str, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        sql.push_str(&format!(" AND {column} {op} ${}", params.len()));
    };
    if let Some(t) = search.since {
        cond("time", ">=", Box::new(t));
    }
    if let Some(t) = search.until {
        cond("time", "<", Box::new(t));
    }
    if let Some(sub) = &search.sub {
        cond("sub", "=", Box::new(sub.clone()));
    }
    if let Some(action) = &search.action {
        cond("action", "=", Box::new(action.clone()));
    }
    if let Some(outcome) = &search.outcome {
        cond("outcome", "=", Box::new(outcome.clone()));
    }
    if let Some(status) = &search.status {
        cond("status", ">=", Box::new(i32::from(*status.start())));
        cond("status", "<=", Box::new(i32::from(*status.end())));
    }
    sql.push_str(" ORDER BY idx");
    let tx = tx.clone();
    db.call(Duration::from_secs(24 * 3600), move |c| {
        Box::pin(async move {
            let db = |e| PgError::db("searching the records", e);
            let rows = c
                .query_raw(
                    &sql,
                    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)),
                )
                .await
                .map_err(db)?;
            let mut rows = std::pin::pin!(rows);
            let mut chunk = Vec::with_capacity(CHUNK);
            while let Some(row) = rows.next().await {
                let row = row.map_err(db)?;
                chunk.push(StoredRecord {
                    index: row.get::<_, i64>(0) as u64,
                    record: row.get(1),
                    leaf_hash: Some(to_hash(row.get(2))?),
                });
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if tx.send(Ok(full)).is_err() {
                        return Ok(());
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(Ok(chunk));
            }
            Ok(())
        })
    })
}

/// Streams `(idx, record, leaf_hash)` with `COPY … TO STDOUT (FORMAT binary)`, in chunks.
fn stream_records(
    loc: &PgLocation,
    origin: &str,
    range: std::ops::Range<u64>,
    tx: &mpsc::SyncSender<Result<Vec<StoredRecord>, PgError>>,
) -> Result<(), PgError> {
    let db = Db::connect(loc)?;
    let schema = loc.schema().to_owned();
    let origin = origin.to_owned();
    let tx = tx.clone();
    let mut db = db;
    db.call(Duration::from_secs(24 * 3600), move |c| {
        Box::pin(async move {
            // In index order, straight from the primary key: right after a bulk load the
            // planner's statistics can make a sort of the whole origin look cheaper (it took
            // 1.7x as long at 1,000,000 records). This connection is the reader's alone.
            c.batch_execute("SET enable_sort = off; SET enable_bitmapscan = off")
                .await
                .map_err(|e| PgError::db("reading the records", e))?;
            // COPY takes no parameters: the server quotes the origin.
            let literal: String = c
                .query_one("SELECT quote_literal($1)", &[&origin])
                .await
                .map_err(|e| PgError::db("quoting the origin", e))?
                .get(0);
            let sql = format!(
                "COPY (SELECT idx, record, leaf_hash FROM {schema}.records WHERE origin = \
                 {literal} AND idx >= {} AND idx < {} ORDER BY idx) TO STDOUT (FORMAT binary)",
                range.start, range.end
            );
            let out = c
                .copy_out(&sql)
                .await
                .map_err(|e| PgError::db("reading the records", e))?;
            let rows = BinaryCopyOutStream::new(out, &[Type::INT8, Type::BYTEA, Type::BYTEA]);
            let mut rows = std::pin::pin!(rows.map_err(|e| PgError::db("reading the records", e)));
            let mut chunk = Vec::with_capacity(CHUNK);
            while let Some(row) = rows.next().await {
                let row = row?;
                let leaf: &[u8] = row.get(2);
                chunk.push(StoredRecord {
                    index: row.get::<i64>(0) as u64,
                    record: row.get::<&[u8]>(1).to_vec(),
                    leaf_hash: Some(to_hash(leaf)?),
                });
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if tx.send(Ok(full)).is_err() {
                        return Ok(()); // the reader stopped early
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(Ok(chunk));
            }
            Ok(())
        })
    })
}

/// Verifies one log in PostgreSQL (see [`verify_source`](veritrail_log::source::verify_source)
/// for what is checked from the records up), plus what this store promises: every
/// `checkpoints` row holds the checkpoint of the size it is stored under, and every record is
/// covered by the latest checkpoint (a writer commits a checkpoint with every batch).
pub fn verify(
    store: &PgStore,
    verifier: &NoteVerifier,
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    verify_with(store, verifier, opts, |_, _| Ok(()))
}

/// [`verify`], calling `on_record(index, record)` for every record in order.
pub fn verify_with(
    store: &PgStore,
    verifier: &NoteVerifier,
    opts: &VerifyOptions,
    on_record: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<VerifyReport, VerifyError> {
    let location = store.location();
    let io = |e: PgError| VerifyError::Io(std::io::Error::other(e));
    let rows = store.checkpoint_rows().map_err(io)?;
    for (size, note) in &rows {
        let claimed = note
            .rfind("\n\n")
            .and_then(|end| Checkpoint::parse_body(&note[..=end]).ok())
            .map(|c| c.size);
        if claimed != Some(*size) {
            return Err(VerifyError::Stored {
                location,
                index: Some(*size),
                reason: match claimed {
                    Some(c) => format!(
                        "the checkpoint row stored under size {size} holds a checkpoint of size \
                         {c}: it was replaced by another (an older one?)"
                    ),
                    None => format!(
                        "the checkpoint row stored under size {size} does not hold a checkpoint"
                    ),
                },
            });
        }
    }
    let report = verify_source_with(store, verifier, opts, on_record)?;
    let signed = rows.last().map_or(0, |(size, _)| *size);
    if report.records > signed {
        return Err(VerifyError::Stored {
            location,
            index: Some(signed),
            reason: format!(
                "records {signed}..{} are covered by no checkpoint, but a writer commits a \
                 checkpoint with every batch: a checkpoint row was removed, or records were \
                 inserted",
                report.records
            ),
        });
    }
    Ok(report)
}
