//! Leases and the fenced writes of a tenure.

use super::*;

both_backends!(
    leases,
    fenced_writes_refuse_a_finished_tenure,
    lease_state_says_who_holds_it_and_for_how_long,
    instances_announce_themselves_and_are_counted_while_alive,
);

/// The presence the instances sharing many orgs count each other by (docs/contract.md §8).
async fn instances_announce_themselves_and_are_counted_while_alive(db: &TestDb) {
    let store = db.connect().await;
    assert_eq!(store.live_instances().await.unwrap(), 0);
    store
        .announce("serve@web.1", Duration::from_secs(30))
        .await
        .unwrap();
    store
        .announce("serve@web.2", Duration::from_secs(30))
        .await
        .unwrap();
    // announcing again renews, it does not add
    store
        .announce("serve@web.1", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(store.live_instances().await.unwrap(), 2);
    // org leases are not instances
    store
        .try_acquire_lease("00D5g000004FAKEEA4", "serve@web.1", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(store.live_instances().await.unwrap(), 2);
    store.withdraw("serve@web.2").await.unwrap();
    assert_eq!(store.live_instances().await.unwrap(), 1);
    // an instance that stopped long ago is pruned; a live one and the org's lease stay
    db.exec(
        "UPDATE leases SET expires_at = '2000-01-01T00:00:00.000000000Z' WHERE holder = 'serve@web.2'"
            .into(),
    )
    .await;
    assert!(store.prune(MIN_DELIVERY_RETENTION).await.unwrap() >= 1);
    assert_eq!(store.live_instances().await.unwrap(), 1);
    assert!(store.lease("00D5g000004FAKEEA4").await.unwrap().is_some());
    assert!(
        store
            .lease(&presence_key("serve@web.2"))
            .await
            .unwrap()
            .is_none()
    );
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
    let run = store
        .start_run(&a, &Trigger::Admin.into(), &[], &[])
        .await
        .unwrap();

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
    stale(
        store
            .start_run(&a, &Trigger::Admin.into(), &[], &[])
            .await
            .map(|_| ()),
    );
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
