//! What differs between SQLite and PostgreSQL, behind one trait, so that every statement and
//! transaction of the store is written once (`core.rs`).
//!
//! A statement is one SQL text for both: parameters are `$1`, `$2`, … (sqlx binds SQLite's
//! `$NNN` by its number, as PostgreSQL does), and [`sql!`] spells the one expression that
//! differs, the store's clock, in each dialect. The few statements that differ in more than
//! that are an [`Sql`] pair written out by hand. Values go in as [`Arg`]s, which each dialect
//! binds as its own types, and come back through the getters of [`Row`].

use std::future::Future;
use std::ops::DerefMut;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::{Delivery, StoreError};

/// One statement, as each dialect spells it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sql {
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

/// One statement in both dialects ([`Sql`]): SQL text pieces, shared, and between them
/// - `now`: the store's clock (see the module docs of `store`): PostgreSQL's `now()`; SQLite's
///   `'now'` in the fixed-width text form every SQLite timestamp has (`sqlite::ts`), so text
///   order stays time order;
/// - `now_plus(N)` / `now_minus(N)`: that instant moved by the seconds bound at `$N`
///   ([`Arg::secs`]);
/// - `in_ids(N)`: `IN` the ids bound at `$N` ([`Arg::Ids`]).
macro_rules! sql {
    (@ [$($pg:tt)*] [$($lite:tt)*]) => {
        $crate::store::dialect::Sql { postgres: concat!($($pg)*), sqlite: concat!($($lite)*) }
    };
    (@ [$($pg:tt)*] [$($lite:tt)*] now $($rest:tt)*) => {
        $crate::store::dialect::sql!(@
            [$($pg)* "now()",]
            [$($lite)* "strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')",]
            $($rest)*)
    };
    (@ [$($pg:tt)*] [$($lite:tt)*] now_plus($n:literal) $($rest:tt)*) => {
        $crate::store::dialect::sql!(@
            [$($pg)* "(now() + make_interval(secs => $", $n, "))",]
            [$($lite)* "strftime('%Y-%m-%dT%H:%M:%f000Z', 'now', printf('%+.3f seconds', $", $n, "))",]
            $($rest)*)
    };
    (@ [$($pg:tt)*] [$($lite:tt)*] now_minus($n:literal) $($rest:tt)*) => {
        $crate::store::dialect::sql!(@
            [$($pg)* "(now() - make_interval(secs => $", $n, "))",]
            [$($lite)* "strftime('%Y-%m-%dT%H:%M:%f000Z', 'now', printf('%+.3f seconds', -$", $n, "))",]
            $($rest)*)
    };
    (@ [$($pg:tt)*] [$($lite:tt)*] in_ids($n:literal) $($rest:tt)*) => {
        $crate::store::dialect::sql!(@
            [$($pg)* "= ANY($", $n, ")",]
            [$($lite)* "IN (SELECT value FROM json_each($", $n, "))",]
            $($rest)*)
    };
    (@ [$($pg:tt)*] [$($lite:tt)*] $text:literal $($rest:tt)*) => {
        $crate::store::dialect::sql!(@ [$($pg)* $text,] [$($lite)* $text,] $($rest)*)
    };
    ($($piece:tt)*) => {
        $crate::store::dialect::sql!(@ [] [] $($piece)*)
    };
}
pub(crate) use sql;

/// A value bound to a statement.
#[derive(Debug)]
pub(crate) enum Arg<'a> {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(Option<&'a str>),
    /// An instant: SQLite's fixed-width text, PostgreSQL's `timestamptz`.
    Stamp(DateTime<Utc>),
    /// A JSON document (`NULL` when `None`): SQLite text, PostgreSQL `jsonb`.
    Json(Option<Box<RawValue>>),
    /// Ids for `IN`: SQLite a JSON array (read with `json_each`), PostgreSQL a `bigint[]`.
    Ids(&'a [i64]),
}

impl Arg<'_> {
    /// `value` as a JSON document.
    pub(crate) fn json<T: Serialize + ?Sized>(value: &T) -> Result<Arg<'static>, StoreError> {
        Self::opt_json(Some(value))
    }

    pub(crate) fn opt_json<T: Serialize + ?Sized>(
        value: Option<&T>,
    ) -> Result<Arg<'static>, StoreError> {
        let raw = value
            .map(serde_json::value::to_raw_value)
            .transpose()
            .map_err(|e| StoreError::Data(format!("cannot write as JSON: {e}")))?;
        Ok(Arg::Json(raw))
    }

    /// A duration for `now_plus` / `now_minus`, as seconds: capped at a century, which keeps
    /// every timestamp in range in both dialects.
    pub(crate) fn secs(d: Duration) -> Arg<'static> {
        Arg::Float(
            d.min(Duration::from_secs(100 * 365 * 24 * 3600))
                .as_secs_f64(),
        )
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}

impl From<DateTime<Utc>> for Arg<'_> {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Stamp(v)
    }
}

impl<'a> From<&'a [i64]> for Arg<'a> {
    fn from(v: &'a [i64]) -> Self {
        Arg::Ids(v)
    }
}

/// A statement and its arguments, run by [`Conn`].
#[derive(Debug)]
pub(crate) struct Query<'a> {
    pub(crate) sql: Sql,
    pub(crate) args: Vec<Arg<'a>>,
}

pub(crate) fn query<'a>(sql: Sql) -> Query<'a> {
    Query {
        sql,
        args: Vec::new(),
    }
}

impl<'a> Query<'a> {
    /// Binds the next parameter (`$1` first).
    pub(crate) fn bind(mut self, arg: impl Into<Arg<'a>>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Rows affected.
    pub(crate) async fn execute<C: Conn>(self, conn: &mut C) -> Result<u64, StoreError> {
        Ok(conn.execute(self).await?)
    }

    /// Every row. Also what a write with `RETURNING` uses: stepping the statement to its end is
    /// where SQLite reports a failed commit, so no row is read of a write that did not land.
    pub(crate) async fn fetch_all<C: Conn>(self, conn: &mut C) -> Result<Vec<C::Row>, StoreError> {
        Ok(conn.fetch_all(self).await?)
    }

    pub(crate) async fn fetch_optional<C: Conn>(
        self,
        conn: &mut C,
    ) -> Result<Option<C::Row>, StoreError> {
        Ok(self.fetch_all(conn).await?.into_iter().next())
    }

    pub(crate) async fn fetch_one<C: Conn>(self, conn: &mut C) -> Result<C::Row, StoreError> {
        let sql = self.sql.postgres;
        self.fetch_optional(conn)
            .await?
            .ok_or_else(|| StoreError::Data(format!("no row from {sql:?}")))
    }
}

/// A connection of one dialect (a pooled one, or the one a transaction holds).
pub(crate) trait Conn: Send {
    type Row: Row;

    fn execute(
        &mut self,
        query: Query<'_>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    fn fetch_all(
        &mut self,
        query: Query<'_>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send;
}

/// A row of one dialect, read by column name. Each dialect reads the nullable form; the
/// provided methods refuse a NULL.
pub(crate) trait Row: Send {
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn opt_flag(&self, column: &str) -> Result<Option<bool>, StoreError>;
    fn opt_stamp(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, StoreError>;

    fn int(&self, column: &str) -> Result<i64, StoreError> {
        not_null(column, self.opt_int(column)?)
    }

    fn text(&self, column: &str) -> Result<String, StoreError> {
        not_null(column, self.opt_text(column)?)
    }

    fn stamp(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        not_null(column, self.opt_stamp(column)?)
    }

    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        not_null(column, self.opt_json(column)?)
    }

    /// A text column read as `T` (an outcome, a trigger): a value this version does not know
    /// is a [`StoreError::Data`].
    fn opt_parsed<T: FromStr<Err = String>>(&self, column: &str) -> Result<Option<T>, StoreError> {
        self.opt_text(column)?
            .map(|text| {
                text.parse().map_err(|e| {
                    StoreError::Data(format!("{e} in column {column} of the database"))
                })
            })
            .transpose()
    }

    fn parsed<T: FromStr<Err = String>>(&self, column: &str) -> Result<T, StoreError> {
        not_null(column, self.opt_parsed(column)?)
    }
}

fn not_null<T>(column: &str, value: Option<T>) -> Result<T, StoreError> {
    value.ok_or_else(|| StoreError::Data(format!("column {column} is NULL in the database")))
}

/// One database engine as the store uses it.
pub(crate) trait Dialect: Send + Sync + 'static {
    type Conn: Conn;
    type Pooled: DerefMut<Target = Self::Conn> + Send;
    type Tx: DerefMut<Target = Self::Conn> + Send;

    /// `"sqlite"` or `"postgres"`.
    const NAME: &'static str;

    /// A connection to read on.
    fn reader(&self) -> impl Future<Output = Result<Self::Pooled, sqlx::Error>> + Send;

    /// A connection for a write of one statement (committed by itself).
    fn writer(&self) -> impl Future<Output = Result<Self::Pooled, sqlx::Error>> + Send;

    /// A write transaction.
    fn begin(&self) -> impl Future<Output = Result<Self::Tx, sqlx::Error>> + Send;

    fn commit(tx: Self::Tx) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// A write transaction on a connection the caller holds.
    type TxOn<'c>: DerefMut<Target = Self::Conn> + Send;

    /// A connection for the group commit's writer to keep across batches: taking it does not
    /// count as [`Dialect::others_waiting`].
    fn hold(&self) -> impl Future<Output = Result<Self::Pooled, sqlx::Error>> + Send;

    /// Whether a write is waiting for a connection ([`Dialect::writer`], [`Dialect::begin`]).
    fn others_waiting(&self) -> bool;

    /// A write transaction on `conn` (as [`Dialect::begin`] opens one).
    fn begin_on(
        conn: &mut Self::Pooled,
    ) -> impl Future<Output = Result<Self::TxOn<'_>, sqlx::Error>> + Send;

    fn commit_on(tx: Self::TxOn<'_>) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Told of every write that failed.
    fn write_failed(&self, error: &StoreError);

    /// Announces to every instance, when `conn`'s transaction commits, that a hint for
    /// `org_id` was recorded. (Waiters in this process are also woken after the commit.)
    fn announce_hint(
        conn: &mut Self::Conn,
        org_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Inserts every delivery key not recorded yet (duplicates within `deliveries` too) in one
    /// statement; returns the (source, key) pairs inserted.
    fn insert_deliveries(
        conn: &mut Self::Conn,
        deliveries: &[&Delivery],
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// The positions in `deliveries` of those not recorded, in order.
    fn unrecorded_deliveries(
        conn: &mut Self::Conn,
        deliveries: &[Delivery],
    ) -> impl Future<Output = Result<Vec<usize>, StoreError>> + Send;

    /// Closes every connection.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// How many writes are waiting for a connection ([`Dialect::others_waiting`]).
#[derive(Debug, Default)]
pub(crate) struct Waiting(AtomicUsize);

impl Waiting {
    /// Awaits `acquire`, counted as waiting meanwhile (also if it is dropped halfway).
    pub(crate) async fn counted<T>(&self, acquire: impl Future<Output = T>) -> T {
        struct Counted<'a>(&'a AtomicUsize);
        impl Drop for Counted<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.0.fetch_add(1, Ordering::AcqRel);
        let _counted = Counted(&self.0);
        acquire.await
    }

    pub(crate) fn any(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}
