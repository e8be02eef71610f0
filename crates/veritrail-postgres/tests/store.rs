//! The PostgreSQL store against the real server: the same tree, proofs and verdicts as the
//! file log; one writer per origin; append-only tables; reopening; tampering as the owner.

mod support;

use support::TestSchema;
use veritrail_log::source::LogSource;
use veritrail_log::verify::{VerifyError, VerifyOptions};
use veritrail_log::{Log, LogOptions, NoteSigner};
use veritrail_postgres::{PgError, PgLog, PgStore, grants_sql, verify};

fn record(i: u64) -> Vec<u8> {
    format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat((i % 50) as usize)).into_bytes()
}

/// Writes `n` records in batches of varying size, committing each.
fn write(log: &mut PgLog, from: u64, n: u64) {
    let mut i = from;
    while i < from + n {
        let batch = ((i % 7) + 1).min(from + n - i);
        let records: Vec<Vec<u8>> = (i..i + batch).map(record).collect();
        let got = log.append_batch(records.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(got, i..i + batch);
        log.commit().unwrap();
        i += batch;
    }
}

#[test]
fn same_tree_proofs_and_verdict_as_the_file_log() {
    let schema = TestSchema::new("same");
    let signer = NoteSigner::generate("example.com/pg/same").unwrap();
    let loc = schema.loc(Some("example.com/pg/same"));
    let mut log = PgLog::open(&loc, signer.clone(), Default::default()).unwrap();
    write(&mut log, 0, 300);
    drop(log);
    // Reopened: the tree resumes from the stored hashes.
    let mut log = PgLog::open(&loc, signer.clone(), Default::default()).unwrap();
    assert_eq!(log.size(), 300);
    write(&mut log, 300, 413);
    let pg_checkpoint = log.latest_checkpoint().to_owned();
    drop(log);

    let tmp = tempfile::tempdir().unwrap();
    let mut file = Log::open(tmp.path(), signer.clone(), LogOptions::default()).unwrap();
    for i in 0..713 {
        file.append(&record(i)).unwrap();
    }
    let file_checkpoint = file.checkpoint().unwrap();
    // Same key, origin, size and root: the same checkpoint body.
    assert_eq!(
        pg_checkpoint.split("\n\n").next(),
        file_checkpoint.split("\n\n").next()
    );

    let store = PgStore::open(&loc).unwrap();
    assert_eq!(store.size(), 713);
    for (index, size) in [
        (0, 1),
        (5, 713),
        (712, 713),
        (255, 256),
        (300, 600),
        (17, 64),
    ] {
        assert_eq!(
            store.inclusion_proof(index, size).unwrap(),
            file.inclusion_proof(index, size).unwrap(),
            "inclusion {index} in {size}"
        );
    }
    for (old, new) in [(1, 713), (300, 301), (256, 713), (700, 713)] {
        assert_eq!(
            store.consistency_proof(old, new).unwrap(),
            file.consistency_proof(old, new).unwrap()
        );
    }
    assert_eq!(store.read(42).unwrap(), record(42));
    let records: Vec<_> = store.records(700).map(|r| r.unwrap().record).collect();
    assert_eq!(records, (700..713).map(record).collect::<Vec<_>>());

    let opts = VerifyOptions::default().against(vec![file_checkpoint]);
    let report = verify(&store, &signer.verifier(), &opts).unwrap();
    assert_eq!((report.records, report.root), (713, file.root()));
    assert_eq!(report.against_checked, 1);
    let other = NoteSigner::generate("example.com/pg/same").unwrap();
    assert!(matches!(
        verify(&store, &other.verifier(), &VerifyOptions::default()),
        Err(VerifyError::WrongKey { .. })
    ));
}

#[test]
fn one_writer_per_origin_and_one_key_per_origin() {
    let schema = TestSchema::new("lock");
    let signer = NoteSigner::generate("example.com/pg/lock").unwrap();
    let loc = schema.loc(Some("a"));
    let first = PgLog::open(&loc, signer.clone(), Default::default()).unwrap();
    let err = PgLog::open(&loc, signer.clone(), Default::default()).unwrap_err();
    assert!(matches!(err, PgError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("one writer per origin"), "{err}");
    // Another origin in the same schema is another log.
    let other = PgLog::open(&schema.loc(Some("b")), signer.clone(), Default::default()).unwrap();
    drop((first, other));
    // The lock goes with the writer; the key stays with the origin.
    PgLog::open(&loc, signer, Default::default()).unwrap();
    let stranger = NoteSigner::generate("example.com/pg/lock").unwrap();
    let err = PgLog::open(&loc, stranger, Default::default()).unwrap_err();
    assert!(matches!(err, PgError::KeyMismatch { .. }), "{err}");
}

#[test]
fn tables_are_append_only_and_the_writer_role_cannot_delete() {
    let schema = TestSchema::new("ro");
    let signer = NoteSigner::generate("example.com/pg/ro").unwrap();
    let mut log = PgLog::open(&schema.loc(Some("o")), signer.clone(), Default::default()).unwrap();
    write(&mut log, 0, 40);
    drop(log);
    // Even the owner: the triggers refuse.
    for sql in [
        "DELETE FROM {s}.records WHERE idx = 3",
        "UPDATE {s}.records SET record = 'x' WHERE idx = 3",
        "TRUNCATE {s}.records",
        "TRUNCATE {s}.checkpoints",
        "DELETE FROM {s}.hashes",
        "UPDATE {s}.logs SET verifier_key = 'x'",
    ] {
        let err = schema.try_sql(sql).unwrap_err();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    // Roles: a writer that may only read and insert, an auditor that may only read.
    let (writer, auditor) = (format!("{}_w", schema.name), format!("{}_a", schema.name));
    schema.sql(&format!(
        "CREATE ROLE {writer} LOGIN; CREATE ROLE {auditor} LOGIN;\n{}",
        grants_sql(&schema.name, &writer, &auditor)
    ));
    let mut cleanup = support::RoleCleanup::new(&schema, &writer);
    cleanup.push(&auditor);
    let err = schema
        .try_sql_as(Some(&writer), "DELETE FROM {s}.records WHERE idx = 3")
        .unwrap_err();
    assert!(err.contains("permission denied"), "{err}");
    let err = schema
        .try_sql_as(Some(&auditor), "INSERT INTO {s}.logs VALUES ('x', 'y')")
        .unwrap_err();
    assert!(err.contains("permission denied"), "{err}");
    // The writer role can write a log of its own (the schema is already migrated).
    let as_writer = format!(
        "postgres://{writer}@127.0.0.1:5432/test?schema={}&origin=other",
        schema.name
    );
    let mut log = PgLog::open(&as_writer.parse().unwrap(), signer, Default::default()).unwrap();
    write(&mut log, 0, 10);
    drop(log);
    drop(cleanup);
}

/// Tampering as the owner with the triggers off, as an attacker with the owner's password
/// would: each change is reported with the origin and the index.
#[test]
fn tampering_is_found_with_its_origin_and_index() {
    let signer = NoteSigner::generate("example.com/pg/tamper").unwrap();
    let cases: [(&str, &str, u64); 5] = [
        (
            "hash",
            "UPDATE {s}.hashes SET hash = sha256(hash) WHERE origin = 'o' AND level = 4 AND idx = 2",
            32,
        ),
        (
            "byte",
            "UPDATE {s}.records SET record = overlay(record placing 'X'::bytea from 3 for 1) \
             WHERE origin = 'o' AND idx = 57",
            57,
        ),
        (
            "deleted",
            "DELETE FROM {s}.records WHERE origin = 'o' AND idx = 80",
            80,
        ),
        (
            "older",
            "UPDATE {s}.checkpoints SET note = (SELECT note FROM {s}.checkpoints \
             WHERE origin = 'o' AND size < 100 ORDER BY size DESC LIMIT 1) \
             WHERE origin = 'o' AND size = (SELECT max(size) FROM {s}.checkpoints)",
            100,
        ),
        (
            "last",
            "DELETE FROM {s}.records WHERE origin = 'o' AND idx = 99",
            99,
        ),
    ];
    for (tag, sql, index) in cases {
        let schema = TestSchema::new(tag);
        let loc = schema.loc(Some("o"));
        let mut log = PgLog::open(&loc, signer.clone(), Default::default()).unwrap();
        write(&mut log, 0, 100);
        drop(log);
        schema.sql(&format!(
            "SET session_replication_role = replica; {sql}; SET session_replication_role = DEFAULT"
        ));
        let store = PgStore::open(&loc).unwrap();
        let err = verify(&store, &signer.verifier(), &VerifyOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("origin=o"), "{tag}: {text}");
        assert_eq!(err.index(), Some(index), "{tag}: {text}");
        assert!(!err.is_io(), "{tag}: {text}");
        // A writer refuses to sign over what opening checks in O(log n) reads (the latest
        // checkpoint, the size, the root, the last record), as the file log's writer does.
        if tag == "older" || tag == "last" {
            let err = PgLog::open(&loc, signer.clone(), Default::default()).unwrap_err();
            assert!(matches!(err, PgError::Damaged { .. }), "{tag}: {err}");
        }
    }
}

#[test]
fn a_writer_refuses_hash_rows_beyond_the_records() {
    let schema = TestSchema::new("extra");
    let signer = NoteSigner::generate("example.com/pg/extra").unwrap();
    let loc = schema.loc(Some("o"));
    let mut log = PgLog::open(&loc, signer.clone(), Default::default()).unwrap();
    write(&mut log, 0, 40);
    drop(log);
    // Reopening is fine: the stored hashes cover records 0..32.
    drop(PgLog::open(&loc, signer.clone(), Default::default()).unwrap());
    schema.sql(
        "INSERT INTO {s}.hashes (origin, level, idx, hash) \
         VALUES ('o', 4, 7, sha256('planted'::bytea))",
    );
    let err = PgLog::open(&loc, signer, Default::default()).unwrap_err();
    assert!(matches!(err, PgError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("up to 128 but holds 40"), "{err}");
}

#[test]
fn migrations_are_idempotent_and_versioned() {
    let schema = TestSchema::new("mig");
    let signer = NoteSigner::generate("example.com/pg/mig").unwrap();
    for origin in ["x", "y"] {
        drop(
            PgLog::open(
                &schema.loc(Some(origin)),
                signer.clone(),
                Default::default(),
            )
            .unwrap(),
        );
    }
    assert_eq!(
        schema
            .query_text("SELECT version FROM {s}.schema_version")
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        schema
            .query_text("SELECT count(*) FROM {s}.schema_version")
            .as_deref(),
        Some("1")
    );
    schema.sql("UPDATE {s}.schema_version SET version = 99");
    let err = PgLog::open(&schema.loc(Some("x")), signer, Default::default()).unwrap_err();
    assert!(err.to_string().contains("newer than this build"), "{err}");
    let err = PgStore::open(&schema.loc(Some("zzz"))).unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn a_missing_origin_or_schema_is_named() {
    let schema = TestSchema::new("names");
    let err = PgStore::open(&schema.loc(Some("nope"))).unwrap_err();
    assert!(err.to_string().contains("no veritrail schema"), "{err}");
    let signer = NoteSigner::generate("example.com/pg/names").unwrap();
    drop(PgLog::open(&schema.loc(Some("yes")), signer, Default::default()).unwrap());
    let err = PgStore::open(&schema.loc(Some("nope"))).unwrap_err();
    assert!(err.to_string().contains("it holds: yes"), "{err}");
    let err = PgStore::open(&schema.loc(None)).unwrap_err();
    assert!(matches!(err, PgError::OriginNeeded { .. }), "{err}");
    assert_eq!(
        veritrail_postgres::origins(&schema.loc(None)).unwrap(),
        ["yes"]
    );
}

/// The commit pipelines its last statements with `COMMIT`: a statement that fails there must
/// leave nothing committed and be reported, never taken for a commit.
#[test]
fn a_failed_statement_in_the_pipelined_commit_commits_nothing() {
    let schema = TestSchema::new("pipe");
    let signer = NoteSigner::generate("example.com/pg/pipe").unwrap();
    let mut log = PgLog::open(&schema.loc(Some("o")), signer, Default::default()).unwrap();
    write(&mut log, 0, 14);
    // Someone plants the checkpoint row of the next commit's size (which also completes the
    // first stored hash, of records 0..16).
    schema.sql("INSERT INTO {s}.checkpoints (origin, size, note) VALUES ('o', 17, 'planted')");
    let records: Vec<Vec<u8>> = (14..17).map(record).collect();
    log.append_batch(records.iter().map(Vec::as_slice)).unwrap();
    let err = log.commit().unwrap_err();
    assert!(!err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("duplicate key"), "{err}");
    assert!(log.is_failed());
    assert_eq!(
        schema
            .query_text("SELECT count(*) FROM {s}.records WHERE origin = 'o'")
            .as_deref(),
        Some("14")
    );
    assert_eq!(
        schema
            .query_text("SELECT count(*) FROM {s}.hashes WHERE origin = 'o'")
            .as_deref(),
        Some("0")
    );
}
