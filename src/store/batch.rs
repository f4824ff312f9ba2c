//! Group commit for SQLite `record_deliveries`: callers queue their request on a channel; one
//! writer task drains everything queued, records it in ONE transaction, commits once, then
//! answers each caller. Under load a commit covers many calls instead of each call paying its own.
//!
//! The whole batch is written with one INSERT for every delivery and one hint per distinct
//! (org, trigger, detail): each statement is a round trip to SQLite's thread, so statements per
//! request, not rows, bound throughput. If any statement fails, the batch is rolled back and
//! written again with each request in its own savepoint, so one request's error does not fail
//! the others.

use std::collections::HashSet;
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
    match commit_together(pool, batch).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "group commit failed; writing each call on its own");
            commit_isolated(pool, batch).await
        }
    }
}

/// The fast path: every delivery of the batch in one INSERT, one hint per distinct hint.
async fn commit_together(
    pool: &SqlitePool,
    batch: &[Request],
) -> Result<Vec<DeliveryOutcome>, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let now = sqlite::now();
    let rows: Vec<(&str, &str)> = batch
        .iter()
        .flat_map(|r| r.deliveries.iter())
        .map(|d| (d.source.as_str(), d.key.as_str()))
        .collect();
    let rows = serde_json::to_string(&rows).map_err(|e| StoreError::Data(e.to_string()))?;
    // One bound parameter however large the batch (SQLite caps parameters per statement).
    // `WHERE true` resolves the INSERT … SELECT … ON CONFLICT parsing ambiguity.
    let inserted: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO deliveries (source, key, received_at) \
         SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?2 \
         FROM json_each(?1) WHERE true \
         ON CONFLICT (source, key) DO NOTHING RETURNING source, key",
    )
    .bind(rows)
    .bind(&now)
    .fetch_all(&mut *tx)
    .await?;
    // RETURNING order is unspecified: each new key counts as new for the first request that
    // carries it, in queue order, and as a duplicate for any later one.
    let mut fresh: HashSet<(String, String)> = inserted.into_iter().collect();
    let mut hints: Vec<(&NewHint, i64)> = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for request in batch {
        let new = request
            .deliveries
            .iter()
            .filter(|d| fresh.remove(&(d.source.as_str().to_owned(), d.key.clone())))
            .count();
        let hint_id = if new == 0 {
            None
        } else if let Some((_, id)) = hints.iter().find(|(h, _)| **h == request.hint) {
            Some(*id)
        } else {
            let id = sqlite::insert_hint(&mut tx, &request.hint, &now).await?;
            hints.push((&request.hint, id));
            Some(id)
        };
        outcomes.push(DeliveryOutcome {
            new,
            duplicates: request.deliveries.len() - new,
            hint_id,
        });
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// The slow path: each request in its own savepoint.
async fn commit_isolated(
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
