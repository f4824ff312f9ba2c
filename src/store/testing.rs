//! Test support shared by the store's own tests and the integration tests: a PostgreSQL
//! schema of its own per test, so tests run in parallel against one server.

use sqlx::{AssertSqlSafe, Connection};

/// Where tests find PostgreSQL; without it PostgreSQL tests are skipped, loudly.
pub const PG_ENV: &str = "IPGUARD_TEST_DATABASE_URL";

/// A fresh schema; dropped (with everything in it) when this is dropped, also after a panic.
pub struct PgSchema {
    pub base: String,
    pub schema: String,
}

impl PgSchema {
    /// The base URL with `search_path` set to the schema for every connection (sqlx passes
    /// the `options` parameter to the server at connect time).
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.base, self.schema
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let base = self.base.clone();
        // A test that abandons a connection mid-transaction (an in-process instance "crashed"
        // by aborting its tasks) can leave it idle in the transaction, holding row locks the
        // DROP would wait on for ever: whatever still holds a lock in the schema is ended
        // first. (The schema name is ours: `t_` and hex digits.)
        let sql = format!(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
               JOIN pg_class c ON c.oid = l.relation \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = '{schema}' AND l.pid <> pg_backend_pid(); \
             SET lock_timeout = '30s'; \
             DROP SCHEMA IF EXISTS {schema} CASCADE",
            schema = self.schema
        );
        // Drop runs outside any async context we could await in: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&base).await?;
                sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
                conn.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test schema {}", self.schema);
        }
    }
}

impl PgSchema {
    /// A fresh schema on the server named by [`PG_ENV`], or `None` (with a loud note on
    /// stderr) when that variable is unset.
    pub async fn create() -> Option<PgSchema> {
        let Ok(base) = std::env::var(PG_ENV) else {
            eprintln!(
                "SKIPPED: PostgreSQL test not run; set {PG_ENV} \
                 (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            return None;
        };
        let schema = format!("t_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .expect("connect to IPGUARD_TEST_DATABASE_URL");
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("create test schema");
        conn.close().await.ok();
        Some(PgSchema { base, schema })
    }
}
