//! Load figures for `ipguard serve`: durable outbound-message ACKs, verified platform events
//! and a forged-token flood, against a real server and the simulated org, on this machine.
//!
//! cargo run --release --example load -- [--requests N] [--concurrency C] [--postgres]
//!
//! `--postgres` uses IPGUARD_TEST_DATABASE_URL (a schema of its own). The client shares the
//! machine's cores with the server: compare figures within one run, not across machines.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipguard::config::{Config, Needs};
use ipguard::salesforce::client::RetryPolicy;
use ipguard::sim::{SimConfig, SimOrg};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;

struct Args {
    requests: usize,
    concurrency: usize,
    postgres: bool,
}

fn args() -> Args {
    let mut args = Args {
        requests: 20_000,
        concurrency: 64,
        postgres: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--requests" => {
                args.requests = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(args.requests)
            }
            "--concurrency" => {
                args.concurrency = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(args.concurrency)
            }
            "--postgres" => args.postgres = true,
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

struct Figures {
    name: &'static str,
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn print(&mut self) {
        self.latencies.sort();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies.get(i).copied().unwrap_or_default()
        };
        println!(
            "{:<28} {:>8} ok {:>6} failed  {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            self.name,
            self.ok,
            self.failed,
            self.ok as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1000.0,
            pct(0.99).as_secs_f64() * 1000.0,
        );
    }
}

/// Fires `requests` POSTs from `concurrency` tasks; `make(i)` builds request i.
async fn blast(
    name: &'static str,
    requests: usize,
    concurrency: usize,
    expect: u16,
    make: Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync>,
) -> Figures {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let make = make.clone();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0;
            let mut i = worker;
            while i < requests {
                let t = Instant::now();
                match make(i).send().await {
                    Ok(r) if r.status().as_u16() == expect => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => failed += 1,
                }
                i += concurrency;
            }
            (lat, failed)
        });
    }
    let mut figures = Figures {
        name,
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(requests),
    };
    while let Some(Ok((lat, failed))) = tasks.join_next().await {
        figures.ok += lat.len();
        figures.failed += failed;
        figures.latencies.extend(lat);
    }
    figures.elapsed = started.elapsed();
    figures
}

#[tokio::main]
async fn main() {
    let args = args();
    ipguard::wiring::install_crypto_provider();
    let client_keys = ipguard::keygen::generate("load-client", 1).unwrap();
    let event_keys = ipguard::keygen::generate("load-events", 1).unwrap();
    let sim_config = SimConfig::new(client_keys.certificate_pem.clone());
    let profiles: Vec<String> = sim_config.profiles.iter().map(|(n, _)| n.clone()).collect();
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("SALESFORCE_CLIENT_ID", sim_config.client_id.clone()),
        ("SALESFORCE_USERNAME", sim_config.username.clone()),
        ("HEROKU_SPACE", sim_config.heroku.space.clone()),
        ("HEROKU_API_TOKEN", sim_config.heroku.api_token.clone()),
        ("IPGUARD_PROFILES", profiles.join(",")),
        ("EVENTS_JWT_CERTS", event_keys.certificate_pem.clone()),
        ("EVENTS_JWT_ISSUER", "https://acme.my.salesforce.com".into()),
        ("EVENTS_JWT_AUDIENCE", "https://ipguard.example".into()),
        (
            "SALESFORCE_PRIVATE_KEY",
            client_keys.private_key_pem.expose_secret().to_owned(),
        ),
    ]);
    let sim = SimOrg::start(sim_config, 0).await.unwrap();
    vars.insert("SALESFORCE_LOGIN_URL", sim.base_url());
    vars.insert("HEROKU_API_URL", sim.base_url());
    vars.insert("SALESFORCE_ORG_ID", sim.org_id());
    let dir = tempfile::tempdir().unwrap();
    let _schema = if args.postgres {
        let schema = ipguard::store::testing::PgSchema::create()
            .await
            .expect("--postgres needs IPGUARD_TEST_DATABASE_URL");
        vars.insert("DATABASE_URL", schema.url());
        Some(schema)
    } else {
        vars.insert(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("load.db").display()),
        );
        None
    };
    let config = Config::from_lookup(|k| vars.get(k).cloned(), Needs::serve()).unwrap();
    let started = Instant::now();
    let service = ipguard::service::start(
        &config,
        "127.0.0.1:0".parse().unwrap(),
        None,
        RetryPolicy::default(),
    )
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", service.port);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "ipguard load: {} requests per scenario, {} connections, store {} — start → ready {:.0} ms",
        args.requests,
        args.concurrency,
        service.store.backend(),
        started.elapsed().as_secs_f64() * 1000.0
    );

    let org_id = sim.org_id();
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..args.requests)
            .map(|i| sim.outbound_message_body(&org_id, &[format!("04l{i:015}")]))
            .collect(),
    );
    let url = format!("{base}/salesforce/outbound-messages");
    let client = http.clone();
    let mut om = blast(
        "outbound messages (ACKed)",
        args.requests,
        args.concurrency,
        200,
        Arc::new(move |i| {
            client
                .post(&url)
                .header("Content-Type", "text/xml; charset=utf-8")
                .body(bodies[i].clone())
        }),
    )
    .await;
    om.print();
    let stats = service.store.stats();
    println!(
        "  store: {} delivery calls in {} commits",
        stats.delivery_calls, stats.delivery_commits
    );

    let key =
        EncodingKey::from_rsa_pem(event_keys.private_key_pem.expose_secret().as_bytes()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": "https://acme.my.salesforce.com", "aud": "https://ipguard.example",
        "sub": "integration@acme", "iat": now, "exp": now + 300,
    });
    let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    let url = format!("{base}/salesforce/events");
    let client = http.clone();
    let good = token.clone();
    let mut events = blast(
        "platform events (verified)",
        args.requests,
        args.concurrency,
        202,
        Arc::new(move |i| {
            let body = serde_json::json!({
                "channel": "/event/IPGuard_Profile_Change__e",
                "data": {"schema": "s", "payload": {}, "event": {"replayId": i, "EventUuid": format!("load-{i}")}}
            });
            client
                .post(&url)
                .bearer_auth(&good)
                .header("Content-Type", "application/json")
                .body(body.to_string())
        }),
    )
    .await;
    events.print();

    // same token, last signature byte changed: passes every cheap check, fails RSA verify
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let events_url = format!("{base}/salesforce/events");
    let none = format!("eyJhbGciOiJub25lIn0.{}.", token.split('.').nth(1).unwrap());
    for (name, bad) in [
        ("forged tokens (rejected)", forged),
        ("alg=none tokens (rejected)", none),
    ] {
        let (client, url) = (http.clone(), events_url.clone());
        blast(
            name,
            args.requests,
            args.concurrency,
            401,
            Arc::new(move |_| {
                client
                    .post(&url)
                    .bearer_auth(&bad)
                    .header("Content-Type", "application/json")
                    .body("{}")
            }),
        )
        .await
        .print();
    }
    service.stop().await;
    sim.stop().await;
}
