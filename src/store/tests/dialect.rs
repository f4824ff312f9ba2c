//! The ground both dialects share (`dialect.rs`): one SQL text with `$N` parameters, and the
//! clock `sql!` spells for each.

use super::*;
use crate::store::dialect::{Arg, Conn, Row, query, sql};

both_backends!(one_text_binds_by_number, the_clock_of_sql);

/// Runs `check` on a connection of its own.
macro_rules! on_a_connection {
    ($db:expr, $check:ident) => {
        match $db {
            TestDb::Sqlite { path, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true);
                let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                $check(&mut conn).await
            }
            TestDb::Postgres(schema) => {
                let mut conn = sqlx::PgConnection::connect(&schema.url()).await.unwrap();
                $check(&mut conn).await
            }
        }
    };
}

/// SQLite numbers `$NNN` parameters in the order they first appear; sqlx binds each by its
/// number, as PostgreSQL does, which is what lets one text serve both.
async fn one_text_binds_by_number(db: &TestDb) {
    async fn check(conn: &mut impl Conn) {
        let row = query(sql!(
            "SELECT $2 AS b, $1 AS a, $2 || $1 AS ba, $3 AS c, \
             (SELECT COUNT(*) FROM (SELECT 1 AS id UNION ALL SELECT 2 UNION ALL SELECT 3) AS t \
              WHERE id " in_ids(4) ") AS n"
        ))
        .bind("one")
        .bind("two")
        .bind(3_i64)
        .bind(&[1_i64, 3][..])
        .fetch_one(conn)
        .await
        .unwrap();
        assert_eq!(row.text("b").unwrap(), "two");
        assert_eq!(row.text("a").unwrap(), "one");
        assert_eq!(row.text("ba").unwrap(), "twoone");
        assert_eq!(row.int("c").unwrap(), 3);
        assert_eq!(row.int("n").unwrap(), 2, "in_ids");
    }
    on_a_connection!(db, check);
}

/// `now` is the database's clock, read back as an instant; on SQLite it has the fixed-width
/// form of every stored timestamp, so text order stays time order.
async fn the_clock_of_sql(db: &TestDb) {
    async fn check(conn: &mut impl Conn) -> (chrono::DateTime<Utc>, Option<String>) {
        let before = Utc::now() - chrono::Duration::seconds(1);
        let row = query(sql!(
            "SELECT " now " AS now, " now_plus(1) " AS later, " now_minus(1) " AS earlier"
        ))
        .bind(Arg::secs(Duration::from_millis(90_500)))
        .fetch_one(conn)
        .await
        .unwrap();
        let now = row.stamp("now").unwrap();
        assert!(
            before < now && now < Utc::now() + chrono::Duration::seconds(1),
            "{now}"
        );
        let shift = chrono::Duration::milliseconds(90_500);
        assert_eq!(row.stamp("later").unwrap() - now, shift);
        assert_eq!(now - row.stamp("earlier").unwrap(), shift);
        (now, row.opt_text("now").ok().flatten())
    }
    let (now, text) = on_a_connection!(db, check);
    if db.is_sqlite() {
        assert_eq!(text, Some(sqlite::ts(now)));
    }
}
