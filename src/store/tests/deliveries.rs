//! Delivery dedupe and the group commit.

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

both_backends!(
    dedupe,
    concurrent_deliveries,
    group_commit_isolates_a_failing_call,
    other_writes_are_not_starved_by_a_flood,
    throughput,
);

async fn dedupe(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let h = hint(&org, Trigger::OutboundMessage);

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
        .record_deliveries(&[event_n1()], &hint(&org, Trigger::PlatformEvent))
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
    assert_eq!(pending[0].trigger, Trigger::OutboundMessage);
    assert_eq!(
        pending[0].detail.as_deref(),
        Some("outbound_message detail")
    );
    assert_eq!(pending[2].trigger, Trigger::PlatformEvent);
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
                hint(&org, Trigger::OutboundMessage),
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
                hint(&org, Trigger::OutboundMessage),
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

/// The group commit keeps its connection from batch to batch while calls keep coming, but
/// gives it back as soon as another write waits: a write during a flood of deliveries (SQLite
/// has one writer connection) is served within a few batches, not when the flood ends.
async fn other_writes_are_not_starved_by_a_flood(db: &TestDb) {
    const TASKS: usize = 32;
    const FLOOD: Duration = Duration::from_secs(3);
    let store = db.connect().await;
    let org = new_org();
    let flooding = Arc::new(AtomicBool::new(true));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, flooding) = (store.clone(), flooding.clone());
            let h = hint(&org, Trigger::OutboundMessage);
            tokio::spawn(async move {
                let mut c = 0;
                while flooding.load(Ordering::Relaxed) {
                    store
                        .record_deliveries(&[om(&format!("f{t}-{c}"))], &h)
                        .await
                        .unwrap();
                    c += 1;
                }
            })
        })
        .collect();
    // Let the flood get going: batches back to back, the queue never empty.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let commits_before = store.stats().delivery_commits;
    let started = Instant::now();
    let enqueued =
        tokio::time::timeout(FLOOD, store.enqueue_hint(&hint(&org, Trigger::Resync))).await;
    let waited = started.elapsed();
    flooding.store(false, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let commits_during = store.stats().delivery_commits - commits_before;
    enqueued
        .expect("a write waited for the whole flood")
        .expect("enqueue_hint");
    assert!(commits_during > 0, "the flood was still committing");
    assert!(
        waited < Duration::from_secs(1),
        "a write waited {waited:?} behind the group commit"
    );
}

/// `cargo test --lib store::tests::deliveries::throughput -- --nocapture`
async fn throughput(db: &TestDb) {
    const TASKS: usize = 64;
    const CALLS: usize = 100;
    let store = db.connect().await;
    let org = new_org();
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, h) = (store.clone(), hint(&org, Trigger::OutboundMessage));
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
