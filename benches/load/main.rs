//! Load figures for the real `ipguard serve` process against the simulated org, on this machine,
//! in one run, each next to its target (issue 6) and to an empty actix-web handler's throughput
//! (the ceiling: the same HTTP stack and worker count doing no work).
//!
//! cargo bench --bench load [-- --requests N] [--concurrency C] [--samples S] [--no-burst]
//!
//! `--samples 0` skips the latency scenarios; RUST_LOG, if set, is passed to the server (by
//! default it logs at `info`, one line a request, as in production).
//!
//! The server is the release binary, started as a child process so its RSS is its own; the
//! client (reqwest), the simulated org and the ceiling share the same two cores, so compare the
//! ratios within one run, not absolute figures across machines. The PostgreSQL rows run when
//! IPGUARD_TEST_DATABASE_URL is set (a schema of their own) and say SKIPPED otherwise.

use std::sync::Arc;
use std::time::Duration;

mod org;
mod processes;
mod report;
mod scenarios;
mod traffic;

use org::{fixture, notification_id};
use processes::{serve_ceiling, start_ceiling};
use report::Report;
use scenarios::run_store;
use traffic::blast;

const ISSUER: &str = "https://acme.my.salesforce.com";
const AUDIENCE: &str = "https://ipguard.example";
/// The documented default debounce (docs/contract.md §2): the burst and latency targets are stated against it.
const DEBOUNCE: Duration = Duration::from_secs(2);
const CEILING_FLAG: &str = "--ceiling-server";

/// What every scenario shares: the client, the arguments and the ceiling's rate.
struct Bench {
    http: reqwest::Client,
    args: Args,
    ceiling: f64,
}

/// `cargo bench --bench load -- [--requests N] [--concurrency C] [--samples S] [--no-burst]`.
#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Latency samples (0 skips the latency scenarios).
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// `--no-burst` skips the burst scenario.
    #[arg(long = "no-burst", action = clap::ArgAction::SetFalse)]
    burst: bool,
    /// What `cargo bench` passes to a harness-less bench.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    if std::env::args().any(|a| a == CEILING_FLAG) {
        serve_ceiling().expect("ceiling server");
        return;
    }
    let args = <Args as clap::Parser>::parse();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(measure(args));
}

async fn measure(args: Args) {
    ipguard::app::parts::install_crypto_provider();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .expect("client");
    let mut fixture = fixture().await;
    let mut report = Report::default();
    println!(
        "ipguard load: {} requests a scenario, {} connections, {} latency samples, {} cores",
        args.requests,
        args.concurrency,
        args.samples,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // The ceiling: the same POSTs (outbound-message bodies) to an empty handler.
    let ceiling_server = start_ceiling(&http).await;
    let ceiling_idle = ceiling_server.memory().0;
    let org_id = fixture.sim.org_id();
    let body = fixture
        .sim
        .outbound_message_body(&org_id, &[notification_id(0)]);
    let url = format!("{}/salesforce/outbound-messages", ceiling_server.base);
    let client = http.clone();
    let ceiling = blast(
        args.requests,
        args.concurrency,
        200,
        Arc::new(move |_| {
            client
                .post(&url)
                .header("Content-Type", "text/xml; charset=utf-8")
                .body(body.clone())
        }),
    )
    .await;
    report.add(
        "ceiling: empty actix-web handler, same bodies",
        format!(
            "{}; RSS {ceiling_idle:.1} MiB idle, {:.1} MiB peak",
            ceiling.summary(None),
            ceiling_server.memory().1
        ),
        "(reference)",
        None,
    );
    let bench = Bench {
        ceiling: ceiling.rate(),
        http,
        args,
    };
    drop(ceiling_server);

    let sqlite = fixture.sqlite_url();
    run_store(&bench, &mut report, "SQLite", &mut fixture, sqlite, 0).await;

    match ipguard::store::testing::PgSchema::create().await {
        Some(schema) => {
            run_store(
                &bench,
                &mut report,
                "PostgreSQL",
                &mut fixture,
                schema.url(),
                100_000_000,
            )
            .await;
        }
        None => println!("  PostgreSQL rows SKIPPED: set IPGUARD_TEST_DATABASE_URL"),
    }
    report.print_markdown();
    let missed = report.rows.iter().filter(|r| r.met == Some(false)).count();
    println!("\n{missed} target(s) missed");
}
