//! The PostgreSQL dialect, shared by every instance. All time is the database's (`now()`).
//!
//! Hints are announced with `pg_notify('ipguard_hints', org_id)` inside the inserting
//! transaction (delivered at commit); a listener task per `Store` turns them into wake-ups for
//! `wait_for_hint`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row as _, Transaction};
use tokio::sync::oneshot;

use super::dialect::{Arg, Conn, Dialect, Query, Row, Waiting};
use super::notify::HintNotifier;
use super::{Delivery, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The NOTIFY channel (database-wide, not per schema); the payload is the org id.
const CHANNEL: &str = "ipguard_hints";
/// Heroku Postgres' smallest plans allow 20 connections for all dynos together.
const MAX_CONNECTIONS: u32 = 8;
/// How long a call waits for a connection before answering Unavailable (HTTP 503).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Postgres {
    pool: PgPool,
    /// Dropped with the store: ends the listener task, which returns its connection.
    _stop_listener: oneshot::Sender<()>,
    /// Reads and writes waiting for one of the pool's connections.
    waiting: Waiting,
}

impl Postgres {
    /// Connects, migrates and starts listening; returns the dialect and the notifier the
    /// listener wakes.
    pub(crate) async fn connect(
        url: &SecretString,
    ) -> Result<(Postgres, Arc<HintNotifier>), StoreError> {
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
        let dialect = Postgres {
            pool,
            _stop_listener: stop_listener,
            waiting: Waiting::default(),
        };
        Ok((dialect, notifier))
    }
}

impl Dialect for Postgres {
    type Conn = PgConnection;
    type Pooled = PoolConnection<sqlx::Postgres>;
    type Tx = Transaction<'static, sqlx::Postgres>;

    const NAME: &'static str = "postgres";

    async fn reader(&self) -> Result<Self::Pooled, sqlx::Error> {
        // Boxed (as sqlx boxes its own): the pool's future is large, and every call's future
        // would carry it.
        self.waiting.counted(Box::pin(self.pool.acquire())).await
    }

    async fn writer(&self) -> Result<Self::Pooled, sqlx::Error> {
        self.waiting.counted(Box::pin(self.pool.acquire())).await
    }

    async fn begin(&self) -> Result<Self::Tx, sqlx::Error> {
        self.waiting.counted(Box::pin(self.pool.begin())).await
    }

    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    type TxOn<'c> = Transaction<'c, sqlx::Postgres>;

    async fn hold(&self) -> Result<Self::Pooled, sqlx::Error> {
        Box::pin(self.pool.acquire()).await
    }

    /// Reads count too: they share the pool.
    fn others_waiting(&self) -> bool {
        self.waiting.any()
    }

    async fn begin_on(conn: &mut Self::Pooled) -> Result<Self::TxOn<'_>, sqlx::Error> {
        sqlx::Connection::begin(&mut **conn).await
    }

    async fn commit_on(tx: Self::TxOn<'_>) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    /// Nothing to repair: a broken connection is the pool's to replace.
    fn write_failed(&self, _: &StoreError) {}

    async fn announce_hint(conn: &mut PgConnection, org_id: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(org_id)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn insert_deliveries(
        conn: &mut PgConnection,
        deliveries: &[&Delivery],
    ) -> Result<Vec<(String, String)>, StoreError> {
        // Sorted, so that two instances inserting overlapping keys lock them in the same order.
        let mut sorted = deliveries.to_vec();
        sorted.sort_by(|a, b| (a.source, &a.key).cmp(&(b.source, &b.key)));
        let (sources, keys) = columns(sorted.into_iter());
        Ok(sqlx::query_as(
            "INSERT INTO deliveries (source, key, received_at) \
             SELECT d.source, d.key, now() FROM UNNEST($1::text[], $2::text[]) AS d(source, key) \
             ON CONFLICT (source, key) DO NOTHING RETURNING source, key",
        )
        .bind(&sources)
        .bind(&keys)
        .fetch_all(conn)
        .await?)
    }

    async fn unrecorded_deliveries(
        conn: &mut PgConnection,
        deliveries: &[Delivery],
    ) -> Result<Vec<usize>, StoreError> {
        let (sources, keys) = columns(deliveries.iter());
        // One round trip; the ordinality keeps the caller's order.
        let missing: Vec<i64> = sqlx::query_scalar(
            "SELECT d.n FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS d(source, key, n) \
             WHERE NOT EXISTS (SELECT 1 FROM deliveries r \
                               WHERE r.source = d.source AND r.key = d.key) \
             ORDER BY d.n",
        )
        .bind(&sources)
        .bind(&keys)
        .fetch_all(conn)
        .await?;
        Ok(missing
            .into_iter()
            .filter_map(|n| usize::try_from(n - 1).ok())
            .collect())
    }

    async fn close(&self) {
        // Also ends the listener task: its wait is cancelled with PoolClosed.
        self.pool.close().await;
    }
}

/// `(sources, keys)` as arrays for UNNEST.
fn columns<'a>(deliveries: impl Iterator<Item = &'a Delivery>) -> (Vec<&'a str>, Vec<&'a str>) {
    deliveries
        .map(|d| (d.source.as_str(), d.key.as_str()))
        .unzip()
}

type SqlxQuery = sqlx::query::Query<'static, sqlx::Postgres, PgArguments>;

impl Query<'_> {
    /// This statement as sqlx runs it on PostgreSQL.
    fn postgres(self) -> SqlxQuery {
        self.args
            .into_iter()
            .fold(sqlx::query(self.sql.postgres), |q, arg| match arg {
                Arg::Int(v) => q.bind(v),
                Arg::Float(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Stamp(t) => q.bind(t),
                Arg::Json(v) => q.bind(v.map(Json)),
                Arg::Ids(ids) => q.bind(ids),
            })
    }
}

impl Conn for PgConnection {
    type Row = PgRow;

    async fn execute(&mut self, query: Query<'_>) -> Result<u64, sqlx::Error> {
        Ok(query.postgres().execute(self).await?.rows_affected())
    }

    async fn fetch_all(&mut self, query: Query<'_>) -> Result<Vec<PgRow>, sqlx::Error> {
        query.postgres().fetch_all(self).await
    }
}

impl Row for PgRow {
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
        Ok(self.try_get(column)?)
    }

    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, StoreError> {
        Ok(self.try_get::<Option<Json<T>>, _>(column)?.map(|Json(v)| v))
    }
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
                // Until the store closes: a listener that gave up would leave waiters to
                // their timeouts for good.
                let reconnect = ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(30))
                    .with_jitter()
                    .without_max_times();
                let subscribed = (|| subscribe(&pool))
                    .retry(reconnect)
                    .when(|e| !matches!(e, sqlx::Error::PoolClosed))
                    .notify(|e, _| tracing::warn!(error = %e, "store: LISTEN reconnect failed"))
                    .await;
                listener = match subscribed {
                    Ok(listener) => listener,
                    Err(_) => return,
                };
                tracing::info!("store: listening for hints again");
                notifier.notify_all();
            }
        }
    }
}
