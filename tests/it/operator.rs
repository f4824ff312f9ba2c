//! Issue 14, as an operator meets ipguard: signing in from a browser (over plain HTTP here;
//! the headless-Chromium walk is `status_page.rs`), a fixed lock-out confirmed at once, trigger
//! lists, alert-delivery counters, `history` after `demo`, and the doctor's two causes of
//! `user hasn't approved this consumer`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::service::{ADMIN_TOKEN, Org, fast_timing, http};

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
