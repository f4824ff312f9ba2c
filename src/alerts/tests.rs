//! The Alerter end to end over real HTTP: a tiny webhook receiver on 127.0.0.1.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use secrecy::SecretString;

use super::*;
use crate::config::Policy;
use crate::ranges::LoginIpRange;
use crate::reconcile::plan::{Owned, Plan, PolicyRules, plan_profile};
use crate::reconcile::run::{Outcome, RunReport};
use crate::salesforce::metadata::DeployId;
use crate::salesforce::profile::ProfileName;

const ORG: &str = "00D000000000001EAA";
/// A distinctive secret path, as a real Slack webhook has.
const SECRET_PATH: &str = "/services/T0000/B0000/XyZsEcReTtOkEn";

type Respond = dyn Fn(usize) -> HttpResponse + Send + Sync;

struct Receiver {
    bodies: Mutex<Vec<(Instant, serde_json::Value)>>,
    respond: Box<Respond>,
    delay: Duration,
}

struct Hook {
    url: String,
    state: web::Data<Receiver>,
    server: actix_web::dev::ServerHandle,
}

impl Hook {
    /// `respond(n)` answers the n-th POST (0-based) after sleeping `delay`.
    fn start(
        delay: Duration,
        respond: impl Fn(usize) -> HttpResponse + Send + Sync + 'static,
    ) -> Hook {
        let state = web::Data::new(Receiver {
            bodies: Mutex::new(Vec::new()),
            respond: Box::new(respond),
            delay,
        });
        let data = state.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}{SECRET_PATH}",
            listener.local_addr().unwrap().port()
        );
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(SECRET_PATH, web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Hook {
            url,
            state,
            server: handle,
        }
    }

    fn posts(&self) -> Vec<(Instant, serde_json::Value)> {
        self.state.bodies.lock().unwrap().clone()
    }

    fn secret(&self) -> SecretString {
        SecretString::from(self.url.clone())
    }
}

async fn receive(state: web::Data<Receiver>, body: web::Json<serde_json::Value>) -> HttpResponse {
    let n = {
        let mut bodies = state.bodies.lock().unwrap();
        bodies.push((Instant::now(), body.into_inner()));
        bodies.len() - 1
    };
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    (state.respond)(n)
}

fn http() -> reqwest::Client {
    crate::app::parts::install_crypto_provider();
    reqwest::Client::new()
}

fn fast_retry() -> AlertRetry {
    AlertRetry {
        attempts: 6,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    }
}

fn remediated() -> RunReport {
    let r = |a: &str| LoginIpRange::parse_existing(a, a, None).unwrap();
    let desired = vec![r("52.1.2.3")];
    let profiles = ["Custom%3A Integration", "Custom%3A Support"]
        .iter()
        .map(|n| {
            plan_profile(
                ProfileName::parse(n).unwrap(),
                &[],
                &desired,
                &PolicyRules::uniform(Policy::Merge),
                &Owned::ByDescription,
            )
        })
        .collect();
    RunReport {
        outcome: Outcome::Remediated,
        desired,
        plan: Some(Plan::new(Policy::Merge, profiles)),
        deploy_id: Some(DeployId::parse("0Af000000000001AAA").unwrap()),
        deploy_status: Some("Succeeded".into()),
        failures: Vec::new(),
        error: None,
        duration_ms: 1234,
        attribution: None,
        deploy_closed: false,
        ..RunReport::empty()
    }
}

async fn settled(alerter: &Alerter, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alerter.delivered() + alerter.failed() < n {
        assert!(Instant::now() < deadline, "alert not settled: {alerter:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn retries_5xx_then_delivers_once() {
    let hook = Hook::start(Duration::ZERO, |n| {
        if n < 2 {
            HttpResponse::ServiceUnavailable().finish()
        } else {
            HttpResponse::Ok().body("ok")
        }
    });
    let alerter = Alerter::start(http(), Some(hook.secret()), fast_retry());
    alerter.observe(ORG, &remediated());
    settled(&alerter, 1).await;
    assert_eq!((alerter.delivered(), alerter.failed()), (1, 0));
    let posts = hook.posts();
    assert_eq!(posts.len(), 3, "two 503s, then accepted");
    let text = posts[2].1["text"].as_str().unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        format!("ipguard: drift remediated on 2 profile(s) in org {ORG}")
    );
    assert!(text.contains("Custom%3A Support: 1 range(s) added, 0 removed"));
    assert!(text.contains("0Af000000000001AAA"));
    // Every attempt carries the same alert.
    assert!(posts.iter().all(|(_, body)| body == &posts[2].1));
    hook.server.stop(false).await;
}

#[tokio::test]
async fn a_4xx_is_permanent() {
    let hook = Hook::start(Duration::ZERO, |_| {
        HttpResponse::BadRequest().body("invalid_payload")
    });
    let alerter = Alerter::start(http(), Some(hook.secret()), fast_retry());
    alerter.observe(ORG, &remediated());
    settled(&alerter, 1).await;
    // Longer than every retry delay together: nothing else arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.posts().len(), 1);
    assert_eq!((alerter.delivered(), alerter.failed()), (0, 1));
    hook.server.stop(false).await;
}

#[tokio::test]
async fn gives_up_after_the_configured_attempts() {
    let hook = Hook::start(Duration::ZERO, |_| {
        HttpResponse::InternalServerError().finish()
    });
    let retry = AlertRetry {
        attempts: 3,
        ..fast_retry()
    };
    let alerter = Alerter::start(http(), Some(hook.secret()), retry);
    alerter.observe(ORG, &remediated());
    settled(&alerter, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hook.posts().len(), 3);
    assert_eq!(alerter.failed(), 1);
    hook.server.stop(false).await;
}

#[tokio::test]
async fn honours_retry_after_on_429_capped_by_max_delay() {
    let hook = Hook::start(Duration::ZERO, |n| {
        if n == 0 {
            HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "1"))
                .finish()
        } else {
            HttpResponse::Ok().finish()
        }
    });
    let retry = AlertRetry {
        attempts: 3,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_secs(5),
    };
    let alerter = Alerter::start(http(), Some(hook.secret()), retry);
    alerter.observe(ORG, &remediated());
    settled(&alerter, 1).await;
    let posts = hook.posts();
    assert_eq!(posts.len(), 2);
    let gap = posts[1].0 - posts[0].0;
    assert!(
        gap >= Duration::from_millis(950),
        "waited {gap:?}, not Retry-After"
    );

    // A Retry-After longer than max_delay is capped.
    let hook2 = Hook::start(Duration::ZERO, |n| {
        if n == 0 {
            HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "3600"))
                .finish()
        } else {
            HttpResponse::Ok().finish()
        }
    });
    let alerter2 = Alerter::start(http(), Some(hook2.secret()), fast_retry());
    alerter2.observe(ORG, &remediated());
    settled(&alerter2, 1).await;
    assert_eq!(alerter2.delivered(), 1);
    hook.server.stop(false).await;
    hook2.server.stop(false).await;
}

#[tokio::test]
async fn one_alert_per_incident_over_the_wire_in_order() {
    let hook = Hook::start(Duration::ZERO, |_| HttpResponse::Ok().finish());
    let alerter = Alerter::start(http(), Some(hook.secret()), fast_retry());
    let failed = |e: &str| RunReport {
        outcome: Outcome::Failed,
        error: Some(e.into()),
        plan: None,
        deploy_id: None,
        ..remediated()
    };
    for report in [
        failed("one"),
        failed("two"),
        failed("three"),
        RunReport {
            outcome: Outcome::LockedOut,
            ..failed("token refused: ip restricted")
        },
        RunReport {
            outcome: Outcome::InSync,
            ..failed("")
        },
    ] {
        alerter.observe(ORG, &report);
    }
    settled(&alerter, 3).await;
    let firsts: Vec<String> = hook
        .posts()
        .iter()
        .map(|(_, b)| {
            b["text"]
                .as_str()
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(firsts.len(), 3, "{firsts:?}");
    assert!(firsts[0].starts_with("ipguard: reconcile failing"));
    assert!(firsts[1].starts_with("ipguard: LOCKED OUT"));
    assert!(firsts[2].starts_with("ipguard: recovered"));
    hook.server.stop(false).await;
}

#[tokio::test]
async fn a_slow_webhook_never_blocks_observe() {
    let hook = Hook::start(Duration::from_secs(5), |_| HttpResponse::Ok().finish());
    let alerter = Alerter::start_with_queue(http(), Some(hook.secret()), fast_retry(), 4);
    let report = remediated();
    let started = Instant::now();
    for _ in 0..1_000 {
        alerter.observe(ORG, &report);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "observe blocked: {took:?}"
    );
    // 1,000 remediations, one in flight at most and 4 queued: the rest are dropped.
    assert!(alerter.dropped() >= 990, "{alerter:?}");
    hook.server.stop(false).await;
}

#[tokio::test]
async fn a_dropped_incident_alert_is_raised_again_by_the_next_run() {
    let hook = Hook::start(Duration::from_secs(5), |_| HttpResponse::Ok().finish());
    let alerter = Alerter::start_with_queue(http(), Some(hook.secret()), fast_retry(), 1);
    // Fill the pipeline: one in flight (slow), one queued.
    alerter.observe(ORG, &remediated());
    tokio::time::sleep(Duration::from_millis(200)).await;
    alerter.observe(ORG, &remediated());
    let locked = RunReport {
        outcome: Outcome::LockedOut,
        ..remediated()
    };
    alerter.observe(ORG, &locked);
    assert_eq!(alerter.dropped(), 1);
    alerter.observe(ORG, &locked);
    assert_eq!(
        alerter.dropped(),
        2,
        "the lock-out alert was tried again, not forgotten"
    );
    hook.server.stop(false).await;
}

#[tokio::test]
async fn debug_and_errors_never_show_the_url() {
    let hook = Hook::start(Duration::ZERO, |_| HttpResponse::Ok().finish());
    let alerter = Alerter::start(http(), Some(hook.secret()), fast_retry());
    let debug = format!("{alerter:?}");
    assert!(!debug.contains("XyZsEcReTtOkEn"), "{debug}");
    assert!(!debug.contains("127.0.0.1"), "{debug}");
    assert!(debug.contains("enabled: true"));
    hook.server.stop(false).await;

    // A transport error (nothing listens) is reported without the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}{SECRET_PATH}",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let alert = Alert {
        kind: AlertKind::Failing,
        text: "x".into(),
    };
    let retry = AlertRetry {
        attempts: 2,
        ..fast_retry()
    };
    match deliver(&http(), &SecretString::from(url), &alert, &retry).await {
        Delivered::GaveUp { attempts, last } => {
            assert_eq!(attempts, 2);
            assert!(!last.contains("XyZsEcReTtOkEn"), "{last}");
            assert!(!last.contains("127.0.0.1"), "{last}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
}

#[tokio::test]
async fn without_a_webhook_everything_is_dropped_quietly() {
    let alerter = Alerter::start(http(), None, fast_retry());
    assert!(!alerter.is_enabled());
    alerter.observe(ORG, &remediated());
    assert_eq!(
        (alerter.dropped(), alerter.delivered(), alerter.failed()),
        (0, 0, 0)
    );
    assert!(format!("{alerter:?}").contains("enabled: false"));
}
