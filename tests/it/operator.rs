//! Issue 14, as an operator meets ipguard: signing in from a browser (over plain HTTP here;
//! the headless-Chromium walk is `status_page.rs`), a fixed lock-out confirmed at once, trigger
//! lists, alert-delivery counters, `history` after `demo`, and the doctor's two causes of
//! `user hasn't approved this consumer`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::service::{ADMIN_TOKEN, Org, desired, fast_timing, http, range};

fn lock_out(org: &Org) {
    org.sim.set_login_ip_ranges(
        "Custom%3A Integration",
        vec![range("192.0.2.1", "192.0.2.1")],
    );
}

/// The real lock-out backoff (five minutes), with the test's short debounce and lease.
fn real_lockout_backoff() -> ipguard::reconcile::controller::ControllerTiming {
    ipguard::reconcile::controller::ControllerTiming {
        locked_out_backoff: Duration::from_secs(300),
        max_backoff: Duration::from_secs(300),
        ..fast_timing()
    }
}

/// Hints `admin`, `outbound_message`, `admin` taken by one run give the trigger
/// `admin,outbound_message`: a set in first-seen order (it used to repeat `admin`).
#[tokio::test]
async fn a_runs_trigger_list_is_a_set_in_first_seen_order() {
    let org = Org::start(&[]).await;
    let app = org
        .serve_with(ipguard::reconcile::controller::ControllerTiming {
            debounce: Duration::from_secs(2),
            ..fast_timing()
        })
        .await;
    app.wait_for_runs(Duration::from_secs(15), |r| {
        r.iter().any(|x| x.outcome.is_some())
    })
    .await;
    let ask = || {
        let url = app.url("/reconcile");
        tokio::spawn(async move {
            let r = http()
                .post(url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            r.json::<Value>().await.unwrap()["run"].as_i64()
        })
    };
    let first = ask();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = org
        .loosen_and_notify(&app, "Admin", "04l1I000000fzt1QAA")
        .await;
    assert!(report.delivered, "{report:?}");
    let second = ask();
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert!(first.is_some(), "the run is named");
    assert_eq!(first, second, "one run took all three hints");
    let runs = app
        .wait_for_runs(Duration::from_secs(15), |r| {
            r.iter().any(|x| Some(x.id) == first && x.outcome.is_some())
        })
        .await;
    let run = runs.iter().find(|x| Some(x.id) == first).unwrap();
    assert_eq!(run.trigger, "admin,outbound_message", "{run:#?}");
    // and the same through the public surface
    let status: Value = http()
        .get(app.url("/status"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shown = status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"].as_i64() == first)
        .unwrap();
    assert_eq!(shown["trigger"], "admin,outbound_message");
    app.service.stop().await;
}

/// A webhook that answers `503`, then `200`, then `404` forever.
async fn flaky_alert_receiver() -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = web::Data::new(AtomicUsize::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new().app_data(calls.clone()).route(
            "/hook",
            web::post().to(|calls: web::Data<AtomicUsize>| async move {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => HttpResponse::ServiceUnavailable().finish(),
                    1 => HttpResponse::Ok().body("ok"),
                    _ => HttpResponse::NotFound().body("no_service"),
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/hook")
}

/// `/metrics` counts alert deliveries — sent, retried, dropped by reason — so a dead alert
/// webhook can itself be alerted on.
#[tokio::test]
async fn alert_deliveries_are_counted_in_metrics() {
    let hook = flaky_alert_receiver().await;
    let org = Org::start(&[("IPGUARD_ALERT_WEBHOOK_URL", hook.as_str())]).await;
    lock_out(&org);
    let app = org.serve_with(real_lockout_backoff()).await;
    let metrics = async || {
        http()
            .get(app.url("/metrics"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = metrics().await;
    assert!(before.contains("ipguard_alerts_sent_total 0"), "{before}");
    assert!(before.contains("ipguard_alert_retries_total 0"), "{before}");

    // the lock-out alert: refused with 503 once, retried, accepted
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = metrics().await;
        if text.contains("ipguard_alerts_sent_total 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains("ipguard_alerts_sent_total 1"), "{text}");
    assert!(text.contains("ipguard_alert_retries_total 1"), "{text}");

    // the recovery alert: the webhook is gone (404), so it is dropped as refused
    org.sim
        .set_login_ip_ranges("Custom%3A Integration", desired());
    let answer = http()
        .post(app.url("/reconcile?wait=true"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        text = metrics().await;
        if text.contains("ipguard_alerts_dropped_total{reason=\"refused\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.contains("ipguard_alerts_dropped_total{reason=\"refused\"} 1"),
        "{text}"
    );
    assert!(text.contains("ipguard_alerts_sent_total 1"), "{text}");
    assert!(!text.contains(&hook), "the webhook URL is a credential");
    app.service.stop().await;
}

fn ipguard(args: &[&str], vars: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipguard"))
        .args(args)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run ipguard")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `history` is read-only: on a missing SQLite store it says so and creates nothing.
#[test]
fn history_on_a_missing_store_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ipguard.db");
    let out = ipguard(
        &["history"],
        &[("DATABASE_URL", format!("sqlite://{}", db.display()))],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no store"), "{}", text(&out));
    assert!(!db.exists(), "a read-only command created {}", db.display());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// The demo ends by naming where its runs are, and `ipguard history` there lists them (it
/// used to say "every run is in the store (`ipguard history`)" and `history` found none).
#[test]
fn history_after_demo_lists_the_demos_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().display().to_string();
    let demo = ipguard(&["demo"], &[("TMPDIR", tmpdir.clone())]);
    let said = text(&demo);
    assert!(demo.status.success(), "{said}");
    let url = said
        .split_whitespace()
        .find_map(|w| w.strip_prefix("DATABASE_URL="))
        .unwrap_or_else(|| panic!("the demo names its store: {said}"));
    assert!(
        said.contains(&format!("DATABASE_URL={url} ipguard history")),
        "{said}"
    );
    let out = ipguard(&["history", "--json"], &[("DATABASE_URL", url.to_owned())]);
    assert!(out.status.success(), "{}", text(&out));
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert!(runs.len() >= 2, "{runs:#?}");
    assert_eq!(runs.last().unwrap()["trigger"], "startup");
    assert!(
        runs[0]["trigger"]
            .as_str()
            .is_some_and(|t| t.contains("platform_event") || t.contains("outbound_message")),
        "{runs:#?}"
    );
}

async fn check(org: &Org, extra: &[(&'static str, &str)]) -> String {
    let mut vars: Vec<(String, String)> = org
        .vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ipguard"))
            .arg("check")
            .env_clear()
            .envs(vars)
            .output()
            .expect("run ipguard check")
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    // the token line and its fix, which follows on the next lines
    said.lines()
        .skip_while(|l| !l.contains("token — "))
        .take_while(|l| !l.contains("profiles — "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `user hasn't approved this consumer`: the fix names both causes, and says which one
/// applies when the configuration tells — a production-style username against a sandbox.
#[tokio::test]
async fn the_doctor_names_both_causes_of_an_unapproved_consumer() {
    let org = Org::start(&[]).await;

    // a sandbox login (test audience) with a production-style username the org does not have
    let token = check(
        &org,
        &[
            ("SALESFORCE_AUDIENCE", "https://test.salesforce.com"),
            ("SALESFORCE_USERNAME", "integration@acme.example"),
        ],
    )
    .await;
    assert!(
        token.contains("user hasn't approved this consumer"),
        "{token}"
    );
    assert!(token.contains("pre-authorized"), "{token}");
    assert!(token.contains("SALESFORCE_USERNAME"), "{token}");
    assert!(
        token.contains("Likely cause (2)")
            && token.contains("integration@acme.example.<sandbox name>"),
        "{token}"
    );

    // a sandbox-style username against a production login URL
    let token = check(
        &org,
        &[("SALESFORCE_USERNAME", "integration@ipguard.example.uat")],
    )
    .await;
    assert!(
        token.contains("Likely cause (2)") && token.contains(".uat like a sandbox user"),
        "{token}"
    );

    // the right user, not pre-authorized: nothing in the configuration points either way
    org.sim.set_faults(ipguard::sim::Faults {
        user_approved: false,
        ..Default::default()
    });
    let token = check(&org, &[]).await;
    assert!(
        token.contains("cannot tell") && token.contains("Login History"),
        "{token}"
    );
    assert!(token.contains("(1)") && token.contains("(2)"), "{token}");
}
