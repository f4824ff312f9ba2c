//! The runtime where Heroku runs it (issue 10): SIGTERM and the 30 s stop, the router's 30 s
//! request limit, stalled bodies, lost leases, stale deploy ids and fail-over timing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipguard::store::Store;
use ipguard_sim::Faults;
use sqlx::Connection;

use crate::service::{ADMIN_TOKEN, App, Org, desired, fast_timing, http, range, wait_until};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Opens a request whose body never finishes arriving.
fn stalled_request(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(
            b"POST /salesforce/outbound-messages HTTP/1.1\r\nHost: ipguard\r\n\
              Content-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<soapenv:Envelope",
        )
        .unwrap();
    stream
}

/// On SIGTERM no Salesforce write starts, even while an open request keeps the HTTP server
/// finishing, and the process is gone well within Heroku's 30 s. Before, the reconciler was
/// told only after the HTTP server had stopped (up to 25 s later) and went on to deploy.
#[tokio::test]
async fn sigterm_stops_salesforce_writes_at_once_and_exits_within_30_s() {
    let org = Org::start(&[]).await;
    // every call takes 1.5 s: the start-up run is still reading when the signal comes
    org.sim.set_faults(Faults {
        latency: Duration::from_millis(1500),
        ..Faults::default()
    });
    org.sim
        .set_login_ip_ranges("Admin", vec![range("0.0.0.0", "255.255.255.255")]);
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipguard"))
        .arg("serve")
        .env_clear()
        .envs(org.vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PORT", port.to_string())
        .env("IPGUARD_DEBOUNCE", "10ms")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ipguard serve");
    let sim = &org.sim;
    wait_until(
        "the start-up run reaches Salesforce",
        Duration::from_secs(20),
        async || sim.count("token") > 0,
    )
    .await;
    let _held_open = stalled_request(port);
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let exited = tokio::task::spawn_blocking(move || {
        let code = child.wait().unwrap();
        let mut logs = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut logs);
        let _ = child.stdout.take().unwrap().read_to_string(&mut logs);
        (code, logs)
    });
    let (code, logs) = tokio::time::timeout(Duration::from_secs(30), exited)
        .await
        .expect("gone within Heroku's 30 s")
        .unwrap();
    let took = signalled.elapsed();
    // Give a deploy that was on its way time to arrive before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        org.sim.count("deploy"),
        0,
        "no deploy may start after SIGTERM\n{logs}"
    );
    assert!(code.success(), "exit {code:?}\n{logs}");
    assert!(took < Duration::from_secs(25), "stop took {took:?}");
    eprintln!("SIGTERM → exit: {took:?}");
}

/// A body that stalls after its headers is cut below the router's 30 s (408, connection
/// closed); before, it held the connection for 95 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_refused_within_the_router_limit() {
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    // read on a thread of its own: a blocking read must not stall the runtime serving it
    let (answer, took) = tokio::task::spawn_blocking(move || {
        let mut stream = stalled_request(port);
        stream
            .set_read_timeout(Some(Duration::from_secs(40)))
            .unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        (answer, started.elapsed())
    })
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "after {took:?}: {answer:?}"
    );
    assert!(answer.contains("soapenv:Client"), "{answer}");
    assert!(
        took < Duration::from_secs(20),
        "answered and closed after {took:?}"
    );
    app.service.stop().await;
}

/// `POST /reconcile?wait=true` answers within the router's 30 s even when the run takes
/// longer, naming the run to follow; before, it waited up to the deploy timeout + 60 s (H12).
#[tokio::test]
async fn reconcile_wait_answers_within_the_router_limit() {
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    app.wait_for_runs(Duration::from_secs(15), |r| {
        r.iter().any(|x| x.outcome.is_some())
    })
    .await;
    // two calls (NAT, read) already take 30 s
    org.sim.set_faults(Faults {
        latency: Duration::from_secs(15),
        ..Faults::default()
    });
    let started = Instant::now();
    let answer = http()
        .post(app.url("/reconcile?wait=true"))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status(), 202);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(body["run"].is_i64(), "{body}");
    assert!(body["outcome"].is_null(), "{body}");
    assert!(took < Duration::from_secs(28), "answered after {took:?}");
    org.sim.set_faults(Faults::default());
    app.service.crash().await;
}

/// Takes the org's lease away from a running instance behind its back (as a takeover after
/// its lease lapsed would): a new holder and a higher fencing token.
async fn steal_lease(org: &Org) {
    let url = org.vars["DATABASE_URL"].clone();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let done = sqlx::query(
        "UPDATE leases SET holder = 'intruder', fencing_token = fencing_token + 1, \
         expires_at = '9999-12-31T23:59:59.999999Z' WHERE org_id NOT LIKE 'instance:%'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

/// A run whose lease moved on stops before its Salesforce write and records nothing more;
/// before, it went on to deploy and record as if it still led.
#[tokio::test]
async fn a_run_that_lost_its_lease_never_deploys() {
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    app.wait_for_runs(Duration::from_secs(15), |r| {
        r.iter().any(|x| x.outcome.is_some())
    })
    .await;
    let deploys_before = org.sim.count("deploy");
    org.sim.set_faults(Faults {
        latency: Duration::from_millis(700),
        ..Faults::default()
    });
    org.sim
        .set_login_ip_ranges("Admin", vec![range("0.0.0.0", "255.255.255.255")]);
    let reads_before = org.sim.count("readMetadata");
    let r = http()
        .post(app.url("/reconcile"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let sim = &org.sim;
    wait_until(
        "the run reads the profiles",
        Duration::from_secs(10),
        async || sim.count("readMetadata") > reads_before,
    )
    .await;
    steal_lease(&org).await;
    // the run would have planned, attributed and deployed by now
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        org.sim.count("deploy"),
        deploys_before,
        "a run without the lease must not deploy"
    );
    let runs = app.runs().await;
    assert_eq!(runs[0].trigger, ipguard::trigger::Trigger::Admin);
    assert_eq!(
        runs[0].outcome, None,
        "its outcome is left to the new holder"
    );
    org.sim.set_faults(Faults::default());
    app.service.crash().await;
}

/// A deploy id Salesforce no longer knows, left in flight by an earlier process, closes its
/// run (`unknown`, with the reason) and a fresh reconcile follows at once; before, it was
/// polled until the deploy timeout, again on every loop, and the org was never reconciled.
#[tokio::test]
async fn an_unknown_deploy_id_is_closed_and_a_fresh_run_follows() {
    let org = Org::start(&[("IPGUARD_DEPLOY_TIMEOUT", "10m")]).await;
    let config = org.config();
    let store = Store::connect(&config.database).await.unwrap();
    let org_key = ipguard::app::org_key(&config.orgs[0]);
    let fence = store
        .try_acquire_lease(&org_key, "serve@web.1-dead", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap()
        .fence();
    let stale = store
        .start_run(
            &fence,
            &ipguard::trigger::Trigger::OutboundMessage.into(),
            &[],
            &[],
        )
        .await
        .unwrap();
    store
        .record_deploy(&fence, stale, "0Af000000000999AAA", false)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let started = Instant::now();
    let app = org.serve().await;
    let runs = app
        .wait_for_runs(Duration::from_secs(10), |r| {
            r.iter()
                .any(|x| x.id != stale && x.outcome == Some(ipguard::outcome::Outcome::Remediated))
        })
        .await;
    let closed = runs.iter().find(|r| r.id == stale).unwrap();
    assert_eq!(closed.outcome, Some(ipguard::outcome::Outcome::Unknown));
    let reason = closed.error.as_deref().unwrap_or_default();
    assert!(reason.contains("0Af000000000999AAA"), "{reason}");
    assert!(reason.contains("INVALID_CROSS_REFERENCE_KEY"), "{reason}");
    assert_eq!(store.in_flight_deploy(&org_key).await.unwrap(), None);
    assert_eq!(org.sim.login_ip_ranges("Admin").unwrap(), desired());
    eprintln!(
        "stale deploy closed and org reconciled in {:?}",
        started.elapsed()
    );
    app.service.crash().await;
}

/// A standby takes over within the lease TTL of the leader's last renewal: it sleeps until
/// the lease would expire instead of retrying every third of a TTL (which added up to a third
/// of a TTL on top).
#[tokio::test]
async fn a_standby_takes_over_as_soon_as_the_dead_leaders_lease_expires() {
    let org = Org::start(&[]).await;
    let mut timing = fast_timing();
    timing.lease_ttl = Duration::from_secs(3);
    let a = org.serve_with(timing.clone()).await;
    let b = org.serve_with(timing).await;
    a.wait_for_runs(Duration::from_secs(15), |r| {
        r.iter().any(|x| x.outcome.is_some())
    })
    .await;
    let (leader, standby): (App, App) = if a.service.status.snapshot().leader {
        (a, b)
    } else {
        (b, a)
    };
    let org_key = ipguard::app::org_key(&org.config().orgs[0]);
    leader.service.crash().await;
    let expires_at = standby
        .service
        .store
        .lease(&org_key)
        .await
        .unwrap()
        .unwrap()
        .lease
        .expires_at;
    let status = standby.service.status.clone();
    wait_until("the standby leads", Duration::from_secs(10), async || {
        status.snapshot().leader
    })
    .await;
    let late = chrono::Utc::now() - expires_at;
    assert!(
        late < chrono::Duration::milliseconds(400),
        "took over {late} after the dead leader's lease expired"
    );
    eprintln!("take-over {late} after the lease expired (TTL 3 s)");
    standby.service.stop().await;
}

/// Texts of the alerts a receiver got, in order.
fn alert_texts(received: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .map(|a| {
            serde_json::from_str::<serde_json::Value>(a).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// A restart in the middle of a lock-out neither pages again nor forgets to say "recovered":
/// the incident is read from the stored run history (before, it lived in the process).
#[tokio::test]
async fn a_restart_mid_incident_pages_once_and_still_says_recovered() {
    let (hook, received) = crate::service::alert_receiver().await;
    let org = Org::start(&[("IPGUARD_ALERT_WEBHOOK_URL", hook.as_str())]).await;
    // the integration user's profile no longer admits ipguard: every token is refused
    org.sim.set_login_ip_ranges(
        "Custom%3A Integration",
        vec![range("192.0.2.1", "192.0.2.1")],
    );
    let locked = |runs: &[ipguard::store::RunRecord]| {
        runs.iter()
            .filter(|r| r.outcome == Some(ipguard::outcome::Outcome::LockedOut))
            .count()
    };
    let first = org.serve().await;
    first
        .wait_for_runs(Duration::from_secs(10), |r| locked(r) >= 1)
        .await;
    first.service.stop().await;

    let second = org.serve().await;
    second
        .wait_for_runs(Duration::from_secs(10), |r| locked(r) >= 2)
        .await;
    // someone fixes the profile and asks for a run
    org.sim
        .set_login_ip_ranges("Custom%3A Integration", desired());
    let answer = http()
        .post(second.url("/reconcile?wait=true"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "an operator's run is not held back");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts = alert_texts(&received);
    let kinds: Vec<&str> = texts
        .iter()
        .map(|t| {
            if t.contains("LOCKED OUT") {
                "locked out"
            } else if t.contains("recovered") {
                "recovered"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(kinds, ["locked out", "recovered"], "{texts:#?}");
    second.service.stop().await;
}

/// The service prunes what is past any redelivery window on a schedule, the first time when
/// it takes the lease (issue 10, item 6): delivery keys and spent JWT ids used to stay forever.
#[tokio::test]
async fn the_service_prunes_old_delivery_keys_and_spent_jwt_ids() {
    let org = Org::start(&[]).await;
    let config = org.config();
    let store = Store::connect(&config.database).await.unwrap();
    let hint = ipguard::store::NewHint {
        org_id: "00Dsomewhere".into(),
        trigger: ipguard::trigger::Trigger::OutboundMessage,
        detail: None,
    };
    let delivery = |key: &str| ipguard::store::Delivery {
        source: ipguard::store::DeliverySource::OutboundMessage,
        key: key.to_owned(),
    };
    store
        .record_deliveries(&[delivery("two-days-old"), delivery("fresh")], &hint)
        .await
        .unwrap();
    store
        .consume_jti("spent", chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&org.vars["DATABASE_URL"])
        .await
        .unwrap();
    sqlx::query(
        "UPDATE deliveries SET received_at = '2000-01-01T00:00:00.000000Z' \
         WHERE key = 'two-days-old'",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let app = org.serve().await;
    let remaining = async || {
        let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM deliveries ORDER BY key")
            .fetch_all(
                &mut sqlx::SqliteConnection::connect(&org.vars["DATABASE_URL"])
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
        keys
    };
    wait_until(
        "the old key is pruned",
        Duration::from_secs(10),
        async || remaining().await == ["fresh"],
    )
    .await;
    let jtis: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jtis")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(jtis, 0, "a spent jti past its expiry is gone");
    app.service.stop().await;
}

/// Behind the router every instance shows the same `/status`: a standby shows the profiles
/// the leader checked and names the leader (before, it said "not checked yet").
#[tokio::test]
async fn a_standby_shows_what_the_leader_saw() {
    let org = Org::start(&[]).await;
    let a = org.serve().await;
    let b = org.serve().await;
    a.wait_for_runs(Duration::from_secs(15), |r| {
        r.iter().any(|x| x.outcome.is_some())
    })
    .await;
    let (leader, standby) = if a.service.status.snapshot().leader {
        (a, b)
    } else {
        (b, a)
    };
    let status = |app: &App| {
        let url = app.url("/status");
        async move {
            http()
                .get(url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let (from_leader, from_standby) = (status(&leader).await, status(&standby).await);
    assert_eq!(from_leader["leader"], true);
    assert_eq!(from_standby["leader"], false);
    for key in ["profiles", "sources", "desired", "runs"] {
        assert_eq!(from_leader[key], from_standby[key], "{key}");
    }
    // The same holder; its expiry moves on whenever the leader renews, which can fall
    // between the two reads (seen in CI: 15 ms apart).
    assert_eq!(
        from_leader["lease"]["holder"], from_standby["lease"]["holder"],
        "lease"
    );
    assert!(
        from_standby["lease"]["expires_at"].is_string(),
        "{from_standby:#}"
    );
    assert_eq!(
        from_standby["profiles"].as_array().map(Vec::len),
        Some(4),
        "{from_standby:#}"
    );
    let holder = from_standby["lease"]["holder"].as_str().unwrap();
    assert!(holder.starts_with("serve@"), "{holder}");
    let page = standby.admin_text("/status", "text/html").await;
    assert!(page.contains("another instance"), "{page}");
    assert!(!page.contains("not checked yet"), "{page}");
    leader.service.stop().await;
    standby.service.stop().await;
}

/// Two deployments that share one database and leave `SALESFORCE_ORG_ID` unset each guard
/// their own org. Before, both filed everything under `default`: one held the only lease and
/// the other org went unguarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_sharing_a_database_without_org_ids_each_guard_their_own_org() {
    let mut first = Org::start_as("integration@first.example", &[]).await;
    let mut second = Org::start_as("integration@second.example", &[]).await;
    first.vars.remove("SALESFORCE_ORG_ID");
    second.vars.remove("SALESFORCE_ORG_ID");
    second
        .vars
        .insert("DATABASE_URL", first.vars["DATABASE_URL"].clone());
    for org in [&first, &second] {
        org.sim
            .set_login_ip_ranges("Admin", vec![range("0.0.0.0", "255.255.255.255")]);
    }
    let a = first.serve().await;
    let b = second.serve().await;
    let (a_status, b_status) = (a.service.status.clone(), b.service.status.clone());
    wait_until(
        "both lead their own org",
        Duration::from_secs(15),
        async || a_status.snapshot().leader && b_status.snapshot().leader,
    )
    .await;
    let (first_sim, second_sim) = (&first.sim, &second.sim);
    wait_until(
        "both orgs are remediated",
        Duration::from_secs(20),
        async || first_sim.count("deploy") > 0 && second_sim.count("deploy") > 0,
    )
    .await;
    assert_ne!(
        ipguard::app::org_key(&first.config().orgs[0]),
        ipguard::app::org_key(&second.config().orgs[0])
    );
    a.service.stop().await;
    b.service.stop().await;
}

/// The key is the org id when configured; otherwise the username (case-insensitive, as
/// Salesforce compares them) within its instance type, production or sandbox.
#[tokio::test]
async fn an_org_key_without_an_org_id_is_the_username_within_its_instance_type() {
    let mut org = Org::start_as("Integration@Acme.example", &[]).await;
    assert_eq!(
        ipguard::app::org_key(&org.config().orgs[0]),
        org.sim.org_id()
    );
    org.vars.remove("SALESFORCE_ORG_ID");
    assert_eq!(
        ipguard::app::org_key(&org.config().orgs[0]),
        "user:login.salesforce.com/integration@acme.example"
    );
    org.vars
        .insert("SALESFORCE_AUDIENCE", "https://test.salesforce.com".into());
    assert_eq!(
        ipguard::app::org_key(&org.config().orgs[0]),
        "user:test.salesforce.com/integration@acme.example"
    );
}

/// The most deploys the org had unfinished (Pending or InProgress) at one time while `work`
/// ran. A real org runs one deploy at a time and queues the rest as Pending (so does the sim):
/// more than one means two writers raced.
async fn most_unfinished_deploys_during<T>(
    sim: &ipguard_sim::SimOrg,
    work: impl std::future::Future<Output = T>,
) -> (usize, T) {
    let done = std::sync::atomic::AtomicBool::new(false);
    let watch = async {
        let mut most = 0;
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            let unfinished = sim
                .deploys()
                .iter()
                .filter(|d| matches!(d.status.as_str(), "Pending" | "InProgress"))
                .count();
            most = most.max(unfinished);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        most
    };
    let work = async {
        let out = work.await;
        done.store(true, std::sync::atomic::Ordering::Release);
        out
    };
    tokio::join!(watch, work)
}

/// `ipguard apply` from a one-off dyno while `serve` is mid-deploy: apply hands its run to the
/// service (a `cli` hint) instead of racing it, the org never has two deploys at once, and
/// apply reports the outcome of the run made for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_during_a_service_deploy_hands_off_and_never_deploys_alongside() {
    let org = Org::start(&[]).await;
    org.sim
        .set_deploy_timing(Duration::from_millis(700), Duration::from_millis(700));
    // only Admin drifts at start-up, so the start-up deploy carries Admin alone
    for profile in ["Custom%3A Support", "Custom%3A Integration", "Standard"] {
        org.sim.set_login_ip_ranges(profile, desired());
    }
    let app = org.serve().await;
    let sim = &org.sim;
    wait_until(
        "the start-up deploy is under way",
        Duration::from_secs(20),
        async || !sim.deploys().is_empty(),
    )
    .await;
    // while it runs, someone loosens another profile and an operator runs `ipguard apply`
    org.sim
        .set_login_ip_ranges("Standard", vec![range("0.0.0.0", "255.255.255.255")]);
    let config = org.config();
    let (most, applied) = most_unfinished_deploys_during(
        &org.sim,
        ipguard::cli::apply_with(&config, &config.orgs[0], &[], Default::default()),
    )
    .await;
    let applied = applied.expect("apply answers with the service's run");
    assert_eq!(most, 1, "two deploys were in flight at once");
    assert_eq!(
        applied.report.outcome,
        ipguard::reconcile::run::Outcome::Remediated
    );
    assert_eq!(
        org.sim.deploys().len(),
        2,
        "the start-up deploy, then apply's"
    );
    let runs = app.runs().await;
    let run = runs
        .iter()
        .find(|r| Some(r.id) == applied.run)
        .expect("apply's run is in the service's history");
    assert!(
        run.trigger.contains(ipguard::trigger::Trigger::Cli),
        "{run:?}"
    );
    let standard = org.sim.login_ip_ranges("Standard").unwrap();
    assert!(
        standard
            .iter()
            .any(|r| r.start() == desired()[0].start() && r.end() == desired()[0].end()),
        "the space's IPs are back on Standard: {standard:?}"
    );
    app.service.stop().await;
}

/// Two `ipguard apply` at once (two one-off dynos, no service): the second waits for the
/// first's lease, so the org sees their deploys one after the other — and starts as soon as the
/// first releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_at_once_take_turns_on_the_lease() {
    let org = Org::start(&[]).await;
    org.sim
        .set_deploy_timing(Duration::from_millis(500), Duration::from_millis(500));
    let config = org.config();
    let started = Instant::now();
    let (most, (first, second)) = most_unfinished_deploys_during(&org.sim, async {
        tokio::join!(
            ipguard::cli::apply_with(&config, &config.orgs[0], &[], Default::default()),
            ipguard::cli::apply_with(&config, &config.orgs[0], &[], Default::default()),
        )
    })
    .await;
    let took = started.elapsed();
    let (first, second) = (first.expect("first apply"), second.expect("second apply"));
    assert_eq!(most, 1, "two deploys were in flight at once");
    // the first releases its lease when done; the second must not sit out the whole TTL (30 s)
    assert!(
        took < Duration::from_secs(10),
        "the two applies took {took:?}"
    );
    let mut outcomes = [first.report.outcome, second.report.outcome];
    outcomes.sort_by_key(|o| o.to_string());
    use ipguard::reconcile::run::Outcome;
    assert_eq!(outcomes, [Outcome::InSync, Outcome::Remediated]);
    let store = Store::connect(&config.database).await.unwrap();
    let runs = store.recent_runs(10).await.unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert!(
        runs.iter()
            .all(|r| r.trigger == ipguard::trigger::Trigger::Cli),
        "{runs:#?}"
    );
}
