//! Deploy completion against what a user would pick instead (issue 17): ipguard's poll
//! schedule (`deploy_poll::until_done` with `PollSchedule::default()`, the loop every reconcile
//! and `check` use) and jsforce's `deploy(...).complete()` (npm, pinned in
//! tests/conformance/jsforce, one poll a second), one after the other against the same
//! simulated org, over deploys the sim finishes between 0.15 s and 10 s after submission.
//! For each client: how late the end is observed after the deploy's `completedDate` (p50/p95)
//! and how many `checkDeployStatus` calls it spends; then a one-line verdict per target.
//!
//! cargo bench --bench deploy [-- --short 20] [--long 3,5,7.5,10]
//!
//! Needs Node.js and jsforce (`tests/conformance/run.sh install`); without them the bench says
//! so and exits 2.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "load/org.rs"]
#[allow(dead_code, reason = "shared with benches/load")]
mod org;

use ipguard::config::{Config, Needs};
use ipguard::ranges::LoginIpRange;
use ipguard::salesforce::client::RetryPolicy;
use ipguard::salesforce::deploy_poll::{self, PollSchedule};
use ipguard::salesforce::package::deploy_zip;
use ipguard::salesforce::profile::ProfileName;
use ipguard_sim::SimOrg;

// Constants the shared fixture (benches/load/org.rs) reads from its bench.
const ISSUER: &str = "https://acme.my.salesforce.com";
const AUDIENCE: &str = "https://ipguard.example";
const DEBOUNCE: Duration = Duration::from_secs(2);
const JSFORCE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/jsforce");
/// The part of every deploy spent `Pending` (queued) before `InProgress`.
const PENDING: Duration = Duration::from_millis(100);
const SHORT_MIN: Duration = Duration::from_millis(150);
const SHORT_MAX: Duration = Duration::from_secs(2);
const LATE_TARGET_MS: f64 = 250.0;

/// `cargo bench --bench deploy -- [--short N] [--long S,S,…]`.
#[derive(clap::Parser)]
struct Args {
    /// Deploys spread evenly over 0.15–2 s (the lateness target's range).
    #[arg(long, default_value_t = 20)]
    short: usize,
    /// Longer deploys, in seconds; the call-count target is judged on the 10 s one.
    #[arg(long, value_delimiter = ',', default_value = "3,5,7.5,10")]
    long: Vec<f64>,
    /// What `cargo bench` passes to a harness-less bench.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One observed deploy.
#[derive(Debug, Clone, Copy)]
struct Observed {
    duration: Duration,
    late_ms: f64,
    calls: usize,
}

fn durations(args: &Args) -> Vec<Duration> {
    let span = SHORT_MAX - SHORT_MIN;
    let steps = args.short.saturating_sub(1).max(1) as u32;
    let short = (0..args.short as u32).map(|i| SHORT_MIN + span * i / steps);
    let long = args.long.iter().map(|s| Duration::from_secs_f64(*s));
    short.chain(long).collect()
}

fn set_timing(sim: &SimOrg, duration: Duration) {
    let pending = PENDING.min(duration);
    sim.set_deploy_timing(pending, duration - pending);
}

fn late_ms(sim: &SimOrg, id: &str, observed: chrono::DateTime<chrono::Utc>) -> f64 {
    let completed = sim
        .deploys()
        .into_iter()
        .find(|d| d.id == id)
        .and_then(|d| d.completed_at)
        .unwrap_or_else(|| panic!("the sim has no completedDate for deploy {id}"));
    (observed - completed)
        .num_microseconds()
        .unwrap_or(i64::MAX) as f64
        / 1000.0
}

fn status_calls(sim: &SimOrg) -> usize {
    sim.calls()
        .iter()
        .filter(|c| c.operation == "checkDeployStatus")
        .count()
}

/// ipguard: one deploy per duration through the production client and poll loop.
async fn ipguard_deploys(fixture: &org::Fixture, durations: &[Duration]) -> Vec<Observed> {
    let vars = &fixture.vars;
    let config = Config::from_lookup(|k| vars.get(k).cloned(), Needs::serve()).expect("config");
    let parts =
        ipguard::app::parts::Parts::build(&config, &config.orgs[0], &[], RetryPolicy::default())
            .expect("parts");
    let client = &parts.client;
    let profile = ProfileName::parse("Standard").expect("name");
    let range = LoginIpRange::parse_existing("192.0.2.1", "192.0.2.9", Some("ipguard timing"))
        .expect("range");
    let zip = deploy_zip(&[(profile, vec![range])], client.api_version()).expect("zip");
    let schedule = PollSchedule::default();
    let mut observed = Vec::new();
    for &duration in durations {
        set_timing(&fixture.sim, duration);
        fixture.sim.clear_calls();
        let id = client.deploy(&zip, false).await.expect("deploy accepted");
        let deadline = Instant::now() + Duration::from_secs(120);
        let result = deploy_poll::until_done(client, &id, &schedule, deadline, |_| {})
            .await
            .expect("deploy polled to its end");
        let seen = chrono::Utc::now();
        assert!(result.success, "deploy {id} failed: {result:?}");
        observed.push(Observed {
            duration,
            late_ms: late_ms(&fixture.sim, id.as_str(), seen),
            calls: status_calls(&fixture.sim),
        });
    }
    observed
}

/// jsforce: the same durations through tests/conformance/jsforce/deploy-timing.mjs.
fn jsforce_deploys(fixture: &org::Fixture, durations: &[Duration], dir: &Path) -> Vec<Observed> {
    let key = dir.join("client-key.pem");
    std::fs::write(&key, fixture.vars["SALESFORCE_PRIVATE_KEY"].as_bytes()).expect("key file");
    let list: Vec<String> = durations
        .iter()
        .map(|d| d.as_millis().to_string())
        .collect();
    let output = Command::new("node")
        .arg("deploy-timing.mjs")
        .current_dir(JSFORCE_DIR)
        .env("SIM_URL", fixture.sim.base_url())
        .env("SIM_KEY_FILE", &key)
        .env("SIM_CLIENT_ID", &fixture.vars["SALESFORCE_CLIENT_ID"])
        .env("SIM_USERNAME", &fixture.vars["SALESFORCE_USERNAME"])
        .env("DURATIONS_MS", list.join(","))
        .env("PENDING_MS", PENDING.as_millis().to_string())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "jsforce timing failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("DEPLOY_JSON "))
        .map(|l| serde_json::from_str(l).expect("jsforce line"))
        .collect();
    assert_eq!(lines.len(), durations.len(), "one line a deploy: {stdout}");
    lines
        .iter()
        .zip(durations)
        .map(|(line, &duration)| {
            let observed_ms = line["observed_ms"].as_i64().expect("observed_ms");
            let seen = chrono::DateTime::from_timestamp_millis(observed_ms).expect("time");
            Observed {
                duration,
                late_ms: late_ms(&fixture.sim, line["id"].as_str().expect("id"), seen),
                calls: line["calls"].as_u64().expect("calls") as usize,
            }
        })
        .collect()
}

/// Nearest-rank percentile.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The figures of one client: lateness over the short deploys, calls per deploy.
struct Summary {
    short_p50: f64,
    short_p95: f64,
    short_calls: f64,
    ten_seconds: Option<Observed>,
}

fn summarise(observed: &[Observed]) -> Summary {
    let short: Vec<&Observed> = observed
        .iter()
        .filter(|o| o.duration <= SHORT_MAX)
        .collect();
    let late: Vec<f64> = short.iter().map(|o| o.late_ms).collect();
    let calls: usize = short.iter().map(|o| o.calls).sum();
    Summary {
        short_p50: percentile(&late, 50.0),
        short_p95: percentile(&late, 95.0),
        short_calls: calls as f64 / short.len().max(1) as f64,
        ten_seconds: observed
            .iter()
            .copied()
            .find(|o| o.duration == Duration::from_secs(10)),
    }
}

fn verdict(met: bool, text: String) {
    println!("{} {text}", if met { "MET   " } else { "MISSED" });
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let node = Command::new("node").arg("--version").output();
    let installed = Path::new(JSFORCE_DIR).join("node_modules/jsforce").is_dir();
    let Ok(node) = node else {
        eprintln!(
            "deploy bench: node not found — install Node.js, then tests/conformance/run.sh install"
        );
        std::process::exit(2);
    };
    if !installed {
        eprintln!("deploy bench: jsforce is not installed — run tests/conformance/run.sh install");
        std::process::exit(2);
    }
    let node_version = String::from_utf8_lossy(&node.stdout).trim().to_owned();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(run(args, node_version));
}

async fn run(args: Args, node_version: String) {
    ipguard::app::parts::install_crypto_provider();
    let fixture = org::fixture().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let durations = durations(&args);
    println!(
        "ipguard deploy bench: {} deploys a client ({} over 0.15–2 s, then {:?} s), {} ms of each Pending; \
         jsforce 3.10.16 on node {node_version}, default pollInterval 1000 ms",
        durations.len(),
        args.short,
        args.long,
        PENDING.as_millis()
    );
    let ipguard = ipguard_deploys(&fixture, &durations).await;
    let jsforce = jsforce_deploys(&fixture, &durations, dir.path());

    println!("\n| deploy takes | ipguard: late, calls | jsforce: late, calls |");
    println!("|---|---|---|");
    for (i, j) in ipguard.iter().zip(&jsforce) {
        if i.duration > SHORT_MAX {
            println!(
                "| {:.1} s | {:.0} ms, {} | {:.0} ms, {} |",
                i.duration.as_secs_f64(),
                i.late_ms,
                i.calls,
                j.late_ms,
                j.calls
            );
        }
    }
    let (i, j) = (summarise(&ipguard), summarise(&jsforce));
    println!(
        "\n| client | deploys of 0.15–2 s: late p50 | late p95 | calls a deploy (mean) |\n|---|---|---|---|\n\
         | ipguard | {:.0} ms | {:.0} ms | {:.1} |\n| jsforce | {:.0} ms | {:.0} ms | {:.1} |\n",
        i.short_p50, i.short_p95, i.short_calls, j.short_p50, j.short_p95, j.short_calls
    );
    verdict(
        i.short_p95 <= LATE_TARGET_MS,
        format!(
            "ipguard sees deploys of up to 2 s end ≤ 250 ms late (p95): {:.0} ms (jsforce {:.0} ms)",
            i.short_p95, j.short_p95
        ),
    );
    match (i.ten_seconds, j.ten_seconds) {
        (Some(i), Some(j)) => verdict(
            i.calls <= j.calls,
            format!(
                "ipguard spends no more checkDeployStatus calls than jsforce on a 10 s deploy: {} vs {}",
                i.calls, j.calls
            ),
        ),
        _ => println!("SKIPPED the 10 s call count (no 10 s deploy in --long)"),
    }
}
