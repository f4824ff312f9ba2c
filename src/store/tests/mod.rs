//! Every test runs against SQLite (a tempfile database) and PostgreSQL (when
//! `IPGUARD_TEST_DATABASE_URL` is set; each test in a fresh schema dropped afterwards). One file
//! per part of the store; the database handle and the helpers they share are here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use secrecy::SecretString;
use sqlx::{AssertSqlSafe, Connection};

use super::testing::PgSchema;
use super::*;
use crate::outcome::Outcome;
use crate::trigger::Trigger;

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

/// `both_backends!(f, g)`: for each `async fn f(db: &TestDb)` of the module it is used in,
/// tests `f::sqlite` and `f::postgres`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = crate::store::tests::TestDb::sqlite().await;
                super::$name(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = crate::store::tests::TestDb::postgres().await {
                    super::$name(&db).await;
                }
            }
        }
    )*};
}

mod deliveries;
mod dialect;
mod expiry;
mod health;
mod hints;
mod leases;
mod runs;

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

fn hint(org_id: &str, trigger: Trigger) -> NewHint {
    NewHint {
        org_id: org_id.to_owned(),
        trigger,
        detail: Some(format!("{trigger} detail")),
    }
}

fn org_other(org: &str) -> String {
    format!("{org}x")
}

#[test]
fn store_is_send_sync_and_cheap_to_clone() {
    fn assert<T: Send + Sync + Clone + 'static>() {}
    assert::<Store>();
    assert::<StoreError>();
}
