//! The embedded backend: counters in a `redb` file under the data directory.
//!
//! redb commits are crash-safe and, with [`redb::Durability::Immediate`] (its
//! default), on disk when `commit` returns. Every allocation is committed
//! before its segment is handed back, so a crash or `kill -9` can never lead
//! to an ID being issued twice.
//!
//! An fsync per request would cap throughput at the disk's flush rate, so all
//! writes go through one writer thread that *group-commits*: it takes every
//! request waiting in its queue, applies them in one transaction, commits
//! once, and only then answers each of them. Under load many allocations share
//! one fsync; an idle server still answers a single request after one commit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;

use async_trait::async_trait;
use kxy_core::{Segment, SegmentCount, SegmentKey};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::{CounterState, MissingCounter, Registration, Store, StoreError};

/// Counter storage name (`system:db:table:field`) → highest ID handed out.
const COUNTERS: TableDefinition<&str, i64> = TableDefinition::new("counters");

/// The file inside the data directory.
const FILE_NAME: &str = "kxy.redb";

/// Most requests applied in one transaction; bounds the latency one commit
/// can add to the requests at the back of a batch.
const MAX_BATCH: usize = 4096;

const BACKEND: &str = "embedded";

/// A handle to the embedded store. Dropping it stops the writer thread after
/// the queued requests are done and closes the file.
pub struct EmbeddedStore {
    path: PathBuf,
    db: Arc<Database>,
    /// `Option` so `Drop` can close the queue before joining the writer.
    queue: Option<mpsc::Sender<Request>>,
    writer: Option<thread::JoinHandle<()>>,
}

/// A write waiting for the writer thread.
struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

enum Op {
    Allocate {
        key: SegmentKey,
        count: SegmentCount,
        missing: MissingCounter,
    },
    Register {
        key: SegmentKey,
        start: i64,
    },
}

enum Outcome {
    Allocated(Segment),
    Registered(Registration),
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            unavailable(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => unavailable(format!(
                "{} is in use by another kxy-server process; stop it first \
                 (one process owns the embedded store; use --store redis to run several)",
                path.display()
            )),
            other => unavailable(format!("cannot open {}: {other}", path.display())),
        })?;
        // Create the table up front so readers never see it missing.
        let txn = db.begin_write().map_err(storage_error)?;
        txn.open_table(COUNTERS).map_err(storage_error)?;
        txn.commit().map_err(storage_error)?;

        let db = Arc::new(db);
        let (queue, requests) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer = thread::Builder::new()
            .name("kxy-store-writer".into())
            .spawn(move || write_loop(&writer_db, requests))
            .map_err(|e| unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(EmbeddedStore {
            path,
            db,
            queue: Some(queue),
            writer: Some(writer),
        })
    }

    async fn submit(&self, op: Op) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || unavailable("the writer thread has stopped".into());
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Request { op, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.writer.as_ref().is_none_or(|w| w.is_finished()) {
            return Err(unavailable("the writer thread has stopped".into()));
        }
        let db = Arc::clone(&self.db);
        blocking(move || {
            let txn = db.begin_read()?;
            txn.open_table(COUNTERS)?;
            Ok(())
        })
        .await
    }

    async fn allocate(
        &self,
        key: &SegmentKey,
        count: SegmentCount,
        missing: MissingCounter,
    ) -> Result<Segment, StoreError> {
        let op = Op::Allocate {
            key: key.clone(),
            count,
            missing,
        };
        match self.submit(op).await? {
            Outcome::Allocated(segment) => Ok(segment),
            Outcome::Registered(_) => unreachable!("an allocation is answered with a segment"),
        }
    }

    async fn register(&self, key: &SegmentKey, start: i64) -> Result<Registration, StoreError> {
        let op = Op::Register {
            key: key.clone(),
            start,
        };
        match self.submit(op).await? {
            Outcome::Registered(registration) => Ok(registration),
            Outcome::Allocated(_) => unreachable!("a registration is answered with its outcome"),
        }
    }

    async fn counters(&self) -> Result<Vec<CounterState>, StoreError> {
        let db = Arc::clone(&self.db);
        blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(COUNTERS)?;
            let mut counters = Vec::new();
            for entry in table.iter()? {
                let (name, current) = entry?;
                match SegmentKey::from_storage_name(name.value()) {
                    Ok(key) => counters.push(CounterState {
                        key,
                        current: current.value(),
                    }),
                    Err(e) => tracing::warn!("skipping unreadable counter entry: {e}"),
                }
            }
            Ok(counters)
        })
        .await
    }
}

/// The writer thread: drains the queue in batches, one commit per batch.
fn write_loop(db: &Database, requests: mpsc::Receiver<Request>) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|r| (r.op, r.reply)).unzip();
        match apply_batch(db, &ops) {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                // Nothing of the batch was committed, so nothing was handed out.
                tracing::error!("embedded store commit failed: {e}");
                for reply in replies {
                    let _ = reply.send(Err(storage_error(&e)));
                }
            }
        }
    }
}

/// Applies `ops` in one transaction and commits it. Individual operations may
/// fail (unregistered counter, exhaustion) without affecting the others; only
/// a storage failure fails the whole batch.
fn apply_batch(db: &Database, ops: &[Op]) -> Result<Vec<Result<Outcome, StoreError>>, redb::Error> {
    let txn = db.begin_write()?;
    let mut outcomes = Vec::with_capacity(ops.len());
    {
        let mut table = txn.open_table(COUNTERS)?;
        for op in ops {
            outcomes.push(apply(&mut table, op)?);
        }
    }
    txn.commit()?;
    Ok(outcomes)
}

type CounterTable<'txn> = redb::Table<'txn, &'static str, i64>;

/// One operation inside the batch's transaction. The outer `Result` is a
/// storage failure; the inner one is this operation's own answer.
fn apply(
    table: &mut CounterTable<'_>,
    op: &Op,
) -> Result<Result<Outcome, StoreError>, redb::Error> {
    match op {
        Op::Allocate {
            key,
            count,
            missing,
        } => {
            let name = key.storage_name();
            let current = table.get(name.as_str())?.map(|v| v.value());
            let current = match (current, missing) {
                (Some(current), _) => current,
                (None, MissingCounter::Create) => 0,
                (None, MissingCounter::Refuse) => {
                    return Ok(Err(StoreError::NotRegistered { key: key.clone() }));
                }
            };
            match Segment::after(current, *count) {
                Ok(segment) => {
                    table.insert(name.as_str(), segment.end)?;
                    Ok(Ok(Outcome::Allocated(segment)))
                }
                Err(source) => Ok(Err(StoreError::Exhausted {
                    key: key.clone(),
                    source,
                })),
            }
        }
        Op::Register { key, start } => {
            let name = key.storage_name();
            let current = table.get(name.as_str())?.map(|v| v.value());
            let registration = match current {
                None => Registration::Created,
                Some(current) if current < *start => Registration::Raised { from: current },
                Some(current) => {
                    return Ok(Ok(Outcome::Registered(Registration::Unchanged { current })));
                }
            };
            table.insert(name.as_str(), *start)?;
            Ok(Ok(Outcome::Registered(registration)))
        }
    }
}

fn unavailable(reason: String) -> StoreError {
    StoreError::Unavailable {
        backend: BACKEND,
        reason,
    }
}

fn storage_error(e: impl std::fmt::Display) -> StoreError {
    unavailable(format!("storage error: {e}"))
}

/// Runs a read on the blocking pool; redb's calls block on file I/O.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, redb::Error> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| unavailable(format!("store task failed: {e}")))?
        .map_err(storage_error)
}
