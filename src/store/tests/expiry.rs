//! What expires: JWT ids, pruning, and times at the ends of the range.

use super::*;

both_backends!(jti, prune, extreme_times_saturate);

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

async fn prune(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let h = hint(&org, Trigger::OutboundMessage);
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
        .record_deliveries(&[om("kept")], &hint(&org, Trigger::OutboundMessage))
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
