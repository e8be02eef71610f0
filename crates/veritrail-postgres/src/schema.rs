//! The tables, their versioned migrations, and the roles' grants.

use tokio_postgres::Client;

use crate::PgError;

/// The schema version this build creates and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// Stored interior hashes are those of levels that are multiples of this (level 0, the leaf
/// hashes, is kept in `records`); the levels between are computed from at most
/// `2^(HASH_STRIDE-1)` stored hashes below them.
pub const HASH_STRIDE: u8 = 4;

/// The migrations, in order: migration `i` takes the schema from version `i` to `i + 1`.
/// `{s}` stands for the schema. A migration is never edited once released: a change is a new
/// migration.
const MIGRATIONS: &[&str] = &[
    // 1: the log tables, their search indexes and the append-only triggers.
    r#"
CREATE TABLE {s}.logs (
    origin       text PRIMARY KEY,
    verifier_key text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.records (
    origin     text   NOT NULL,
    idx        bigint NOT NULL CHECK (idx >= 0),
    record     bytea  NOT NULL,
    leaf_hash  bytea  NOT NULL CHECK (octet_length(leaf_hash) = 32),
    time       timestamptz,
    kind       text,
    sub        text,
    iss        text,
    method     text,
    route      text,
    status     integer,
    outcome    text,
    action     text,
    request_id text,
    PRIMARY KEY (origin, idx)
);
CREATE INDEX records_time ON {s}.records (origin, time);
CREATE INDEX records_sub ON {s}.records (origin, sub, time) WHERE sub IS NOT NULL;
CREATE INDEX records_route ON {s}.records (origin, route, time) WHERE route IS NOT NULL;
CREATE INDEX records_action ON {s}.records (origin, action, time) WHERE action IS NOT NULL;
CREATE INDEX records_request_id ON {s}.records (request_id) WHERE request_id IS NOT NULL;
CREATE TABLE {s}.hashes (
    origin text     NOT NULL,
    level  smallint NOT NULL CHECK (level > 0 AND level % 4 = 0),
    idx    bigint   NOT NULL CHECK (idx >= 0),
    hash   bytea    NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (origin, level, idx)
);
CREATE TABLE {s}.checkpoints (
    origin    text   NOT NULL,
    size      bigint NOT NULL CHECK (size >= 0),
    note      text   NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (origin, size)
);
CREATE FUNCTION {s}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'veritrail: %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {s}.logs
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {s}.logs
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {s}.records
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {s}.records
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {s}.hashes
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {s}.hashes
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {s}.checkpoints
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {s}.checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
"#,
];

/// The log tables, each guarded by the append-only triggers.
pub const LOG_TABLES: [&str; 4] = ["logs", "records", "hashes", "checkpoints"];

/// The `GRANT` statements for the two roles besides the owner (who runs the migrations): a
/// writer role that may only read and insert, and an auditor role that may only read. The
/// roles must exist (`CREATE ROLE … LOGIN`); the statements are idempotent.
///
/// ```
/// let sql = veritrail_postgres::grants_sql("veritrail", "audit_writer", "audit_reader");
/// assert!(sql.contains("GRANT SELECT, INSERT ON veritrail.records TO audit_writer;"));
/// assert!(!sql.contains("DELETE"));
/// ```
pub fn grants_sql(schema: &str, writer: &str, auditor: &str) -> String {
    let mut sql = format!(
        "GRANT USAGE ON SCHEMA {schema} TO {writer}, {auditor};\n\
         GRANT SELECT ON {schema}.schema_version TO {writer}, {auditor};\n"
    );
    for table in LOG_TABLES {
        sql.push_str(&format!(
            "GRANT SELECT, INSERT ON {schema}.{table} TO {writer};\n\
             GRANT SELECT ON {schema}.{table} TO {auditor};\n"
        ));
    }
    sql
}

/// Creates the schema or brings it up to [`SCHEMA_VERSION`], idempotently: a schema already
/// at this version is only read (so a writer role without `CREATE` can open it); otherwise
/// the migrations run in one transaction under an advisory lock, so concurrent first starts
/// create it once. A schema from a newer build is refused.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<(), PgError> {
    if current_version(client, schema).await? == Some(SCHEMA_VERSION) {
        return Ok(());
    }
    let db = |what: &'static str| move |e| PgError::db(what, e);
    let tx = client
        .transaction()
        .await
        .map_err(db("starting a migration"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&crate::lock_key("migrate", schema, "")],
    )
    .await
    .map_err(db("locking for a migration"))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_version (
             singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
             version     integer NOT NULL,
             migrated_at timestamptz NOT NULL DEFAULT now()
         );
         INSERT INTO {schema}.schema_version (version) VALUES (0) ON CONFLICT DO NOTHING;"
    ))
    .await
    .map_err(|e| PgError::Schema {
        reason: format!(
            "cannot create the schema {schema} ({}): run this once as the owner, then the \
             writer role needs only its grants",
            crate::db_reason(&e)
        ),
    })?;
    let row = tx
        .query_one(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .await
        .map_err(db("reading the schema version"))?;
    let version: i32 = row.get(0);
    check_not_newer(schema, version)?;
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(&migration.replace("{s}", schema))
            .await
            .map_err(db("migrating the schema"))?;
        tx.execute(
            &format!("UPDATE {schema}.schema_version SET version = $1, migrated_at = now()"),
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(db("recording the schema version"))?;
    }
    tx.commit().await.map_err(db("committing the migration"))
}

/// The schema's version, `None` when it has none yet.
pub(crate) async fn current_version(client: &Client, schema: &str) -> Result<Option<i32>, PgError> {
    let exists = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{schema}.schema_version")],
        )
        .await
        .map_err(|e| PgError::db("looking for the schema", e))?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let row = client
        .query_one(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .await
        .map_err(|e| PgError::db("reading the schema version", e))?;
    let version: i32 = row.get(0);
    check_not_newer(schema, version)?;
    Ok(Some(version))
}

fn check_not_newer(schema: &str, version: i32) -> Result<(), PgError> {
    if version > SCHEMA_VERSION {
        return Err(PgError::Schema {
            reason: format!(
                "the schema {schema} is at version {version}, newer than this build's \
                 {SCHEMA_VERSION}: upgrade veritrail"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_match_the_version() {
        assert_eq!(super::MIGRATIONS.len(), super::SCHEMA_VERSION as usize);
        assert!(super::MIGRATIONS[0].contains("level % 4 = 0"));
        assert_eq!(super::HASH_STRIDE, 4);
    }
}
