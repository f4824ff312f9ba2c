//! The SQLite backend: an embedded file for a single dyno.
//!
//! Writes go through a pool of ONE connection (SQLite has one writer at a time; queueing on the
//! pool is fairer and cheaper than sleeping in the busy handler) and start with
//! `BEGIN IMMEDIATE`, so a writer from another process (a CLI command) makes us wait at BEGIN
//! (up to `busy_timeout`) rather than fail halfway. Reads use a separate small pool; WAL lets
//! them run beside the writer. Time is the process clock (see the module docs of `store`).
//!
//! A failed write retires the writer connection (the pool's `before_acquire` hook drops it and
//! opens a fresh one). When a COMMIT fails for lack of space SQLite rolls the transaction back
//! by itself; the driver's own ROLLBACK then fails and its transaction counter stays up, so
//! every later `BEGIN` on that connection would be refused until the process restarted.

mod owned;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Acquire, Row, SqliteConnection, SqlitePool};

use super::batch::{self, BatchWriter, Call, GroupCommit};
use super::notify::{self, HintNotifier};
use super::{
    Delivery, DeliveryOutcome, Fence, Hint, InFlightDeploy, Lease, LeaseState, NewHint, RunId,
    RunRecord, StoreError, StoreStats,
};
use crate::outcome::Outcome;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Runs the migrations, retrying when another process migrated the same fresh file at the
/// same moment: SQLite has no migration lock (sqlx takes one only on PostgreSQL), so the
/// loser of that race fails on the migration the winner just applied; on a retry it sees it
/// applied. A genuine failure still fails after the last attempt.
/// Retries opening a pool while SQLite answers "database is locked": processes opening a
/// fresh file together race to switch it to WAL, and SQLite refuses that switch outright
/// rather than waiting in the busy handler. Any other error is final at once.
async fn open_while_busy<F, Fut>(open: F) -> Result<SqlitePool, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<SqlitePool, sqlx::Error>>,
{
    use backon::Retryable;
    open.retry(collision_backoff())
        .when(|e| matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("5")))
        .notify(
            |e, pause| tracing::debug!(error = %e, ?pause, "store busy while opening; retrying"),
        )
        .await
}

/// Jittered, so processes that collided once do not collide again in lockstep.
fn collision_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(500))
        .with_max_times(20)
        .with_jitter()
}

async fn migrate(writer: &SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    use backon::Retryable;
    // Each migration is its own transaction, so a process can lose once per migration.
    (|| MIGRATOR.run(writer))
        .retry(collision_backoff())
        .notify(|e, pause| {
            tracing::debug!(error = %e, ?pause, "migration failed; retrying in case another process migrated at the same time");
        })
        .await
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const READERS: u32 = 4;

pub(crate) struct SqliteStore {
    writer: SqlitePool,
    health: Arc<WriterHealth>,
    readers: SqlitePool,
    group: GroupCommit,
    notifier: Arc<HintNotifier>,
    closed: AtomicBool,
}

/// Whether the writer connection must be replaced before its next use.
#[derive(Default)]
struct WriterHealth {
    retire: AtomicBool,
}

impl WriterHealth {
    /// Passes `result` through; a failed write is logged with its cause and retires the
    /// writer connection.
    fn observe<T, E: Into<StoreError>>(&self, result: Result<T, E>) -> Result<T, StoreError> {
        result.map_err(|e| {
            let e = e.into();
            self.failed(&e);
            e
        })
    }

    fn failed(&self, e: &StoreError) {
        tracing::warn!(error = %e, "SQLite write failed; the next write uses a fresh connection");
        self.retire.store(true, Ordering::Release);
    }
}

/// The one timestamp form stored: fixed width, UTC, so text order is time order. Instants
/// outside years 1–9999 (which would not keep that width) are clamped.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    match t.year() {
        ..=0 => "0001-01-01T00:00:00.000000Z".to_owned(),
        10000.. => "9999-12-31T23:59:59.999999Z".to_owned(),
        _ => t.to_rfc3339_opts(SecondsFormat::Micros, true),
    }
}

fn now() -> String {
    ts(Utc::now())
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Data(format!("bad timestamp {s:?} in the database: {e}")))
}

fn parse_opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.as_deref().map(parse_ts).transpose()
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Data(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Data(format!("bad JSON in the database: {e}")))
}

/// `t - d`, saturating.
fn before(t: &str, d: Duration) -> Result<String, StoreError> {
    let t = parse_ts(t)?;
    Ok(ts(chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)))
}

/// `t + d`, saturating.
fn after(t: &str, d: Duration) -> Result<String, StoreError> {
    let t = parse_ts(t)?;
    Ok(ts(chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)))
}

impl SqliteStore {
    pub(crate) async fn connect(path: &Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let health = Arc::new(WriterHealth::default());
        let hook_health = health.clone();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // false = close this connection and open another (see the module docs).
            .before_acquire(move |_, _| {
                let keep = !hook_health.retire.swap(false, Ordering::AcqRel);
                Box::pin(async move { Ok(keep) })
            })
            .acquire_timeout(Duration::from_secs(30));
        let writer = open_while_busy(|| writer.clone().connect_with(options.clone()))
            .await
            .map_err(|e| unavailable_at(path, e))?;
        migrate(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(Duration::from_secs(10));
        let read_only = options.read_only(true);
        let readers = open_while_busy(|| readers.clone().connect_with(read_only.clone()))
            .await
            .map_err(|e| unavailable_at(path, e))?;
        let canonical = std::fs::canonicalize(path).map_err(|e| {
            StoreError::Unavailable(format!("cannot resolve {}: {e}", path.display()))
        })?;
        let notifier = notify::for_sqlite_file(&canonical);
        let group = GroupCommit::spawn(
            SqliteBatch {
                writer: writer.clone(),
                health: health.clone(),
            },
            notifier.clone(),
        );
        Ok(SqliteStore {
            writer,
            health,
            readers,
            group,
            notifier,
            closed: AtomicBool::new(false),
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
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    pub(crate) async fn probe_write(&self) -> Result<(), StoreError> {
        self.check_open()?;
        let probe = sqlx::query(
            "INSERT INTO store_probe (id, probed_at) VALUES (1, ?1) \
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
        )
        .bind(now())
        .execute(&self.writer)
        .await;
        self.health.observe(probe)?;
        Ok(())
    }

    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.writer.close().await;
        self.readers.close().await;
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
        let mut missing = Vec::new();
        // One indexed lookup each: the database is embedded, so round trips cost nothing.
        for delivery in deliveries {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM deliveries WHERE source = ?1 AND key = ?2")
                    .bind(delivery.source.as_str())
                    .bind(&delivery.key)
                    .fetch_optional(&self.readers)
                    .await?;
            if found.is_none() {
                missing.push(delivery.clone());
            }
        }
        Ok(missing)
    }

    pub(crate) async fn consume_jti(
        &self,
        jti: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.check_open()?;
        let done = self.health.observe(
            sqlx::query(
                "INSERT INTO jtis (jti, expires_at) VALUES (?1, ?2) \
                 ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE jtis.expires_at <= ?3",
            )
            .bind(jti)
            .bind(ts(until))
            .bind(now())
            .execute(&self.writer)
            .await,
        )?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn enqueue_hint(&self, hint: &NewHint) -> Result<i64, StoreError> {
        self.check_open()?;
        let id = self.health.observe(
            async {
                let mut conn = self.writer.acquire().await?;
                insert_hint(&mut conn, hint, &now()).await
            }
            .await,
        )?;
        self.notifier.notify(&hint.org_id);
        Ok(id)
    }

    pub(crate) async fn pending_hints(&self, org_id: &str) -> Result<Vec<Hint>, StoreError> {
        self.check_open()?;
        let rows = sqlx::query(
            "SELECT id, org_id, trigger_kind, detail, created_at FROM hints \
             WHERE org_id = ?1 AND run_id IS NULL ORDER BY id",
        )
        .bind(org_id)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Hint {
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    trigger: row.try_get("trigger_kind")?,
                    detail: row.try_get("detail")?,
                    created_at: parse_ts(row.try_get("created_at")?)?,
                })
            })
            .collect()
    }

    pub(crate) async fn consume_hints(&self, ids: &[i64], run_id: RunId) -> Result<(), StoreError> {
        self.check_open()?;
        self.health.observe(
            async {
                let mut conn = self.writer.acquire().await?;
                consume(&mut conn, ids, run_id, &now()).await
            }
            .await,
        )
    }

    pub(crate) async fn start_run(
        &self,
        fence: &Fence,
        trigger: &str,
        hint_ids: &[i64],
        profiles: &[String],
    ) -> Result<RunId, StoreError> {
        self.check_open()?;
        let now = now();
        let profiles = to_json(profiles)?;
        let fenced = self
            .fenced(fence, async |tx| {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO runs (org_id, trigger_kind, started_at, profiles) \
                     VALUES (?1, ?2, ?3, ?4) RETURNING id",
                )
                .bind(&fence.org_id)
                .bind(trigger)
                .bind(&now)
                .bind(&profiles)
                .fetch_one(&mut *tx)
                .await?;
                consume(tx, hint_ids, id, &now).await?;
                Ok(id)
            })
            .await?;
        Ok(fenced)
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
                    "UPDATE runs SET deploy_id = ?2, check_only = ?3, deploy_submitted_at = ?4 \
                     WHERE id = ?1 AND org_id = ?5 AND outcome IS NULL",
                )
                .bind(run)
                .bind(deploy_id)
                .bind(check_only)
                .bind(now())
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
        let plan = plan.map(to_json).transpose()?;
        let failures = to_json(failures)?;
        self.end_run(fence, run, async |tx| {
            Ok(sqlx::query(
                "UPDATE runs SET outcome = ?2, finished_at = ?3, plan = COALESCE(?4, plan), \
                 failures = ?5, error = ?6 \
                 WHERE id = ?1 AND org_id = ?7 AND deploy_closed = 0 \
                   AND (outcome IS NULL OR outcome = 'unknown')",
            )
            .bind(run)
            .bind(outcome.as_str())
            .bind(now())
            .bind(&plan)
            .bind(&failures)
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
                "UPDATE runs SET outcome = 'unknown', finished_at = ?2, error = ?3, \
                 deploy_closed = 1 \
                 WHERE id = ?1 AND org_id = ?4 AND deploy_closed = 0 \
                   AND (outcome IS NULL OR outcome = 'unknown')",
            )
            .bind(run)
            .bind(now())
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
        update: impl AsyncFnOnce(&mut SqliteConnection) -> Result<u64, StoreError>,
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
        write: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let current: Result<Result<T, i64>, StoreError> = async {
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            let current: Option<i64> =
                sqlx::query_scalar("SELECT fencing_token FROM leases WHERE org_id = ?1")
                    .bind(&fence.org_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if current != Some(fence.token) {
                return Ok(Err(current.unwrap_or(0)));
            }
            let value = write(&mut *tx).await?;
            tx.commit().await?;
            Ok(Ok(value))
        }
        .await;
        if let Err(e) = &current {
            self.health.failed(e);
        }
        current?.map_err(|current| StoreError::Fenced {
            org_id: fence.org_id.clone(),
            token: fence.token,
            current,
        })
    }

    pub(crate) async fn in_flight_deploy(
        &self,
        org_id: &str,
    ) -> Result<Option<InFlightDeploy>, StoreError> {
        self.check_open()?;
        let row = sqlx::query(
            "SELECT r.id, r.deploy_id, r.check_only, r.deploy_submitted_at FROM runs r \
             WHERE r.org_id = ?1 AND r.deploy_id IS NOT NULL AND r.deploy_closed = 0 \
               AND (r.outcome IS NULL OR r.outcome = 'unknown') \
               AND NOT EXISTS (SELECT 1 FROM runs f WHERE f.deploy_id = r.deploy_id \
                               AND f.outcome IS NOT NULL AND f.outcome <> 'unknown') \
             ORDER BY r.id DESC LIMIT 1",
        )
        .bind(org_id)
        .fetch_optional(&self.readers)
        .await?;
        row.map(|row| {
            Ok(InFlightDeploy {
                run_id: row.try_get("id")?,
                deploy_id: row.try_get("deploy_id")?,
                check_only: row
                    .try_get::<Option<bool>, _>("check_only")?
                    .unwrap_or(false),
                submitted_at: parse_ts(row.try_get("deploy_submitted_at")?)?,
            })
        })
        .transpose()
    }

    pub(crate) async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        self.check_open()?;
        let rows = sqlx::query(
            "SELECT id, org_id, trigger_kind, started_at, finished_at, outcome, profiles, \
                    deploy_id, error, failures, plan \
             FROM runs ORDER BY id DESC LIMIT ?1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
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
             FROM runs WHERE org_id = ?2 ORDER BY id DESC LIMIT ?1",
        )
        .bind(i64::from(limit))
        .bind(org_id)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(run_record).collect()
    }

    pub(crate) async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.check_open()?;
        let row = sqlx::query(
            "SELECT id, org_id, trigger_kind, started_at, finished_at, outcome, profiles, \
                    deploy_id, error, failures, plan \
             FROM runs WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.readers)
        .await?;
        row.as_ref().map(run_record).transpose()
    }

    pub(crate) async fn run_for_hint(&self, hint_id: i64) -> Result<Option<RunId>, StoreError> {
        self.check_open()?;
        let run: Option<Option<i64>> = sqlx::query_scalar("SELECT run_id FROM hints WHERE id = ?1")
            .bind(hint_id)
            .fetch_optional(&self.readers)
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
        let now = now();
        let expires = after(&now, ttl)?;
        // SET expressions see the row as it was, so the token is judged on the old holder.
        let row = sqlx::query(
            "INSERT INTO leases (org_id, holder, fencing_token, expires_at) VALUES (?1, ?2, 1, ?3) \
             ON CONFLICT (org_id) DO UPDATE SET \
               fencing_token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > ?4 \
                                    THEN leases.fencing_token ELSE leases.fencing_token + 1 END, \
               holder = excluded.holder, \
               expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4 \
             RETURNING org_id, holder, fencing_token, expires_at",
        )
        .bind(org_id)
        .bind(holder)
        .bind(expires)
        .bind(&now)
        // fetch_all steps the statement to its end, where a failed commit surfaces; a row
        // read before it would claim a lease that was never written.
        .fetch_all(&self.writer)
        .await;
        let row = self.health.observe(row)?.into_iter().next();
        row.map(|row| {
            Ok(Lease {
                org_id: row.try_get("org_id")?,
                holder: row.try_get("holder")?,
                fencing_token: row.try_get("fencing_token")?,
                expires_at: parse_ts(row.try_get("expires_at")?)?,
            })
        })
        .transpose()
    }

    pub(crate) async fn lease(&self, org_id: &str) -> Result<Option<LeaseState>, StoreError> {
        self.check_open()?;
        let row = sqlx::query(
            "SELECT org_id, holder, fencing_token, expires_at FROM leases WHERE org_id = ?1",
        )
        .bind(org_id)
        .fetch_optional(&self.readers)
        .await?;
        row.map(|row| {
            let lease = Lease {
                org_id: row.try_get("org_id")?,
                holder: row.try_get("holder")?,
                fencing_token: row.try_get("fencing_token")?,
                expires_at: parse_ts(row.try_get("expires_at")?)?,
            };
            let expires_in = (lease.expires_at - Utc::now()).to_std().unwrap_or_default();
            Ok(LeaseState { lease, expires_in })
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
                "UPDATE runs SET outcome = 'failed', finished_at = ?2, error = ?3 \
                 WHERE org_id = ?1 AND outcome IS NULL AND deploy_id IS NULL",
            )
            .bind(&fence.org_id)
            .bind(now())
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
            let now = now();
            let held: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM leases WHERE org_id = ?1 AND expires_at > ?2)",
            )
            .bind(legacy_key)
            .bind(&now)
            .fetch_one(&mut *tx)
            .await?;
            if held {
                return Ok(0);
            }
            let runs = sqlx::query("UPDATE runs SET org_id = ?1 WHERE org_id = ?2")
                .bind(&fence.org_id)
                .bind(legacy_key)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("UPDATE hints SET org_id = ?1 WHERE org_id = ?2")
                .bind(&fence.org_id)
                .bind(legacy_key)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE owned_ranges SET org_id = ?1 WHERE org_id = ?2")
                .bind(&fence.org_id)
                .bind(legacy_key)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM org_status WHERE org_id = ?1")
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
        let written = sqlx::query(
            "INSERT INTO org_status (org_id, snapshot, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (org_id) DO UPDATE SET snapshot = excluded.snapshot, \
             updated_at = excluded.updated_at",
        )
        .bind(org_id)
        .bind(to_json(snapshot)?)
        .bind(now())
        .execute(&self.writer)
        .await;
        self.health.observe(written)?;
        Ok(())
    }

    pub(crate) async fn status(
        &self,
        org_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.check_open()?;
        let snapshot: Option<String> =
            sqlx::query_scalar("SELECT snapshot FROM org_status WHERE org_id = ?1")
                .bind(org_id)
                .fetch_optional(&self.readers)
                .await?;
        snapshot.as_deref().map(from_json).transpose()
    }

    pub(crate) async fn release_lease(&self, org_id: &str, holder: &str) -> Result<(), StoreError> {
        self.check_open()?;
        let now = now();
        let released = sqlx::query(
            "UPDATE leases SET expires_at = ?3 \
             WHERE org_id = ?1 AND holder = ?2 AND expires_at > ?3",
        )
        .bind(org_id)
        .bind(holder)
        .bind(&now)
        .execute(&self.writer)
        .await;
        self.health.observe(released)?;
        Ok(())
    }

    pub(crate) async fn prune(&self, keep: Duration) -> Result<u64, StoreError> {
        self.check_open()?;
        let now = now();
        let cutoff = before(&now, keep)?;
        self.health.observe(
            async {
                let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
                let deliveries = sqlx::query("DELETE FROM deliveries WHERE received_at < ?1")
                    .bind(&cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let jtis = sqlx::query("DELETE FROM jtis WHERE expires_at <= ?1")
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let hints =
                    sqlx::query("DELETE FROM hints WHERE run_id IS NOT NULL AND consumed_at < ?1")
                        .bind(&cutoff)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                tx.commit().await?;
                Ok::<_, sqlx::Error>(deliveries + jtis + hints)
            }
            .await,
        )
    }
}

/// The group commit's writes, on the writer pool.
struct SqliteBatch {
    writer: SqlitePool,
    health: Arc<WriterHealth>,
}

impl BatchWriter for SqliteBatch {
    async fn commit_together(&self, calls: &[&Call]) -> Result<Vec<DeliveryOutcome>, StoreError> {
        let result = self.try_together(calls).await;
        if let Err(e) = &result {
            self.health.failed(e);
        }
        result
    }

    async fn commit_isolated(&self, calls: &[&Call]) -> Vec<Result<DeliveryOutcome, StoreError>> {
        let all = |e: StoreError| {
            self.health.failed(&e);
            calls.iter().map(|_| Err(e.clone())).collect()
        };
        let mut tx = match self.writer.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => return all(e.into()),
        };
        let now = now();
        let mut results = Vec::with_capacity(calls.len());
        for call in calls {
            let result = async {
                let mut savepoint = tx.begin().await?;
                let outcome =
                    record_one(&mut savepoint, &call.deliveries, &call.hint, &now).await?;
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
}

impl SqliteBatch {
    async fn try_together(&self, calls: &[&Call]) -> Result<Vec<DeliveryOutcome>, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let now = now();
        let rows: Vec<(&str, &str)> = calls
            .iter()
            .flat_map(|c| c.deliveries.iter())
            .map(|d| (d.source.as_str(), d.key.as_str()))
            .collect();
        // One bound parameter however large the batch (SQLite caps parameters per statement).
        // `WHERE true` resolves the INSERT … SELECT … ON CONFLICT parsing ambiguity.
        let inserted: Vec<(String, String)> = sqlx::query_as(
            "INSERT INTO deliveries (source, key, received_at) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?2 \
             FROM json_each(?1) WHERE true \
             ON CONFLICT (source, key) DO NOTHING RETURNING source, key",
        )
        .bind(to_json(&rows)?)
        .bind(&now)
        .fetch_all(&mut *tx)
        .await?;
        let new = batch::new_per_call(calls, &inserted);
        let (hints, slots) = batch::distinct_hints(calls, &new);
        let mut hint_ids = Vec::with_capacity(hints.len());
        for hint in hints {
            hint_ids.push(insert_hint(&mut tx, hint, &now).await?);
        }
        tx.commit().await?;
        Ok(batch::outcomes(calls, &new, &slots, &hint_ids))
    }
}

/// Records one `record_deliveries` call inside the group commit's transaction.
async fn record_one(
    conn: &mut SqliteConnection,
    deliveries: &[Delivery],
    hint: &NewHint,
    now: &str,
) -> Result<DeliveryOutcome, StoreError> {
    let mut new = 0;
    for delivery in deliveries {
        let done = sqlx::query(
            "INSERT INTO deliveries (source, key, received_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (source, key) DO NOTHING",
        )
        .bind(delivery.source.as_str())
        .bind(&delivery.key)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        new += done.rows_affected() as usize;
    }
    let hint_id = if new > 0 {
        Some(insert_hint(conn, hint, now).await?)
    } else {
        None
    };
    Ok(DeliveryOutcome {
        new,
        duplicates: deliveries.len() - new,
        hint_id,
    })
}

async fn insert_hint(
    conn: &mut SqliteConnection,
    hint: &NewHint,
    now: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO hints (org_id, trigger_kind, detail, created_at) \
         VALUES (?1, ?2, ?3, ?4) RETURNING id",
    )
    .bind(&hint.org_id)
    .bind(&hint.trigger)
    .bind(&hint.detail)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

async fn consume(
    conn: &mut SqliteConnection,
    ids: &[i64],
    run_id: RunId,
    now: &str,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE hints SET run_id = ?1, consumed_at = ?2 \
         WHERE run_id IS NULL AND id IN (SELECT value FROM json_each(?3))",
    )
    .bind(run_id)
    .bind(now)
    .bind(to_json(ids)?)
    .execute(conn)
    .await?;
    Ok(())
}

fn run_record(row: &SqliteRow) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        trigger: row.try_get("trigger_kind")?,
        started_at: parse_ts(row.try_get("started_at")?)?,
        finished_at: parse_opt_ts(row.try_get("finished_at")?)?,
        outcome: row.try_get("outcome")?,
        profiles: from_json(row.try_get("profiles")?)?,
        deploy_id: row.try_get("deploy_id")?,
        error: row.try_get("error")?,
        failures: from_json(row.try_get("failures")?)?,
        plan: row
            .try_get::<Option<&str>, _>("plan")?
            .map(from_json)
            .transpose()?,
    })
}

fn unavailable_at(path: &Path, e: sqlx::Error) -> StoreError {
    match StoreError::from(e) {
        StoreError::Unavailable(m) | StoreError::Data(m) => {
            StoreError::Unavailable(format!("cannot open {}: {m}", path.display()))
        }
        other => other,
    }
}
