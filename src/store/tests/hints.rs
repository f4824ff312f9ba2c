//! The hint queue and the wake-ups behind `wait_for_hint`.

use super::*;

both_backends!(
    hints,
    wait_for_hint_wakes_across_stores,
    wait_for_hint_times_out,
);

async fn hints(db: &TestDb) {
    let store = db.connect().await;
    let (a, b) = (new_org(), new_org());
    let h1 = store.enqueue_hint(&hint(&a, Trigger::Admin)).await.unwrap();
    let h2 = store
        .enqueue_hint(&hint(&a, Trigger::Resync))
        .await
        .unwrap();
    let hb = store
        .enqueue_hint(&hint(&b, Trigger::Startup))
        .await
        .unwrap();
    assert!(h1 < h2);

    let pending = store.pending_hints(&a).await.unwrap();
    assert_eq!(pending.iter().map(|h| h.id).collect::<Vec<_>>(), [h1, h2]);
    assert_eq!(pending[0].org_id, a);
    assert_eq!(pending[0].trigger, Trigger::Admin);
    assert!(pending[0].created_at <= pending[1].created_at);
    assert!((Utc::now() - pending[0].created_at).num_seconds().abs() < 60);

    // start_run consumes the hints it names, in its transaction.
    let run = store
        .start_run(
            &fence_of(&store, &a).await,
            &Trigger::Admin.into(),
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

async fn wait_for_hint_wakes_across_stores(db: &TestDb) {
    let waiter = db.connect().await;
    let writer = db.connect().await;
    for via_deliveries in [false, true] {
        let org = new_org();
        let (w, o) = (writer.clone(), org.clone());
        let send = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if via_deliveries {
                w.record_deliveries(&[om(&o)], &hint(&o, Trigger::OutboundMessage))
                    .await
                    .map(|_| ())
            } else {
                w.enqueue_hint(&hint(&o, Trigger::Admin)).await.map(|_| ())
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
    writer
        .enqueue_hint(&hint(&org, Trigger::Admin))
        .await
        .unwrap();
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
        .enqueue_hint(&hint(&new_org(), Trigger::Admin))
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
        w.enqueue_hint(&hint(&o, Trigger::Admin)).await
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
