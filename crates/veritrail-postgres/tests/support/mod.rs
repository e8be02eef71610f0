//! A schema of its own for each test, dropped afterwards, on the server of
//! `VERITRAIL_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`).
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicU32, Ordering};

use veritrail_postgres::PgLocation;

/// The server the tests use.
pub(crate) fn server_url() -> String {
    std::env::var("VERITRAIL_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema, dropped (with everything in it) when this is dropped.
pub(crate) struct TestSchema {
    pub(crate) name: String,
    base: String,
}

impl TestSchema {
    pub(crate) fn new(tag: &str) -> TestSchema {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "vt_{tag}_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let schema = TestSchema {
            name,
            base: server_url(),
        };
        if let Err(e) = schema.try_sql("SELECT 1") {
            panic!(
                "these tests need PostgreSQL at {} (set VERITRAIL_TEST_PG to use another \
                 server): {e}",
                schema.base
            );
        }
        schema
    }

    /// A handle on the server that owns no schema (for statements about the whole server).
    pub(crate) fn raw(base: &str) -> TestSchema {
        TestSchema {
            name: String::new(),
            base: base.to_owned(),
        }
    }

    /// How many rows a query returns.
    pub(crate) fn count(&self, sql: &str) -> usize {
        let config: tokio_postgres::Config = self.base.parse().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sql = sql.to_owned();
        rt.block_on(async move {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            client.query(&sql, &[]).await.unwrap().len()
        })
    }

    /// The schema's location, for `origin` (or for none).
    pub(crate) fn loc(&self, origin: Option<&str>) -> PgLocation {
        let mut url = format!("{}?schema={}", self.base, self.name);
        if let Some(o) = origin {
            url.push_str("&origin=");
            url.push_str(o);
        }
        url.parse().unwrap()
    }

    /// The URL text of [`loc`](Self::loc).
    pub(crate) fn url(&self, origin: Option<&str>) -> String {
        let mut url = format!("{}?schema={}", self.base, self.name);
        if let Some(o) = origin {
            url.push_str("&origin=");
            url.push_str(o);
        }
        url
    }

    /// Runs SQL as the owner (`{s}` stands for the schema).
    pub(crate) fn sql(&self, sql: &str) {
        self.try_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs SQL as the owner, returning the error text.
    pub(crate) fn try_sql(&self, sql: &str) -> Result<(), String> {
        self.try_sql_as(None, sql)
    }

    /// Runs SQL as `user` (or the owner).
    pub(crate) fn try_sql_as(&self, user: Option<&str>, sql: &str) -> Result<(), String> {
        let sql = sql.replace("{s}", &self.name);
        let mut config: tokio_postgres::Config = self.base.parse().unwrap();
        if let Some(user) = user {
            config.user(user);
        }
        block_on(async move {
            let (client, conn) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) => db.message().to_owned(),
                    None => e.to_string(),
                })
        })
    }

    /// One value from a query, as text.
    pub(crate) fn query_text(&self, sql: &str) -> Option<String> {
        let sql = sql.replace("{s}", &self.name);
        let config: tokio_postgres::Config = self.base.parse().unwrap();
        block_on(async move {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let rows = client.simple_query(&sql).await.unwrap();
            rows.into_iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
        })
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = self.try_sql("DROP SCHEMA IF EXISTS {s} CASCADE");
        }
    }
}

/// Drops a role (and what it owns) when dropped.
pub(crate) struct RoleCleanup<'a>(&'a TestSchema, Vec<String>);

impl<'a> RoleCleanup<'a> {
    pub(crate) fn new(schema: &'a TestSchema, role: &str) -> Self {
        RoleCleanup(schema, vec![role.to_owned()])
    }

    pub(crate) fn push(&mut self, role: &str) {
        self.1.push(role.to_owned());
    }
}

impl Drop for RoleCleanup<'_> {
    fn drop(&mut self) {
        for role in &self.1 {
            let _ = self.0.try_sql(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'; \
                 DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}"
            ));
        }
    }
}

/// Runs `f` on a runtime of its own, on a thread of its own (tests call this from inside
/// their own runtime too).
fn block_on<F: std::future::Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f)
        })
        .join()
        .unwrap()
    })
}
