//! The single writer: every write runs on one connection, batched into group commits.
//!
//! SQLite admits one writer at a time, so funnelling writes through one task costs nothing in
//! parallelism and buys a lot of throughput: all operations waiting in the channel run in one
//! transaction (each inside its own savepoint, so one failing operation rolls back alone) and
//! share one durable commit. A caller's answer is sent only after that commit, so an
//! acknowledged write is never lost.
//!
//! Two choices here are about speed (see BENCHMARKS.md):
//! - The writer runs on its own OS thread with its own single-threaded runtime. Every statement
//!   is a round trip to sqlx's per-connection SQLite thread; on the shared runtime, each of those
//!   wake-ups put the writer at the back of a run queue full of HTTP tasks, so one submit's ten
//!   statements waited behind hundreds of other tasks. On its own thread the writer is woken at
//!   once, and the batch it holds the write lock for finishes sooner.
//! - The savepoint statements between operations are sent together (`RELEASE op; SAVEPOINT
//!   op`), one round trip per operation instead of two.

use std::future::Future;
use std::pin::Pin;

use clipia_store::{StoreError, StoreResult};
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

/// Operations in one group commit at most; bounds the latency one batch adds to the next.
pub const BATCH_OPS_MAX: usize = 256;
/// Writes waiting for the writer; senders wait when it is full (back-pressure).
pub const QUEUE_OPS_MAX: usize = 4096;
/// Name of the writer's OS thread (shows in `top -H`, `perf`).
const WRITER_THREAD_NAME: &str = "clipia-writer";

type Deliver = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
pub type OpFuture<'c> = Pin<Box<dyn Future<Output = (bool, Deliver)> + Send + 'c>>;
type Op = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> OpFuture<'c> + Send>;

#[derive(Clone)]
pub struct Writer {
    ops: mpsc::Sender<Op>,
}

impl Writer {
    pub fn spawn(conn: SqliteConnection) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE_OPS_MAX);
        // The thread ends when every `Writer` handle is gone (the channel closes).
        std::thread::Builder::new()
            .name(WRITER_THREAD_NAME.into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime.block_on(run(conn, rx)),
                    // Dropping `rx` fails every write with "the store is shut down".
                    Err(e) => tracing::error!(error = %e, "cannot start the writer's runtime"),
                }
            })
            .expect("spawning the writer thread");
        Writer { ops: tx }
    }

    /// Runs `f` inside the next group commit and answers once that commit is durable.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'c>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let op: Op = Box::new(move |conn| {
            Box::pin(async move {
                let result = f(conn).await;
                let failed = result.is_err();
                let deliver: Deliver = Box::new(move |commit| {
                    let _ = tx.send(commit.and(result));
                });
                (failed, deliver)
            })
        });
        self.ops.send(op).await.map_err(|_| StoreError::Backend("the store is shut down".into()))?;
        rx.await.map_err(|_| StoreError::Backend("the writer stopped".into()))?
    }
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Op>) {
    let mut batch = Vec::with_capacity(BATCH_OPS_MAX);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH_OPS_MAX {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut delivers = Vec::with_capacity(batch.len());
        let outcome = run_batch(&mut conn, &mut batch, &mut delivers).await;
        for deliver in delivers {
            deliver(outcome.as_ref().map(|_| ()).map_err(|e| StoreError::Backend(e.clone())));
        }
    }
    let _ = conn.close().await;
}

async fn run_batch(conn: &mut SqliteConnection, batch: &mut Vec<Op>, delivers: &mut Vec<Deliver>) -> Result<(), String> {
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE; SAVEPOINT op").execute(&mut *conn).await {
        // Nothing ran: every operation in the batch fails with the reason.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        batch.clear();
        return Err(format!("begin: {e}"));
    }
    let ops = batch.len();
    // Each operation runs inside savepoint `op`; a failed one is rolled back alone.
    for (i, op) in batch.drain(..).enumerate() {
        let (failed, deliver) = op(conn).await;
        delivers.push(deliver);
        if failed {
            if let Err(e) = sqlx::query("ROLLBACK TO op").execute(&mut *conn).await {
                return abort(conn, "rollback to savepoint", e).await;
            }
        }
        let next = if i + 1 == ops { "RELEASE op; COMMIT" } else { "RELEASE op; SAVEPOINT op" };
        if let Err(e) = sqlx::query(next).execute(&mut *conn).await {
            // The batch's remaining operations are dropped unrun: their callers get an error.
            return abort(conn, if i + 1 == ops { "commit" } else { "savepoint" }, e).await;
        }
    }
    Ok(())
}

/// Rolls the whole batch back: nothing in it is acknowledged.
async fn abort(conn: &mut SqliteConnection, step: &str, e: sqlx::Error) -> Result<(), String> {
    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    tracing::error!(error = %e, step, "group commit failed");
    Err(format!("{step}: {e}"))
}
