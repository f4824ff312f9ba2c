//! Several instances on one PostgreSQL database, and what the process writes to its logs.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use ipguard::store::testing::PgSchema;
use ipguard_sim::SendRetry;
use secrecy::ExposeSecret;

use crate::service::{ADMIN_TOKEN, App, OM_TOKEN, Org, desired, http, keys, range, wait_until};

fn runs_counted(app: &App) -> bool {
    app.service.metrics.render().contains("ipguard_runs_total{")
}

#[tokio::test]
async fn two_instances_on_postgres_one_reconciles_the_other_takes_over() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let mut org = Org::start(&[]).await;
    org.vars.insert("DATABASE_URL", schema.url());
    let a = org.serve().await;
    let b = org.serve().await;
    a.wait_for_runs(Duration::from_secs(15), |r| {
        r.iter().any(|x| x.outcome.is_some())
    })
    .await;
    let (leader, follower) = if a.service.status.snapshot().leader {
        (a, b)
    } else {
        (b, a)
    };
    assert!(leader.service.status.snapshot().leader);
    assert!(!follower.service.status.snapshot().leader);
    assert!(runs_counted(&leader));
    assert!(!runs_counted(&follower), "only the lease holder reconciles");

    // a hint recorded by the follower reaches the leader promptly
    org.sim
        .set_login_ip_ranges("Admin", vec![range("192.0.2.1", "192.0.2.1")]);
    let sent = org
        .sim
        .send_outbound_message(
            &follower.url("/salesforce/outbound-messages"),
            &["04l000000000000AAA".to_string()],
            SendRetry::default(),
        )
        .await;
    assert!(sent.delivered);
    wait_until("leader remediates", Duration::from_secs(10), async || {
        org.sim
            .login_ip_ranges("Admin")
            .is_some_and(|r| r.contains(&desired()[0]))
    })
    .await;
    assert!(!runs_counted(&follower));

    // the leader dies without releasing its lease; the follower takes over after the TTL
    leader.service.crash().await;
    wait_until(
        "follower takes the lease",
        Duration::from_secs(10),
        async || follower.service.status.snapshot().leader,
    )
    .await;
    org.sim
        .set_login_ip_ranges("Standard", vec![range("192.0.2.2", "192.0.2.2")]);
    let sent = org
        .sim
        .send_outbound_message(
            &follower.url("/salesforce/outbound-messages"),
            &["04l000000000001AAA".to_string()],
            SendRetry::default(),
        )
        .await;
    assert!(sent.delivered);
    wait_until(
        "new leader remediates",
        Duration::from_secs(10),
        async || {
            org.sim
                .login_ip_ranges("Standard")
                .is_some_and(|r| r.contains(&desired()[0]))
        },
    )
    .await;
    follower.service.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary, debug logs on: no secret it was given or handled appears in its output,
/// and SIGTERM stops it cleanly.
#[tokio::test]
async fn logs_never_contain_secrets_and_sigterm_stops_cleanly() {
    let org = Org::start(&[("OUTBOUND_MESSAGE_TOKEN", OM_TOKEN)]).await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipguard"))
        .arg("serve")
        .env_clear()
        .envs(org.vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PORT", port.to_string())
        .env("RUST_LOG", "debug")
        .env("IPGUARD_DEBOUNCE", "100ms")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ipguard serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = http();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "service never became ready");
    let om = org
        .sim
        .send_outbound_message(
            &format!("{base}/salesforce/outbound-messages/{OM_TOKEN}"),
            &["04l000000000002AAA".to_string()],
            SendRetry::default(),
        )
        .await;
    assert!(om.delivered);
    let pe = org
        .sim
        .send_platform_events(
            &format!("{base}/salesforce/events"),
            &["Admin".to_string()],
            &org.claims(),
            SendRetry::default(),
        )
        .await;
    assert!(pe.delivered);
    let r = client
        .post(format!("{base}/reconcile?wait=true"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{base}/status?token={ADMIN_TOKEN}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let code = child.wait().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        (code, out)
    });
    let (code, logs) = tokio::time::timeout(Duration::from_secs(30), exit)
        .await
        .expect("stops within Heroku's 30 s")
        .unwrap();
    assert!(code.success(), "exit {code:?}\n{logs}");
    assert!(logs.contains("run finished"), "{logs}");
    let key = keys().private_key_pem.expose_secret().to_owned();
    let key_line = key.lines().nth(1).unwrap().to_owned();
    let org15 = &org.sim.org_id()[..15];
    for (what, secret) in [
        ("admin token", ADMIN_TOKEN.to_owned()),
        ("outbound path token", OM_TOKEN.to_owned()),
        ("Heroku API token", org.vars["HEROKU_API_TOKEN"].clone()),
        ("private key", key_line),
        ("Salesforce session id", format!("{org15}!")),
        ("JWT", "eyJ".to_owned()),
    ] {
        assert!(!logs.contains(&secret), "{what} leaked into the logs");
    }
}
