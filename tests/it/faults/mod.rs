//! The fault matrix (issue 6): each row is an end-to-end run against the simulated org that
//! must converge without a hot loop, and prints the API calls it spent and how long it took.
//!
//! The long rows (a 30 s 503 storm, a minute of REQUEST_LIMIT_EXCEEDED) run in real time:
//! the controller's backoff is what is under test, and it runs on the real clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ipguard::reconcile::controller::ControllerTiming;
use ipguard::reconcile::run::Outcome;
use ipguard::store::{Delivery, DeliverySource, RunRecord};
use ipguard_sim::{DeployOutcome, EventClaims, FailureKind, Faults, Outage, SendRetry};

use crate::reconcile::{Harness, assert_outcome};
use crate::service::{
    ADMIN_TOKEN, Org, desired, fast_retry, fast_timing, http, notification_id, range, wait_until,
};

mod clock_skew;
mod crashes;

// ---------------------------------------------------------------------------------------
// Helpers

fn is(run: &RunRecord, outcome: &str) -> bool {
    run.outcome.is_some_and(|o| o.as_str() == outcome)
}

/// The sim's call log as `operation outcome → count`, for the figures each row prints.
fn tally(org: &Org) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for call in org.sim.calls() {
        *counts
            .entry(format!("{} {}", call.operation, call.outcome))
            .or_insert(0) += 1;
    }
    counts
}

/// Calls that reached Salesforce (the Heroku API and the sim's own sends are not).
fn salesforce_calls(org: &Org) -> usize {
    org.sim
        .calls()
        .iter()
        .filter(|c| c.operation != "heroku.nat" && !c.operation.starts_with("send."))
        .count()
}

fn calls_with_outcome(org: &Org, outcome: &str) -> usize {
    org.sim
        .calls()
        .iter()
        .filter(|c| c.outcome == outcome)
        .count()
}

/// The most runs the controller can start within `window` when every one of them fails at
/// once: after a failure it pauses `min_backoff`, doubling per consecutive failure up to
/// `max_backoff`, each pause jittered by at most −10 %. Runs are taken to cost no time, so
/// this is an upper bound; anything above it is a hot loop.
fn most_failing_runs(window: Duration, timing: &ControllerTiming) -> usize {
    let mut at = Duration::ZERO;
    let mut pause = timing.min_backoff;
    let mut runs = 0;
    while at < window {
        runs += 1;
        at += pause.mul_f64(0.9);
        pause = (pause * 2).min(timing.max_backoff);
    }
    runs
}

/// How long after an outage ends the controller may take to converge: it may have just begun
/// its longest pause (`max_backoff` + 10 % jitter), then one run logs in, reads, deploys
/// (300 ms in the sim), polls and verifies.
fn recovery_allowance(timing: &ControllerTiming) -> Duration {
    timing.max_backoff.mul_f64(1.1) + Duration::from_secs(3)
}

fn utc_after(d: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(d).unwrap()
}

/// Runs oldest first (the store lists them newest first).
fn oldest_first(mut runs: Vec<RunRecord>) -> Vec<RunRecord> {
    runs.reverse();
    runs
}

/// During an outage every run fails, and the first run that does not is the remediating one,
/// the last so far. Returns the failed runs.
fn failed_then_remediated(runs: &[RunRecord], outage_end: DateTime<Utc>) -> &[RunRecord] {
    let (last, failed) = runs.split_last().expect("at least one run");
    assert!(is(last, "remediated"), "{runs:#?}");
    for run in failed {
        assert!(is(run, "failed"), "a run during the outage: {run:#?}");
        assert!(
            run.started_at < outage_end,
            "a run started after the outage failed: {run:#?}"
        );
    }
    failed
}

// ---------------------------------------------------------------------------------------
// Count-based faults

/// A storm of twenty 503s on the Salesforce calls. Runs fail, the controller backs off
/// exponentially (no hot loop), and the first run after the storm converges.
#[tokio::test]
async fn fault_a_503_storm_then_recovery_converges_with_backoff() {
    let org = Org::start(&[]).await;
    org.sim.set_faults(Faults {
        next_failures: vec![FailureKind::Http503; 20],
        ..Faults::default()
    });
    let started = Instant::now();
    let app = org.serve().await;
    let runs = app
        .wait_for_runs(Duration::from_secs(30), |r| {
            r.iter().any(|run| is(run, "remediated"))
        })
        .await;
    let failed = runs.iter().filter(|r| is(r, "failed")).count();
    let calls = org.sim.calls().len();
    assert!(failed >= 1, "the storm failed at least one run: {runs:#?}");
    assert!(
        runs.len() <= 10,
        "backoff, not a hot loop: {} runs",
        runs.len()
    );
    assert_eq!(org.sim.login_ip_ranges("Admin").unwrap(), desired());
    eprintln!(
        "fault matrix, 20 × 503: {} runs ({failed} failed), {calls} calls, converged in {:.1} s",
        runs.len(),
        started.elapsed().as_secs_f64()
    );
    app.service.stop().await;
}

#[tokio::test]
async fn fault_sessions_expiring_every_3_calls_still_converge() {
    let h = Harness::start(|_| {}, &[]).await;
    h.sim.set_faults(Faults {
        session_expires_after_calls: Some(3),
        ..Faults::default()
    });
    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    let tokens = h.sim.count("token");
    let calls = h.sim.calls().len();
    // one fresh assertion per dead session: never more logins than Metadata calls / 3 + 1
    let metadata_calls = calls - tokens - h.sim.count("heroku.nat");
    assert!(
        tokens <= metadata_calls / 3 + 2,
        "{tokens} logins for {metadata_calls} calls"
    );
    eprintln!("fault matrix, session every 3 calls: {calls} calls, {tokens} logins");
    h.sim.stop().await;
}

#[tokio::test]
async fn fault_five_seconds_of_latency_per_call_still_converges() {
    let h = Harness::start(|_| {}, &[("IPGUARD_PROFILES", "Admin")]).await;
    h.sim.set_faults(Faults {
        latency: Duration::from_secs(5),
        ..Faults::default()
    });
    let started = Instant::now();
    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    assert_eq!(h.sim.count("deploy"), 1);
    eprintln!(
        "fault matrix, 5 s latency: {} calls, {:.1} s",
        h.sim.calls().len(),
        started.elapsed().as_secs_f64()
    );
    h.sim.stop().await;
}

// ---------------------------------------------------------------------------------------
// Time-based outages

/// Salesforce answers every call, the token call included, with HTTP 503 for 30 s; ipguard
/// starts in the middle of it. Every run during the storm fails, the controller backs off,
/// and the first run after the storm remediates.
#[tokio::test]
async fn fault_a_30_s_503_storm_then_recovery_converges_with_backoff() {
    const STORM: Duration = Duration::from_secs(30);
    let timing = fast_timing();
    let org = Org::start(&[]).await;
    org.sim.set_faults(Faults {
        outage: Some(Outage {
            kind: FailureKind::Http503,
            duration: STORM,
        }),
        ..Faults::default()
    });
    let started = Instant::now();
    let storm_end = utc_after(STORM);
    let app = org.serve().await;
    let runs = app
        .wait_for_runs(STORM + Duration::from_secs(15), |r| {
            r.iter().any(|run| is(run, "remediated"))
        })
        .await;
    let elapsed = started.elapsed();
    let runs = oldest_first(runs);
    let failed = failed_then_remediated(&runs, storm_end);
    let bound = most_failing_runs(STORM, &timing);
    assert!(
        failed.len() >= 3,
        "the storm outlasts several backoffs: {runs:#?}"
    );
    assert!(
        runs.len() <= bound + 1,
        "backoff, not a hot loop: {} runs, at most {bound} failing + 1: {runs:#?}",
        runs.len()
    );
    // Each failing run spends at most the client's retry attempts on the refused login.
    let refused = calls_with_outcome(&org, "http_503");
    let max_attempts = fast_retry().max_attempts;
    assert!(
        refused <= bound * max_attempts,
        "{refused} refused calls for at most {bound} runs × {max_attempts} attempts"
    );
    let converged = runs.last().unwrap().finished_at.unwrap();
    let late = (converged - storm_end).to_std().unwrap_or_default();
    assert!(
        late <= recovery_allowance(&timing),
        "converged {late:?} after the storm ended"
    );
    assert_eq!(org.sim.count("deploy"), 1);
    assert_eq!(org.sim.login_ip_ranges("Admin").unwrap(), desired());
    assert_eq!(org.sim.login_ip_ranges("Standard").unwrap(), desired());
    eprintln!(
        "fault matrix, 30 s of 503: {} runs ({} failed, bound {bound}), {} Salesforce calls \
         ({refused} refused), converged {:.1} s after the storm, {:.1} s in all; {:?}",
        runs.len(),
        failed.len(),
        salesforce_calls(&org),
        late.as_secs_f64(),
        elapsed.as_secs_f64(),
        tally(&org)
    );
    app.service.stop().await;
}

/// The org is over its API request limit for a minute: every SOAP and REST call is refused
/// with REQUEST_LIMIT_EXCEEDED (logins still work). An admin edit and its outbound message
/// arrive at the start. Spending calls while over the limit is the worst thing to do, so the
/// calls are bounded and reported per minute; the first run after the minute remediates.
#[tokio::test]
async fn fault_request_limit_exceeded_for_a_minute_spends_bounded_calls_then_converges() {
    const LIMITED: Duration = Duration::from_secs(60);
    let timing = fast_timing();
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    let startup = app
        .wait_for_runs(Duration::from_secs(10), |r| {
            r.len() == 1 && r[0].outcome.is_some()
        })
        .await;
    assert!(is(&startup[0], "remediated"), "{startup:#?}");
    org.sim.clear_calls();
    org.sim.set_faults(Faults {
        outage: Some(Outage {
            kind: FailureKind::RequestLimitExceeded,
            duration: LIMITED,
        }),
        ..Faults::default()
    });
    let started = Instant::now();
    let limit_end = utc_after(LIMITED);
    let report = org
        .loosen_and_notify(&app, "Admin", &notification_id(1))
        .await;
    assert!(
        report.delivered,
        "ipguard ACKs without Salesforce: {report:?}"
    );
    let runs = app
        .wait_for_runs(LIMITED + Duration::from_secs(15), |r| {
            r.iter().filter(|run| is(run, "remediated")).count() >= 2
        })
        .await;
    let elapsed = started.elapsed();
    let runs = oldest_first(runs);
    let since = &runs[1..];
    let failed = failed_then_remediated(since, limit_end);
    let bound = most_failing_runs(LIMITED, &timing);
    assert!(failed.len() >= 3, "{since:#?}");
    assert!(
        since.len() <= bound + 1,
        "backoff, not a hot loop: {} runs, at most {bound} failing + 1",
        since.len()
    );
    let refused = calls_with_outcome(&org, "REQUEST_LIMIT_EXCEEDED");
    let max_attempts = fast_retry().max_attempts;
    assert!(
        refused <= bound * max_attempts,
        "{refused} calls refused over the limit, at most {bound} runs × {max_attempts} attempts"
    );
    // The session is still good: being over the limit is no reason to log in again.
    assert_eq!(org.sim.count("token"), 0, "{:?}", tally(&org));
    let converged = since.last().unwrap().finished_at.unwrap();
    let late = (converged - limit_end).to_std().unwrap_or_default();
    assert!(
        late <= recovery_allowance(&timing),
        "converged {late:?} after the limit lifted"
    );
    assert_eq!(org.sim.count("deploy"), 1);
    assert!(
        org.sim
            .login_ip_ranges("Admin")
            .unwrap()
            .contains(&desired()[0])
    );
    let per_minute = refused as f64 / LIMITED.as_secs_f64() * 60.0;
    eprintln!(
        "fault matrix, 60 s of REQUEST_LIMIT_EXCEEDED: {} runs ({} failed, bound {bound}), \
         {refused} calls over the limit ({per_minute:.0}/min), {} Salesforce calls in all, \
         converged {:.1} s after the limit lifted, {:.1} s in all; {:?}",
        since.len(),
        failed.len(),
        salesforce_calls(&org),
        late.as_secs_f64(),
        elapsed.as_secs_f64(),
        tally(&org)
    );
    app.service.stop().await;
}
