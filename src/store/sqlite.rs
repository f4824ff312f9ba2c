//! The SQLite backend: an embedded file for a single dyno.
//!
//! Writes go through a pool of ONE connection (SQLite has one writer at a time; queueing on the
//! pool is fairer and cheaper than sleeping in the busy handler) and start with
//! `BEGIN IMMEDIATE`, so a writer from another process (a CLI command) makes us wait at BEGIN
//! (up to `busy_timeout`) rather than fail halfway. Reads use a separate small pool; WAL lets
//! them run beside the writer. Time is the process clock (see the module docs of `store`).

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
    Delivery, DeliveryOutcome, Hint, InFlightDeploy, Lease, NewHint, RunId, RunRecord, StoreError,
    StoreStats,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const READERS: u32 = 4;

pub(crate) struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    group: GroupCommit,
    notifier: Arc<HintNotifier>,
    closed: AtomicBool,
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
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(|e| unavailable_at(path, e))?;
        MIGRATOR.run(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| unavailable_at(path, e))?;
        let canonical = std::fs::canonicalize(path).map_err(|e| {
            StoreError::Unavailable(format!("cannot resolve {}: {e}", path.display()))
        })?;
        let notifier = notify::for_sqlite_file(&canonical);
        let group = GroupCommit::spawn(SqliteBatch(writer.clone()), notifier.clone());
        Ok(SqliteStore {
            writer,
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
        let done = sqlx::query(
            "INSERT INTO jtis (jti, expires_at) VALUES (?1, ?2) \
             ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE jtis.expires_at <= ?3",
        )
        .bind(jti)
        .bind(ts(until))
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn enqueue_hint(&self, hint: &NewHint) -> Result<i64, StoreError> {
        self.check_open()?;
        let mut conn = self.writer.acquire().await?;
        let id = insert_hint(&mut conn, hint, &now()).await?;
        drop(conn);
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
        let mut conn = self.writer.acquire().await?;
        consume(&mut conn, ids, run_id, &now()).await
    }

    pub(crate) async fn start_run(
        &self,
        org_id: &str,
        trigger: &str,
        hint_ids: &[i64],
        profiles: &[String],
    ) -> Result<RunId, StoreError> {
        self.check_open()?;
        let now = now();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO runs (org_id, trigger_kind, started_at, profiles) \
             VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )
        .bind(org_id)
        .bind(trigger)
        .bind(&now)
        .bind(to_json(profiles)?)
        .fetch_one(&mut *tx)
        .await?;
        consume(&mut tx, hint_ids, id, &now).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub(crate) async fn record_deploy(
        &self,
        run: RunId,
        deploy_id: &str,
        check_only: bool,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        let done = sqlx::query(
            "UPDATE runs SET deploy_id = ?2, check_only = ?3, deploy_submitted_at = ?4 \
             WHERE id = ?1 AND outcome IS NULL",
        )
        .bind(run)
        .bind(deploy_id)
        .bind(check_only)
        .bind(now())
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Data(format!(
                "run {run} does not exist or already has an outcome"
            )));
        }
        Ok(())
    }

    pub(crate) async fn finish_run(
        &self,
        run: RunId,
        outcome: &str,
        plan: Option<&serde_json::Value>,
        failures: &[String],
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        let plan = plan.map(to_json).transpose()?;
        let done = sqlx::query(
            "UPDATE runs SET outcome = ?2, finished_at = ?3, plan = COALESCE(?4, plan), \
             failures = ?5, error = ?6 \
             WHERE id = ?1 AND (outcome IS NULL OR outcome = 'unknown')",
        )
        .bind(run)
        .bind(outcome)
        .bind(now())
        .bind(plan)
        .bind(to_json(failures)?)
        .bind(error)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Data(format!(
                "run {run} does not exist or already has a final outcome"
            )));
        }
        Ok(())
    }

    pub(crate) async fn in_flight_deploy(
        &self,
        org_id: &str,
    ) -> Result<Option<InFlightDeploy>, StoreError> {
        self.check_open()?;
        let row = sqlx::query(
            "SELECT r.id, r.deploy_id, r.check_only, r.deploy_submitted_at FROM runs r \
             WHERE r.org_id = ?1 AND r.deploy_id IS NOT NULL \
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
        .fetch_optional(&self.writer)
        .await?;
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

    pub(crate) async fn release_lease(&self, org_id: &str, holder: &str) -> Result<(), StoreError> {
        self.check_open()?;
        let now = now();
        sqlx::query(
            "UPDATE leases SET expires_at = ?3 \
             WHERE org_id = ?1 AND holder = ?2 AND expires_at > ?3",
        )
        .bind(org_id)
        .bind(holder)
        .bind(&now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub(crate) async fn prune(&self, keep: Duration) -> Result<u64, StoreError> {
        self.check_open()?;
        let now = now();
        let cutoff = before(&now, keep)?;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let deliveries = sqlx::query("DELETE FROM deliveries WHERE received_at < ?1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let jtis = sqlx::query("DELETE FROM jtis WHERE expires_at <= ?1")
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deliveries + jtis)
    }
}

/// The group commit's writes, on the writer pool.
struct SqliteBatch(SqlitePool);

impl BatchWriter for SqliteBatch {
    async fn commit_together(&self, calls: &[&Call]) -> Result<Vec<DeliveryOutcome>, StoreError> {
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
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

    async fn commit_isolated(&self, calls: &[&Call]) -> Vec<Result<DeliveryOutcome, StoreError>> {
        let all = |e: StoreError| calls.iter().map(|_| Err(e.clone())).collect();
        let mut tx = match self.0.begin_with("BEGIN IMMEDIATE").await {
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
