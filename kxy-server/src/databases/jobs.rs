//! Initialize jobs: a long initialize runs on its own, not inside a request.
//!
//! `POST /api/database/{guid}/jobs` starts one and answers its id at once;
//! `GET /api/database/jobs/{id}` tells its progress (tables done and in
//! all, the table just done) and, at the end, its report or why it failed.
//! The job is a task of the server, so a client that disconnects, or a
//! request timeout, does not stop it. Its record lives in the store, so any
//! instance answers for it, and a lease in the store lets one job per
//! database run at a time, across instances; a job whose instance died
//! loses its lease within [`LEASE`] and a new one may start.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DatabaseService;
use super::initialize::InitReport;
use crate::Error;
use crate::identity::tokens::{is_id, now, random_id};
use crate::store::Expect;
use crate::store::records::typed;

const JOBS: &str = "database_jobs";
/// How long a job holds its database without renewing (it renews every
/// [`TICK`]).
const LEASE: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

/// A job as the status route shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub guid: String,
    pub state: JobState,
    pub tables_done: usize,
    pub tables_total: usize,
    /// The table done last, while running.
    pub current_table: Option<String>,
    pub started_at: u64,
    pub finished_at: Option<u64>,
    /// Why it failed, if it did (the report may still hold what was done).
    pub error: Option<String>,
    pub report: Option<InitReport>,
}

fn lease_key(guid: &str) -> String {
    format!("job:{guid}")
}

impl DatabaseService {
    /// Starts initializing `guid` as a job; refused (409) while another
    /// job holds the database.
    pub async fn start_job(self: &Arc<Self>, guid: &str) -> Result<Job, Error> {
        self.config(guid).await?;
        if self.store.hit_mark(&lease_key(guid), LEASE).await? != 1 {
            return Err(Error::Conflict(format!(
                "an initialize job is running for database {guid}; follow it with GET \
                 /api/database/jobs/{{id}} (its id is in the answer that started it)"
            )));
        }
        let job = Job {
            id: random_id(),
            guid: guid.to_owned(),
            state: JobState::Running,
            tables_done: 0,
            tables_total: 0,
            current_table: None,
            started_at: now(),
            finished_at: None,
            error: None,
            report: None,
        };
        typed::save(&*self.store, JOBS, &job.id, &job, Expect::Absent).await?;
        tokio::spawn(Arc::clone(self).run_job(job.clone()));
        Ok(job)
    }

    pub async fn job(&self, id: &str) -> Result<Job, Error> {
        let missing = || Error::NotFound {
            what: "job",
            id: id.to_owned(),
        };
        if !is_id(id) {
            return Err(missing());
        }
        typed::load(&*self.store, JOBS, id)
            .await?
            .map(|(job, _)| job)
            .ok_or_else(missing)
    }

    async fn run_job(self: Arc<Self>, mut job: Job) {
        let done = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(0));
        let current = Arc::new(Mutex::new(None::<String>));
        let work = {
            let (done, total, current) =
                (Arc::clone(&done), Arc::clone(&total), Arc::clone(&current));
            let service = Arc::clone(&self);
            let guid = job.guid.clone();
            tokio::spawn(async move {
                service
                    .initialize(&guid, |d, t, table| {
                        done.store(d, Ordering::Relaxed);
                        total.store(t, Ordering::Relaxed);
                        *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(table.to_owned());
                    })
                    .await
            })
        };
        tokio::pin!(work);
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                () = tokio::time::sleep(TICK) => {
                    job.tables_done = done.load(Ordering::Relaxed);
                    job.tables_total = total.load(Ordering::Relaxed);
                    job.current_table = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    self.record(&job).await;
                    if let Err(e) = self.store.set_mark(&lease_key(&job.guid), LEASE).await {
                        tracing::warn!(job = %job.id, "cannot renew the job's lease: {e}");
                    }
                }
            }
        };
        job.finished_at = Some(now());
        job.current_table = None;
        match outcome {
            Ok(Ok(report)) => {
                job.tables_done = report.tables_done;
                job.tables_total = report.tables_total;
                job.state = if report.failed.is_some() {
                    JobState::Failed
                } else {
                    JobState::Done
                };
                job.error = report.failed.clone();
                job.report = Some(report);
            }
            Ok(Err(e)) => {
                job.state = JobState::Failed;
                job.error = Some(e.to_string());
            }
            Err(e) => {
                job.state = JobState::Failed;
                job.error = Some(format!("the job's task ended abnormally: {e}"));
            }
        }
        tracing::info!(job = %job.id, database = %job.guid, state = ?job.state, "initialize job ended");
        self.record(&job).await;
        if let Err(e) = self.store.clear_mark(&lease_key(&job.guid)).await {
            tracing::warn!(job = %job.id, "cannot release the job's lease (it expires): {e}");
        }
    }

    async fn record(&self, job: &Job) {
        if let Err(e) = typed::save(&*self.store, JOBS, &job.id, job, Expect::Any).await {
            tracing::warn!(job = %job.id, "cannot record the job's progress: {e}");
        }
    }
}
