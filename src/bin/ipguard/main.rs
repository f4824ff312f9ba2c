//! `ipguard` command line: parses arguments and dispatches to the library; `sim` and `demo`
//! run the simulated org (crates/ipguard-sim), which only the binary links.

mod demo;
mod demo_orgs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ipguard",
    version,
    about = "Keeps Salesforce profiles locked to the static outbound IPs of a Heroku Private Space"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The web service: webhooks, admin API, reconcile controller and resync timer.
    Serve,
    /// Print the desired login IP ranges from the configured sources.
    Ranges {
        #[arg(long)]
        json: bool,
    },
    /// Read the org and print the per-profile diff (exit 0 in sync, 2 drift, 1 error).
    Plan {
        /// Which org of IPGUARD_ORGS (required when there are several).
        #[arg(long, value_name = "KEY")]
        org: Option<String>,
        /// Only this managed profile (repeatable).
        #[arg(long = "profile", value_name = "P")]
        profiles: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Reconcile now (exit 0 in sync/remediated, 2 planned, 1 failed/unknown, 3 locked out).
    Apply {
        /// Which org of IPGUARD_ORGS (required when there are several).
        #[arg(long, value_name = "KEY")]
        org: Option<String>,
        /// Send a checkOnly deploy: Salesforce validates, nothing changes.
        #[arg(long)]
        check_only: bool,
        #[arg(long = "profile", value_name = "P")]
        profiles: Vec<String>,
        /// Deploy even when the target would not admit ipguard's own way in (its latest
        /// login's IP, the space's NAT IPs) to the integration user's profile — e.g. an
        /// operator on a laptop narrowing that profile to the space.
        #[arg(long)]
        allow_self_lockout: bool,
    },
    /// Recent runs from the store, newest first.
    History {
        /// Only this org of IPGUARD_ORGS (default: every org).
        #[arg(long, value_name = "KEY")]
        org: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Write an RSA key (ipguard.key) and self-signed certificate (ipguard.crt) for the app.
    Keygen {
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[arg(long, default_value = "ipguard")]
        common_name: String,
        #[arg(long, default_value_t = 730)]
        days: u32,
    },
    /// Doctor: config, Heroku NAT, token, profiles, deploy permission, IP policies; one line
    /// per check with its fix (exit 0 nothing failed, 1 otherwise).
    Check {
        /// Only this org of IPGUARD_ORGS (default: every org).
        #[arg(long, value_name = "KEY")]
        org: Option<String>,
        /// API name of the External Client App (or connected app) whose IP relaxation is read
        /// (default: IPGUARD_APP, else IPGuard).
        #[arg(long, value_name = "NAME")]
        app: Option<String>,
    },
    /// Run a standalone simulated Salesforce org.
    Sim {
        #[arg(long, default_value_t = 8089)]
        port: u16,
        /// Serve HTTPS with a generated certificate; the CA to trust is written next to the
        /// generated key and its path printed (`SIM_CA_CERT=…`).
        #[arg(long)]
        tls: bool,
    },
    /// The whole loop against an embedded simulated org, narrated; no account needed.
    Demo {
        /// Guard production and N−1 simulated sandboxes from one service (2–5).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
        orgs: u8,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo narrates on stdout; the service's own info logs would only interleave with it.
    let _flush_logs_on_exit = init_tracing(match cli.command {
        Command::Demo { .. } | Command::Check { .. } => "warn",
        _ => "info,actix_server=warn",
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ipguard: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Serve => ipguard::cli::serve().await,
            Command::Ranges { json } => ipguard::cli::ranges(json).await,
            Command::Plan {
                org,
                profiles,
                json,
            } => ipguard::cli::plan(org.as_deref(), &profiles, json).await,
            Command::Apply {
                org,
                check_only,
                profiles,
                allow_self_lockout,
            } => {
                ipguard::cli::apply(org.as_deref(), &profiles, check_only, allow_self_lockout).await
            }
            Command::History { org, limit, json } => {
                ipguard::cli::history(org.as_deref(), limit, json).await
            }
            Command::Keygen {
                out,
                common_name,
                days,
            } => ipguard::cli::keygen(&out, &common_name, days),
            Command::Check { app, org } => {
                ipguard::cli::check::check(app.as_deref(), org.as_deref()).await
            }
            Command::Sim { port, tls } => demo::sim(port, tls).await,
            Command::Demo { orgs } => demo::demo(usize::from(orgs)).await,
        }
    });
    ExitCode::from(code)
}

/// Logs go to stderr: JSON when not on a terminal (Heroku log drains), text otherwise. Off a
/// terminal, lines are written by a thread of their own through a buffer that is flushed
/// whenever no line is waiting: a busy server pays one write for many lines instead of one
/// each, and an idle one's lines still go out at once. None is dropped (a full queue makes
/// the logging task wait). The returned guard flushes what is left when `main` returns.
fn init_tracing(default_filter: &str) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use std::io::IsTerminal;
    // The documented default `info` (docs/contract.md §2); actix's lifecycle chatter is not the user's business.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::io::stderr().is_terminal() {
        builder.with_writer(std::io::stderr).init();
        return None;
    }
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("ipguard-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    builder.with_writer(writer).json().init();
    Some(guard)
}
