//! The reconcile controller under load, restarts and several instances.

use std::time::Duration;

use ipguard_sim::{DeployOutcome, Faults, SendRetry};

use crate::service::{Org, desired, fast_timing, http, notification_id, range};
use ipguard::reconcile::controller::ControllerTiming;

#[tokio::test]
async fn a_burst_of_1000_hints_costs_at_most_2_runs_and_1_deploy() {
    // The production default debounce: with eight suites at a time on two cores the burst
    // itself can outlast the 200 ms the other tests use (measured: ~2 s), and hints that
    // arrive after a run began rightly start the next one.
    let org = Org::start(&[]).await;
    let app = org
        .serve_with(ControllerTiming {
            debounce: Duration::from_secs(2),
            // The lease outlives the debounce wait (it is renewed around runs).
            lease_ttl: Duration::from_secs(6),
            ..fast_timing()
        })
        .await;
    let startup = app
        .wait_for_runs(Duration::from_secs(10), |r| {
            r.len() == 1 && r[0].outcome.is_some()
        })
        .await;
    assert_eq!(
        startup[0].outcome,
        Some(ipguard::outcome::Outcome::Remediated),
        "{startup:#?}"
    );
    org.sim
        .set_login_ip_ranges("Admin", vec![range("192.0.2.1", "192.0.2.1")]);
    let deploys_before = org.sim.count("deploy");
    let client = http();
    let url = app.url("/salesforce/outbound-messages");
    let org_id = org.sim.org_id();
    let started = std::time::Instant::now();
    let bodies: Vec<String> = (0..1000)
        .map(|i| {
            org.sim
                .outbound_message_body(&org_id, &[notification_id(i)])
        })
        .collect();
    let bodies = std::sync::Arc::new(bodies);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..50 {
        let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
        tasks.spawn(async move {
            for i in 0..20 {
                let body = bodies[worker * 20 + i].clone();
                let r = client
                    .post(&url)
                    .header("Content-Type", "text/xml")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let burst = started.elapsed();
    // let the debounce window and any follow-up run pass
    tokio::time::sleep(Duration::from_secs(5)).await;
    let runs = app.runs().await;
    let after_startup = runs.len() - 1;
    assert!(
        (1..=2).contains(&after_startup),
        "{after_startup} runs for the burst: {runs:#?}"
    );
    assert_eq!(org.sim.count("deploy") - deploys_before, 1);
    assert!(
        org.sim
            .login_ip_ranges("Admin")
            .unwrap()
            .contains(&desired()[0])
    );
    eprintln!(
        "1000 outbound messages ACKed in {:?} ({:.0}/s); {after_startup} run(s), 1 deploy",
        burst,
        1000.0 / burst.as_secs_f64()
    );
    app.service.stop().await;
}

#[tokio::test]
async fn a_restart_during_a_deploy_resumes_polling_without_a_second_deploy() {
    let org = Org::start(&[]).await;
    org.sim.set_faults(Faults {
        deploy_outcome: DeployOutcome::Stuck,
        ..Faults::default()
    });
    let app = org.serve().await;
    // the start-up run submits a deploy that does not finish
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while org.sim.count("deploy") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no deploy submitted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.service.stop().await;
    // Salesforce finishes the deploy while ipguard is down; the next process resumes it.
    org.sim.set_faults(Faults::default());
    let app = org.serve().await;
    let runs = app
        .wait_for_runs(Duration::from_secs(10), |r| {
            r.iter().any(|run| {
                run.deploy_id.is_some()
                    && run.outcome == Some(ipguard::outcome::Outcome::Remediated)
            })
        })
        .await;
    assert_eq!(
        org.sim.count("deploy"),
        1,
        "resumed, never redeployed: {runs:#?}"
    );
    assert_eq!(org.sim.login_ip_ranges("Standard").unwrap(), desired());
    app.service.stop().await;
}

#[tokio::test]
async fn hints_during_a_run_cause_exactly_one_follow_up() {
    let org = Org::start(&[]).await;
    // every Salesforce call takes 300 ms, so the start-up run is still busy when hints arrive
    org.sim.set_faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let app = org.serve().await;
    app.wait_for_runs(Duration::from_secs(5), |r| !r.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let url = app.url("/salesforce/outbound-messages");
    for i in 0..5 {
        let report = org
            .sim
            .send_outbound_message(&url, &[notification_id(900 + i)], SendRetry::default())
            .await;
        assert!(report.delivered);
    }
    let first = app.runs().await;
    assert_eq!(
        first.len(),
        1,
        "hints arrived during the first run: {first:#?}"
    );
    assert!(first[0].outcome.is_none(), "the first run is still going");
    org.sim.set_faults(Faults::default());
    app.wait_for_runs(Duration::from_secs(15), |r| {
        r.len() == 2 && r.iter().all(|run| run.outcome.is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = app.runs().await;
    assert_eq!(settled.len(), 2, "exactly one follow-up: {settled:#?}");
    assert!(
        settled[0]
            .trigger
            .contains(ipguard::trigger::Trigger::OutboundMessage)
    );
    app.service.stop().await;
}
