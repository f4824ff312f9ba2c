//! The `ipguard` commands (SPEC §4). Each returns its process exit code; `main.rs` only parses
//! arguments and dispatches.

pub mod check;
pub mod demo;
pub mod render;

use std::io::IsTerminal;
use std::path::Path;

use crate::config::{Config, Needs};
use crate::reconcile::run::{Outcome, Run, RunEvent, RunReport};
use crate::salesforce::client::RetryPolicy;
use crate::wiring;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_DRIFT: u8 = 2;
pub const EXIT_PLANNED: u8 = 2;
pub const EXIT_LOCKED_OUT: u8 = 3;

fn load(needs: Needs) -> Option<Config> {
    match Config::from_env(needs) {
        Ok(config) => Some(config),
        Err(e) => {
            eprintln!("ipguard: configuration is not usable:\n{e}");
            None
        }
    }
}

/// `ipguard ranges [--json]`
pub async fn ranges(json: bool) -> u8 {
    let Some(config) = load(Needs::sources()) else {
        return EXIT_ERROR;
    };
    ranges_with(&config, json).await
}

pub async fn ranges_with(config: &Config, json: bool) -> u8 {
    let http = match wiring::http_client() {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let sources = match wiring::sources(config, &http).resolve().await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let desired = crate::ranges::desired_ranges(&sources);
    if json {
        let texts: Vec<String> = sources.iter().map(|s| s.net.to_string()).collect();
        let doc = serde_json::json!({ "sources": texts, "ranges": desired });
        println!("{doc}");
    } else {
        println!("Sources:");
        for s in &sources {
            println!("  {}  ({})", s.net, s.label);
        }
        println!("Desired login IP ranges:");
        for r in &desired {
            println!("  {}", render::range_line(r));
        }
    }
    EXIT_OK
}

/// `ipguard plan [--profile P]… [--json]`
pub async fn plan(only: &[String], json: bool) -> u8 {
    let Some(config) = load(Needs::salesforce()) else {
        return EXIT_ERROR;
    };
    let http = match wiring::http_client() {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let (client, names) = match (
        wiring::metadata_client(&config, &http, RetryPolicy::default()),
        wiring::profile_names(&config, only),
    ) {
        (Ok(c), Ok(n)) => (c, n),
        (Err(e), _) => return fail(e),
        (_, Err(e)) => return fail(e),
    };
    let sources = wiring::sources(&config, &http);
    let settings = wiring::run_settings(&config, false);
    let run = Run {
        client: &client,
        sources: &sources,
        settings: &settings,
        profiles: &names,
        observe: &|_| {},
        journal: &crate::reconcile::run::NoJournal,
    };
    match run.plan().await {
        Ok((_, plan)) => {
            if json {
                println!("{}", serde_json::to_string(&plan).unwrap_or_default());
            } else {
                print!("{}", render::plan_text(&plan));
            }
            if plan.drift { EXIT_DRIFT } else { EXIT_OK }
        }
        Err((outcome, message)) => {
            eprintln!("ipguard plan: {outcome}: {message}");
            EXIT_ERROR
        }
    }
}

/// `ipguard apply [--check-only] [--profile P]…`
pub async fn apply(only: &[String], check_only: bool) -> u8 {
    let Some(config) = load(Needs::salesforce()) else {
        return EXIT_ERROR;
    };
    let progress = std::io::stderr().is_terminal();
    let report = match apply_with(&config, only, check_only, progress).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    print_report(&report);
    exit_code(report.outcome)
}

/// One reconcile with the given configuration; progress goes to stderr when asked.
pub async fn apply_with(
    config: &Config,
    only: &[String],
    check_only: bool,
    progress: bool,
) -> Result<RunReport, u8> {
    let http = wiring::http_client().map_err(fail)?;
    let client = wiring::metadata_client(config, &http, RetryPolicy::default()).map_err(fail)?;
    let names = wiring::profile_names(config, only).map_err(fail)?;
    let sources = wiring::sources(config, &http);
    let settings = wiring::run_settings(config, check_only);
    let observe = move |event: &RunEvent<'_>| {
        if progress {
            narrate(event);
        }
    };
    let run = Run {
        client: &client,
        sources: &sources,
        settings: &settings,
        profiles: &names,
        observe: &observe,
        journal: &crate::reconcile::run::NoJournal,
    };
    Ok(run.execute().await)
}

/// One line per run step, for people watching a terminal.
pub fn narrate(event: &RunEvent<'_>) {
    match event {
        RunEvent::Sources(sources) => eprintln!("• sources: {} IP/CIDR entries", sources.len()),
        RunEvent::Desired(ranges) => eprintln!("• desired: {} range(s)", ranges.len()),
        RunEvent::Read(records) => eprintln!("• read {} profile(s)", records.len()),
        RunEvent::Planned(plan) => eprint!("{}", render::plan_text(plan)),
        RunEvent::DeployStarted { id, check_only } => eprintln!(
            "• deploy {id} submitted{}",
            if *check_only {
                " (checkOnly: validate, change nothing)"
            } else {
                ""
            }
        ),
        RunEvent::DeployProgress(r) => eprintln!(
            "  … {} ({}/{} components)",
            r.status, r.components_deployed, r.components_total
        ),
        RunEvent::Verified(_) => eprintln!("• read back: profiles verified"),
    }
}

pub fn print_report(report: &RunReport) {
    println!("outcome: {}", report.outcome);
    if let Some(id) = &report.deploy_id {
        println!("deploy id: {id}");
    }
    for failure in &report.failures {
        println!("  failure: {failure}");
    }
    if let Some(error) = &report.error {
        println!("error: {error}");
    }
    println!("took {} ms", report.duration_ms);
}

pub fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::InSync | Outcome::Remediated => EXIT_OK,
        Outcome::Planned => EXIT_PLANNED,
        Outcome::Failed | Outcome::Unknown => EXIT_ERROR,
        Outcome::LockedOut => EXIT_LOCKED_OUT,
    }
}

/// `ipguard serve`: the web service, reconciler and resync timer.
pub async fn serve() -> u8 {
    let Some(config) = load(Needs::serve()) else {
        return EXIT_ERROR;
    };
    let bind = std::net::SocketAddr::from(([0, 0, 0, 0], config.port));
    let service = match crate::service::start(&config, bind, None, RetryPolicy::default()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    tracing::info!(port = service.port, "ipguard serving");
    match service.wait().await {
        Ok(()) => EXIT_OK,
        Err(e) => fail(e),
    }
}

/// `ipguard history [--limit N] [--json]`: recent runs from the store, newest first.
pub async fn history(limit: u32, json: bool) -> u8 {
    let Some(config) = load(Needs::default()) else {
        return EXIT_ERROR;
    };
    let store = match crate::store::Store::connect(&config.database).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let runs = match store.recent_runs(limit).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if json {
        let rows: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "trigger": r.trigger, "started_at": r.started_at,
                    "finished_at": r.finished_at, "outcome": r.outcome, "profiles": r.profiles,
                    "deploy_id": r.deploy_id, "error": r.error,
                    "attribution": r.plan.as_ref().and_then(|p| p.get("attribution")),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else if runs.is_empty() {
        println!("No runs recorded yet.");
    } else {
        for r in &runs {
            let blamed: Vec<String> = r
                .plan
                .as_ref()
                .and_then(|p| p["attribution"]["attributions"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .map(|a| {
                    format!(
                        "        {} changed by {} at {}",
                        a["profile"].as_str().unwrap_or_default(),
                        a["changed_by"].as_str().unwrap_or_default(),
                        a["changed_at"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            println!(
                "#{:<5} {}  {:<11} trigger {:<18} deploy {}{}",
                r.id,
                r.started_at.format("%Y-%m-%d %H:%M:%S"),
                r.outcome.as_deref().unwrap_or("running"),
                r.trigger,
                r.deploy_id.as_deref().unwrap_or("—"),
                r.error
                    .as_deref()
                    .map(|e| format!("\n        {e}"))
                    .unwrap_or_default()
            );
            for line in blamed {
                println!("{line}");
            }
        }
    }
    EXIT_OK
}

/// `ipguard keygen [--out DIR] [--common-name CN] [--days N]`
pub fn keygen(out: &Path, common_name: &str, days: u32) -> u8 {
    let material = match crate::keygen::generate(common_name, days) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    match crate::keygen::write(out, &material) {
        Ok((key, cert)) => {
            println!(
                "wrote {} (private key, mode 0600: set it as SALESFORCE_PRIVATE_KEY)",
                key.display()
            );
            println!(
                "wrote {} (upload this certificate to the External Client App's JWT bearer settings)",
                cert.display()
            );
            EXIT_OK
        }
        Err(e) => fail(e),
    }
}

fn fail(e: impl std::fmt::Display) -> u8 {
    eprintln!("ipguard: {e}");
    EXIT_ERROR
}
