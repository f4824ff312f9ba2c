//! The PostgreSQL backend, shared by every instance. All time is the database's (`now()`).
//!
//! `record_deliveries` goes through the group commit (`store::batch`): the calls queued in this
//! process share one transaction of two statements, so a burst costs a few round trips and
//! commits instead of one of each per call (calls from other instances commit on their own).
//! Hints are announced with
//! `pg_notify('ipguard_hints', org_id)` inside the inserting transaction (delivered at commit);
//! a listener task per `Store` turns them into wake-ups for `wait_for_hint`.

mod owned;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row};

use super::batch::{self, BatchWriter, Call, GroupCommit};
use tokio::sync::oneshot;

use super::notify::HintNotifier;
use super::{
    Delivery, DeliveryOutcome, Fence, Hint, InFlightDeploy, Lease, LeaseState, NewHint, RunId,
    RunRecord, StoreError, StoreStats,
};
use crate::outcome::Outcome;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The NOTIFY channel (database-wide, not per schema); the payload is the org id.
const CHANNEL: &str = "ipguard_hints";
/// Heroku Postgres' smallest plans allow 20 connections for all dynos together.
const MAX_CONNECTIONS: u32 = 8;
/// How long a call waits for a connection before answering Unavailable (HTTP 503).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct PgStore {
    pool: PgPool,
    notifier: Arc<HintNotifier>,
    closed: AtomicBool,
    group: GroupCommit,
    /// Dropped with the store: ends the listener task, which returns its connection.
    _stop_listener: oneshot::Sender<()>,
}

/// `Duration` as fractional seconds for `make_interval(secs => …)`.
fn secs(d: Duration) -> f64 {
    // make_interval takes a double; a century is plenty and keeps the timestamp in range.
    d.min(Duration::from_secs(100 * 365 * 24 * 3600))
        .as_secs_f64()
}

impl PgStore {
    pub(crate) async fn connect(url: &SecretString) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url.expose_secret())
            // The message names what is wrong with the URL, never the URL itself.
            .map_err(|e| StoreError::Unavailable(format!("bad Postgres URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            .connect_with(options)
            .await?;
        // LISTEN before returning, so no hint recorded after connect() is missed. It needs a
        // connection of its own (each costs a TLS handshake), so open it while migrating.
        let (migrated, listener) = tokio::join!(MIGRATOR.run(&pool), subscribe(&pool));
        migrated?;
        let listener = listener?;
        let notifier = Arc::new(HintNotifier::default());
        let (pool_for_task, notifier_for_task) = (pool.clone(), notifier.clone());
        let (stop_listener, stop) = oneshot::channel();
        tokio::spawn(async move {
            tokio::select! {
                () = listen(pool_for_task, listener, notifier_for_task) => {}
                _ = stop => {}
            }
        });
        let group = GroupCommit::spawn(PgBatch(pool.clone()), notifier.clone());
        Ok(PgStore {
            pool,
            notifier,
            closed: AtomicBool::new(false),
            group,
            _stop_listener: stop_listener,
        })
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::closed())
        } else {
            Ok(())
        }
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
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn probe_write(&self) -> Result<(), StoreError> {
        self.check_open()?;
        sqlx::query(
            "INSERT INTO store_probe (id, probed_at) VALUES (1, now()) \
             ON CONFLICT (id) DO UPDATE SET probed_at = EXCLUDED.probed_at",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Also ends the listener task: its wait is cancelled with PoolClosed.
        self.pool.close().await;
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
        let sources: Vec<&str> = deliveries.iter().map(|d| d.source.as_str()).collect();
        let keys: Vec<&str> = deliveries.iter().map(|d| d.key.as_str()).collect();
        // One round trip; the ordinality keeps the caller's order.
        let missing: Vec<i64> = sqlx::query_scalar(
            "SELECT d.n FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS d(source, key, n) \
             WHERE NOT EXISTS (SELECT 1 FROM deliveries r \
                               WHERE r.source = d.source AND r.key = d.key) \
             ORDER BY d.n",
        )
        .bind(&sources)
        .bind(&keys)
        .fetch_all(&self.pool)
        .await?;
        Ok(missing
            .into_iter()
            .filter_map(|n| usize::try_from(n - 1).ok())
            .filter_map(|i| deliveries.get(i).cloned())
            .collect())
    }

    pub(crate) async fn consume_jti(
        &self,
        jti: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.check_open()?;
        let done = sqlx::query(
            "INSERT INTO jtis (jti, expires_at) VALUES ($1, $2) \
             ON CONFLICT (jti) DO UPDATE SET expires_at = EXCLUDED.expires_at \
             WHERE jtis.expires_at <= now()",
        )
        .bind(jti)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn enqueue_hint(&self, hint: &NewHint) -> Result<i64, StoreError> {
        self.check_open()?;
        let mut tx = self.pool.begin().await?;
        let id = insert_hint(&mut tx, hint).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub(crate) async fn pending_hints(&self, org_id: &str) -> Result<Vec<Hint>, StoreError> {
        self.check_open()?;
        let rows = sqlx::query(
            "SELECT id, org_id, trigger_kind, detail, created_at FROM hints \
             WHERE org_id = $1 AND run_id IS NULL ORDER BY id",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Hint {
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    trigger: row.try_get("trigger_kind")?,
                    detail: row.try_get("detail")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub(crate) async fn consume_hints(&self, ids: &[i64], run_id: RunId) -> Result<(), StoreError> {
        self.check_open()?;
        let mut conn = self.pool.acquire().await?;
        consume(&mut conn, ids, run_id).await
    }

    pub(crate) async fn start_run(
        &self,
        fence: &Fence,
        trigger: &str,
        hint_ids: &[i64],
        profiles: &[String],
    ) -> Result<RunId, StoreError> {
        self.check_open()?;
        self.fenced(fence, async |tx| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO runs (org_id, trigger_kind, profiles) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(&fence.org_id)
            .bind(trigger)
            .bind(Json(profiles))
            .fetch_one(&mut *tx)
            .await?;
            consume(tx, hint_ids, id).await?;
            Ok(id)
        })
        .await
    }

    pub(crate) async fn record_deploy(
        &self,
        fence: &Fence,
        run: RunId,
        deploy_id: &str,
        check_only: bool,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        let updated = self
            .fenced(fence, async |tx| {
                let done = sqlx::query(
                    "UPDATE runs SET deploy_id = $2, check_only = $3, deploy_submitted_at = now() \
                     WHERE id = $1 AND org_id = $4 AND outcome IS NULL",
                )
                .bind(run)
                .bind(deploy_id)
                .bind(check_only)
                .bind(&fence.org_id)
                .execute(&mut *tx)
                .await?;
                Ok(done.rows_affected())
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::Data(format!(
                "run {run} of org {} does not exist or already has an outcome",
                fence.org_id
            )));
        }
        Ok(())
    }

    pub(crate) async fn finish_run(
        &self,
        fence: &Fence,
        run: RunId,
        outcome: Outcome,
        plan: Option<&serde_json::Value>,
        failures: &[String],
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        self.end_run(fence, run, async |tx| {
            Ok(sqlx::query(
                "UPDATE runs SET outcome = $2, finished_at = now(), plan = COALESCE($3, plan), \
                 failures = $4, error = $5 \
                 WHERE id = $1 AND org_id = $6 AND NOT deploy_closed \
                   AND (outcome IS NULL OR outcome = 'unknown')",
            )
            .bind(run)
            .bind(outcome.as_str())
            .bind(plan.map(Json))
            .bind(Json(failures))
            .bind(error)
            .bind(&fence.org_id)
            .execute(&mut *tx)
            .await?
            .rows_affected())
        })
        .await
    }

    pub(crate) async fn close_deploy(
        &self,
        fence: &Fence,
        run: RunId,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        self.end_run(fence, run, async |tx| {
            Ok(sqlx::query(
                "UPDATE runs SET outcome = 'unknown', finished_at = now(), error = $2, \
                 deploy_closed = true \
                 WHERE id = $1 AND org_id = $3 AND NOT deploy_closed \
                   AND (outcome IS NULL OR outcome = 'unknown')",
            )
            .bind(run)
            .bind(reason)
            .bind(&fence.org_id)
            .execute(&mut *tx)
            .await?
            .rows_affected())
        })
        .await
    }

    /// A fenced update of one run that must find the run still open.
    async fn end_run(
        &self,
        fence: &Fence,
        run: RunId,
        update: impl AsyncFnOnce(&mut PgConnection) -> Result<u64, StoreError>,
    ) -> Result<(), StoreError> {
        if self.fenced(fence, update).await? == 0 {
            return Err(StoreError::Data(format!(
                "run {run} of org {} does not exist or already has a final outcome",
                fence.org_id
            )));
        }
        Ok(())
    }

    /// Runs `write` in one transaction if `fence` is still the org's current tenure. The lease
    /// row stays share-locked until commit, so a take-over waits for the write to land.
    async fn fenced<T>(
        &self,
        fence: &Fence,
        write: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT fencing_token FROM leases WHERE org_id = $1 FOR SHARE")
                .bind(&fence.org_id)
                .fetch_optional(&mut *tx)
                .await?;
        if current != Some(fence.token) {
            return Err(StoreError::Fenced {
                org_id: fence.org_id.clone(),
                token: fence.token,
                current: current.unwrap_or(0),
            });
        }
        let value = write(&mut *tx).await?;
        tx.commit().await?;
        Ok(value)
    }

    pub(crate) async fn in_flight_deploy(
        &self,
        org_id: &str,
    ) -> Result<Option<InFlightDeploy>, StoreError> {
        self.check_open()?;
        let row = sqlx::query(
            "SELECT r.id, r.deploy_id, r.check_only, r.deploy_submitted_at FROM runs r \
             WHERE r.org_id = $1 AND r.deploy_id IS NOT NULL AND NOT r.deploy_closed \
               AND (r.outcome IS NULL OR r.outcome = 'unknown') \
               AND NOT EXISTS (SELECT 1 FROM runs f WHERE f.deploy_id = r.deploy_id \
                               AND f.outcome IS NOT NULL AND f.outcome <> 'unknown') \
             ORDER BY r.id DESC LIMIT 1",
        )
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(InFlightDeploy {
                run_id: row.try_get("id")?,
                deploy_id: row.try_get("deploy_id")?,
                check_only: row
                    .try_get::<Option<bool>, _>("check_only")?
                    .unwrap_or(false),
                submitted_at: row.try_get("deploy_submitted_at")?,
            })
        })
        .transpose()
    }

    pub(crate) async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        self.check_open()?;
        let rows = sqlx::query(
            "SELECT id, org_id, trigger_kind, started_at, finished_at, outcome, profiles, \
                    deploy_id, error, failures, plan \
             FROM runs ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_record).collect()
    }

    pub(crate) async fn recent_runs_of(
        &self,
        org_id: &str,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.check_open()?;
        let rows = sqlx::query(
            "SELECT id, org_id, trigger_kind, started_at, finished_at, outcome, profiles, \
                    deploy_id, error, failures, plan \
             FROM runs WHERE org_id = $2 ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_record).collect()
    }

    pub(crate) async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.check_open()?;
        let row = sqlx::query(
            "SELECT id, org_id, trigger_kind, started_at, finished_at, outcome, profiles, \
                    deploy_id, error, failures, plan \
             FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_record).transpose()
    }

    pub(crate) async fn run_for_hint(&self, hint_id: i64) -> Result<Option<RunId>, StoreError> {
        self.check_open()?;
        let run: Option<Option<i64>> = sqlx::query_scalar("SELECT run_id FROM hints WHERE id = $1")
            .bind(hint_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(run.flatten())
    }

    pub(crate) async fn try_acquire_lease(
        &self,
        org_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.check_open()?;
        // SET expressions see the row as it was, so the token is judged on the old holder.
        // The conflicting row is locked and the WHERE re-checked, so racing instances cannot
        // both win.
        let row = sqlx::query(
            "INSERT INTO leases (org_id, holder, fencing_token, expires_at) \
             VALUES ($1, $2, 1, now() + make_interval(secs => $3)) \
             ON CONFLICT (org_id) DO UPDATE SET \
               fencing_token = CASE WHEN leases.holder = EXCLUDED.holder AND leases.expires_at > now() \
                                    THEN leases.fencing_token ELSE leases.fencing_token + 1 END, \
               holder = EXCLUDED.holder, \
               expires_at = EXCLUDED.expires_at \
             WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= now() \
             RETURNING org_id, holder, fencing_token, expires_at",
        )
        .bind(org_id)
        .bind(holder)
        .bind(secs(ttl))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Lease {
                org_id: row.try_get("org_id")?,
                holder: row.try_get("holder")?,
                fencing_token: row.try_get("fencing_token")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub(crate) async fn lease(&self, org_id: &str) -> Result<Option<LeaseState>, StoreError> {
        self.check_open()?;
        let row = sqlx::query(
            "SELECT org_id, holder, fencing_token, expires_at, \
                    GREATEST(EXTRACT(EPOCH FROM expires_at - now()), 0)::float8 AS left_secs \
             FROM leases WHERE org_id = $1",
        )
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let left: f64 = row.try_get("left_secs")?;
            Ok(LeaseState {
                lease: Lease {
                    org_id: row.try_get("org_id")?,
                    holder: row.try_get("holder")?,
                    fencing_token: row.try_get("fencing_token")?,
                    expires_at: row.try_get("expires_at")?,
                },
                expires_in: Duration::try_from_secs_f64(left).unwrap_or_default(),
            })
        })
        .transpose()
    }

    pub(crate) async fn close_abandoned_runs(
        &self,
        fence: &Fence,
        reason: &str,
    ) -> Result<u64, StoreError> {
        self.check_open()?;
        self.fenced(fence, async |tx| {
            Ok(sqlx::query(
                "UPDATE runs SET outcome = 'failed', finished_at = now(), error = $2 \
                 WHERE org_id = $1 AND outcome IS NULL AND deploy_id IS NULL",
            )
            .bind(&fence.org_id)
            .bind(reason)
            .execute(&mut *tx)
            .await?
            .rows_affected())
        })
        .await
    }

    pub(crate) async fn adopt_legacy_key(
        &self,
        fence: &Fence,
        legacy_key: &str,
    ) -> Result<u64, StoreError> {
        self.check_open()?;
        self.fenced(fence, async |tx| {
            let held: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM leases WHERE org_id = $1 AND expires_at > now())",
            )
            .bind(legacy_key)
            .fetch_one(&mut *tx)
            .await?;
            if held {
                return Ok(0);
            }
            let runs = sqlx::query("UPDATE runs SET org_id = $1 WHERE org_id = $2")
                .bind(&fence.org_id)
                .bind(legacy_key)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("UPDATE hints SET org_id = $1 WHERE org_id = $2")
                .bind(&fence.org_id)
                .bind(legacy_key)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE owned_ranges SET org_id = $1 WHERE org_id = $2")
                .bind(&fence.org_id)
                .bind(legacy_key)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM org_status WHERE org_id = $1")
                .bind(legacy_key)
                .execute(&mut *tx)
                .await?;
            Ok(runs)
        })
        .await
    }

    pub(crate) async fn put_status(
        &self,
        org_id: &str,
        snapshot: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        sqlx::query(
            "INSERT INTO org_status (org_id, snapshot, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (org_id) DO UPDATE SET snapshot = EXCLUDED.snapshot, \
             updated_at = EXCLUDED.updated_at",
        )
        .bind(org_id)
        .bind(Json(snapshot))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn status(
        &self,
        org_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.check_open()?;
        let snapshot: Option<Json<serde_json::Value>> =
            sqlx::query_scalar("SELECT snapshot FROM org_status WHERE org_id = $1")
                .bind(org_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(snapshot.map(|Json(v)| v))
    }

    pub(crate) async fn release_lease(&self, org_id: &str, holder: &str) -> Result<(), StoreError> {
        self.check_open()?;
        sqlx::query(
            "UPDATE leases SET expires_at = now() \
             WHERE org_id = $1 AND holder = $2 AND expires_at > now()",
        )
        .bind(org_id)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn prune(&self, keep: Duration) -> Result<u64, StoreError> {
        self.check_open()?;
        let mut tx = self.pool.begin().await?;
        let deliveries = sqlx::query(
            "DELETE FROM deliveries WHERE received_at < now() - make_interval(secs => $1)",
        )
        .bind(secs(keep))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let jtis = sqlx::query("DELETE FROM jtis WHERE expires_at <= now()")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let hints = sqlx::query(
            "DELETE FROM hints WHERE run_id IS NOT NULL \
             AND consumed_at < now() - make_interval(secs => $1)",
        )
        .bind(secs(keep))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(deliveries + jtis + hints)
    }
}

/// Inserts the hint and announces it; the NOTIFY is delivered when `conn`'s transaction commits.
/// The group commit's writes, on the pool.
struct PgBatch(PgPool);

/// `(sources, keys)` as arrays for UNNEST, sorted so that two instances inserting overlapping
/// keys lock them in the same order.
fn sorted_columns<'a>(
    deliveries: impl Iterator<Item = &'a Delivery>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut sorted: Vec<&Delivery> = deliveries.collect();
    sorted.sort_by(|a, b| (a.source, &a.key).cmp(&(b.source, &b.key)));
    sorted
        .iter()
        .map(|d| (d.source.as_str(), d.key.as_str()))
        .unzip()
}

/// One INSERT of every delivery; ON CONFLICT DO NOTHING also absorbs duplicates within it.
/// Returns the (source, key) pairs inserted.
async fn insert_deliveries<'a>(
    conn: &mut PgConnection,
    deliveries: impl Iterator<Item = &'a Delivery>,
) -> Result<Vec<(String, String)>, StoreError> {
    let (sources, keys) = sorted_columns(deliveries);
    Ok(sqlx::query_as(
        "INSERT INTO deliveries (source, key) \
         SELECT * FROM UNNEST($1::text[], $2::text[]) \
         ON CONFLICT (source, key) DO NOTHING RETURNING source, key",
    )
    .bind(&sources)
    .bind(&keys)
    .fetch_all(conn)
    .await?)
}

impl BatchWriter for PgBatch {
    async fn commit_together(&self, calls: &[&Call]) -> Result<Vec<DeliveryOutcome>, StoreError> {
        let mut tx = self.0.begin().await?;
        let inserted =
            insert_deliveries(&mut tx, calls.iter().flat_map(|c| c.deliveries.iter())).await?;
        let new = batch::new_per_call(calls, &inserted);
        let (hints, slots) = batch::distinct_hints(calls, &new);
        let mut hint_ids = Vec::with_capacity(hints.len());
        for hint in hints {
            hint_ids.push(insert_hint(&mut tx, hint).await?);
        }
        tx.commit().await?;
        Ok(batch::outcomes(calls, &new, &slots, &hint_ids))
    }

    /// A transaction per call.
    async fn commit_isolated(&self, calls: &[&Call]) -> Vec<Result<DeliveryOutcome, StoreError>> {
        let mut results = Vec::with_capacity(calls.len());
        for call in calls {
            results.push(
                self.commit_together(&[*call])
                    .await
                    .map(|mut one| one.remove(0)),
            );
        }
        results
    }
}

async fn insert_hint(conn: &mut PgConnection, hint: &NewHint) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO hints (org_id, trigger_kind, detail) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(&hint.org_id)
    .bind(&hint.trigger)
    .bind(&hint.detail)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(&hint.org_id)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

async fn consume(conn: &mut PgConnection, ids: &[i64], run_id: RunId) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE hints SET run_id = $1, consumed_at = now() \
         WHERE run_id IS NULL AND id = ANY($2)",
    )
    .bind(run_id)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

fn run_record(row: &PgRow) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        trigger: row.try_get("trigger_kind")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        outcome: row.try_get("outcome")?,
        profiles: row.try_get::<Json<Vec<String>>, _>("profiles")?.0,
        deploy_id: row.try_get("deploy_id")?,
        error: row.try_get("error")?,
        failures: row.try_get::<Json<Vec<String>>, _>("failures")?.0,
        plan: row.try_get("plan")?,
    })
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Turns notifications into wake-ups until the pool is closed. Whenever the connection was
/// lost, every waiter is woken once it is listening again: hints may have been announced while
/// nobody listened.
async fn listen(pool: PgPool, mut listener: PgListener, notifier: Arc<HintNotifier>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => notifier.notify(notification.payload()),
            // PgListener reconnected (and re-LISTENed) before returning None.
            Ok(None) => {
                tracing::warn!("store: the LISTEN connection was lost and re-established");
                notifier.notify_all();
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                // Not every way of losing the connection is one PgListener recovers from by
                // itself (the server ending the session sends an error first): start afresh.
                tracing::warn!(error = %e, "store: the LISTEN connection failed; reconnecting");
                drop(listener);
                let mut backoff = Duration::from_millis(100);
                listener = loop {
                    tokio::time::sleep(backoff).await;
                    match subscribe(&pool).await {
                        Ok(listener) => break listener,
                        Err(sqlx::Error::PoolClosed) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "store: LISTEN reconnect failed");
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                        }
                    }
                };
                tracing::info!("store: listening for hints again");
                notifier.notify_all();
            }
        }
    }
}
