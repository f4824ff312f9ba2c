//! The durable store: delivery dedupe, the hint queue, JWT ids, run history and per-org leases.
//!
//! Two backends behind one [`Store`]: SQLite (an embedded file, for one dyno) and PostgreSQL
//! (shared by any number of dynos). Every statement and transaction is written once
//! (`core.rs`); what differs between the two databases is a [`dialect::Dialect`]
//! (`sqlite.rs`, `postgres.rs`). Schema migrations (`migrations/sqlite`,
//! `migrations/postgres`) run in [`Store::connect`].
//!
//! # Clocks
//! Every timestamp is stamped and every expiry compared with the database's clock, never an
//! instance's:
//! - **PostgreSQL**: `now()`, so instances with skewed clocks agree on who holds a lease and
//!   what has expired.
//! - **SQLite**: the database is embedded in this process, so its clock (`'now'`, to the
//!   millisecond) *is* the host's.
//!
//! JWT expiries (`consume_jti`) are absolute instants taken from the token; they are compared
//! with the clock above.
//!
//! # Hints and runs
//! [`Store::start_run`] consumes the hints it is given in the same transaction that creates the
//! run, so a hint is either pending or tied to exactly one run; hints recorded after that
//! transaction stay pending and make the follow-up run. [`Store::consume_hints`] does the same
//! for hints folded into a run later and is idempotent (a hint keeps its first run).
//!
//! # Fenced writes
//! A run's records are written under the lease of its org: [`Store::start_run`],
//! [`Store::record_deploy`], [`Store::finish_run`] and [`Store::close_deploy`] take the
//! [`Fence`] of the tenure that runs it and are refused with [`StoreError::Fenced`] once
//! another tenure has begun (another holder took over, or the lease was taken again after it
//! expired), so a run that lost its lease cannot overwrite what its successor records.
//!
//! # Write health
//! [`Store::ready`] commits a one-row write: the store is ready only while it can write (a
//! full disk answers reads but refuses writes). On SQLite a failed write also retires the
//! writer connection, so that a transaction SQLite rolled back by itself cannot leave the
//! driver stuck (see `sqlite.rs`).
//!
//! # In-flight deploys
//! A deploy is *in flight* when a run recorded its deploy id and no run has recorded a final
//! outcome for that deploy id yet: the run's outcome is still empty (the process may have died
//! while polling) or `unknown` (the poll window closed while Salesforce was still deploying).
//! The controller resumes polling it and then calls [`Store::finish_run`] on the same run, which
//! is allowed to replace an `unknown` outcome (never a final one); a new run that calls
//! [`Store::record_deploy`] with the same deploy id and finishes with a final outcome resolves
//! it too. A deploy closed with [`Store::close_deploy`] is never in flight again.

mod batch;
mod core;
mod dialect;
mod notify;
mod postgres;
mod sqlite;
pub mod testing;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::DatabaseUrl;
use crate::outcome::Outcome;
use crate::reconcile::plan::PlanRecord;
use crate::trigger::{Trigger, Triggers};

pub type RunId = i64;

/// Where a delivery came from; part of the dedupe key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliverySource {
    OutboundMessage,
    PlatformEvent,
}

impl DeliverySource {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliverySource::OutboundMessage => "outbound_message",
            DeliverySource::PlatformEvent => "platform_event",
        }
    }
}

/// One Salesforce delivery: an outbound message's Notification Id, or a platform event's
/// dedupe key (`EventUuid`, else channel and replay id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delivery {
    pub source: DeliverySource,
    pub key: String,
}

/// A hint to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHint {
    pub org_id: String,
    pub trigger: Trigger,
    pub detail: Option<String>,
}

/// What [`Store::record_deliveries`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub new: usize,
    pub duplicates: usize,
    /// The hint enqueued, when at least one delivery was new.
    pub hint_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub id: i64,
    pub org_id: String,
    pub trigger: Trigger,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightDeploy {
    pub run_id: RunId,
    pub deploy_id: String,
    pub check_only: bool,
    pub submitted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub org_id: String,
    pub trigger: Triggers,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub profiles: Vec<String>,
    pub deploy_id: Option<String>,
    pub error: Option<String>,
    pub failures: Vec<String>,
    /// With the attribution, when the run planned (docs/contract.md §5 rules 3 and 9).
    pub plan: Option<PlanRecord>,
}

/// The lease key of an instance's presence; never an org key (org ids, `user:…`, `default`).
pub fn presence_key(holder: &str) -> String {
    format!("instance:{holder}")
}

/// One login IP range ipguard asserted on a profile (docs/contract.md §1 Owned ranges); addresses in
/// their canonical text form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnedRange {
    pub profile: String,
    pub start: String,
    pub end: String,
}

/// A held per-org lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub org_id: String,
    pub holder: String,
    /// Increases whenever a new tenure starts: another holder takes over, or the lease is
    /// taken again after it expired or was released. Renewing a live lease keeps it.
    pub fencing_token: i64,
    /// In the store's clock (see the module docs).
    pub expires_at: DateTime<Utc>,
}

/// The tenure a run writes under: its org and the lease's fencing token when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub org_id: String,
    pub token: i64,
}

impl Lease {
    pub fn fence(&self) -> Fence {
        Fence {
            org_id: self.org_id.clone(),
            token: self.fencing_token,
        }
    }
}

/// The org's lease as it stands: who holds it and for how much longer (zero once expired),
/// by the store's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    pub lease: Lease,
    pub expires_in: Duration,
}

/// Counters for `/metrics` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// `record_deliveries` calls answered Ok.
    pub delivery_calls: u64,
    /// Transactions committed for them (fewer than the calls when group commit batched them).
    pub delivery_commits: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or cannot take the write now (connection, pool, I/O,
    /// lock contention, closed store). Transient: the HTTP layer answers 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A read-only command found no SQLite file where `DATABASE_URL` points.
    #[error("no store at {0}")]
    Missing(String),
    #[error("store migration failed: {0}")]
    Migration(String),
    /// A statement was refused or a row could not be read (a bug, or a database edited by hand).
    #[error("store data error: {0}")]
    Data(String),
    /// The write came from a tenure that is over: another holder has the org's lease now.
    #[error(
        "refused a write for org {org_id} under fencing token {token}: the lease has moved on (now token {current})"
    )]
    Fenced {
        org_id: String,
        token: i64,
        current: i64,
    },
}

impl StoreError {
    pub(crate) fn closed() -> StoreError {
        StoreError::Unavailable("the store is closed".to_owned())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        use sqlx::Error as E;
        match &error {
            E::Io(_)
            | E::Tls(_)
            | E::Protocol(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed
            | E::BeginFailed => StoreError::Unavailable(error.to_string()),
            E::Configuration(_) => StoreError::Unavailable(error.to_string()),
            E::Migrate(e) => StoreError::Migration(e.to_string()),
            E::Database(db) if is_transient(db.as_ref()) => {
                StoreError::Unavailable(error.to_string())
            }
            _ => StoreError::Data(error.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> StoreError {
        match error {
            sqlx::migrate::MigrateError::Execute(e) => match StoreError::from(e) {
                StoreError::Unavailable(m) => StoreError::Unavailable(m),
                other => StoreError::Migration(other.to_string()),
            },
            other => StoreError::Migration(other.to_string()),
        }
    }
}

/// Database errors that mean "try again later" rather than "this statement is wrong".
fn is_transient(error: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = error.code() else {
        return false;
    };
    if let Some(pg) = error.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        // 08 connection exception, 40 transaction rollback (serialization, deadlock),
        // 53 insufficient resources, 57 operator intervention (shutdown), 58 system error.
        return matches!(&pg.code()[..2], "08" | "40" | "53" | "57" | "58");
    }
    if error
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
    {
        // Extended result code; the primary code is its low byte.
        // BUSY 5, LOCKED 6, NOMEM 7, IOERR 10, FULL 13, CANTOPEN 14, PROTOCOL 15.
        return code
            .parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15));
    }
    false
}

/// The store: cheap to clone, shared by the HTTP handlers and the controller.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Backend>,
}

enum Backend {
    Sqlite(core::Core<sqlite::Sqlite>),
    Postgres(core::Core<postgres::Postgres>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it carries the password.
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $call:expr) => {
        match &*$self.inner {
            Backend::Sqlite($b) => $call,
            Backend::Postgres($b) => $call,
        }
    };
}

/// Salesforce retries an outbound message for up to 24 hours: a delivery key must be kept at
/// least that long or a late retry would count as new.
pub const MIN_DELIVERY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// A `jti` stays refused this long past the expiry it was recorded with: the JWT check honours
/// `exp` with 60 s of leeway, so a token is still accepted for that long after `exp`.
pub const JTI_LEEWAY: Duration = Duration::from_secs(60);

impl Store {
    /// Opens the database and runs the migrations.
    ///
    /// SQLite: creates the file if missing (not its directory); WAL, `synchronous=NORMAL`,
    /// `busy_timeout`. PostgreSQL: TLS as the URL asks (`sslmode=require` encrypts without
    /// verifying the certificate, as Heroku Postgres needs; the default `prefer` uses TLS when
    /// the server offers it); starts the LISTEN task behind [`Store::wait_for_hint`].
    pub async fn connect(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let backend = match url {
            DatabaseUrl::Sqlite { path } => {
                let (db, notifier) = sqlite::Sqlite::connect(path).await?;
                Backend::Sqlite(core::Core::new(db, notifier))
            }
            DatabaseUrl::Postgres { url } => {
                let (db, notifier) = postgres::Postgres::connect(url).await?;
                Backend::Postgres(core::Core::new(db, notifier))
            }
        };
        Ok(Store {
            inner: Arc::new(backend),
        })
    }

    /// [`Store::connect`] for a store that must already exist: read-only commands never
    /// create one (a new SQLite file would only hide where the runs really are).
    pub async fn open_existing(url: &DatabaseUrl) -> Result<Store, StoreError> {
        if let DatabaseUrl::Sqlite { path } = url
            && !path.exists()
        {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        Store::connect(url).await
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        fn name<D: dialect::Dialect>(_: &core::Core<D>) -> &'static str {
            D::NAME
        }
        dispatch!(self, b => name(b))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, b => b.ping().await)
    }

    /// Commits a one-row write: `Ok` only while the store can take writes (`/readyz`).
    pub async fn ready(&self) -> Result<(), StoreError> {
        dispatch!(self, b => b.probe_write().await)
    }

    /// Closes every connection; afterwards every call returns [`StoreError::Unavailable`]
    /// (and `wait_for_hint` only waits out its timeout). Affects every clone.
    pub async fn close(&self) {
        dispatch!(self, b => b.close().await)
    }

    pub fn stats(&self) -> StoreStats {
        dispatch!(self, b => b.stats())
    }

    /// Atomically records each delivery key (dedupe on (source, key); duplicates, also within
    /// `deliveries`, are ignored) and, when at least one is new, enqueues ONE hint — committed
    /// before this returns Ok, so the caller may ACK.
    ///
    /// Concurrent calls are group-committed (`batch.rs`): one writer task drains everything
    /// queued into one transaction; should that fail, each call is written again in a
    /// transaction of its own. PostgreSQL: the hint's NOTIFY is sent inside the transaction.
    pub async fn record_deliveries(
        &self,
        deliveries: &[Delivery],
        hint: &NewHint,
    ) -> Result<DeliveryOutcome, StoreError> {
        dispatch!(self, b => b.record_deliveries(deliveries, hint).await)
    }

    /// Those of `deliveries` the store has no record of, in the order given: what a receiver
    /// may not have acknowledged (audits and the fault tests' "no ACKed delivery lost").
    pub async fn unrecorded_deliveries(
        &self,
        deliveries: &[Delivery],
    ) -> Result<Vec<Delivery>, StoreError> {
        dispatch!(self, b => b.unrecorded_deliveries(deliveries).await)
    }

    /// Single-use JWT ids: true if `jti` is fresh (and is now recorded), false if it was seen
    /// and has not expired. It stays refused until `expires_at` + [`JTI_LEEWAY`]; pass the
    /// token's `exp`.
    pub async fn consume_jti(
        &self,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let leeway = chrono::Duration::from_std(JTI_LEEWAY).expect("60 s fits");
        // Clamped into a range every backend can store (PostgreSQL's ends far before chrono's).
        let earliest = DateTime::<Utc>::UNIX_EPOCH;
        let latest = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
            .expect("valid constant")
            .to_utc();
        let until = expires_at
            .checked_add_signed(leeway)
            .unwrap_or(latest)
            .clamp(earliest, latest);
        dispatch!(self, b => b.consume_jti(jti, until).await)
    }

    pub async fn enqueue_hint(&self, hint: &NewHint) -> Result<i64, StoreError> {
        dispatch!(self, b => b.enqueue_hint(hint).await)
    }

    /// The org's hints not yet consumed by a run, oldest first.
    pub async fn pending_hints(&self, org_id: &str) -> Result<Vec<Hint>, StoreError> {
        dispatch!(self, b => b.pending_hints(org_id).await)
    }

    /// Ties the hints to `run_id`; hints already consumed keep their run. Idempotent.
    pub async fn consume_hints(&self, ids: &[i64], run_id: RunId) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        dispatch!(self, b => b.consume_hints(ids, run_id).await)
    }

    /// Returns when a hint may be pending for `org_id` (spurious wake-ups happen: check
    /// [`Store::pending_hints`]) or after `timeout`. A hint enqueued between the caller's last
    /// check and this call still wakes it at once.
    ///
    /// PostgreSQL: LISTEN/NOTIFY, so a hint recorded by any instance wakes the leaseholder;
    /// after the listening connection was lost and re-established every waiter is woken, since
    /// notifications may have been missed meanwhile. SQLite: an in-process notifier shared by
    /// every `Store` of this process that opened the same file.
    pub async fn wait_for_hint(&self, org_id: &str, timeout: Duration) {
        dispatch!(self, b => b.notifier().wait(org_id, timeout).await)
    }

    /// Creates a run for the fence's org and consumes `hint_ids` (the org's pending hints this
    /// run takes into account) in the same transaction. Fenced (see the module docs).
    pub async fn start_run(
        &self,
        fence: &Fence,
        trigger: &Triggers,
        hint_ids: &[i64],
        profiles: &[String],
    ) -> Result<RunId, StoreError> {
        dispatch!(self, b => b.start_run(fence, trigger, hint_ids, profiles).await)
    }

    /// Persists the deploy id of an unfinished run; call it BEFORE polling starts.
    /// [`StoreError::Data`] if the run does not exist or already has an outcome. Fenced.
    pub async fn record_deploy(
        &self,
        fence: &Fence,
        run: RunId,
        deploy_id: &str,
        check_only: bool,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.record_deploy(fence, run, deploy_id, check_only).await)
    }

    /// Records the run's outcome. Allowed while the run has no outcome or the outcome
    /// `unknown` of a deploy not closed (a resumed deploy); [`StoreError::Data`] otherwise.
    /// `plan` `None` keeps a plan recorded earlier. Fenced.
    pub async fn finish_run(
        &self,
        fence: &Fence,
        run: RunId,
        outcome: Outcome,
        plan: Option<&PlanRecord>,
        failures: &[String],
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.finish_run(fence, run, outcome, plan, failures, error).await)
    }

    /// Ends the run `unknown` with `reason` and closes its deploy: it is never resumed again,
    /// so the next run starts from a fresh read. Same conditions as [`Store::finish_run`].
    pub async fn close_deploy(
        &self,
        fence: &Fence,
        run: RunId,
        reason: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.close_deploy(fence, run, reason).await)
    }

    /// The org's newest deploy still in flight (see the module docs), if any.
    pub async fn in_flight_deploy(
        &self,
        org_id: &str,
    ) -> Result<Option<InFlightDeploy>, StoreError> {
        dispatch!(self, b => b.in_flight_deploy(org_id).await)
    }

    /// One run by id.
    pub async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        dispatch!(self, b => b.run(id).await)
    }

    /// The run that consumed a hint, once one has.
    pub async fn run_for_hint(&self, hint_id: i64) -> Result<Option<RunId>, StoreError> {
        dispatch!(self, b => b.run_for_hint(hint_id).await)
    }

    /// The newest `limit` runs of every org, newest first.
    pub async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        dispatch!(self, b => b.recent_runs(limit).await)
    }

    /// Keeps what the leader last saw of `org_id` (the `/status` snapshot), for every
    /// instance to show.
    pub async fn put_status(
        &self,
        org_id: &str,
        snapshot: &serde_json::Value,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.put_status(org_id, snapshot).await)
    }

    /// The snapshot [`Store::put_status`] kept for `org_id`, if any.
    pub async fn status(&self, org_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        dispatch!(self, b => b.status(org_id).await)
    }

    /// The newest `limit` runs of one org, newest first.
    pub async fn recent_runs_of(
        &self,
        org_id: &str,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        dispatch!(self, b => b.recent_runs_of(org_id, limit).await)
    }

    /// Takes the org's lease for `ttl` if it is free or expired, renews it if `holder` holds
    /// it; `None` while someone else holds it. Expiry is judged by the store's clock.
    pub async fn try_acquire_lease(
        &self,
        org_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        dispatch!(self, b => b.try_acquire_lease(org_id, holder, ttl).await)
    }

    /// The ranges ipguard recorded as asserted on the org's profiles. A profile without rows
    /// has no history (its `ipguard:` descriptions then count).
    pub async fn owned_ranges(&self, org_id: &str) -> Result<Vec<OwnedRange>, StoreError> {
        dispatch!(self, b => b.owned_ranges(org_id).await)
    }

    /// Records `ranges` as ipguard's own, first forgetting every range recorded for
    /// `replace_profiles` (one transaction). Before a deploy: add the desired ranges without
    /// replacing (a failed deploy leaves both old and new ranges ipguard's). After a verified
    /// deploy: replace with exactly the desired ranges. Fenced.
    pub async fn record_owned_ranges(
        &self,
        fence: &Fence,
        replace_profiles: &[String],
        ranges: &[OwnedRange],
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.record_owned_ranges(fence, replace_profiles, ranges).await)
    }

    /// The org's lease row, if one was ever taken.
    pub async fn lease(&self, org_id: &str) -> Result<Option<LeaseState>, StoreError> {
        dispatch!(self, b => b.lease(org_id).await)
    }

    /// Closes the org's runs that never got an outcome nor a deploy (their process stopped or
    /// lost its lease before deploying) as `failed` with `reason`; returns how many. Call it
    /// when a tenure begins. Fenced.
    pub async fn close_abandoned_runs(
        &self,
        fence: &Fence,
        reason: &str,
    ) -> Result<u64, StoreError> {
        dispatch!(self, b => b.close_abandoned_runs(fence, reason).await)
    }

    /// Moves the runs, pending hints and owned ranges filed under `legacy_key` to the fenced org
    /// (its status document is dropped),
    /// unless a live lease still holds `legacy_key` (an older process is still running: try
    /// again at the next tenure); returns the runs moved. Fenced.
    pub async fn adopt_legacy_key(
        &self,
        fence: &Fence,
        legacy_key: &str,
    ) -> Result<u64, StoreError> {
        dispatch!(self, b => b.adopt_legacy_key(fence, legacy_key).await)
    }

    /// Says `holder` (a serving instance) is alive for `ttl`: a lease on its own name, so the
    /// instances sharing many orgs can count each other ([`Store::live_instances`]).
    pub async fn announce(&self, holder: &str, ttl: Duration) -> Result<(), StoreError> {
        self.try_acquire_lease(&presence_key(holder), holder, ttl)
            .await
            .map(|_| ())
    }

    /// Ends `holder`'s presence now (a clean stop).
    pub async fn withdraw(&self, holder: &str) -> Result<(), StoreError> {
        self.release_lease(&presence_key(holder), holder).await
    }

    /// Instances whose presence has not expired.
    pub async fn live_instances(&self) -> Result<u64, StoreError> {
        dispatch!(self, b => b.live_instances().await)
    }

    /// Ends `holder`'s lease now (nothing if it does not hold it). The row and its fencing
    /// token stay, so the next tenure gets a higher token.
    pub async fn release_lease(&self, org_id: &str, holder: &str) -> Result<(), StoreError> {
        dispatch!(self, b => b.release_lease(org_id, holder).await)
    }

    /// Housekeeping: deletes delivery keys and consumed hints older than `keep` (raised to
    /// [`MIN_DELIVERY_RETENTION`] when shorter: past any redelivery) and expired jtis;
    /// returns the rows deleted. The controller runs it on a schedule.
    pub async fn prune(&self, keep: Duration) -> Result<u64, StoreError> {
        dispatch!(self, b => b.prune(keep.max(MIN_DELIVERY_RETENTION)).await)
    }
}
