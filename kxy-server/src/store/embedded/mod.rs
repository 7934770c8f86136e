//! The embedded backend: everything in one `redb` file under the data
//! directory.
//!
//! redb commits are crash-safe and, with [`redb::Durability::Immediate`] (its
//! default), on disk when `commit` returns. Every write (an allocation, a
//! record, a mark) is committed before it is answered, so a crash or
//! `kill -9` can never lead to an ID being issued twice or a revocation
//! being forgotten.
//!
//! An fsync per request would cap throughput at the disk's flush rate, so all
//! writes go through one writer thread that *group-commits*: it takes every
//! job waiting in its queue, runs them in one transaction, commits once, and
//! only then answers each. Under load many writes share one fsync; an idle
//! server still answers a single request after one commit. Reads use their
//! own read transactions and never wait for the writer.

mod jobs;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use async_trait::async_trait;
use kxy_core::{Segment, SegmentCount, SegmentKey};
use redb::{Database, ReadableDatabase};

use super::{
    Beat, CounterState, DurabilityFacts, Expect, Mark, MissingCounter, Observation, Record,
    Registration, Settlement, Settling, Store, StoreError,
};
use jobs::{Job, Pending};

const FILE_NAME: &str = "kxy.redb";

/// Most jobs run in one transaction; bounds the latency one commit can add
/// to the jobs at the back of a batch.
const MAX_BATCH: usize = 4096;

pub(crate) const BACKEND: &str = "embedded";

/// A handle to the embedded store. Dropping it lets the writer finish the
/// queued jobs, then closes the file.
pub struct EmbeddedStore {
    path: PathBuf,
    db: Arc<Database>,
    /// `Option` so `Drop` can close the queue before joining the writer.
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<thread::JoinHandle<()>>,
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
        tables::create_all(&db).map_err(storage_error)?;

        let db = Arc::new(db);
        let (queue, jobs) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer = thread::Builder::new()
            .name("kxy-store-writer".into())
            .spawn(move || write_loop(&writer_db, jobs))
            .map_err(|e| unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(EmbeddedStore {
            path,
            db,
            queue: Some(queue),
            writer: Some(writer),
        })
    }

    /// Runs `work` in the writer's next transaction; answers after commit.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> Result<Result<T, StoreError>, redb::Error>
            + Send
            + 'static,
    {
        let (job, answer) = Pending::new(work);
        let stopped = || unavailable("the writer thread has stopped".into());
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Box::new(job))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `work` in a read transaction on the blocking pool.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db.begin_read()?))
            .await
            .map_err(|e| unavailable(format!("store task failed: {e}")))?
            .map_err(storage_error)
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
        self.read(tables::ping).await
    }

    async fn store_id(&self) -> Result<String, StoreError> {
        self.read(tables::store_id).await
    }

    async fn durability(&self) -> Result<DurabilityFacts, StoreError> {
        Ok(DurabilityFacts::FsyncBeforeReply)
    }

    async fn fence(&self, key: &SegmentKey, floor: i64) -> Result<i64, StoreError> {
        let key = key.clone();
        self.write(move |txn| tables::fence(txn, &key, floor)).await
    }

    async fn allocate(
        &self,
        key: &SegmentKey,
        count: SegmentCount,
        missing: MissingCounter,
    ) -> Result<Segment, StoreError> {
        let key = key.clone();
        self.write(move |txn| tables::allocate(txn, &key, count, missing))
            .await
    }

    async fn register(&self, key: &SegmentKey, start: i64) -> Result<Registration, StoreError> {
        let key = key.clone();
        self.write(move |txn| tables::register(txn, &key, start))
            .await
    }

    async fn counters(&self) -> Result<Vec<CounterState>, StoreError> {
        self.read(tables::counters).await
    }

    async fn record(&self, collection: &str, id: &str) -> Result<Option<Record>, StoreError> {
        let key = tables::record_key(collection, id)?;
        self.read(move |txn| tables::record(txn, &key)).await
    }

    async fn put_record(
        &self,
        collection: &str,
        id: &str,
        value: &str,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError> {
        let key = tables::record_key(collection, id)?;
        let value = value.to_owned();
        self.write(move |txn| tables::put_record(txn, &key, &value, expect).map(Ok))
            .await
    }

    async fn delete_record(
        &self,
        collection: &str,
        id: &str,
        expect: Expect,
    ) -> Result<bool, StoreError> {
        let key = tables::record_key(collection, id)?;
        self.write(move |txn| tables::delete_record(txn, &key, expect).map(Ok))
            .await
    }

    async fn records(&self, collection: &str) -> Result<Vec<(String, Record)>, StoreError> {
        let prefix = tables::record_prefix(collection)?;
        self.read(move |txn| tables::records(txn, &prefix)).await
    }

    async fn hit_mark(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        let key = tables::mark_key(key)?;
        self.write(move |txn| tables::hit_mark(txn, &key, window).map(Ok))
            .await
    }

    async fn set_mark(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = tables::mark_key(key)?;
        self.write(move |txn| tables::set_mark(txn, &key, ttl).map(Ok))
            .await
    }

    async fn mark(&self, key: &str) -> Result<Option<Mark>, StoreError> {
        let key = tables::mark_key(key)?;
        self.read(move |txn| tables::mark(txn, &key)).await
    }

    async fn clear_mark(&self, key: &str) -> Result<(), StoreError> {
        let key = tables::mark_key(key)?;
        self.write(move |txn| tables::clear_mark(txn, &key).map(Ok))
            .await
    }

    /// One process owns the file, so its history cannot change while it
    /// runs: the epoch is the store's id, always open. (A restored older
    /// file is a change between runs, which the witness catches at start.)
    async fn observe(
        &self,
        _instance: &str,
        _verified: Option<&str>,
        _timing: Settling,
        _beat: Option<Beat<'_>>,
    ) -> Result<Observation, StoreError> {
        let epoch = self.store_id().await?;
        Ok(Observation {
            open: Some(epoch.clone()),
            epoch,
            first_seen_ms: None,
            now_ms: 0,
            lost_heartbeat: false,
        })
    }

    async fn settle(
        &self,
        _epoch: &str,
        _base: &[CounterState],
        _timing: Settling,
    ) -> Result<Settlement, StoreError> {
        Ok(Settlement::Open)
    }

    async fn base(&self, _epoch: &str) -> Result<Vec<(SegmentKey, i64)>, StoreError> {
        Ok(Vec::new())
    }

    fn trust(&self, _epoch: Option<Arc<str>>) {}
}

/// The writer thread: drains the queue in batches, one commit per batch.
fn write_loop(db: &Database, jobs: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = db.begin_write().map_err(redb::Error::from).and_then(|txn| {
            for job in &mut batch {
                job.run(&txn)?;
            }
            txn.commit().map_err(redb::Error::from)
        });
        match committed {
            Ok(()) => batch.into_iter().for_each(|job| job.answer()),
            Err(e) => {
                // Nothing of the batch was committed, so nothing was handed out.
                tracing::error!("embedded store commit failed: {e}");
                let error = storage_error(&e);
                batch.into_iter().for_each(|job| job.fail(error.clone()));
            }
        }
    }
}

fn unavailable(reason: String) -> StoreError {
    StoreError::Unavailable {
        backend: BACKEND,
        reason,
    }
}

pub(crate) fn storage_error(e: impl std::fmt::Display) -> StoreError {
    unavailable(format!("storage error: {e}"))
}
