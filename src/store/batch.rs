//! Group commit for SQLite `record_deliveries`: callers queue their request on a channel; one
//! writer task drains everything queued, records it in ONE transaction (each request in its own
//! savepoint, so one request's error does not fail the others), commits once, then answers each
//! caller. Under load a commit covers many calls instead of each call paying its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Acquire, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::notify::HintNotifier;
use super::sqlite;
use super::{Delivery, DeliveryOutcome, NewHint, StoreError};

/// At most this many calls go into one transaction.
const MAX_BATCH: usize = 512;
/// Calls waiting beyond this block their callers (back-pressure) until the writer catches up.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<DeliveryOutcome, StoreError>>;

struct Request {
    deliveries: Vec<Delivery>,
    hint: NewHint,
    reply: Reply,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) calls: AtomicU64,
    pub(crate) commits: AtomicU64,
}

pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Request>,
    pub(crate) counters: Arc<Counters>,
}

impl GroupCommit {
    /// Spawns the writer task; it ends when every `GroupCommit` handle is dropped.
    pub(crate) fn spawn(pool: SqlitePool, notifier: Arc<HintNotifier>) -> GroupCommit {
        let (queue, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        tokio::spawn(writer(pool, notifier, counters.clone(), rx));
        GroupCommit { queue, counters }
    }

    pub(crate) async fn submit(
        &self,
        deliveries: &[Delivery],
        hint: &NewHint,
    ) -> Result<DeliveryOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            deliveries: deliveries.to_vec(),
            hint: hint.clone(),
            reply,
        };
        self.queue
            .send(request)
            .await
            .map_err(|_| StoreError::Unavailable("the store's writer is not running".to_owned()))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the store's writer stopped before answering".to_owned())
        })?
    }
}

async fn writer(
    pool: SqlitePool,
    notifier: Arc<HintNotifier>,
    counters: Arc<Counters>,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let results = commit_batch(&pool, &batch).await;
        let committed = results.iter().any(Result::is_ok);
        if committed {
            counters.commits.fetch_add(1, Ordering::Relaxed);
        }
        for (request, result) in batch.drain(..).zip(results) {
            if let Ok(outcome) = &result {
                counters.calls.fetch_add(1, Ordering::Relaxed);
                if outcome.hint_id.is_some() {
                    notifier.notify(&request.hint.org_id);
                }
            }
            // A caller that gave up (its future was dropped) no longer listens; the record
            // stands all the same, and a retry of the same keys counts them as duplicates.
            let _ = request.reply.send(result);
        }
    }
}

/// One result per request, in order. Every result is Ok only if the commit succeeded.
async fn commit_batch(
    pool: &SqlitePool,
    batch: &[Request],
) -> Vec<Result<DeliveryOutcome, StoreError>> {
    let all = |e: StoreError| batch.iter().map(|_| Err(e.clone())).collect();
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => return all(e.into()),
    };
    let now = sqlite::now();
    let mut results = Vec::with_capacity(batch.len());
    for request in batch {
        let result = async {
            let mut savepoint = tx.begin().await?;
            let outcome =
                sqlite::record_one(&mut savepoint, &request.deliveries, &request.hint, &now)
                    .await?;
            savepoint.commit().await?;
            Ok::<_, StoreError>(outcome)
        }
        .await;
        results.push(result);
    }
    if let Err(e) = tx.commit().await {
        return all(e.into());
    }
    results
}
