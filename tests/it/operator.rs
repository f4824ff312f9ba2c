//! Issue 14, as an operator meets ipguard: signing in from a browser (over plain HTTP here;
//! the headless-Chromium walk is `status_page.rs`), a fixed lock-out confirmed at once, trigger
//! lists, alert-delivery counters, `history` after `demo`, and the doctor's two causes of
//! `user hasn't approved this consumer`.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

use crate::cli::{ipguard, text};
use crate::service::{ADMIN_TOKEN, Org, desired, fast_timing, http, range};

/// A client that shows redirects instead of following them, like a test of a browser's view.
fn browser_like() -> reqwest::Client {
    ipguard::app::parts::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> &str {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

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

/// After a lock-out is fixed, the operator's `POST /reconcile?wait=true` runs at once and
/// answers with the outcome — under the real five-minute lock-out backoff, which used to hold
/// it back (202 `{"run": null, "hint": …}` while the page still said "locked out").
#[tokio::test]
async fn an_operators_reconcile_runs_at_once_after_a_lock_out_is_fixed() {
    let org = Org::start(&[]).await;
    lock_out(&org);
    let app = org.serve_with(real_lockout_backoff()).await;
    app.wait_for_runs(Duration::from_secs(10), |r| {
        r.iter()
            .any(|x| x.outcome == Some(ipguard::outcome::Outcome::LockedOut))
    })
    .await;
    let status = app.status_json().await;
    assert_eq!(status["locked_out"], true, "{status:#}");
    assert!(status["locked_out_since"].is_string(), "{status:#}");
    for p in status["profiles"].as_array().unwrap() {
        assert_eq!(
            p["state"], "unknown",
            "a locked-out read proves nothing: {p}"
        );
    }

    // someone fixes the integration user's profile and asks ipguard to look again
    org.sim
        .set_login_ip_ranges("Custom%3A Integration", desired());
    let started = Instant::now();
    let answer = http()
        .post(app.url("/reconcile?wait=true"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert!(body["run"].is_i64(), "{body}");
    assert!(
        matches!(body["outcome"].as_str(), Some("in_sync" | "remediated")),
        "{body}"
    );
    assert!(took < Duration::from_secs(10), "answered after {took:?}");

    let status = app.status_json().await;
    assert_eq!(status["locked_out"], false, "{status:#}");
    assert!(status["locked_out_since"].is_null());
    for p in status["profiles"].as_array().unwrap() {
        assert_eq!(p["state"], "in_sync", "{p}");
    }
    app.service.stop().await;
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
    assert_eq!(
        run.trigger.to_string(),
        "admin,outbound_message",
        "{run:#?}"
    );
    // and the same through the public surface
    let status = app.status_json().await;
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
    let metrics = async || app.admin_text("/metrics", "text/plain").await;
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
    app.reconcile_and_wait().await;
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

/// A browser signs in with the form and gets a signed `Secure; HttpOnly; SameSite=Strict`
/// cookie; the page's own POSTs must come from the page; scripts keep the bearer header; the
/// token is never in a URL or a response.
#[tokio::test]
async fn a_browser_signs_in_with_a_form_and_scripts_keep_the_bearer() {
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    app.wait_for_runs(Duration::from_secs(10), |r| {
        r.iter().any(|x| x.outcome.is_some())
    })
    .await;
    let client = browser_like();
    let page = "text/html,application/xhtml+xml";

    // a browser without a session is sent to the form; a script gets the JSON 401
    let r = client
        .get(app.url("/status"))
        .header(ACCEPT, page)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/signin");
    let r = client.get(app.url("/status")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = client.get(app.url("/signin")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let form = r.text().await.unwrap();
    assert!(
        form.contains("method=\"post\" action=\"/signin\""),
        "{form}"
    );
    assert!(form.contains("type=\"password\""), "{form}");

    let signin = |token: &'static str, site: &'static str| {
        client
            .post(app.url("/signin"))
            .header("Sec-Fetch-Site", site)
            .form(&[("token", token)])
            .send()
    };
    let wrong = signin("not-the-admin-token-at-all", "same-origin")
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    let cross = signin(ADMIN_TOKEN, "cross-site").await.unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(cross.headers().get(SET_COOKIE).is_none());

    let ok = signin(ADMIN_TOKEN, "same-origin").await.unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&ok), "/status");
    let set = ok.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} missing: {set}");
    }
    assert!(set.starts_with("__Host-ipguard_session="), "{set}");
    assert!(!set.contains(ADMIN_TOKEN), "the cookie carries no secret");
    let cookie = set.split(';').next().unwrap().to_owned();

    let r = client
        .get(app.url("/status"))
        .header(ACCEPT, page)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"));
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Sign out") && html.contains("Check now"),
        "{html}"
    );
    assert!(!html.contains(ADMIN_TOKEN));

    // the page's "Check now": only from the page itself
    for site in [None, Some("cross-site"), Some("same-site")] {
        let mut req = client.post(app.url("/reconcile")).header(COOKIE, &cookie);
        if let Some(site) = site {
            req = req.header("Sec-Fetch-Site", site);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "Sec-Fetch-Site {site:?}");
    }
    let runs_before = app.runs().await.len();
    let r = client
        .post(app.url("/reconcile"))
        .header(COOKIE, &cookie)
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/status");
    assert!(
        app.runs().await.len() > runs_before,
        "the button ran a reconcile"
    );

    // a forged or altered cookie is no session; a wrong bearer is refused even with a cookie
    let tampered = format!("{}x", cookie.trim_end_matches(char::is_alphanumeric));
    let r = client
        .get(app.url("/status"))
        .header(ACCEPT, page)
        .header(COOKIE, &tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = client
        .get(app.url("/status"))
        .header(COOKIE, &cookie)
        .bearer_auth("wrong-token-0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // scripts are unchanged
    let r = client
        .get(app.url("/status"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.json::<Value>().await.unwrap()["runs"].is_array());

    // sign out: from the page only; the cookie is cleared
    let r = client
        .post(app.url("/signout"))
        .header(COOKIE, &cookie)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = client
        .post(app.url("/signout"))
        .header(COOKIE, &cookie)
        .header("Origin", app.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/signin");
    let cleared = r.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("__Host-ipguard_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    app.service.stop().await;
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
    org.sim.set_faults(ipguard_sim::Faults {
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

/// The leader's gauges come from the run it just finished: the deploy's duration and each
/// profile as read back after it.
#[tokio::test]
async fn a_remediating_run_shows_in_the_deploy_and_profile_gauges() {
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = app.admin_text("/metrics", "text/plain").await;
        if text.contains("ipguard_deploy_duration_seconds_count{org=\"default\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.contains("ipguard_deploy_duration_seconds_count{org=\"default\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("ipguard_profile_in_sync{org=\"default\",profile=\"Admin\"} 1"),
        "the read-back, not the plan that found drift: {text}"
    );
}
