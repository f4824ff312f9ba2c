//! Opening, closing, migrating, and writes that fail (readiness, a full disk).

use super::*;

both_backends!(
    ready_means_a_write_commits,
    close_makes_everything_unavailable,
    migrations_are_idempotent,
    processes_starting_together_on_a_fresh_store_both_migrate,
);

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
            .record_deliveries(&[om("x")], &hint(&org, Trigger::OutboundMessage))
            .await,
    );
    unavailable("consume_jti", clone.consume_jti("j", Utc::now()).await);
    unavailable(
        "enqueue_hint",
        clone.enqueue_hint(&hint(&org, Trigger::Admin)).await,
    );
    unavailable("pending_hints", clone.pending_hints(&org).await);
    unavailable("consume_hints", clone.consume_hints(&[1], 1).await);
    unavailable(
        "start_run",
        clone
            .start_run(&fence, &Trigger::Admin.into(), &[], &[])
            .await,
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
        .record_deliveries(&[om("m1")], &hint(&org, Trigger::OutboundMessage))
        .await
        .unwrap();
    first.close().await;
    drop(first);
    // Same database again: migrations find themselves applied, data is still there.
    let second = db.connect().await;
    let third = db.connect().await;
    let again = second
        .record_deliveries(&[om("m1")], &hint(&org, Trigger::OutboundMessage))
        .await
        .unwrap();
    assert_eq!(again.duplicates, 1);
    assert_eq!(third.pending_hints(&org).await.unwrap().len(), 1);
    assert_eq!(db.count("_sqlx_migrations").await, 3);
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
                                &hint(&org, Trigger::OutboundMessage),
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
    assert!(
        store
            .start_run(&fence, &Trigger::Admin.into(), &[], &[])
            .await
            .is_err()
    );

    std::fs::remove_file(filler).unwrap();
    let recovered = burst(2).await;
    assert!(
        recovered.iter().all(Result::is_ok),
        "writes work again once space is free: {:?}",
        recovered.iter().find(|r| r.is_err())
    );
    store.ready().await.expect("ready again");
    let run = store
        .start_run(&fence, &Trigger::Admin.into(), &[], &[])
        .await
        .unwrap();
    store
        .finish_run(&fence, run, Outcome::InSync, None, &[], None)
        .await
        .unwrap();
    store.close().await;
}
