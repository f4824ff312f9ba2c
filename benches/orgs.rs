//! Many orgs, measured (issue 15): N simulated orgs × P profiles guarded by two `ipguard serve`
//! processes (the release binary) sharing one store.
//!
//! cargo bench --bench orgs [-- --orgs N] [--profiles P]
//!
//! Figures: start-up convergence; how the orgs spread over the two instances; each instance's
//! memory, and the memory one org costs (an N-org process against a 1-org one); the Salesforce
//! calls of one in-sync resync per org (⌈P/10⌉ readMetadata calls is the floor: ten profiles a
//! call); the time for every org to converge after all drift at once. Two instances need
//! PostgreSQL (IPGUARD_TEST_DATABASE_URL, a schema of their own); without it one instance runs
//! on SQLite and the spread rows say SKIPPED. The orgs, the client and both servers share the
//! machine's cores: times are indicative.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipguard::ranges::LoginIpRange;
use ipguard::store::testing::PgSchema;
use ipguard_sim::{SendRetry, SimConfig, SimOrg};
use secrecy::ExposeSecret;
use serde_json::Value;

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
/// Profiles a readMetadata call carries (docs/salesforce.md: ten per call).
const READ_BATCH: usize = 10;

/// `cargo bench --bench orgs -- [--orgs N] [--profiles P]`.
#[derive(clap::Parser)]
struct Args {
    /// Orgs guarded by the two instances (at least 1).
    #[arg(long, default_value_t = 20)]
    orgs: usize,
    /// Guarded profiles per org (at least 4).
    #[arg(long, default_value_t = 25)]
    profiles: usize,
    /// What `cargo bench` passes to a harness-less bench.
    #[arg(long, hide = true)]
    bench: bool,
}

fn args() -> Args {
    let mut args = <Args as clap::Parser>::parse();
    args.orgs = args.orgs.max(1);
    args.profiles = args.profiles.max(4);
    args
}

/// A served instance, killed on drop.
struct Instance {
    child: Child,
    base: String,
}

impl Instance {
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status (Linux)");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    async fn status(&self, http: &reqwest::Client) -> Value {
        http.get(format!("{}/status", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("status JSON")
    }

    /// How many orgs this instance reconciles.
    async fn leading(&self, http: &reqwest::Client) -> usize {
        let status = self.status(http).await;
        match status["orgs"].as_array() {
            Some(orgs) => orgs.iter().filter(|o| o["leader"] == true).count(),
            None => usize::from(status["leader"] == true),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(vars: &HashMap<String, String>, http: &reqwest::Client) -> Instance {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_ipguard"))
        .arg("serve")
        .env_clear()
        .envs(vars)
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ipguard starts");
    let instance = Instance {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{}/readyz", instance.base))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            Instant::now() < deadline,
            "{} never became ready",
            instance.base
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    instance
}

fn range(ip: &str) -> LoginIpRange {
    LoginIpRange::parse_existing(ip, ip, None).expect("range")
}

/// The space's two NAT IPs as one range: what every profile converges to.
fn space() -> LoginIpRange {
    LoginIpRange::parse_existing("203.0.113.10", "203.0.113.11", None).expect("range")
}

fn converged(sim: &SimOrg, profiles: &[String]) -> bool {
    profiles.iter().all(|p| {
        sim.login_ip_ranges(p)
            .is_some_and(|r| r.iter().any(|x| x.key() == space().key()) && r.len() == 1)
    })
}

async fn wait_all(sims: &[SimOrg], profiles: &[String], within: Duration) -> Vec<Duration> {
    let started = Instant::now();
    let mut done: Vec<Option<Duration>> = vec![None; sims.len()];
    while done.iter().any(Option::is_none) {
        for (slot, sim) in done.iter_mut().zip(sims) {
            if slot.is_none() && converged(sim, profiles) {
                *slot = Some(started.elapsed());
            }
        }
        assert!(
            started.elapsed() < within,
            "orgs did not converge within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut times: Vec<Duration> = done.into_iter().flatten().collect();
    times.sort();
    times
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let args = args();
    ipguard::app::parts::install_crypto_provider();
    let http = reqwest::Client::new();
    let keys = ipguard::keygen::generate("orgs-bench", 1).expect("key");
    let profiles: Vec<String> = {
        let base = SimConfig::new(keys.certificate_pem.clone());
        let mut names: Vec<String> = base.profiles.iter().map(|(n, _)| n.clone()).collect();
        names.extend((names.len()..args.profiles).map(|i| format!("Custom%3A Team {i:02}")));
        names
    };
    let mut sims = Vec::new();
    for n in 0..args.orgs {
        let mut config = SimConfig::new(keys.certificate_pem.clone());
        if n > 0 {
            config.org_id = ipguard_sim::ids::mint("00D");
        }
        let defaults = config.profiles.len();
        config.profiles.extend(
            profiles[defaults..]
                .iter()
                .map(|p| (p.clone(), vec![range("192.0.2.1")])),
        );
        sims.push(SimOrg::start(config, 0).await.expect("sim starts"));
    }
    let first = SimConfig::new(keys.certificate_pem.clone());
    let mut vars: HashMap<String, String> = HashMap::from([
        ("SALESFORCE_CLIENT_ID".into(), first.client_id.clone()),
        ("SALESFORCE_USERNAME".into(), first.username.clone()),
        (
            "SALESFORCE_PRIVATE_KEY".into(),
            keys.private_key_pem.expose_secret().to_owned(),
        ),
        ("HEROKU_SPACE".into(), first.heroku.space.clone()),
        ("HEROKU_API_TOKEN".into(), first.heroku.api_token.clone()),
        ("HEROKU_API_URL".into(), sims[0].base_url()),
        ("IPGUARD_PROFILES".into(), profiles.join(",")),
        ("IPGUARD_POLICY".into(), "exact".into()),
        ("IPGUARD_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ("IPGUARD_RESYNC_INTERVAL".into(), "1h".into()),
    ]);
    let keys_listed: Vec<String> = (1..=args.orgs).map(|n| format!("o{n}")).collect();
    for (n, sim) in sims.iter().enumerate() {
        let prefix = format!("IPGUARD_ORG_O{}_", n + 1);
        vars.insert(format!("{prefix}SALESFORCE_ORG_ID"), sim.org_id());
        vars.insert(format!("{prefix}SALESFORCE_LOGIN_URL"), sim.base_url());
    }
    vars.insert("IPGUARD_ORGS".into(), keys_listed.join(","));
    let schema = PgSchema::create().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = match &schema {
        Some(schema) => schema.url(),
        None => format!("sqlite://{}", dir.path().join("orgs.db").display()),
    };
    vars.insert("DATABASE_URL".into(), store);
    let (orgs, p) = (args.orgs, profiles.len());
    println!(
        "many orgs: {orgs} orgs × {p} profiles, store {}",
        if schema.is_some() {
            "PostgreSQL"
        } else {
            "SQLite (IPGUARD_TEST_DATABASE_URL unset)"
        }
    );
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. one instance takes every org and brings each in sync
    let started = Instant::now();
    let a = serve(&vars, &http).await;
    let times = wait_all(&sims, &profiles, Duration::from_secs(300)).await;
    rows.push((
        "start-up: every org converged (one instance)".into(),
        format!(
            "first {}, median {}, last {} after spawn",
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(started.elapsed())
        ),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_all = a.rss_mib();

    // 2. memory one org costs: the same configuration narrowed to one org
    let one_org = {
        let mut single = vars.clone();
        single.insert("IPGUARD_ORGS".into(), "o1".into());
        let dir = tempfile::tempdir().expect("temp dir");
        single.insert(
            "DATABASE_URL".into(),
            format!("sqlite://{}", dir.path().join("one.db").display()),
        );
        let one = serve(&single, &http).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss = one.rss_mib();
        drop(one);
        rss
    };
    rows.push((
        format!("RSS: 1 org / {orgs} orgs, after the start-up runs"),
        format!(
            "{one_org:.1} MiB / {rss_all:.1} MiB → {:.2} MiB per further org",
            (rss_all - one_org) / (orgs.max(2) - 1) as f64
        ),
    ));

    // 3. a second instance: the orgs spread
    let b = if schema.is_some() {
        let b = serve(&vars, &http).await;
        let spread_from = Instant::now();
        let fair = orgs.div_ceil(2);
        loop {
            let (on_a, on_b) = (a.leading(&http).await, b.leading(&http).await);
            if on_a + on_b == orgs && on_a <= fair && on_b <= fair {
                rows.push((
                    "second instance: orgs spread".into(),
                    format!(
                        "{on_a} + {on_b} in {} (RSS {:.1} / {:.1} MiB)",
                        ms(spread_from.elapsed()),
                        a.rss_mib(),
                        b.rss_mib()
                    ),
                ));
                break;
            }
            assert!(
                spread_from.elapsed() < Duration::from_secs(120),
                "never spread: {on_a} + {on_b}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(b)
    } else {
        rows.push((
            "second instance: orgs spread".into(),
            "SKIPPED (needs PostgreSQL)".into(),
        ));
        None
    };

    // 4. one resync of every org while in sync: the calls it costs
    for sim in &sims {
        sim.clear_calls();
    }
    let asked = http
        .post(format!("{}/reconcile", a.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("reconcile");
    assert_eq!(asked.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(120);
    while sims
        .iter()
        .any(|s| s.count("readMetadata") < p.div_ceil(READ_BATCH))
    {
        assert!(Instant::now() < deadline, "resync never read every org");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per_org: Vec<usize> = sims.iter().map(|s| s.calls().len()).collect();
    let reads: Vec<usize> = sims.iter().map(|s| s.count("readMetadata")).collect();
    let deploys: usize = sims.iter().map(|s| s.count("deploy")).sum();
    let mut ops: HashMap<String, usize> = HashMap::new();
    for sim in &sims {
        for call in sim.calls() {
            *ops.entry(call.operation).or_default() += 1;
        }
    }
    let mut ops: Vec<String> = ops
        .into_iter()
        .map(|(op, n)| format!("{op} {:.1}", n as f64 / orgs as f64))
        .collect();
    ops.sort();
    rows.push((
        "one resync while in sync: calls per org".into(),
        format!(
            "{:.1} (min {}, max {}): {}; readMetadata {}–{} (⌈{p}/{READ_BATCH}⌉ = {}); {deploys} deploys",
            per_org.iter().sum::<usize>() as f64 / orgs as f64,
            per_org.iter().min().unwrap_or(&0),
            per_org.iter().max().unwrap_or(&0),
            ops.join(", "),
            reads.iter().min().unwrap_or(&0),
            reads.iter().max().unwrap_or(&0),
            p.div_ceil(READ_BATCH),
        ),
    ));

    // 5. every org drifts at once and says so: time until all are back
    for sim in &sims {
        sim.set_login_ip_ranges("Admin", vec![range("0.0.0.0")]);
    }
    let drifted = Instant::now();
    let targets: Vec<String> = [Some(&a), b.as_ref()]
        .into_iter()
        .flatten()
        .map(|i| format!("{}/salesforce/outbound-messages", i.base))
        .collect();
    let sends = sims.iter().enumerate().map(|(n, sim)| {
        let url = targets[n % targets.len()].clone();
        async move {
            sim.send_outbound_message(&url, &[format!("04l{n:015}")], SendRetry::default())
                .await
        }
    });
    futures_util::future::join_all(sends).await;
    let times = wait_all(&sims, &profiles, Duration::from_secs(300)).await;
    let _ = drifted;
    rows.push((
        format!("all {orgs} drift at once: time to converge (debounce 2 s)"),
        format!(
            "median {}, p95 {}, last {}",
            ms(times[times.len() / 2]),
            ms(times[(times.len() * 95 / 100).min(times.len() - 1)]),
            ms(times[times.len() - 1])
        ),
    ));

    println!();
    for (what, figure) in &rows {
        println!("| {what} | {figure} |");
    }
    drop(b);
    drop(a);
    for sim in sims {
        sim.stop().await;
    }
}
