//! Jobs for the writer thread: work to run inside the batch's transaction,
//! and an answer to send only once that transaction has committed.

use tokio::sync::oneshot;

use crate::store::StoreError;

/// A unit of work in a batch. `run` may be called once; then exactly one of
/// `answer` (the batch committed) or `fail` (it did not).
pub trait Job: Send {
    fn run(&mut self, txn: &redb::WriteTransaction) -> Result<(), redb::Error>;
    fn answer(self: Box<Self>);
    fn fail(self: Box<Self>, error: StoreError);
}

type Work<T> =
    Box<dyn FnOnce(&redb::WriteTransaction) -> Result<Result<T, StoreError>, redb::Error> + Send>;

/// A job whose work yields a `T` (or the job's own error, which does not
/// abort the batch); the outer `redb::Error` aborts the whole batch.
pub struct Pending<T> {
    work: Option<Work<T>>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send + 'static> Pending<T> {
    pub fn new<F>(work: F) -> (Self, oneshot::Receiver<Result<T, StoreError>>)
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<Result<T, StoreError>, redb::Error>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Pending {
            work: Some(Box::new(work)),
            outcome: None,
            reply,
        };
        (job, answer)
    }
}

impl<T: Send + 'static> Job for Pending<T> {
    fn run(&mut self, txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        if let Some(work) = self.work.take() {
            self.outcome = Some(work(txn)?);
        }
        Ok(())
    }

    fn answer(self: Box<Self>) {
        let outcome = self
            .outcome
            .unwrap_or_else(|| Err(super::storage_error("a job was answered before it ran")));
        let _ = self.reply.send(outcome);
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}
