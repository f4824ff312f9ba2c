//! Group commit for `record_deliveries`, on both backends: callers queue their call on a
//! channel; one writer task drains everything queued, records it in ONE transaction, commits
//! once, then answers each caller. Under load a commit covers many calls instead of each call
//! paying its own.
//!
//! The batch is written with one INSERT for every delivery and one hint per distinct (org,
//! trigger, detail): statements per call, not rows, bound throughput. If that fails, each call
//! is written again in a transaction of its own, so one call's error does not fail the others.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::notify::HintNotifier;
use super::{Delivery, DeliveryOutcome, NewHint, StoreError};

/// At most this many calls go into one transaction.
const MAX_BATCH: usize = 512;
/// Calls waiting beyond this block their callers (back-pressure) until the writer catches up.
const QUEUE: usize = 4096;

/// One queued `record_deliveries` call.
pub(crate) struct Call {
    pub(crate) deliveries: Vec<Delivery>,
    pub(crate) hint: NewHint,
}

/// How the store writes a batch of calls.
pub(crate) trait BatchWriter: Send + Sync + 'static {
    /// A connection the writer keeps from one batch to the next while calls keep coming.
    type Held: Send;

    /// Takes a connection for the writer.
    fn hold(&self) -> impl Future<Output = Result<Self::Held, StoreError>> + Send;

    /// Whether another write is waiting for a connection (the writer then gives its back).
    fn others_waiting(&self) -> bool;

    /// Every call in one transaction on `held`; an error fails them all (nothing is
    /// committed).
    fn commit_together(
        &self,
        held: &mut Self::Held,
        calls: &[&Call],
    ) -> impl Future<Output = Result<Vec<DeliveryOutcome>, StoreError>> + Send;
}

type Reply = oneshot::Sender<Result<DeliveryOutcome, StoreError>>;

struct Request {
    call: Call,
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
    pub(crate) fn spawn(backend: impl BatchWriter, notifier: Arc<HintNotifier>) -> GroupCommit {
        let (queue, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        tokio::spawn(writer(backend, notifier, counters.clone(), rx));
        GroupCommit { queue, counters }
    }

    pub(crate) async fn submit(
        &self,
        deliveries: &[Delivery],
        hint: &NewHint,
    ) -> Result<DeliveryOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            call: Call {
                deliveries: deliveries.to_vec(),
                hint: hint.clone(),
            },
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

/// Batches come one after another under load, and a connection given back to sqlx's pool is
/// first pinged (one more round trip to the database per batch): so the writer keeps its
/// connection while calls are already queued and no other write waits for one, and gives it
/// back before it waits for work or after a failure (a failed connection may be retired).
async fn writer<B: BatchWriter>(
    backend: B,
    notifier: Arc<HintNotifier>,
    counters: Arc<Counters>,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut held: Option<B::Held> = None;
    loop {
        if rx.is_empty() || backend.others_waiting() {
            held = None;
        }
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let calls: Vec<&Call> = batch.iter().map(|r: &Request| &r.call).collect();
        let together = async {
            let mut conn = match held.take() {
                Some(conn) => conn,
                None => backend.hold().await?,
            };
            let outcomes = backend.commit_together(&mut conn, &calls).await;
            held = outcomes.is_ok().then_some(conn);
            outcomes
        }
        .await;
        let results = match together {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(e) => {
                tracing::debug!(error = %e, "group commit failed; writing each call on its own");
                let mut results = Vec::with_capacity(calls.len());
                for call in &calls {
                    let one = async {
                        let mut conn = backend.hold().await?;
                        let mut one = backend.commit_together(&mut conn, &[*call]).await?;
                        Ok(one.remove(0))
                    };
                    results.push(one.await);
                }
                results
            }
        };
        let committed = results.iter().any(Result::is_ok);
        if committed {
            counters.commits.fetch_add(1, Ordering::Relaxed);
        }
        for (request, result) in batch.drain(..).zip(results) {
            if let Ok(outcome) = &result {
                counters.calls.fetch_add(1, Ordering::Relaxed);
                if outcome.hint_id.is_some() {
                    notifier.notify(&request.call.hint.org_id);
                }
            }
            // A caller that gave up (its future was dropped) no longer listens; the record
            // stands all the same, and a retry of the same keys counts them as duplicates.
            let _ = request.reply.send(result);
        }
    }
}

/// How many of each call's deliveries are new, given the (source, key) pairs the batch's
/// INSERT reported as inserted (in any order): each new key counts for the first call that
/// carries it, in queue order, and as a duplicate for any later one.
pub(crate) fn new_per_call(calls: &[&Call], inserted: &[(String, String)]) -> Vec<usize> {
    // Borrowed pairs: a lookup per delivery allocates nothing.
    let mut fresh: HashSet<(&str, &str)> = inserted
        .iter()
        .map(|(source, key)| (source.as_str(), key.as_str()))
        .collect();
    calls
        .iter()
        .map(|call| {
            call.deliveries
                .iter()
                .filter(|d| fresh.remove(&(d.source.as_str(), d.key.as_str())))
                .count()
        })
        .collect()
}

/// The hints to insert (one per distinct hint among calls with new deliveries) and, per call,
/// which of them it gets.
pub(crate) fn distinct_hints<'a>(
    calls: &[&'a Call],
    new: &[usize],
) -> (Vec<&'a NewHint>, Vec<Option<usize>>) {
    let mut hints: Vec<&NewHint> = Vec::new();
    let slots = calls
        .iter()
        .zip(new)
        .map(|(call, &new)| {
            (new > 0).then(|| {
                hints
                    .iter()
                    .position(|h| **h == call.hint)
                    .unwrap_or_else(|| {
                        hints.push(&call.hint);
                        hints.len() - 1
                    })
            })
        })
        .collect();
    (hints, slots)
}

/// The outcomes, from the new counts, each call's hint slot and the inserted hints' ids.
pub(crate) fn outcomes(
    calls: &[&Call],
    new: &[usize],
    slots: &[Option<usize>],
    hint_ids: &[i64],
) -> Vec<DeliveryOutcome> {
    calls
        .iter()
        .zip(new)
        .zip(slots)
        .map(|((call, &new), slot)| DeliveryOutcome {
            new,
            duplicates: call.deliveries.len() - new,
            hint_id: slot.map(|slot| hint_ids[slot]),
        })
        .collect()
}
