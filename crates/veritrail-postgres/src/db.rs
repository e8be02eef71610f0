//! One connection and the runtime that drives it, for the synchronous callers (the writer's
//! thread, the command line).

use std::future::Future;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls};

use crate::{PgError, PgLocation};

/// A client on its own single-threaded runtime. The connection task runs while a call is
/// being driven ([`Db::run`]); nothing else shares the runtime.
pub(crate) struct Db {
    /// Always `Some` but in `drop`.
    rt: Option<Runtime>,
    client: Option<Client>,
    pub(crate) loc: PgLocation,
}

impl Db {
    /// Connects to `loc`.
    pub(crate) fn connect(loc: &PgLocation) -> Result<Db, PgError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PgError::Connect {
                location: loc.to_string(),
                reason: format!("cannot start the client's runtime: {e}"),
            })?;
        let mut db = Db {
            rt: Some(rt),
            client: None,
            loc: loc.clone(),
        };
        db.reconnect()?;
        Ok(db)
    }

    /// Drops the current connection (if any) and opens a new one.
    pub(crate) fn reconnect(&mut self) -> Result<(), PgError> {
        self.client = None;
        let config = self.loc.config().clone();
        let location = self.loc.to_string();
        let client = self.run(async move {
            let (client, connection) =
                config.connect(NoTls).await.map_err(|e| PgError::Connect {
                    location: location.clone(),
                    reason: crate::db_reason(&e),
                })?;
            tokio::spawn(async move {
                // The error (a closed socket) shows up on the next query.
                let _ = connection.await;
            });
            Ok::<_, PgError>(client)
        })?;
        self.client = Some(client);
        Ok(())
    }

    /// Whether there is a connection that has not been seen to close.
    pub(crate) fn is_connected(&self) -> bool {
        self.client.as_ref().is_some_and(|c| !c.is_closed())
    }

    /// Forgets the connection (after an error that left it in an unknown state).
    pub(crate) fn disconnect(&mut self) {
        self.client = None;
    }

    /// Drives `f` to completion on this connection's runtime, from any thread — also from
    /// inside another runtime (as `veritrail proxy` opens its sink), where it runs on a
    /// scoped thread of its own.
    pub(crate) fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        block(self.rt.as_ref().expect("runtime"), f)
    }

    /// Runs `f` with the client, giving up after `limit`: the connection is then dropped
    /// (its state is unknown) and the error is [`PgError::Unavailable`]. A connection error
    /// drops the connection too.
    pub(crate) fn call<T: Send>(
        &mut self,
        limit: Duration,
        f: impl for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, Result<T, PgError>> + Send,
    ) -> Result<T, PgError> {
        let Db { rt, client, .. } = self;
        let Some(c) = client.as_mut() else {
            return Err(PgError::Unavailable {
                reason: "not connected".into(),
            });
        };
        let rt = rt.as_ref().expect("runtime");
        let result = block(rt, async move {
            match tokio::time::timeout(limit, f(c)).await {
                Ok(r) => r,
                Err(_) => Err(PgError::Unavailable {
                    reason: format!("no answer within {} ms", limit.as_millis()),
                }),
            }
        });
        if result.as_ref().is_err_and(PgError::is_unavailable)
            || client.as_ref().is_some_and(Client::is_closed)
        {
            *client = None;
        }
        result
    }
}

impl Drop for Db {
    /// Without waiting: a store may be dropped inside someone else's runtime, where blocking
    /// on this one's shutdown is not allowed.
    fn drop(&mut self) {
        self.client = None;
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn block<F>(rt: &Runtime, f: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(f))
                .join()
                .expect("the database call panicked")
        })
    } else {
        rt.block_on(f)
    }
}
