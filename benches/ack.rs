//! The ACK path under a load client that outruns the server (issue 17): `wrk` (one thread,
//! 64 connections) against the real `ipguard serve` and against an empty actix-web handler
//! with the same worker count (the ceiling), rounds alternating so machine drift hits both.
//! The ratio ipguard / ceiling per round is the figure; its median and spread over the rounds
//! are reported with ipguard's p50/p99, and a one-line verdict per target.
//!
//! cargo bench --bench ack [-- --rounds 3] [--seconds 5] [--connections 64]
//!
//! Needs wrk (Debian package `wrk`: `apt-get install wrk`); without it the bench says so and
//! exits 2. PostgreSQL rows run when IPGUARD_TEST_DATABASE_URL is set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

// Shared with the load bench (benches/load), which uses the parts this one does not.
#[path = "load/org.rs"]
#[allow(dead_code, reason = "shared with benches/load")]
mod org;
#[path = "load/processes.rs"]
#[allow(dead_code, reason = "shared with benches/load")]
mod processes;

use org::{Fixture, event_body, fixture, store_for, wait_settled};
use processes::{Server, serve_ceiling, start_ceiling, start_ipguard};

const ISSUER: &str = "https://acme.my.salesforce.com";
const AUDIENCE: &str = "https://ipguard.example";
const DEBOUNCE: Duration = Duration::from_secs(2);
/// Turns on `/metrics`, where the bench checks that floods were refused as `bad_signature`.
const ADMIN_TOKEN: &str = "ack-bench-admin-token-0123456789abcdef";
const CEILING_FLAG: &str = "--ceiling-server";
const LUA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/wrk/post.lua");

/// `cargo bench --bench ack -- [--rounds N] [--seconds S] [--connections C]`.
#[derive(clap::Parser)]
struct Args {
    /// Rounds, each running the ceiling then ipguard.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Length of one wrk run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Run only these scenarios: outbound, events, forged, forgeries, postgres.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// What `cargo bench` passes to a harness-less bench.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One wrk run's summary (the `WRK_JSON` line `post.lua` prints).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
struct WrkRun {
    requests: u64,
    duration_us: u64,
    status_errors: u64,
    socket_errors: u64,
    p50_us: u64,
    p99_us: u64,
}

impl WrkRun {
    fn rate(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }
}

impl Args {
    fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

/// What one scenario sends: a body template (`__SEQ__` made unique per request), its
/// content type, a bearer token (the same on every request, or `vary`: a new signature on
/// each), and whether non-2xx answers are the point (rejections).
struct Scenario {
    name: &'static str,
    path: &'static str,
    template: PathBuf,
    content_type: &'static str,
    token: Option<String>,
    vary: bool,
    rejections: bool,
}

/// One wrk run; `checked`: every answer must be 2xx (ipguard, on a scenario that is not a
/// flood of rejections).
fn wrk(base: &str, scenario: &Scenario, round: usize, args: &Args, checked: bool) -> WrkRun {
    let mut command = Command::new("wrk");
    command
        .args(["-t1", &format!("-c{}", args.connections)])
        .arg(format!("-d{}s", args.seconds))
        .args(["--timeout", "5s", "-s", LUA])
        .arg(format!("{base}{}", scenario.path))
        .arg("--")
        .arg(&scenario.template)
        .arg(scenario.content_type)
        .arg(round.to_string());
    if let Some(token) = &scenario.token {
        command.arg(token);
        if scenario.vary {
            command.arg("vary");
        }
    }
    let output = command.output().expect("wrk runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK_JSON "))
        .unwrap_or_else(|| panic!("wrk printed no summary:\n{stdout}"));
    let run: WrkRun = serde_json::from_str(line).expect("wrk summary");
    assert_eq!(run.socket_errors, 0, "socket errors: {stdout}");
    if checked && !scenario.rejections {
        assert_eq!(
            run.status_errors, 0,
            "{}: ipguard refused requests: {stdout}",
            scenario.name
        );
    }
    run
}

/// Per-round figures of one scenario against one server.
struct Rounds {
    ratios: Vec<f64>,
    ceiling: Vec<f64>,
    server: Vec<WrkRun>,
}

impl Rounds {
    fn median_ratio(&self) -> f64 {
        median(&self.ratios)
    }

    fn spread(&self) -> (f64, f64) {
        let min = self.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.ratios.iter().copied().fold(0.0, f64::max);
        (min, max)
    }

    fn p99_ms(&self) -> f64 {
        let mut p99: Vec<f64> = self
            .server
            .iter()
            .map(|r| r.p99_us as f64 / 1000.0)
            .collect();
        p99.sort_by(f64::total_cmp);
        *p99.last().unwrap_or(&f64::NAN)
    }

    fn row(&self, label: &str) -> String {
        let (min, max) = self.spread();
        let rates: Vec<f64> = self.server.iter().map(WrkRun::rate).collect();
        let p50: Vec<f64> = self
            .server
            .iter()
            .map(|r| r.p50_us as f64 / 1000.0)
            .collect();
        format!(
            "| {label} | {:.0}/s | {:.0}/s | **{:.2}** ({min:.2}–{max:.2}) | {:.1} ms | {:.1} ms |",
            median(&self.ceiling),
            median(&rates),
            self.median_ratio(),
            median(&p50),
            self.p99_ms()
        )
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Alternates ceiling and server for `args.rounds` rounds; waits for ipguard's runs to
/// settle after each of its rounds so they do not eat into the next ceiling round.
async fn measure(
    scenario: &Scenario,
    ceiling: &Server,
    server: &Server,
    fixture: &Fixture,
    args: &Args,
    round_base: usize,
) -> Rounds {
    let store = store_for(&fixture.vars).await;
    let mut rounds = Rounds {
        ratios: Vec::new(),
        ceiling: Vec::new(),
        server: Vec::new(),
    };
    for round in 0..args.rounds {
        let id = round_base + round;
        let c = wrk(&ceiling.base, scenario, id, args, false);
        let s = wrk(&server.base, scenario, id, args, true);
        wait_settled(&store, Duration::from_millis(500)).await;
        rounds.ratios.push(s.rate() / c.rate());
        rounds.ceiling.push(c.rate());
        rounds.server.push(s);
    }
    rounds
}

/// ipguard's count of event callouts refused for `bad_signature` (`/metrics`).
async fn bad_signatures(http: &reqwest::Client, server: &Server) -> u64 {
    let text = http
        .get(format!("{}/metrics", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix("ipguard_jwt_rejections_total{reason=\"bad_signature\"} "))
        .map_or(0, |n| n.trim().parse().expect("a counter"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("template written");
    path
}

fn verdict(met: bool, text: String) {
    println!("{} {text}", if met { "MET   " } else { "MISSED" });
}

fn main() {
    if std::env::args().any(|a| a == CEILING_FLAG) {
        serve_ceiling().expect("ceiling server");
        return;
    }
    let found = Command::new("wrk").arg("--version").output();
    let Ok(found) = found else {
        eprintln!("ack bench: wrk not found — install it (Debian: apt-get install wrk)");
        std::process::exit(2);
    };
    let version = String::from_utf8_lossy(&found.stdout);
    let args = <Args as clap::Parser>::parse();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(run(
            args,
            version.lines().next().unwrap_or("wrk").to_owned(),
        ));
}

async fn run(args: Args, wrk_version: String) {
    ipguard::app::parts::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut fixture = fixture().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let workers = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "ipguard ack bench: {wrk_version}; wrk -t1 -c{} -d{}s, {} rounds alternating ceiling / ipguard; \
         both servers run actix-web's default {workers} workers on {workers} cores (2 shared cores: \
         compare the ratios, not the absolute rates)",
        args.connections, args.seconds, args.rounds
    );

    let org_id = fixture.sim.org_id();
    let outbound = Scenario {
        name: "outbound messages",
        path: "/salesforce/outbound-messages",
        template: write(
            dir.path(),
            "outbound.xml",
            &fixture
                .sim
                .outbound_message_body(&org_id, &["04l__SEQ__".to_owned()]),
        ),
        content_type: "text/xml; charset=utf-8",
        token: None,
        vary: false,
        rejections: false,
    };
    let token = fixture.token();
    let events = Scenario {
        name: "platform events",
        path: "/salesforce/events",
        template: write(
            dir.path(),
            "event.json",
            &event_body(0, "wrk").replace("wrk-0", "wrk-__SEQ__"),
        ),
        content_type: "application/json",
        token: Some(token.clone()),
        vary: false,
        rejections: false,
    };
    // The same token with one signature character changed: it passes every cheap check and
    // fails only the RSA verification, the most expensive rejection there is.
    let forged_token = ipguard::ingress::jwt::testing::forged(&token);
    let forged = Scenario {
        name: "forged tokens",
        path: events.path,
        template: events.template.clone(),
        content_type: events.content_type,
        token: Some(forged_token.clone()),
        vary: false,
        rejections: true,
    };
    // A new forgery on every request: nothing remembered helps, each costs an RSA verification.
    let forgeries = Scenario {
        name: "distinct forgeries",
        token: Some(forged_token),
        vary: true,
        template: events.template.clone(),
        ..forged
    };

    let ceiling = start_ceiling(&http).await;
    let mut rows = Vec::new();

    fixture.vars.insert("DATABASE_URL", fixture.sqlite_url());
    fixture
        .vars
        .insert("IPGUARD_ADMIN_TOKEN", ADMIN_TOKEN.to_owned());
    let sqlite_scenarios: Vec<(&str, &Scenario, &str)> = vec![
        (
            "outbound",
            &outbound,
            "durable outbound-message ACKs, SQLite",
        ),
        (
            "events",
            &events,
            "verified JWT events (RS256, one token), SQLite",
        ),
        (
            "forged",
            &forged,
            "forged-token flood, one token (bad signature → 401)",
        ),
        (
            "forgeries",
            &forgeries,
            "forged-token flood, every token new (→ 401)",
        ),
    ];
    let mut measured: HashMap<&str, Rounds> = HashMap::new();
    if sqlite_scenarios.iter().any(|(key, ..)| args.runs(key)) {
        let (sqlite, _) = start_ipguard(&fixture.vars, &http).await;
        wait_settled(&store_for(&fixture.vars).await, Duration::from_millis(500)).await;
        for (i, (key, scenario, label)) in sqlite_scenarios.iter().enumerate() {
            if args.runs(key) {
                let refused_before = bad_signatures(&http, &sqlite).await;
                let rounds = measure(scenario, &ceiling, &sqlite, &fixture, &args, i * 10).await;
                if scenario.rejections {
                    // Proof that the flood measured the rejection it names.
                    let refused = bad_signatures(&http, &sqlite).await - refused_before;
                    let sent: u64 = rounds.server.iter().map(|r| r.requests).sum();
                    assert!(
                        refused >= sent,
                        "{key}: {sent} requests but only {refused} bad_signature rejections"
                    );
                }
                rows.push(rounds.row(label));
                measured.insert(key, rounds);
            }
        }
    }

    let mut _schema = None;
    if args.runs("postgres") {
        match ipguard::store::testing::PgSchema::create().await {
            Some(schema) => {
                fixture.vars.insert("DATABASE_URL", schema.url());
                let (server, _) = start_ipguard(&fixture.vars, &http).await;
                wait_settled(&store_for(&fixture.vars).await, Duration::from_millis(500)).await;
                let pg = measure(&outbound, &ceiling, &server, &fixture, &args, 50).await;
                rows.push(pg.row("durable outbound-message ACKs, PostgreSQL"));
                measured.insert("postgres", pg);
                _schema = Some(schema);
            }
            None => println!("PostgreSQL rows SKIPPED: set IPGUARD_TEST_DATABASE_URL"),
        }
    }

    println!(
        "\n| scenario | ceiling (median) | ipguard (median) | ratio median (min–max) | ipguard p50 | ipguard p99 (worst round) |"
    );
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        println!("{row}");
    }
    println!();
    verdicts(&measured);
}

/// One line per target the scenarios run could judge.
fn verdicts(measured: &HashMap<&str, Rounds>) {
    if let Some(acks) = measured.get("outbound") {
        let (ratio, p99) = (acks.median_ratio(), acks.p99_ms());
        verdict(
            ratio >= 0.5 && p99 <= 20.0,
            format!(
                "durable ACKs on SQLite ≥ 0.50 of the ceiling with p99 ≤ 20 ms: {ratio:.2}, p99 {p99:.1} ms"
            ),
        );
        match measured.get("postgres") {
            Some(pg) => {
                let of_sqlite = pg.median_ratio() / ratio;
                verdict(
                    of_sqlite >= 0.5,
                    format!("PostgreSQL ACKs ≥ 0.50 of SQLite's: {of_sqlite:.2}"),
                );
            }
            None => println!(
                "SKIPPED PostgreSQL ≥ 0.50 of SQLite (not run, or no IPGUARD_TEST_DATABASE_URL)"
            ),
        }
    }
    if let Some(events) = measured.get("events") {
        let v = events.median_ratio();
        verdict(
            v >= 0.25,
            format!("verified JWT events ≥ 0.25 of the ceiling: {v:.2}"),
        );
    }
    if let Some(forged) = measured.get("forged") {
        let f = forged.median_ratio();
        verdict(
            f >= 0.5,
            format!("forged-token floods ≥ 0.50 of the ceiling: {f:.2}"),
        );
    }
    if let Some(forgeries) = measured.get("forgeries") {
        println!(
            "INFO   distinct forgeries (no target: one RSA verification each): {:.2} of the ceiling",
            forgeries.median_ratio()
        );
    }
}
