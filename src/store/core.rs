//! The store's statements and transactions, written once over a [`Dialect`] (see
//! `dialect.rs`); what they promise is in the module docs of `store`.

mod runs;
mod tenure;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::batch::{self, BatchWriter, Call, GroupCommit};
use super::dialect::{Arg, Conn, Dialect, Row, Sql, query, sql};
use super::notify::HintNotifier;
use super::{Delivery, DeliveryOutcome, Fence, Hint, NewHint, RunId, StoreError, StoreStats};

pub(crate) struct Core<D: Dialect> {
    db: Arc<D>,
    notifier: Arc<HintNotifier>,
    group: GroupCommit,
    closed: AtomicBool,
}

impl<D: Dialect> Core<D> {
    /// The store over `db`, whose hints wake `notifier`'s waiters; starts the group commit.
    pub(crate) fn new(db: D, notifier: Arc<HintNotifier>) -> Core<D> {
        let db = Arc::new(db);
        let group = GroupCommit::spawn(Batch(db.clone()), notifier.clone());
        Core {
            db,
            notifier,
            group,
            closed: AtomicBool::new(false),
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::closed())
        } else {
            Ok(())
        }
    }

    /// Passes a write's result through, telling the dialect when it failed. (A result, not the
    /// write's future: a future passed down is stored twice in the caller's.)
    fn observe<T>(&self, written: Result<T, StoreError>) -> Result<T, StoreError> {
        observe(&*self.db, written)
    }

    pub(crate) fn notifier(&self) -> &HintNotifier {
        &self.notifier
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            delivery_calls: self.group.counters.calls.load(Ordering::Relaxed),
            delivery_commits: self.group.counters.commits.load(Ordering::Relaxed),
        }
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        query(sql!("SELECT 1")).execute(&mut *conn).await?;
        Ok(())
    }

    pub(crate) async fn probe_write(&self) -> Result<(), StoreError> {
        self.check_open()?;
        let written = async {
            let mut conn = self.db.writer().await?;
            query(sql!(
                "INSERT INTO store_probe (id, probed_at) VALUES (1, " now ") \
                 ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at"
            ))
            .execute(&mut *conn)
            .await
        }
        .await;
        self.observe(written)?;
        Ok(())
    }

    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.db.close().await;
    }

    pub(crate) async fn record_deliveries(
        &self,
        deliveries: &[Delivery],
        hint: &NewHint,
    ) -> Result<DeliveryOutcome, StoreError> {
        self.check_open()?;
        self.group.submit(deliveries, hint).await
    }

    pub(crate) async fn unrecorded_deliveries(
        &self,
        deliveries: &[Delivery],
    ) -> Result<Vec<Delivery>, StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        let missing = D::unrecorded_deliveries(&mut conn, deliveries).await?;
        Ok(missing
            .into_iter()
            .filter_map(|i| deliveries.get(i).cloned())
            .collect())
    }

    pub(crate) async fn consume_jti(
        &self,
        jti: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.check_open()?;
        let written = async {
            let mut conn = self.db.writer().await?;
            query(sql!(
                "INSERT INTO jtis (jti, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE jtis.expires_at <= " now
            ))
            .bind(jti)
            .bind(until)
            .execute(&mut *conn)
            .await
        }
        .await;
        let inserted = self.observe(written)?;
        Ok(inserted == 1)
    }

    pub(crate) async fn enqueue_hint(&self, hint: &NewHint) -> Result<i64, StoreError> {
        self.check_open()?;
        let written = async {
            let mut tx = self.db.begin().await?;
            let id = insert_hint::<D>(&mut tx, hint).await?;
            D::commit(tx).await?;
            Ok(id)
        }
        .await;
        let id = self.observe(written)?;
        self.notifier.notify(&hint.org_id);
        Ok(id)
    }

    pub(crate) async fn pending_hints(&self, org_id: &str) -> Result<Vec<Hint>, StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        let rows = query(sql!(
            "SELECT id, org_id, trigger_kind, detail, created_at FROM hints \
             WHERE org_id = $1 AND run_id IS NULL ORDER BY id"
        ))
        .bind(org_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Hint {
                    id: row.int("id")?,
                    org_id: row.text("org_id")?,
                    trigger: row.parsed("trigger_kind")?,
                    detail: row.opt_text("detail")?,
                    created_at: row.stamp("created_at")?,
                })
            })
            .collect()
    }

    pub(crate) async fn consume_hints(&self, ids: &[i64], run_id: RunId) -> Result<(), StoreError> {
        self.check_open()?;
        let written = async {
            let mut conn = self.db.writer().await?;
            consume(&mut *conn, ids, run_id).await
        }
        .await;
        self.observe(written)
    }

    pub(crate) async fn put_status(
        &self,
        org_id: &str,
        snapshot: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        let snapshot = Arg::json(snapshot)?;
        let written = async {
            let mut conn = self.db.writer().await?;
            query(sql!(
                "INSERT INTO org_status (org_id, snapshot, updated_at) VALUES ($1, $2, " now ") \
                 ON CONFLICT (org_id) DO UPDATE SET snapshot = excluded.snapshot, \
                 updated_at = excluded.updated_at"
            ))
            .bind(org_id)
            .bind(snapshot)
            .execute(&mut *conn)
            .await
        }
        .await;
        self.observe(written)?;
        Ok(())
    }

    pub(crate) async fn status(
        &self,
        org_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        let row = query(sql!("SELECT snapshot FROM org_status WHERE org_id = $1"))
            .bind(org_id)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|row| row.json("snapshot")).transpose()
    }

    pub(crate) async fn prune(&self, keep: Duration) -> Result<u64, StoreError> {
        self.check_open()?;
        let written = async {
            let mut tx = self.db.begin().await?;
            let deliveries = query(sql!(
                "DELETE FROM deliveries WHERE received_at < " now_minus(1)
            ))
            .bind(Arg::secs(keep))
            .execute(&mut *tx)
            .await?;
            let jtis = query(sql!("DELETE FROM jtis WHERE expires_at <= " now))
                .execute(&mut *tx)
                .await?;
            let hints = query(sql!(
                "DELETE FROM hints WHERE run_id IS NOT NULL AND consumed_at < " now_minus(1)
            ))
            .bind(Arg::secs(keep))
            .execute(&mut *tx)
            .await?;
            // Every process start leaves one presence row (its holder name is unique).
            let presences = query(sql!(
                "DELETE FROM leases WHERE org_id LIKE 'instance:%' AND expires_at < " now_minus(1)
            ))
            .bind(Arg::secs(keep))
            .execute(&mut *tx)
            .await?;
            D::commit(tx).await?;
            Ok(deliveries + jtis + hints + presences)
        }
        .await;
        self.observe(written)
    }

    /// A fenced update of one run that must find the run still open.
    async fn end_run(
        &self,
        fence: &Fence,
        run: RunId,
        update: impl AsyncFnOnce(&mut D::Conn) -> Result<u64, StoreError>,
    ) -> Result<(), StoreError> {
        if self.fenced(fence, update).await? == 0 {
            return Err(StoreError::Data(format!(
                "run {run} of org {} does not exist or already has a final outcome",
                fence.org_id
            )));
        }
        Ok(())
    }

    /// Runs `write` in one transaction if `fence` is still the org's current tenure.
    async fn fenced<T>(
        &self,
        fence: &Fence,
        write: impl AsyncFnOnce(&mut D::Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        /// PostgreSQL keeps the lease row share-locked until commit, so a take-over waits for
        /// the write to land; on SQLite the transaction's `BEGIN IMMEDIATE` already keeps every
        /// other writer out.
        const TOKEN: Sql = Sql {
            sqlite: "SELECT fencing_token FROM leases WHERE org_id = $1",
            postgres: "SELECT fencing_token FROM leases WHERE org_id = $1 FOR SHARE",
        };
        let written = async {
            let mut tx = self.db.begin().await?;
            let current = query(TOKEN)
                .bind(&fence.org_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.int("fencing_token"))
                .transpose()?;
            if current != Some(fence.token) {
                return Ok(Err(current.unwrap_or(0)));
            }
            let value = write(&mut *tx).await?;
            D::commit(tx).await?;
            Ok(Ok(value))
        }
        .await;
        let written = self.observe(written)?;
        written.map_err(|current| StoreError::Fenced {
            org_id: fence.org_id.clone(),
            token: fence.token,
            current,
        })
    }
}

fn observe<D: Dialect, T>(db: &D, written: Result<T, StoreError>) -> Result<T, StoreError> {
    if let Err(e) = &written {
        db.write_failed(e);
    }
    written
}

/// Inserts the hint and announces it (when `conn`'s transaction commits).
async fn insert_hint<D: Dialect>(conn: &mut D::Conn, hint: &NewHint) -> Result<i64, StoreError> {
    let id = query(sql!(
        "INSERT INTO hints (org_id, trigger_kind, detail, created_at) \
         VALUES ($1, $2, $3, " now ") RETURNING id"
    ))
    .bind(&hint.org_id)
    .bind(hint.trigger.as_str())
    .bind(hint.detail.as_deref())
    .fetch_one(conn)
    .await?
    .int("id")?;
    D::announce_hint(conn, &hint.org_id).await?;
    Ok(id)
}

/// Ties the pending hints among `ids` to `run_id`.
async fn consume(conn: &mut impl Conn, ids: &[i64], run_id: RunId) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    query(sql!(
        "UPDATE hints SET run_id = $1, consumed_at = " now " \
         WHERE run_id IS NULL AND id " in_ids(2)
    ))
    .bind(run_id)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// The group commit's writes (see `batch.rs`): the whole batch in one transaction, one
/// statement for every delivery and one per distinct hint.
struct Batch<D>(Arc<D>);

impl<D: Dialect> BatchWriter for Batch<D> {
    type Held = D::Pooled;

    async fn hold(&self) -> Result<D::Pooled, StoreError> {
        let held = self.0.hold().await.map_err(StoreError::from);
        observe(&*self.0, held)
    }

    fn others_waiting(&self) -> bool {
        self.0.others_waiting()
    }

    async fn commit_together(
        &self,
        held: &mut D::Pooled,
        calls: &[&Call],
    ) -> Result<Vec<DeliveryOutcome>, StoreError> {
        let written = async {
            let mut tx = D::begin_on(held).await?;
            let deliveries: Vec<&Delivery> =
                calls.iter().flat_map(|c| c.deliveries.iter()).collect();
            let inserted = D::insert_deliveries(&mut tx, &deliveries).await?;
            let new = batch::new_per_call(calls, &inserted);
            let (hints, slots) = batch::distinct_hints(calls, &new);
            let mut hint_ids = Vec::with_capacity(hints.len());
            for hint in hints {
                hint_ids.push(insert_hint::<D>(&mut tx, hint).await?);
            }
            D::commit_on(tx).await?;
            Ok(batch::outcomes(calls, &new, &slots, &hint_ids))
        }
        .await;
        observe(&*self.0, written)
    }
}
