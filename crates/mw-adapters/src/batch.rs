//! Group commit for the ingress: concurrent enqueues are written by one thread in
//! one transaction, so a burst pays one fsync instead of one per request. Each
//! caller still gets its answer only after the commit (2xx only after a durable
//! enqueue).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mw_core::{Delivery, Enqueued, PortError, Queue};
use tokio::sync::{mpsc, oneshot};

use crate::sqlite::SqliteStore;

/// Most messages in one commit.
const MAX_BATCH: usize = 256;

struct Job {
    group: String,
    key: String,
    payload: Vec<u8>,
    reply: oneshot::Sender<Result<Enqueued, PortError>>,
}

/// A [`Queue`] whose `enqueue` is group-committed; the other operations go straight
/// to the store.
pub struct GroupCommitQueue {
    jobs: mpsc::Sender<Job>,
    store: Arc<SqliteStore>,
}

impl GroupCommitQueue {
    /// Starts the writer thread over `store` (which should be used for nothing else
    /// that writes often). The thread stops when the queue is dropped.
    pub fn start(store: Arc<SqliteStore>) -> Result<GroupCommitQueue, PortError> {
        let (jobs, mut receiver) = mpsc::channel::<Job>(4 * MAX_BATCH);
        let writer = store.clone();
        std::thread::Builder::new()
            .name("mw-enqueue".into())
            .spawn(move || {
                while let Some(first) = receiver.blocking_recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match receiver.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let items: Vec<(String, String, Vec<u8>)> = batch
                        .iter_mut()
                        .map(|job| {
                            (
                                std::mem::take(&mut job.group),
                                std::mem::take(&mut job.key),
                                std::mem::take(&mut job.payload),
                            )
                        })
                        .collect();
                    match writer.enqueue_batch(&items, Utc::now()) {
                        Ok(results) => {
                            for (job, result) in batch.into_iter().zip(results) {
                                let _ = job.reply.send(Ok(result));
                            }
                        }
                        Err(error) => {
                            for job in batch {
                                let _ = job.reply.send(Err(error.clone()));
                            }
                        }
                    }
                }
            })
            .map_err(|error| {
                PortError::Unavailable(format!("cannot start the enqueue thread: {error}"))
            })?;
        Ok(GroupCommitQueue { jobs, store })
    }
}

#[async_trait]
impl Queue for GroupCommitQueue {
    async fn enqueue(
        &self,
        group: &str,
        event_key: &str,
        payload: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<Enqueued, PortError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            group: group.to_owned(),
            key: event_key.to_owned(),
            payload: payload.to_vec(),
            reply,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| PortError::Unavailable("the enqueue thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| PortError::Unavailable("the enqueue thread has stopped".into()))?
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, PortError> {
        self.store.receive(max, visibility, now).await
    }

    async fn ack(&self, receipt: &str) -> Result<(), PortError> {
        self.store.ack(receipt).await
    }

    async fn release(
        &self,
        receipt: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.store.release(receipt, error, now).await
    }
}
