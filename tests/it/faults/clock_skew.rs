//! The JWT clock-skew row: an org whose clock is 90 s off.

use super::*;

/// The platform-event callouts of an org whose clock is 90 s off. Behind (iat = now − 90,
/// exp = iat + 120) is within the 60 s leeway on `exp` and accepted; ahead (iat = now + 90) is
/// beyond it on `iat`/`nbf` and refused with 401 and a reason — and the drift it announced
/// still converges through the resync timer, with bounded calls.
#[tokio::test]
async fn fault_jwt_clock_skew_of_90_s_behind_is_accepted_ahead_is_refused_and_resync_converges() {
    const RESYNC: Duration = Duration::from_secs(4);
    let org = Org::start(&[("IPGUARD_POLICY", "exact")]).await;
    let app = org
        .serve_with(ControllerTiming {
            resync_interval: RESYNC,
            ..fast_timing()
        })
        .await;
    app.wait_for_runs(Duration::from_secs(10), |r| {
        r.iter().any(|run| is(run, "remediated"))
    })
    .await;
    let url = app.url("/salesforce/events");
    let once = SendRetry {
        attempts: 1,
        base: Duration::from_millis(50),
    };
    let loose = || vec![range("0.0.0.0", "255.255.255.255")];

    // Behind: accepted at once, and the event's run remediates.
    org.sim.clear_calls();
    let started = Instant::now();
    org.sim.set_login_ip_ranges("Custom%3A Support", loose());
    let behind = org
        .sim
        .send_platform_events(
            &url,
            &["Custom%3A Support".to_owned()],
            &EventClaims {
                clock_skew_secs: -90,
                ..org.claims()
            },
            once,
        )
        .await;
    assert!(
        behind.delivered && behind.last_status == Some(202),
        "{behind:?}"
    );
    let runs = app
        .wait_for_runs(Duration::from_secs(10), |r| {
            r.iter().any(|run| {
                run.trigger
                    .contains(ipguard::trigger::Trigger::PlatformEvent)
                    && run.outcome.is_some()
            })
        })
        .await;
    assert_eq!(
        org.sim.login_ip_ranges("Custom%3A Support").unwrap(),
        desired(),
        "{runs:#?}"
    );
    let behind_calls = salesforce_calls(&org);
    let behind_secs = started.elapsed().as_secs_f64();

    // Ahead: refused, so no hint; the resync timer finds the drift anyway.
    org.sim.clear_calls();
    let started = Instant::now();
    let since = Utc::now();
    org.sim.set_login_ip_ranges("Standard", loose());
    let ahead = org
        .sim
        .send_platform_events(
            &url,
            &["Standard".to_owned()],
            &EventClaims {
                clock_skew_secs: 90,
                ..org.claims()
            },
            once,
        )
        .await;
    assert!(!ahead.delivered, "{ahead:?}");
    assert_eq!(ahead.last_status, Some(401), "{ahead:?}");
    let reply: serde_json::Value =
        serde_json::from_str(ahead.last_reply.as_deref().unwrap()).unwrap();
    assert_eq!(reply["error"], "invalid_token", "{reply}");
    let description = reply["error_description"].as_str().unwrap();
    assert!(
        description.contains("in the future"),
        "a clear reason: {description}"
    );
    wait_until(
        "the resync timer remediates the refused event's drift",
        RESYNC.mul_f64(1.1) + Duration::from_secs(10),
        async || org.sim.login_ip_ranges("Standard") == Some(desired()),
    )
    .await;
    let converged = started.elapsed();
    // The runs that could have seen the edit: those still going or finished since.
    let runs = app
        .wait_for_runs(Duration::from_secs(5), |r| {
            r.iter().all(|run| run.outcome.is_some())
        })
        .await;
    let new_runs: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.finished_at.is_some_and(|f| f >= since))
        .collect();
    assert!(
        new_runs
            .iter()
            .all(|r| !r.trigger.contains(ipguard::trigger::Trigger::PlatformEvent)),
        "the refused event enqueued nothing: {new_runs:#?}"
    );
    assert!(
        new_runs
            .iter()
            .any(|r| r.trigger == ipguard::trigger::Trigger::Resync && is(r, "remediated")),
        "{new_runs:#?}"
    );
    // At most the remediating resync and one in-sync resync before the edit landed.
    assert!(new_runs.len() <= 2, "{new_runs:#?}");
    assert_eq!(org.sim.count("deploy"), 1);
    let ahead_calls = salesforce_calls(&org);
    assert!(
        ahead_calls <= 2 * behind_calls,
        "{ahead_calls} calls to converge by resync, {behind_calls} by the event"
    );
    eprintln!(
        "fault matrix, JWT clock skew ±90 s: behind accepted (202), remediated in {behind_secs:.1} s \
         with {behind_calls} Salesforce calls; ahead refused (401 \"{description}\"), converged by \
         resync ({} s interval) in {:.1} s with {ahead_calls} calls and {} run(s); {:?}",
        RESYNC.as_secs(),
        converged.as_secs_f64(),
        new_runs.len(),
        tally(&org)
    );
    app.service.stop().await;
}
