//! Every test runs against SQLite (a tempfile database) and PostgreSQL (when
//! `IPGUARD_TEST_DATABASE_URL` is set; each test in a fresh schema dropped afterwards).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use secrecy::SecretString;
use sqlx::{AssertSqlSafe, Connection};

use super::testing::PgSchema;
use super::*;
use crate::outcome::Outcome;

/// A database for one test.
enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(PgSchema),
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ipguard.db");
        TestDb::Sqlite { _dir: dir, path }
    }

    async fn postgres() -> Option<TestDb> {
        PgSchema::create().await.map(TestDb::Postgres)
    }

    fn url(&self) -> DatabaseUrl {
        match self {
            TestDb::Sqlite { path, .. } => DatabaseUrl::Sqlite { path: path.clone() },
            TestDb::Postgres(schema) => DatabaseUrl::Postgres {
                url: SecretString::from(schema.url()),
            },
        }
    }

    async fn connect(&self) -> Store {
        Store::connect(&self.url()).await.expect("connect")
    }

    /// Runs `sql` on a connection of its own (behind the store's back).
    async fn exec(&self, sql: String) {
        match self {
            TestDb::Sqlite { path, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
            TestDb::Postgres(schema) => {
                let mut conn = sqlx::PgConnection::connect(&schema.url()).await.unwrap();
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match self {
            TestDb::Sqlite { path, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
            TestDb::Postgres(schema) => {
                let mut conn = sqlx::PgConnection::connect(&schema.url()).await.unwrap();
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
        }
    }

    fn is_sqlite(&self) -> bool {
        matches!(self, TestDb::Sqlite { .. })
    }
}

/// `both_backends!(f, g)`: for each `async fn f(db: &TestDb)`, tests `f::sqlite` and
/// `f::postgres`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::TestDb::sqlite().await;
                super::$name(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = super::TestDb::postgres().await {
                    super::$name(&db).await;
                }
            }
        }
    )*};
}

both_backends!(
    dedupe,
    concurrent_deliveries,
    jti,
    hints,
    run_lifecycle,
    unknown_outcome_stays_in_flight_until_resolved,
    leases,
    close_makes_everything_unavailable,
    migrations_are_idempotent,
    wait_for_hint_wakes_across_stores,
    wait_for_hint_times_out,
    prune,
    extreme_times_saturate,
    throughput,
    group_commit_isolates_a_failing_call,
    fenced_writes_refuse_a_finished_tenure,
    a_closed_deploy_is_never_in_flight_again,
    abandoned_runs_are_closed_by_the_next_tenure,
    lease_state_says_who_holds_it_and_for_how_long,
    ready_means_a_write_commits,
    legacy_history_moves_to_the_orgs_key_once_nobody_holds_it,
    owned_ranges_are_claimed_settled_and_fenced,
    processes_starting_together_on_a_fresh_store_both_migrate,
);

fn new_org() -> String {
    format!("00D{:015x}", rand::random::<u64>() >> 4)
}

fn om(key: &str) -> Delivery {
    Delivery {
        source: DeliverySource::OutboundMessage,
        key: key.to_owned(),
    }
}

fn event_n1() -> Delivery {
    Delivery {
        source: DeliverySource::PlatformEvent,
        key: "n1".to_owned(),
    }
}

/// Takes the org's lease for the test and returns the fence its runs are written under.
async fn fence_of(store: &Store, org: &str) -> Fence {
    store
        .try_acquire_lease(org, "test", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the test's lease")
        .fence()
}

fn hint(org_id: &str, trigger: &str) -> NewHint {
    NewHint {
        org_id: org_id.to_owned(),
        trigger: trigger.to_owned(),
        detail: Some(format!("{trigger} detail")),
    }
}

#[test]
fn store_is_send_sync_and_cheap_to_clone() {
    fn assert<T: Send + Sync + Clone + 'static>() {}
    assert::<Store>();
    assert::<StoreError>();
}

async fn dedupe(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let h = hint(&org, "outbound_message");

    let first = store.record_deliveries(&[om("n1")], &h).await.unwrap();
    assert_eq!((first.new, first.duplicates), (1, 0));
    assert!(first.hint_id.is_some());

    let again = store.record_deliveries(&[om("n1")], &h).await.unwrap();
    assert_eq!((again.new, again.duplicates), (0, 1));
    assert_eq!(again.hint_id, None, "only duplicates: no hint");

    // New key with duplicates, also within the same call.
    let mixed = store
        .record_deliveries(&[om("n1"), om("n2"), om("n2")], &h)
        .await
        .unwrap();
    assert_eq!((mixed.new, mixed.duplicates), (1, 2));
    assert!(mixed.hint_id.is_some());

    // The source is part of the key.
    let other = store
        .record_deliveries(&[event_n1()], &hint(&org, "platform_event"))
        .await
        .unwrap();
    assert_eq!((other.new, other.duplicates), (1, 0));

    let pending = store.pending_hints(&org).await.unwrap();
    let ids: Vec<i64> = pending.iter().map(|h| h.id).collect();
    assert_eq!(
        ids,
        vec![
            first.hint_id.unwrap(),
            mixed.hint_id.unwrap(),
            other.hint_id.unwrap()
        ]
    );
    assert_eq!(pending[0].trigger, "outbound_message");
    assert_eq!(
        pending[0].detail.as_deref(),
        Some("outbound_message detail")
    );
    assert_eq!(pending[2].trigger, "platform_event");
    assert_eq!(db.count("deliveries").await, 3);
    assert_eq!(store.stats().delivery_calls, 4);
    let asked = [om("n9"), om("n2"), event_n1(), om("n1"), om("n8")];
    assert_eq!(
        store.unrecorded_deliveries(&asked).await.unwrap(),
        [om("n9"), om("n8")],
        "the source is part of the key, the order is the caller's"
    );
    assert!(store.unrecorded_deliveries(&[]).await.unwrap().is_empty());
}

async fn concurrent_deliveries(db: &TestDb) {
    const CALLS: usize = 200;
    let store = db.connect().await;
    let org = new_org();
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLS));
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let (store, barrier, h) = (
                store.clone(),
                barrier.clone(),
                hint(&org, "outbound_message"),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                store.record_deliveries(&[om(&format!("c{i}"))], &h).await
            })
        })
        .collect();
    for task in tasks {
        let outcome = task.await.unwrap().expect("record_deliveries");
        assert_eq!((outcome.new, outcome.duplicates), (1, 0));
    }
    assert_eq!(db.count("deliveries").await, CALLS as i64);
    let hints = store.pending_hints(&org).await.unwrap().len();
    let stats = store.stats();
    // one hint per distinct hint in each group commit
    assert!(
        (1..=stats.delivery_commits as usize).contains(&hints),
        "{hints} hints for {} commits",
        stats.delivery_commits
    );
    eprintln!(
        "{}: {CALLS} concurrent record_deliveries calls committed in {} transaction(s)",
        store.backend(),
        stats.delivery_commits
    );
    assert_eq!(stats.delivery_calls, CALLS as u64);
    assert!(
        stats.delivery_commits < CALLS as u64,
        "group commit should batch: {} commits for {CALLS} calls",
        stats.delivery_commits
    );
}

/// A call whose statement fails inside a group commit fails alone; the batch is written again
/// call by call. Duplicates within one batch count as new exactly once.
async fn group_commit_isolates_a_failing_call(db: &TestDb) {
    const CALLS: usize = 60;
    let store = db.connect().await;
    db.exec(if db.is_sqlite() {
        "CREATE TRIGGER poison BEFORE INSERT ON deliveries WHEN NEW.key = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            .to_owned()
    } else {
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF NEW.key = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER poison BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION poison()"
            .to_owned()
    })
    .await;
    let org = new_org();
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLS));
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let key = match i {
                0 => "poison".to_owned(),
                1 | 2 => "twice".to_owned(),
                _ => format!("k{i}"),
            };
            let (store, barrier, h) = (
                store.clone(),
                barrier.clone(),
                hint(&org, "outbound_message"),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                store.record_deliveries(&[om(&key)], &h).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert!(results[0].is_err(), "the poisoned call fails");
    let twice: Vec<_> = results[1..3]
        .iter()
        .map(|r| r.as_ref().expect("recorded").new)
        .collect();
    assert_eq!(
        twice.iter().sum::<usize>(),
        1,
        "one of the two is new: {twice:?}"
    );
    for r in &results[3..] {
        let outcome = r.as_ref().expect("recorded");
        assert_eq!((outcome.new, outcome.duplicates), (1, 0));
        assert!(outcome.hint_id.is_some());
    }
    assert_eq!(db.count("deliveries").await, (CALLS - 2) as i64);
}

async fn jti(db: &TestDb) {
    let store = db.connect().await;
    let exp = Utc::now() + chrono::Duration::minutes(5);
    assert!(store.consume_jti("jti-1", exp).await.unwrap(), "fresh");
    assert!(!store.consume_jti("jti-1", exp).await.unwrap(), "replayed");
    assert!(store.consume_jti("jti-2", exp).await.unwrap(), "another");
    // Expired past the leeway: no longer remembered as live, so it counts as fresh.
    let long_ago = Utc::now() - chrono::Duration::hours(1);
    assert!(store.consume_jti("jti-old", long_ago).await.unwrap());
    assert!(store.consume_jti("jti-old", long_ago).await.unwrap());
    // Within the leeway after exp: still refused.
    let just_expired = Utc::now() - chrono::Duration::seconds(5);
    assert!(store.consume_jti("jti-3", just_expired).await.unwrap());
    assert!(!store.consume_jti("jti-3", just_expired).await.unwrap());
}

async fn hints(db: &TestDb) {
    let store = db.connect().await;
    let (a, b) = (new_org(), new_org());
    let h1 = store.enqueue_hint(&hint(&a, "admin")).await.unwrap();
    let h2 = store.enqueue_hint(&hint(&a, "resync")).await.unwrap();
    let hb = store.enqueue_hint(&hint(&b, "startup")).await.unwrap();
    assert!(h1 < h2);

    let pending = store.pending_hints(&a).await.unwrap();
    assert_eq!(pending.iter().map(|h| h.id).collect::<Vec<_>>(), [h1, h2]);
    assert_eq!(pending[0].org_id, a);
    assert_eq!(pending[0].trigger, "admin");
    assert!(pending[0].created_at <= pending[1].created_at);
    assert!((Utc::now() - pending[0].created_at).num_seconds().abs() < 60);

    // start_run consumes the hints it names, in its transaction.
    let run = store
        .start_run(
            &fence_of(&store, &a).await,
            "admin",
            &[h1],
            &["Admin".to_owned()],
        )
        .await
        .unwrap();
    let pending = store.pending_hints(&a).await.unwrap();
    assert_eq!(pending.iter().map(|h| h.id).collect::<Vec<_>>(), [h2]);

    store.consume_hints(&[h2], run).await.unwrap();
    assert!(store.pending_hints(&a).await.unwrap().is_empty());
    // Idempotent, and an empty list is fine.
    store.consume_hints(&[h1, h2], run).await.unwrap();
    store.consume_hints(&[], run).await.unwrap();

    let pending_b = store.pending_hints(&b).await.unwrap();
    assert_eq!(pending_b.iter().map(|h| h.id).collect::<Vec<_>>(), [hb]);
}

async fn run_lifecycle(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let fence = fence_of(&store, &org).await;
    let profiles = vec!["Admin".to_owned(), "Custom%3A Integration".to_owned()];
    assert_eq!(store.in_flight_deploy(&org).await.unwrap(), None);

    let run = store
        .start_run(&fence, "outbound_message", &[], &profiles)
        .await
        .unwrap();
    assert_eq!(
        store.in_flight_deploy(&org).await.unwrap(),
        None,
        "no deploy yet"
    );

    store
        .record_deploy(&fence, run, "0Af000000000001", false)
        .await
        .unwrap();
    let in_flight = store
        .in_flight_deploy(&org)
        .await
        .unwrap()
        .expect("in flight");
    assert_eq!(in_flight.run_id, run);
    assert_eq!(in_flight.deploy_id, "0Af000000000001");
    assert!(!in_flight.check_only);
    assert!((Utc::now() - in_flight.submitted_at).num_seconds().abs() < 60);
    assert_eq!(
        store.in_flight_deploy(&new_org()).await.unwrap(),
        None,
        "other org"
    );

    let plan = serde_json::json!({"profiles": [{"name": "Admin", "add": ["1.2.3.4"]}]});
    store
        .finish_run(&fence, run, Outcome::Remediated, Some(&plan), &[], None)
        .await
        .unwrap();
    assert_eq!(store.in_flight_deploy(&org).await.unwrap(), None);

    // A final outcome is final.
    assert!(matches!(
        store
            .finish_run(&fence, run, Outcome::Failed, None, &[], None)
            .await,
        Err(StoreError::Data(_))
    ));
    assert!(matches!(
        store
            .record_deploy(&fence, run, "0Af000000000009", false)
            .await,
        Err(StoreError::Data(_))
    ));
    assert!(matches!(
        store
            .record_deploy(&fence, 999_999, "0Af000000000009", false)
            .await,
        Err(StoreError::Data(_))
    ));

    let failed = store
        .start_run(&fence, "admin", &[], &profiles[..1])
        .await
        .unwrap();
    store
        .record_deploy(&fence, failed, "0Af000000000002", true)
        .await
        .unwrap();
    assert!(
        store
            .in_flight_deploy(&org)
            .await
            .unwrap()
            .unwrap()
            .check_only
    );
    let failures = vec!["Admin: bad range".to_owned(), "Other: also bad".to_owned()];
    store
        .finish_run(
            &fence,
            failed,
            Outcome::Failed,
            Some(&plan),
            &failures,
            Some("deploy failed"),
        )
        .await
        .unwrap();
    let no_deploy = store
        .start_run(&fence, "resync", &[], &profiles)
        .await
        .unwrap();
    store
        .finish_run(&fence, no_deploy, Outcome::InSync, None, &[], None)
        .await
        .unwrap();

    let runs = store.recent_runs(10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [no_deploy, failed, run]
    );
    let [newest, second, oldest] = &runs[..] else {
        unreachable!()
    };
    assert_eq!(newest.outcome.as_deref(), Some("in_sync"));
    assert_eq!(newest.deploy_id, None);
    assert_eq!(newest.plan, None);
    assert!(newest.failures.is_empty());
    assert_eq!(second.org_id, org);
    assert_eq!(second.trigger, "admin");
    assert_eq!(second.outcome.as_deref(), Some("failed"));
    assert_eq!(second.profiles, ["Admin"]);
    assert_eq!(second.deploy_id.as_deref(), Some("0Af000000000002"));
    assert_eq!(second.failures, failures);
    assert_eq!(second.error.as_deref(), Some("deploy failed"));
    assert_eq!(second.plan.as_ref(), Some(&plan));
    assert_eq!(oldest.profiles, profiles);
    assert_eq!(oldest.outcome.as_deref(), Some("remediated"));
    assert!(oldest.finished_at.unwrap() >= oldest.started_at);
    assert_eq!(store.recent_runs(1).await.unwrap()[0].id, no_deploy);

    // An unfinished run is listed with no outcome.
    let open = store
        .start_run(&fence, "startup", &[], &profiles)
        .await
        .unwrap();
    let top = &store.recent_runs(1).await.unwrap()[0];
    assert_eq!(
        (top.id, top.outcome.clone(), top.finished_at),
        (open, None, None)
    );
}

async fn unknown_outcome_stays_in_flight_until_resolved(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let fence = fence_of(&store, &org).await;
    let profiles = vec!["Admin".to_owned()];

    // Poll window closed: `unknown`, still in flight; resumed and finished on the same run.
    let run = store
        .start_run(&fence, "admin", &[], &profiles)
        .await
        .unwrap();
    store
        .record_deploy(&fence, run, "0Af00000000000A", false)
        .await
        .unwrap();
    let plan = serde_json::json!({"drift": true});
    store
        .finish_run(
            &fence,
            run,
            Outcome::Unknown,
            Some(&plan),
            &[],
            Some("deploy still running"),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .in_flight_deploy(&org)
            .await
            .unwrap()
            .map(|d| d.run_id),
        Some(run)
    );
    store
        .finish_run(&fence, run, Outcome::Remediated, None, &[], None)
        .await
        .unwrap();
    assert_eq!(store.in_flight_deploy(&org).await.unwrap(), None);
    let record = &store.recent_runs(1).await.unwrap()[0];
    assert_eq!(record.outcome.as_deref(), Some("remediated"));
    assert_eq!(
        record.plan.as_ref(),
        Some(&plan),
        "plan None keeps the plan"
    );

    // Or a later run adopts the deploy and records its final outcome.
    let stale = store
        .start_run(&fence, "admin", &[], &profiles)
        .await
        .unwrap();
    store
        .record_deploy(&fence, stale, "0Af00000000000B", false)
        .await
        .unwrap();
    store
        .finish_run(&fence, stale, Outcome::Unknown, None, &[], None)
        .await
        .unwrap();
    let adopter = store
        .start_run(&fence, "startup", &[], &profiles)
        .await
        .unwrap();
    store
        .record_deploy(&fence, adopter, "0Af00000000000B", false)
        .await
        .unwrap();
    assert_eq!(
        store
            .in_flight_deploy(&org)
            .await
            .unwrap()
            .map(|d| d.run_id),
        Some(adopter)
    );
    store
        .finish_run(
            &fence,
            adopter,
            Outcome::Failed,
            None,
            &["Admin: nope".to_owned()],
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.in_flight_deploy(&org).await.unwrap(), None);
}

async fn leases(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let long = Duration::from_secs(30);

    let a = store
        .try_acquire_lease(&org, "a", long)
        .await
        .unwrap()
        .expect("free lease");
    assert_eq!((a.org_id.as_str(), a.holder.as_str()), (org.as_str(), "a"));
    let remaining = a.expires_at - Utc::now();
    assert!(
        remaining > chrono::Duration::seconds(20) && remaining <= chrono::Duration::seconds(40)
    );

    assert_eq!(
        store.try_acquire_lease(&org, "b", long).await.unwrap(),
        None
    );
    store.release_lease(&org, "b").await.unwrap(); // not b's: no effect
    assert_eq!(
        store.try_acquire_lease(&org, "b", long).await.unwrap(),
        None
    );

    let renewed = store
        .try_acquire_lease(&org, "a", long)
        .await
        .unwrap()
        .expect("renew");
    assert_eq!(
        renewed.fencing_token, a.fencing_token,
        "renewal keeps the token"
    );
    assert!(renewed.expires_at >= a.expires_at);

    // Another org's lease is independent.
    assert!(
        store
            .try_acquire_lease(&org_other(&org), "b", long)
            .await
            .unwrap()
            .is_some()
    );

    // Let a's lease expire; b takes over with a higher token, a is refused.
    store
        .try_acquire_lease(&org, "a", Duration::from_millis(200))
        .await
        .unwrap()
        .expect("shorten");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = store
        .try_acquire_lease(&org, "b", long)
        .await
        .unwrap()
        .expect("takeover after expiry");
    assert!(b.fencing_token > a.fencing_token);
    assert_eq!(
        store.try_acquire_lease(&org, "a", long).await.unwrap(),
        None
    );

    // Release frees it at once; the next tenure's token is higher again.
    store.release_lease(&org, "b").await.unwrap();
    let a2 = store
        .try_acquire_lease(&org, "a", long)
        .await
        .unwrap()
        .expect("free after release");
    assert!(a2.fencing_token > b.fencing_token);

    // Concurrent contenders: exactly one wins.
    let contested = org_other(&org_other(&org));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, contested) = (store.clone(), contested.clone());
            tokio::spawn(async move {
                store
                    .try_acquire_lease(&contested, &format!("h{i}"), long)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(winners, 1);
}

async fn fenced_writes_refuse_a_finished_tenure(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let short = Duration::from_millis(200);
    let a = store
        .try_acquire_lease(&org, "a", short)
        .await
        .unwrap()
        .expect("free lease")
        .fence();
    let run = store.start_run(&a, "admin", &[], &[]).await.unwrap();

    // a's lease lapses and b takes over: everything a writes from now on is refused.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = store
        .try_acquire_lease(&org, "b", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("takeover")
        .fence();
    let stale = |r: Result<_, StoreError>| {
        assert!(
            matches!(&r, Err(StoreError::Fenced { token, current, .. }) if *token == a.token && *current == b.token),
            "expected Fenced, got {r:?}"
        );
    };
    stale(store.record_deploy(&a, run, "0Af000000000001", false).await);
    stale(
        store
            .finish_run(&a, run, Outcome::Remediated, None, &[], None)
            .await,
    );
    stale(store.close_deploy(&a, run, "gone").await);
    stale(store.start_run(&a, "admin", &[], &[]).await.map(|_| ()));
    stale(store.close_abandoned_runs(&a, "x").await.map(|_| ()));
    let record = store.run(run).await.unwrap().unwrap();
    assert_eq!((record.deploy_id, record.outcome), (None, None));

    // a fence of another org is no fence here, even with a matching token
    let other = Fence {
        org_id: org_other(&org),
        token: b.token,
    };
    assert!(matches!(
        store
            .finish_run(&other, run, Outcome::Failed, None, &[], None)
            .await,
        Err(StoreError::Fenced { .. })
    ));

    // the current tenure writes
    store
        .record_deploy(&b, run, "0Af000000000001", false)
        .await
        .unwrap();
    store
        .finish_run(&b, run, Outcome::Remediated, None, &[], None)
        .await
        .unwrap();
}

async fn a_closed_deploy_is_never_in_flight_again(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let fence = fence_of(&store, &org).await;
    let run = store.start_run(&fence, "admin", &[], &[]).await.unwrap();
    store
        .record_deploy(&fence, run, "0Af00000000000C", false)
        .await
        .unwrap();
    store
        .finish_run(
            &fence,
            run,
            Outcome::Unknown,
            None,
            &[],
            Some("still running"),
        )
        .await
        .unwrap();
    assert!(store.in_flight_deploy(&org).await.unwrap().is_some());

    store
        .close_deploy(
            &fence,
            run,
            "Salesforce no longer knows deploy 0Af00000000000C",
        )
        .await
        .unwrap();
    assert_eq!(store.in_flight_deploy(&org).await.unwrap(), None);
    let record = store.run(run).await.unwrap().unwrap();
    assert_eq!(record.outcome.as_deref(), Some("unknown"));
    assert_eq!(
        record.error.as_deref(),
        Some("Salesforce no longer knows deploy 0Af00000000000C")
    );
    // closed is final: no later outcome replaces it, and it is not closed twice
    assert!(matches!(
        store
            .finish_run(&fence, run, Outcome::Remediated, None, &[], None)
            .await,
        Err(StoreError::Data(_))
    ));
    assert!(matches!(
        store.close_deploy(&fence, run, "again").await,
        Err(StoreError::Data(_))
    ));
    // a deploy with no outcome at all can be closed directly
    let open = store.start_run(&fence, "admin", &[], &[]).await.unwrap();
    store
        .record_deploy(&fence, open, "0Af00000000000D", false)
        .await
        .unwrap();
    store.close_deploy(&fence, open, "too old").await.unwrap();
    assert_eq!(store.in_flight_deploy(&org).await.unwrap(), None);
}

async fn abandoned_runs_are_closed_by_the_next_tenure(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let fence = fence_of(&store, &org).await;
    let abandoned = store.start_run(&fence, "admin", &[], &[]).await.unwrap();
    let deploying = store.start_run(&fence, "admin", &[], &[]).await.unwrap();
    store
        .record_deploy(&fence, deploying, "0Af00000000000E", false)
        .await
        .unwrap();
    let finished = store.start_run(&fence, "admin", &[], &[]).await.unwrap();
    store
        .finish_run(&fence, finished, Outcome::InSync, None, &[], None)
        .await
        .unwrap();
    let other_org = fence_of(&store, &org_other(&org)).await;
    let elsewhere = store
        .start_run(&other_org, "admin", &[], &[])
        .await
        .unwrap();

    assert_eq!(
        store
            .close_abandoned_runs(&fence, "abandoned")
            .await
            .unwrap(),
        1
    );
    let outcome = |id| {
        let store = store.clone();
        async move { store.run(id).await.unwrap().unwrap().outcome }
    };
    assert_eq!(outcome(abandoned).await.as_deref(), Some("failed"));
    assert_eq!(
        store
            .run(abandoned)
            .await
            .unwrap()
            .unwrap()
            .error
            .as_deref(),
        Some("abandoned")
    );
    assert_eq!(
        outcome(deploying).await,
        None,
        "in flight: resumed, not closed"
    );
    assert_eq!(outcome(finished).await.as_deref(), Some("in_sync"));
    assert_eq!(outcome(elsewhere).await, None, "another org's run");
}

async fn lease_state_says_who_holds_it_and_for_how_long(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    assert_eq!(store.lease(&org).await.unwrap(), None);
    let held = store
        .try_acquire_lease(&org, "serve@web.1-x", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let state = store.lease(&org).await.unwrap().expect("a lease row");
    assert_eq!(state.lease, held);
    assert!(
        state.expires_in > Duration::from_secs(20) && state.expires_in <= Duration::from_secs(30),
        "{state:?}"
    );
    store.release_lease(&org, "serve@web.1-x").await.unwrap();
    let state = store.lease(&org).await.unwrap().expect("the row stays");
    assert_eq!(state.expires_in, Duration::ZERO);
}

async fn ready_means_a_write_commits(db: &TestDb) {
    let store = db.connect().await;
    store.ready().await.unwrap();
    store.ready().await.unwrap();
    assert_eq!(db.count("store_probe").await, 1, "one row, rewritten");
    store.close().await;
    assert!(matches!(
        store.ready().await,
        Err(StoreError::Unavailable(_))
    ));
}

fn org_other(org: &str) -> String {
    format!("{org}x")
}

async fn close_makes_everything_unavailable(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let fence = Fence {
        org_id: org.clone(),
        token: 1,
    };
    store.ping().await.unwrap();
    let clone = store.clone();
    store.close().await;

    fn unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
        assert!(
            matches!(r, Err(StoreError::Unavailable(_))),
            "{what}: expected Unavailable, got {r:?}"
        );
    }
    unavailable("ping", clone.ping().await);
    unavailable(
        "record_deliveries",
        clone
            .record_deliveries(&[om("x")], &hint(&org, "outbound_message"))
            .await,
    );
    unavailable("consume_jti", clone.consume_jti("j", Utc::now()).await);
    unavailable(
        "enqueue_hint",
        clone.enqueue_hint(&hint(&org, "admin")).await,
    );
    unavailable("pending_hints", clone.pending_hints(&org).await);
    unavailable("consume_hints", clone.consume_hints(&[1], 1).await);
    unavailable(
        "start_run",
        clone.start_run(&fence, "admin", &[], &[]).await,
    );
    unavailable(
        "record_deploy",
        clone.record_deploy(&fence, 1, "d", false).await,
    );
    unavailable(
        "finish_run",
        clone
            .finish_run(&fence, 1, Outcome::Failed, None, &[], None)
            .await,
    );
    unavailable("in_flight_deploy", clone.in_flight_deploy(&org).await);
    unavailable("recent_runs", clone.recent_runs(5).await);
    unavailable(
        "try_acquire_lease",
        clone
            .try_acquire_lease(&org, "a", Duration::from_secs(1))
            .await,
    );
    unavailable("release_lease", clone.release_lease(&org, "a").await);
    unavailable("prune", clone.prune(MIN_DELIVERY_RETENTION).await);
    let started = Instant::now();
    clone.wait_for_hint(&org, Duration::from_millis(50)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

async fn migrations_are_idempotent(db: &TestDb) {
    let org = new_org();
    let first = db.connect().await;
    first
        .record_deliveries(&[om("m1")], &hint(&org, "outbound_message"))
        .await
        .unwrap();
    first.close().await;
    drop(first);
    // Same database again: migrations find themselves applied, data is still there.
    let second = db.connect().await;
    let third = db.connect().await;
    let again = second
        .record_deliveries(&[om("m1")], &hint(&org, "outbound_message"))
        .await
        .unwrap();
    assert_eq!(again.duplicates, 1);
    assert_eq!(third.pending_hints(&org).await.unwrap().len(), 1);
    assert_eq!(db.count("_sqlx_migrations").await, 3);
}

async fn wait_for_hint_wakes_across_stores(db: &TestDb) {
    let waiter = db.connect().await;
    let writer = db.connect().await;
    for via_deliveries in [false, true] {
        let org = new_org();
        let (w, o) = (writer.clone(), org.clone());
        let send = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if via_deliveries {
                w.record_deliveries(&[om(&o)], &hint(&o, "outbound_message"))
                    .await
                    .map(|_| ())
            } else {
                w.enqueue_hint(&hint(&o, "admin")).await.map(|_| ())
            }
        });
        let started = Instant::now();
        waiter.wait_for_hint(&org, Duration::from_secs(20)).await;
        let waited = started.elapsed();
        send.await.unwrap().unwrap();
        eprintln!(
            "{}: wait_for_hint woke after {waited:?} (hint sent at ~300 ms)",
            waiter.backend()
        );
        assert!(
            waited >= Duration::from_millis(250),
            "woke before the hint: {waited:?}"
        );
        assert!(waited < Duration::from_secs(5), "woke late: {waited:?}");
        assert_eq!(waiter.pending_hints(&org).await.unwrap().len(), 1);
    }

    // A hint recorded before the wait starts is not missed.
    let org = new_org();
    writer.enqueue_hint(&hint(&org, "admin")).await.unwrap();
    // (PostgreSQL: the NOTIFY travels through the server; give it a moment.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    waiter.wait_for_hint(&org, Duration::from_secs(20)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
}

async fn wait_for_hint_times_out(db: &TestDb) {
    let store = db.connect().await;
    let quiet = new_org();
    // Hints for other orgs do not wake it.
    store
        .enqueue_hint(&hint(&new_org(), "admin"))
        .await
        .unwrap();
    let started = Instant::now();
    store
        .wait_for_hint(&quiet, Duration::from_millis(400))
        .await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

async fn prune(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let h = hint(&org, "outbound_message");
    store
        .record_deliveries(&[om("ancient"), om("two-hours"), om("fresh")], &h)
        .await
        .unwrap();
    let two_hours_ago = Utc::now() - chrono::Duration::hours(2);
    db.exec(
        "UPDATE deliveries SET received_at = '2000-01-01T00:00:00.000000Z' WHERE key = 'ancient'"
            .to_owned(),
    )
    .await;
    db.exec(format!(
        "UPDATE deliveries SET received_at = '{}' WHERE key = 'two-hours'",
        sqlite::ts(two_hours_ago)
    ))
    .await;
    store
        .consume_jti("expired", Utc::now() - chrono::Duration::minutes(10))
        .await
        .unwrap();
    let live_exp = Utc::now() + chrono::Duration::minutes(5);
    store.consume_jti("live", live_exp).await.unwrap();

    // keep = 1 h is raised to 24 h: only the ancient key and the expired jti go.
    assert_eq!(store.prune(Duration::from_secs(3600)).await.unwrap(), 2);
    assert_eq!(db.count("deliveries").await, 2);
    assert_eq!(db.count("jtis").await, 1);
    assert_eq!(store.prune(Duration::from_secs(3600)).await.unwrap(), 0);

    let after = store
        .record_deliveries(&[om("ancient"), om("two-hours"), om("fresh")], &h)
        .await
        .unwrap();
    assert_eq!((after.new, after.duplicates), (1, 2));
    assert!(!store.consume_jti("live", live_exp).await.unwrap());
}

async fn extreme_times_saturate(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let forever = store
        .try_acquire_lease(&org, "a", Duration::MAX)
        .await
        .unwrap()
        .expect("free");
    assert!(forever.expires_at > Utc::now() + chrono::Duration::days(365 * 50));
    assert_eq!(
        store
            .try_acquire_lease(&org, "b", Duration::ZERO)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .consume_jti("far", chrono::DateTime::<Utc>::MAX_UTC)
            .await
            .unwrap()
    );
    assert!(
        !store
            .consume_jti("far", chrono::DateTime::<Utc>::MAX_UTC)
            .await
            .unwrap()
    );
    assert!(
        store
            .consume_jti("early", chrono::DateTime::<Utc>::MIN_UTC)
            .await
            .unwrap()
    );
    store
        .record_deliveries(&[om("kept")], &hint(&org, "outbound_message"))
        .await
        .unwrap();
    // Only the jti that expired at the dawn of time goes.
    assert_eq!(store.prune(Duration::MAX).await.unwrap(), 1);
    assert!(!store.consume_jti("far", Utc::now()).await.unwrap());
}

#[test]
fn sqlite_timestamps_keep_one_width() {
    let t = chrono::DateTime::parse_from_rfc3339("2026-05-06T07:08:09.5Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(sqlite::ts(t), "2026-05-06T07:08:09.500000Z");
    assert_eq!(
        sqlite::ts(chrono::DateTime::<Utc>::MAX_UTC),
        "9999-12-31T23:59:59.999999Z"
    );
    assert_eq!(
        sqlite::ts(chrono::DateTime::<Utc>::MIN_UTC),
        "0001-01-01T00:00:00.000000Z"
    );
}

/// Heroku Postgres needs TLS: `sslmode=require` must connect over TLS (the local server has a
/// self-signed certificate, which `require` does not verify, like Heroku's).
#[tokio::test]
async fn postgres_sslmode_require_uses_tls() {
    let Some(TestDb::Postgres(schema)) = TestDb::postgres().await else {
        return;
    };
    let url = format!("{}&sslmode=require", schema.url());
    let store = Store::connect(&DatabaseUrl::Postgres {
        url: SecretString::from(url.clone()),
    })
    .await
    .expect("connect with sslmode=require");
    store.ping().await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(ssl, "sslmode=require connected without TLS");
    conn.close().await.ok();
    store.close().await;
}

/// The server ends the LISTEN session (failover, restart, idle reaper): the store listens again
/// and hints from other instances still wake its waiters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listener_survives_a_killed_connection() {
    let Some(TestDb::Postgres(schema)) = TestDb::postgres().await else {
        return;
    };
    let app = format!("ipguard_{}", schema.schema);
    let waiter = Store::connect(&DatabaseUrl::Postgres {
        url: SecretString::from(format!("{}&application_name={app}", schema.url())),
    })
    .await
    .unwrap();
    let writer = Store::connect(&DatabaseUrl::Postgres {
        url: SecretString::from(schema.url()),
    })
    .await
    .unwrap();
    let mut admin = sqlx::PgConnection::connect(&schema.base).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&app)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "no backend of the waiter found");
    admin.close().await.ok();

    // Give the listener time to notice and come back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let org = new_org();
    let (w, o) = (writer.clone(), org.clone());
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.enqueue_hint(&hint(&o, "admin")).await
    });
    let started = Instant::now();
    waiter.wait_for_hint(&org, Duration::from_secs(20)).await;
    let waited = started.elapsed();
    send.await.unwrap().unwrap();
    assert!(
        waited >= Duration::from_millis(250),
        "woke before the hint: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "no wake-up after reconnect: {waited:?}"
    );
    // The pool's killed connections are replaced too.
    waiter.ping().await.unwrap();
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    // Nothing listens on port 1.
    let url = DatabaseUrl::Postgres {
        url: SecretString::from("postgres://u:secret-password@127.0.0.1:1/db".to_owned()),
    };
    let error = Store::connect(&url)
        .await
        .expect_err("nothing listens there");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(!error.to_string().contains("secret-password"), "{error}");
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite {
        path: dir.path().join("no/such/dir/ipguard.db"),
    };
    let error = Store::connect(&url).await.expect_err("no directory");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("no/such/dir"), "{error}");
}

/// A small tmpfs of our own, unmounted when dropped: a disk that can be filled and freed.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (after saying SKIPPED loudly) where mounting is not allowed, unless under CI,
    /// which runs as root and must run the disk-full tests.
    fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        if mounted {
            return Some(SmallDisk { dir });
        }
        let why = "the disk-full test mounts a small tmpfs, which needs root";
        assert!(std::env::var_os("CI").is_none(), "{why}: CI must run it");
        let banner = format!("\n==========\nSKIPPED: {why}\n==========\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), banner.as_bytes());
        None
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a filler file until the disk refuses another byte.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
        while file.write_all(&[0]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Issue 10, item 9: a full disk fails writes (and `/readyz`); once space is free again the
/// very next writes succeed, without a restart. Before, a COMMIT that SQLite rolled back by
/// itself left the single writer connection refusing every BEGIN until the process ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_recovers_from_a_full_disk_without_a_restart() {
    let Some(disk) = SmallDisk::mount(2 * 1024 * 1024) else {
        return;
    };
    let url = DatabaseUrl::Sqlite {
        path: disk.path().join("ipguard.db"),
    };
    let store = Store::connect(&url).await.unwrap();
    let org = new_org();
    let burst = |round: usize| {
        let store = store.clone();
        let org = org.clone();
        async move {
            let calls: Vec<_> = (0..32)
                .map(|i| {
                    let store = store.clone();
                    let org = org.clone();
                    tokio::spawn(async move {
                        store
                            .record_deliveries(
                                &[om(&format!("{round}-{i}-{}", "k".repeat(200)))],
                                &hint(&org, "outbound_message"),
                            )
                            .await
                    })
                })
                .collect();
            let mut results = Vec::new();
            for call in calls {
                results.push(call.await.unwrap());
            }
            results
        }
    };
    assert!(burst(0).await.iter().all(Result::is_ok));
    store.ready().await.unwrap();

    let fence = fence_of(&store, &org).await;
    let filler = disk.fill();
    let refused = burst(1).await;
    assert!(
        refused.iter().any(Result::is_err),
        "a full disk must refuse some writes: {refused:?}"
    );
    assert!(store.ready().await.is_err(), "not ready while full");
    // a lease whose write was not committed is never reported as taken
    assert!(
        store
            .try_acquire_lease(&new_org(), "a", Duration::from_secs(30))
            .await
            .is_err()
    );
    assert!(store.start_run(&fence, "admin", &[], &[]).await.is_err());

    std::fs::remove_file(filler).unwrap();
    let recovered = burst(2).await;
    assert!(
        recovered.iter().all(Result::is_ok),
        "writes work again once space is free: {:?}",
        recovered.iter().find(|r| r.is_err())
    );
    store.ready().await.expect("ready again");
    let run = store.start_run(&fence, "admin", &[], &[]).await.unwrap();
    store
        .finish_run(&fence, run, Outcome::InSync, None, &[], None)
        .await
        .unwrap();
    store.close().await;
}

/// `cargo test --lib store::tests::throughput -- --nocapture`
async fn throughput(db: &TestDb) {
    const TASKS: usize = 64;
    const CALLS: usize = 100;
    let store = db.connect().await;
    let org = new_org();
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, h) = (store.clone(), hint(&org, "outbound_message"));
            tokio::spawn(async move {
                for c in 0..CALLS {
                    store
                        .record_deliveries(&[om(&format!("t{t}-c{c}"))], &h)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let stats = store.stats();
    let calls = (TASKS * CALLS) as f64;
    eprintln!(
        "THROUGHPUT {}: {TASKS} tasks x {CALLS} record_deliveries calls = {} calls in {:.2?}: \
         {:.0} calls/s, {} commits ({:.1} calls per commit)",
        store.backend(),
        TASKS * CALLS,
        elapsed,
        calls / elapsed.as_secs_f64(),
        stats.delivery_commits,
        calls / stats.delivery_commits as f64,
    );
    assert_eq!(db.count("deliveries").await, (TASKS * CALLS) as i64);
}

async fn legacy_history_moves_to_the_orgs_key_once_nobody_holds_it(db: &TestDb) {
    let store = db.connect().await;
    let legacy = format!("{}-legacy", new_org());
    let org = format!("user:login.salesforce.com/{}", new_org());
    let old = store
        .try_acquire_lease(&legacy, "old", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap()
        .fence();
    let old_run = store.start_run(&old, "resync", &[], &[]).await.unwrap();
    store
        .finish_run(&old, old_run, Outcome::Remediated, None, &[], None)
        .await
        .unwrap();
    store.enqueue_hint(&hint(&legacy, "admin")).await.unwrap();
    let ours = crate::store::OwnedRange {
        profile: "Admin".to_owned(),
        start: "203.0.113.7".to_owned(),
        end: "203.0.113.7".to_owned(),
    };
    store
        .record_owned_ranges(&old, &["Admin".to_owned()], std::slice::from_ref(&ours))
        .await
        .unwrap();
    store
        .put_status(&legacy, &serde_json::json!({"old": true}))
        .await
        .unwrap();
    let fence = fence_of(&store, &org).await;

    // An older process still holds the legacy key: its history stays where it writes it.
    assert_eq!(store.adopt_legacy_key(&fence, &legacy).await.unwrap(), 0);
    assert_eq!(store.recent_runs_of(&org, 10).await.unwrap().len(), 0);

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.adopt_legacy_key(&fence, &legacy).await.unwrap(), 1);
    let runs = store.recent_runs_of(&org, 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome.as_deref(), Some("remediated"));
    assert_eq!(store.pending_hints(&org).await.unwrap().len(), 1);
    assert!(store.recent_runs_of(&legacy, 10).await.unwrap().is_empty());
    assert_eq!(store.owned_ranges(&org).await.unwrap(), vec![ours]);
    assert!(store.owned_ranges(&legacy).await.unwrap().is_empty());
    assert_eq!(store.status(&legacy).await.unwrap(), None);

    // Fenced like every tenure write.
    let stale = Fence {
        org_id: org.clone(),
        token: fence.token + 1,
    };
    assert!(matches!(
        store.adopt_legacy_key(&stale, &legacy).await,
        Err(StoreError::Fenced { .. })
    ));
}

async fn owned_ranges_are_claimed_settled_and_fenced(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let fence = fence_of(&store, &org).await;
    let owned = |profile: &str, start: &str| crate::store::OwnedRange {
        profile: profile.to_owned(),
        start: start.to_owned(),
        end: start.to_owned(),
    };
    assert!(
        store.owned_ranges(&org).await.unwrap().is_empty(),
        "no history"
    );
    // before a deploy: claimed beside what was owned
    store
        .record_owned_ranges(&fence, &[], &[owned("Admin", "52.0.0.1")])
        .await
        .unwrap();
    store
        .record_owned_ranges(
            &fence,
            &[],
            &[owned("Admin", "54.0.0.9"), owned("Admin", "52.0.0.1")],
        )
        .await
        .unwrap();
    assert_eq!(
        store.owned_ranges(&org).await.unwrap(),
        [owned("Admin", "52.0.0.1"), owned("Admin", "54.0.0.9")]
    );
    // after a verified deploy: exactly the new ones, other profiles untouched
    store
        .record_owned_ranges(&fence, &[], &[owned("Standard", "52.0.0.1")])
        .await
        .unwrap();
    store
        .record_owned_ranges(&fence, &["Admin".to_owned()], &[owned("Admin", "54.0.0.9")])
        .await
        .unwrap();
    assert_eq!(
        store.owned_ranges(&org).await.unwrap(),
        [owned("Admin", "54.0.0.9"), owned("Standard", "52.0.0.1")]
    );
    // another org sees none of it
    assert!(store.owned_ranges(&new_org()).await.unwrap().is_empty());
    // a tenure that is over writes nothing
    store.release_lease(&org, "test").await.unwrap();
    let next = store
        .try_acquire_lease(&org, "other", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap()
        .fence();
    assert!(matches!(
        store
            .record_owned_ranges(&fence, &["Admin".to_owned()], &[])
            .await,
        Err(StoreError::Fenced { .. })
    ));
    assert_eq!(store.owned_ranges(&org).await.unwrap().len(), 2);
    store
        .record_owned_ranges(&next, &["Admin".to_owned()], &[])
        .await
        .unwrap();
    assert_eq!(store.owned_ranges(&org).await.unwrap().len(), 1);
}

/// `serve` and a one-off `apply` (or two dynos) starting at the same moment on a fresh store:
/// both must open it. SQLite has no migration lock, and the loser of the race used to fail
/// with "table … already exists".
async fn processes_starting_together_on_a_fresh_store_both_migrate(db: &TestDb) {
    for round in 0..12 {
        let url = match db {
            TestDb::Sqlite { path, .. } => DatabaseUrl::Sqlite {
                path: path.with_file_name(format!("fresh-{round}.db")),
            },
            TestDb::Postgres(_) if round > 0 => return,
            TestDb::Postgres(_) => db.url(),
        };
        let (a, b, c, d) = tokio::join!(
            Store::connect(&url),
            Store::connect(&url),
            Store::connect(&url),
            Store::connect(&url)
        );
        for store in [a, b, c, d] {
            store.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}
