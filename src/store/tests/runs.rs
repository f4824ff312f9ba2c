//! Run records: deploys in flight, outcomes, abandoned runs, legacy keys, owned ranges.

use super::*;
use crate::config::Policy;
use crate::ranges::LoginIpRange;
use crate::reconcile::attribution::{Attribution, AttributionResult};
use crate::reconcile::plan::{PlanRecord, PolicyFrom, ProfilePlan, RangeWhy, Reason};
use crate::salesforce::profile::ProfileName;

both_backends!(
    run_lifecycle,
    unknown_outcome_stays_in_flight_until_resolved,
    a_closed_deploy_is_never_in_flight_again,
    abandoned_runs_are_closed_by_the_next_tenure,
    legacy_history_moves_to_the_orgs_key_once_nobody_holds_it,
    owned_ranges_are_claimed_settled_and_fenced,
    values_this_version_does_not_know_are_data_errors,
);

/// A plan as a run records it: one drifted profile, and who changed it.
fn plan_record() -> PlanRecord {
    let name = ProfileName::parse("Custom%3A Integration").unwrap();
    let added = LoginIpRange::parse_existing("203.0.113.7", "203.0.113.7", Some("ipguard: space"));
    let kept = LoginIpRange::parse_existing("10.0.0.0", "10.0.0.255", None);
    PlanRecord {
        drift: true,
        policy: Policy::Merge,
        profiles: vec![ProfilePlan {
            target: vec![],
            name: name.clone(),
            policy: Policy::Exact,
            policy_from: PolicyFrom::ExactProfiles,
            in_sync: false,
            add: vec![added.unwrap()],
            remove: vec![],
            keep: vec![kept.unwrap()],
            why: vec![RangeWhy {
                start: "203.0.113.7".to_owned(),
                end: "203.0.113.7".to_owned(),
                action: "add".to_owned(),
                reason: Reason::Desired,
            }],
        }],
        doors: vec![],
        grants: vec![],
        attribution: Some(AttributionResult {
            attributions: vec![Attribution {
                profile: name,
                changed_by: "admin@example.com".to_owned(),
                changed_at: "2026-11-01T10:00:00.123Z".parse().unwrap(),
                action: "profileLoginIpRangeChanged".to_owned(),
                display: "Changed login IP ranges".to_owned(),
                delegate_user: None,
            }],
            unattributed: vec![],
            notes: vec!["a note".to_owned()],
            doors: vec![],
        }),
    }
}

async fn run_lifecycle(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let fence = fence_of(&store, &org).await;
    let profiles = vec!["Admin".to_owned(), "Custom%3A Integration".to_owned()];
    assert_eq!(store.in_flight_deploy(&org).await.unwrap(), None);

    let run = store
        .start_run(&fence, &Trigger::OutboundMessage.into(), &[], &profiles)
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

    let plan = plan_record();
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
        .start_run(&fence, &Trigger::Admin.into(), &[], &profiles[..1])
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
        .start_run(&fence, &Trigger::Resync.into(), &[], &profiles)
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
    assert_eq!(newest.outcome, Some(Outcome::InSync));
    assert_eq!(newest.deploy_id, None);
    assert_eq!(newest.plan, None);
    assert!(newest.failures.is_empty());
    assert_eq!(second.org_id, org);
    assert_eq!(second.trigger, Trigger::Admin);
    assert_eq!(second.outcome, Some(Outcome::Failed));
    assert_eq!(second.profiles, ["Admin"]);
    assert_eq!(second.deploy_id.as_deref(), Some("0Af000000000002"));
    assert_eq!(second.failures, failures);
    assert_eq!(second.error.as_deref(), Some("deploy failed"));
    assert_eq!(second.plan.as_ref(), Some(&plan));
    assert_eq!(
        serde_json::to_value(&second.plan).unwrap(),
        serde_json::to_value(&plan).unwrap(),
        "read back as written, descriptions and attribution too"
    );
    assert_eq!(oldest.profiles, profiles);
    assert_eq!(oldest.outcome, Some(Outcome::Remediated));
    assert!(oldest.finished_at.unwrap() >= oldest.started_at);
    assert_eq!(store.recent_runs(1).await.unwrap()[0].id, no_deploy);

    // An unfinished run is listed with no outcome.
    let open = store
        .start_run(&fence, &Trigger::Startup.into(), &[], &profiles)
        .await
        .unwrap();
    let top = &store.recent_runs(1).await.unwrap()[0];
    assert_eq!((top.id, top.outcome, top.finished_at), (open, None, None));
}

async fn unknown_outcome_stays_in_flight_until_resolved(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let fence = fence_of(&store, &org).await;
    let profiles = vec!["Admin".to_owned()];

    // Poll window closed: `unknown`, still in flight; resumed and finished on the same run.
    let run = store
        .start_run(&fence, &Trigger::Admin.into(), &[], &profiles)
        .await
        .unwrap();
    store
        .record_deploy(&fence, run, "0Af00000000000A", false)
        .await
        .unwrap();
    let plan = plan_record();
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
    assert_eq!(record.outcome, Some(Outcome::Remediated));
    assert_eq!(
        record.plan.as_ref(),
        Some(&plan),
        "plan None keeps the plan"
    );

    // Or a later run adopts the deploy and records its final outcome.
    let stale = store
        .start_run(&fence, &Trigger::Admin.into(), &[], &profiles)
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
        .start_run(&fence, &Trigger::Startup.into(), &[], &profiles)
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

async fn a_closed_deploy_is_never_in_flight_again(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let fence = fence_of(&store, &org).await;
    let run = store
        .start_run(&fence, &Trigger::Admin.into(), &[], &[])
        .await
        .unwrap();
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
    assert_eq!(record.outcome, Some(Outcome::Unknown));
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
    let open = store
        .start_run(&fence, &Trigger::Admin.into(), &[], &[])
        .await
        .unwrap();
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
    let abandoned = store
        .start_run(&fence, &Trigger::Admin.into(), &[], &[])
        .await
        .unwrap();
    let deploying = store
        .start_run(&fence, &Trigger::Admin.into(), &[], &[])
        .await
        .unwrap();
    store
        .record_deploy(&fence, deploying, "0Af00000000000E", false)
        .await
        .unwrap();
    let finished = store
        .start_run(&fence, &Trigger::Admin.into(), &[], &[])
        .await
        .unwrap();
    store
        .finish_run(&fence, finished, Outcome::InSync, None, &[], None)
        .await
        .unwrap();
    let other_org = fence_of(&store, &org_other(&org)).await;
    let elsewhere = store
        .start_run(&other_org, &Trigger::Admin.into(), &[], &[])
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
    assert_eq!(outcome(abandoned).await, Some(Outcome::Failed));
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
    assert_eq!(outcome(finished).await, Some(Outcome::InSync));
    assert_eq!(outcome(elsewhere).await, None, "another org's run");
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
    let old_run = store
        .start_run(&old, &Trigger::Resync.into(), &[], &[])
        .await
        .unwrap();
    store
        .finish_run(&old, old_run, Outcome::Remediated, None, &[], None)
        .await
        .unwrap();
    store
        .enqueue_hint(&hint(&legacy, Trigger::Admin))
        .await
        .unwrap();
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
    assert_eq!(runs[0].outcome, Some(Outcome::Remediated));
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

/// A value read back that this version does not know (a newer version's, a hand edit) is a
/// data error naming it, never a panic nor a guess.
async fn values_this_version_does_not_know_are_data_errors(db: &TestDb) {
    let store = db.connect().await;
    let org = new_org();
    let fence = fence_of(&store, &org).await;
    let run = store
        .start_run(&fence, &Trigger::Admin.into(), &[], &[])
        .await
        .unwrap();
    let hint_id = store
        .enqueue_hint(&hint(&org, Trigger::Admin))
        .await
        .unwrap();
    fn data_error<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
        match r {
            Err(StoreError::Data(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("expected a data error naming {what:?}, got {other:?}"),
        }
    }

    db.exec(format!(
        "UPDATE runs SET trigger_kind = 'admin,webhook' WHERE id = {run}"
    ))
    .await;
    data_error(store.run(run).await, "\"webhook\"");
    data_error(store.recent_runs(5).await, "\"webhook\"");
    data_error(store.recent_runs_of(&org, 5).await, "\"webhook\"");
    db.exec(format!(
        "UPDATE runs SET trigger_kind = 'admin', outcome = 'exploded' WHERE id = {run}"
    ))
    .await;
    data_error(store.run(run).await, "\"exploded\"");
    data_error(store.recent_runs(5).await, "\"exploded\"");
    db.exec(format!(
        "UPDATE runs SET outcome = 'failed', plan = '{{\"drift\": \"yes\"}}' WHERE id = {run}"
    ))
    .await;
    data_error(store.run(run).await, "plan");
    db.exec(format!(
        "UPDATE hints SET trigger_kind = 'webhook' WHERE id = {hint_id}"
    ))
    .await;
    data_error(store.pending_hints(&org).await, "\"webhook\"");
}
