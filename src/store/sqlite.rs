//! The SQLite dialect: an embedded file for a single dyno.
//!
//! Writes go through a pool of ONE connection (SQLite has one writer at a time; queueing on the
//! pool is fairer and cheaper than sleeping in the busy handler) and transactions start with
//! `BEGIN IMMEDIATE`, so a writer from another process (a CLI command) makes us wait at BEGIN
//! (up to `busy_timeout`) rather than fail halfway. Reads use a separate small pool; WAL lets
//! them run beside the writer. Time is the host's clock (see the module docs of `store`).
//!
//! A failed write retires the writer connection (the pool's `before_acquire` hook drops it and
//! opens a fresh one). When a COMMIT fails for lack of space SQLite rolls the transaction back
//! by itself; the driver's own ROLLBACK then fails and its transaction counter stays up, so
//! every later `BEGIN` on that connection would be refused until the process restarted.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Row as _, SqliteConnection, SqlitePool, Transaction};

use super::dialect::{Arg, Conn, Dialect, Query, Row, Waiting, query, sql};
use super::notify::{self, HintNotifier};
use super::{Delivery, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

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

/// Runs the migrations, retrying when another process migrated the same fresh file at the
/// same moment: SQLite has no migration lock (sqlx takes one only on PostgreSQL), so the
/// loser of that race fails on the migration the winner just applied; on a retry it sees it
/// applied. A genuine failure still fails after the last attempt.
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

pub(crate) struct Sqlite {
    writer: SqlitePool,
    readers: SqlitePool,
    /// Set by a failed write: the writer connection is replaced before its next use.
    retire: Arc<AtomicBool>,
    waiting: Waiting,
}

/// The one timestamp form stored: fixed width, UTC, so text order is time order (the `now`
/// of `sql!` writes the same form). Instants outside years 1–9999 (which would not keep that
/// width) are clamped.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    match t.year() {
        ..=0 => "0001-01-01T00:00:00.000000Z".to_owned(),
        10000.. => "9999-12-31T23:59:59.999999Z".to_owned(),
        _ => t.to_rfc3339_opts(SecondsFormat::Micros, true),
    }
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Data(format!("bad timestamp {s:?} in the database: {e}")))
}

impl Sqlite {
    /// Opens (creating it if missing) and migrates the file; returns the dialect and the
    /// notifier every `Store` of this process on the same file shares.
    pub(crate) async fn connect(path: &Path) -> Result<(Sqlite, Arc<HintNotifier>), StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            // A group commit's INSERT returns a row per new delivery (up to MAX_BATCH calls'
            // worth): room for all of them, so SQLite's thread never waits on the writer
            // mid-statement (sqlx's default is 50).
            .row_buffer_size(1024)
            .foreign_keys(true);
        let retire = Arc::new(AtomicBool::new(false));
        let hook_retire = retire.clone();
        // No ping before each acquire (sqlx's default): the connection is a thread of this
        // process and cannot have hung up, and the ping is one more hop to it per commit.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            // false = close this connection and open another (see the module docs).
            .before_acquire(move |_, _| {
                let keep = !hook_retire.swap(false, Ordering::AcqRel);
                Box::pin(async move { Ok(keep) })
            })
            .acquire_timeout(Duration::from_secs(30));
        let writer = open_while_busy(|| writer.clone().connect_with(options.clone()))
            .await
            .map_err(|e| unavailable_at(path, e))?;
        migrate(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10));
        let read_only = options.read_only(true);
        let readers = open_while_busy(|| readers.clone().connect_with(read_only.clone()))
            .await
            .map_err(|e| unavailable_at(path, e))?;
        let canonical = std::fs::canonicalize(path).map_err(|e| {
            StoreError::Unavailable(format!("cannot resolve {}: {e}", path.display()))
        })?;
        let dialect = Sqlite {
            writer,
            readers,
            retire,
            waiting: Waiting::default(),
        };
        Ok((dialect, notify::for_sqlite_file(&canonical)))
    }
}

impl Dialect for Sqlite {
    type Conn = SqliteConnection;
    type Pooled = PoolConnection<sqlx::Sqlite>;
    type Tx = Transaction<'static, sqlx::Sqlite>;

    const NAME: &'static str = "sqlite";

    async fn reader(&self) -> Result<Self::Pooled, sqlx::Error> {
        // Boxed (as sqlx boxes its own): the pool's future is large, and every call's future
        // would carry it.
        Box::pin(self.readers.acquire()).await
    }

    async fn writer(&self) -> Result<Self::Pooled, sqlx::Error> {
        self.waiting.counted(Box::pin(self.writer.acquire())).await
    }

    async fn begin(&self) -> Result<Self::Tx, sqlx::Error> {
        self.waiting
            .counted(Box::pin(self.writer.begin_with("BEGIN IMMEDIATE")))
            .await
    }

    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    type TxOn<'c> = Transaction<'c, sqlx::Sqlite>;

    async fn hold(&self) -> Result<Self::Pooled, sqlx::Error> {
        Box::pin(self.writer.acquire()).await
    }

    fn others_waiting(&self) -> bool {
        self.waiting.any()
    }

    async fn begin_on(conn: &mut Self::Pooled) -> Result<Self::TxOn<'_>, sqlx::Error> {
        sqlx::Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE").await
    }

    async fn commit_on(tx: Self::TxOn<'_>) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    fn write_failed(&self, error: &StoreError) {
        tracing::warn!(error = %error, "SQLite write failed; the next write uses a fresh connection");
        self.retire.store(true, Ordering::Release);
    }

    /// Nothing to send: another process on the same file is not told (its waiters wake at
    /// their timeout); this process's are woken after the commit.
    async fn announce_hint(_: &mut SqliteConnection, _: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn insert_deliveries(
        conn: &mut SqliteConnection,
        deliveries: &[&Delivery],
    ) -> Result<Vec<(String, String)>, StoreError> {
        // One bound parameter however many deliveries (SQLite caps parameters per statement).
        // `WHERE true` resolves the INSERT … SELECT … ON CONFLICT parsing ambiguity.
        let rows = query(sql!(
            "INSERT INTO deliveries (source, key, received_at) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), " now " \
             FROM json_each($1) WHERE true \
             ON CONFLICT (source, key) DO NOTHING RETURNING source, key"
        ))
        .bind(pairs(deliveries.iter().copied()).as_str())
        .fetch_all(conn)
        .await?;
        rows.iter()
            .map(|row| Ok((row.text("source")?, row.text("key")?)))
            .collect()
    }

    async fn unrecorded_deliveries(
        conn: &mut SqliteConnection,
        deliveries: &[Delivery],
    ) -> Result<Vec<usize>, StoreError> {
        // One statement: json_each's `key` of an array element is its index.
        let rows = query(sql!(
            "SELECT d.key AS n FROM json_each($1) AS d \
             WHERE NOT EXISTS (SELECT 1 FROM deliveries r \
                               WHERE r.source = json_extract(d.value, '$[0]') \
                                 AND r.key = json_extract(d.value, '$[1]')) \
             ORDER BY d.key"
        ))
        .bind(pairs(deliveries.iter()).as_str())
        .fetch_all(conn)
        .await?;
        rows.iter()
            .map(|row| Ok(usize::try_from(row.int("n")?).unwrap_or(usize::MAX)))
            .collect()
    }

    async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }
}

/// `[[source, key], …]`.
fn pairs<'a>(deliveries: impl Iterator<Item = &'a Delivery>) -> String {
    let pairs: Vec<(&str, &str)> = deliveries
        .map(|d| (d.source.as_str(), d.key.as_str()))
        .collect();
    serde_json::to_string(&pairs).expect("string pairs always serialize")
}

type SqlxQuery = sqlx::query::Query<'static, sqlx::Sqlite, SqliteArguments>;

impl Query<'_> {
    /// This statement as sqlx runs it on SQLite.
    fn sqlite(self) -> SqlxQuery {
        self.args
            .into_iter()
            .fold(sqlx::query(self.sql.sqlite), |q, arg| match arg {
                Arg::Int(v) => q.bind(v),
                Arg::Float(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Stamp(t) => q.bind(ts(t)),
                Arg::Json(v) => q.bind(v.as_deref().map(RawValue::get)),
                Arg::Ids(ids) => q.bind(Json(ids)),
            })
    }
}

impl Conn for SqliteConnection {
    type Row = SqliteRow;

    async fn execute(&mut self, query: Query<'_>) -> Result<u64, sqlx::Error> {
        Ok(query.sqlite().execute(self).await?.rows_affected())
    }

    async fn fetch_all(&mut self, query: Query<'_>) -> Result<Vec<SqliteRow>, sqlx::Error> {
        query.sqlite().fetch_all(self).await
    }
}

impl Row for SqliteRow {
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_flag(&self, column: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_stamp(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.try_get::<Option<&str>, _>(column)?
            .map(parse_ts)
            .transpose()
    }

    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, StoreError> {
        Ok(self.try_get::<Option<Json<T>>, _>(column)?.map(|Json(v)| v))
    }
}

fn unavailable_at(path: &Path, e: sqlx::Error) -> StoreError {
    match StoreError::from(e) {
        StoreError::Unavailable(m) | StoreError::Data(m) => {
            StoreError::Unavailable(format!("cannot open {}: {m}", path.display()))
        }
        other => other,
    }
}
