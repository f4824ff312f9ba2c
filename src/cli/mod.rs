//! The `ipguard` commands (docs/contract.md §4). Each returns its process exit code; the binary
//! (src/bin/ipguard/) parses arguments and dispatches, and holds `sim` and `demo` itself: they
//! run the simulated org (crates/ipguard-sim), which the service library does not depend on.

pub mod check;
mod narrate;
pub mod render;

use std::io::IsTerminal;
use std::path::Path;

use std::time::Duration;

use crate::app::{self, Application, Parts};
use crate::config::{Config, DatabaseUrl, Needs, OrgSettings};
use crate::reconcile::drive::{self, Driven, RecordedRun, Tenure};
use crate::reconcile::plan::Ownership;
use crate::reconcile::run::{Outcome, Run, RunReport};
use crate::salesforce::client::RetryPolicy;
use crate::salesforce::metadata::DeployResult;
use crate::store::{NewHint, RunId, Store, StoreError};
use crate::trigger::Trigger;

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
    let http = match app::parts::http_client() {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    // The shared sources, and an org's own when there is only one org to speak of.
    let own = match config.org(None) {
        Ok(org) => org.clone(),
        Err(_) => OrgSettings {
            source_ips: Vec::new(),
            ..config.orgs[0].clone()
        },
    };
    let sources = match app::parts::sources(config, &own, &http).resolve().await {
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

/// `ipguard plan [--org KEY] [--profile P]… [--json]`
pub async fn plan(org: Option<&str>, only: &[String], json: bool) -> u8 {
    let Some(config) = load(Needs::salesforce()) else {
        return EXIT_ERROR;
    };
    let org = match config.org(org) {
        Ok(org) => org,
        Err(e) => return fail(e),
    };
    let parts = match Parts::build(&config, org, only, RetryPolicy::default()) {
        Ok(parts) => parts,
        Err(e) => return fail(e),
    };
    let run = parts.run();
    let ownership = plan_ownership(&config, &parts.org_key).await;
    match run.plan(&ownership).await {
        Ok((_, plan)) => {
            if json {
                let mut doc = serde_json::to_value(&plan).unwrap_or_default();
                if let (Some(key), Some(fields)) = (&org.key, doc.as_object_mut()) {
                    fields.insert("org".into(), key.as_str().into());
                }
                println!("{doc}");
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

/// What the store recorded as ipguard's own, for `plan`: a missing store (a fresh install, a
/// one-off dyno's empty disk) means no history, so `ipguard:` descriptions count.
async fn plan_ownership(config: &Config, org: &str) -> Ownership {
    match Store::open_existing(&config.database).await {
        Ok(store) => match drive::load_ownership(&store, org).await {
            Ok(ownership) => ownership,
            Err(e) => {
                eprintln!(
                    "ipguard plan: cannot read the owned ranges ({e}); `ipguard:` descriptions count as ipguard's own"
                );
                Ownership::default()
            }
        },
        Err(StoreError::Missing(_)) => Ownership::default(),
        Err(e) => {
            eprintln!(
                "ipguard plan: no store ({e}); `ipguard:` descriptions count as ipguard's own"
            );
            Ownership::default()
        }
    }
}

/// How often a waiting `apply` looks at the lease it waits for.
const LEASE_RECHECK: Duration = Duration::from_millis(500);

/// `ipguard apply [--check-only] [--profile P]… [--allow-self-lockout]`
pub async fn apply(
    org: Option<&str>,
    only: &[String],
    check_only: bool,
    allow_self_lockout: bool,
) -> u8 {
    let Some(config) = load(Needs::salesforce()) else {
        return EXIT_ERROR;
    };
    let progress = std::io::stderr().is_terminal();
    let options = ApplyOptions {
        check_only,
        allow_self_lockout,
        progress,
    };
    let org = match config.org(org) {
        Ok(org) => org,
        Err(e) => return fail(e),
    };
    let applied = match apply_with(&config, org, only, options).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    print_report(&applied.report);
    if let Some(run) = applied.run {
        println!("recorded as run #{run} (`ipguard history`)");
    }
    exit_code(applied.report.outcome)
}

/// How `apply` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// `--check-only`.
    pub check_only: bool,
    /// `--allow-self-lockout`: the interlock's one deliberate override (docs/contract.md §5 rule 10).
    pub allow_self_lockout: bool,
    /// Narrate the steps on stderr.
    pub progress: bool,
}

/// What `apply` did: the run's report and, once recorded, its id.
#[derive(Debug)]
pub struct Applied {
    pub run: Option<RunId>,
    pub report: RunReport,
}

/// One reconcile now, through the store like the service's runs (docs/contract.md §5 rule 12): it takes
/// the org's lease (waiting while another `apply` holds it), first finishes a deploy an
/// earlier run left in flight, records its deploy before polling and its outcome with trigger
/// `cli`. While `ipguard serve` holds the lease, the service runs it instead (a `cli` hint) and
/// this waits for that run's outcome; flags the service cannot honour make that an error that
/// names the holder. Progress goes to stderr when asked.
pub async fn apply_with(
    config: &Config,
    org: &OrgSettings,
    only: &[String],
    options: ApplyOptions,
) -> Result<Applied, u8> {
    let ApplyOptions {
        check_only,
        allow_self_lockout,
        progress,
    } = options;
    let mut parts = Parts::build(config, org, only, RetryPolicy::default()).map_err(fail)?;
    parts.settings.check_only |= check_only;
    parts.settings.allow_self_lockout = allow_self_lockout;
    let store = Store::connect(&config.database).await.map_err(fail)?;
    let org = parts.org_key.clone();
    let holder = app::lease_holder("apply");
    let ttl = crate::reconcile::controller::ControllerTiming::new(
        config.debounce,
        config.resync_interval,
    )
    .lease_ttl;
    let run = parts.run();
    let mut said_waiting = false;
    let tenure = loop {
        if let Some(tenure) = Tenure::acquire(&store, &org, &holder, ttl)
            .await
            .map_err(fail)?
        {
            break tenure;
        }
        let Some(state) = store.lease(&org).await.map_err(fail)? else {
            continue;
        };
        let held_by = &state.lease.holder;
        if held_by.starts_with("serve@") {
            if check_only || allow_self_lockout || !only.is_empty() {
                eprintln!(
                    "ipguard apply: `ipguard serve` ({held_by}) holds the lease of org {org} and reconciles it \
                     itself; it cannot run --check-only, --profile or --allow-self-lockout. Run `ipguard apply` without them to \
                     have the service reconcile now, or stop the service first."
                );
                return Err(EXIT_ERROR);
            }
            return hand_to_service(&store, &org, held_by, config.deploy_timeout).await;
        }
        if !said_waiting {
            eprintln!(
                "ipguard apply: waiting for the lease of org {org}, held by {held_by} (free in at most {})",
                humantime::format_duration(Duration::from_secs(state.expires_in.as_secs() + 1))
            );
            said_waiting = true;
        }
        // A holder that finishes releases its lease early: look again soon rather than only
        // when it would have expired.
        tokio::time::sleep((state.expires_in + Duration::from_millis(50)).min(LEASE_RECHECK)).await;
    };
    tenure.begin().await;
    let result = apply_under(&run, &tenure, &store, progress).await;
    tenure.release().await;
    result
}

/// Finishes a deploy left in flight, then the run itself.
async fn apply_under(
    run: &Run<'_>,
    tenure: &Tenure<'_>,
    store: &Store,
    progress: bool,
) -> Result<Applied, u8> {
    let mut on_poll = |result: &DeployResult| {
        if progress {
            eprintln!("{}", narrate::poll(result));
        }
    };
    if let Some(in_flight) = store
        .in_flight_deploy(tenure.org_id())
        .await
        .map_err(fail)?
    {
        eprintln!(
            "• finishing deploy {} that run #{} submitted at {}",
            in_flight.deploy_id, in_flight.run_id, in_flight.submitted_at
        );
        match drive::resume_recorded(run, tenure, &in_flight, &mut on_poll).await {
            Driven::Recorded(id, report) => {
                eprintln!("  run #{id} ended {}", report.outcome)
            }
            Driven::NotStarted(e) => return Err(fail(e)),
            Driven::LeaseLost(e) => return Err(fail(e)),
        }
    }
    let steps = async {
        let recorded = RecordedRun::start(run, tenure, &Trigger::Cli.into(), &[]).await?;
        let prepared = recorded.prepare().await?;
        if progress {
            eprint!("{}", narrate::found(&prepared.report));
        }
        let submitted = recorded.submit(prepared).await?;
        if progress {
            eprintln!("{}", narrate::submitted(&submitted));
        }
        Ok::<_, Driven>(recorded.finish(submitted, &mut on_poll).await)
    };
    let driven = match tenure.renewing(steps).await {
        Ok(driven) => {
            if progress && let Driven::Recorded(_, report) = &driven {
                eprint!("{}", narrate::verified(report));
            }
            driven
        }
        // Ended before any deploy: what it found is in the report.
        Err(driven) => {
            if progress && let Driven::Recorded(_, report) = &driven {
                eprint!("{}", narrate::found(report));
            }
            driven
        }
    };
    match driven {
        Driven::Recorded(id, report) => Ok(Applied {
            run: Some(id),
            report: *report,
        }),
        Driven::NotStarted(e) => Err(fail(format!(
            "cannot record the run, so it did not start: {e}"
        ))),
        Driven::LeaseLost(e) => Err(fail(e)),
    }
}

/// The service holds the lease: ask it to run (a `cli` hint) and wait for that run's outcome.
async fn hand_to_service(
    store: &Store,
    org: &str,
    held_by: &str,
    deploy_timeout: Duration,
) -> Result<Applied, u8> {
    let hint = NewHint {
        org_id: org.to_owned(),
        trigger: Trigger::Cli,
        detail: None,
    };
    let hint_id = store.enqueue_hint(&hint).await.map_err(fail)?;
    eprintln!(
        "ipguard apply: `ipguard serve` ({held_by}) holds the lease of org {org}; it runs this reconcile now"
    );
    let deadline = tokio::time::Instant::now() + deploy_timeout + Duration::from_secs(120);
    let mut run_id = None;
    while tokio::time::Instant::now() < deadline {
        if run_id.is_none() {
            run_id = store.run_for_hint(hint_id).await.map_err(fail)?;
            if let Some(id) = run_id {
                eprintln!("• the service started run #{id}");
            }
        }
        if let Some(id) = run_id
            && let Some(record) = store.run(id).await.map_err(fail)?
            && let Some(outcome) = record.outcome
        {
            let mut report = RunReport::empty();
            report.outcome = outcome;
            report.error = record.error;
            report.failures = record.failures;
            report.deploy_id = record
                .deploy_id
                .and_then(|d| crate::salesforce::metadata::DeployId::parse(&d).ok());
            report.duration_ms = record
                .finished_at
                .map(|end| (end - record.started_at).num_milliseconds().max(0) as u128)
                .unwrap_or_default();
            return Ok(Applied {
                run: Some(id),
                report,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(fail(format!(
        "the service has not finished the run for hint {hint_id} in time; follow it with `ipguard history`"
    )))
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
    let service = match Application::build(&config).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    tracing::info!(port = service.port, "ipguard serving");
    match service.run_until_stopped().await {
        Ok(()) => EXIT_OK,
        Err(e) => fail(e),
    }
}

/// `ipguard history [--limit N] [--json]`: recent runs from the store, newest first.
pub async fn history(org: Option<&str>, limit: u32, json: bool) -> u8 {
    let Some(config) = load(Needs::default()) else {
        return EXIT_ERROR;
    };
    let orgs = match config.orgs_named(org) {
        Ok(orgs) => orgs,
        Err(e) => return fail(e),
    };
    // Runs are filed under the org's store key; name them by their IPGUARD_ORGS key.
    let names: Vec<(String, &str)> = orgs.iter().map(|o| (app::org_key(o), o.name())).collect();
    let many = config.orgs.len() > 1;
    let store = match Store::open_existing(&config.database).await {
        Ok(s) => s,
        Err(e @ crate::store::StoreError::Missing(_)) => {
            eprintln!(
                "ipguard history: {e}.\n{}",
                where_runs_are(&config.database)
            );
            return EXIT_ERROR;
        }
        Err(e) => return fail(e),
    };
    let runs = if org.is_some() {
        store.recent_runs_of(&names[0].0, limit).await
    } else {
        store.recent_runs(limit).await
    };
    let runs = match runs {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let org_of = |run: &crate::store::RunRecord| {
        names
            .iter()
            .find(|(key, _)| *key == run.org_id)
            .map_or(run.org_id.clone(), |(_, name)| (*name).to_owned())
    };
    if json {
        let rows: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "org": org_of(r), "trigger": r.trigger, "started_at": r.started_at,
                    "finished_at": r.finished_at, "outcome": r.outcome, "profiles": r.profiles,
                    "deploy_id": r.deploy_id, "error": r.error,
                    "attribution": r.plan.as_ref().and_then(|p| p.attribution.as_ref()),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else if runs.is_empty() {
        println!("No runs recorded yet.");
        if one_off_dyno() && matches!(config.database, DatabaseUrl::Sqlite { .. }) {
            println!("{}", where_runs_are(&config.database));
        }
    } else {
        for r in &runs {
            let blamed: Vec<String> = r
                .plan
                .iter()
                .flat_map(|p| &p.attribution)
                .flat_map(|a| &a.attributions)
                .map(|a| {
                    format!(
                        "        {} changed by {} at {}",
                        a.profile,
                        a.changed_by,
                        // as in `history --json` (chrono's serde form)
                        a.changed_at
                            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    )
                })
                .collect();
            let org = if many {
                format!("{}  ", org_of(r))
            } else {
                String::new()
            };
            println!(
                "#{:<5} {org}{}  {:<11} trigger {:<18} deploy {}{}",
                r.id,
                r.started_at.format("%Y-%m-%d %H:%M:%S"),
                r.outcome.map_or("running", Outcome::as_str),
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

/// Where a process's runs are recorded, for an operator looking in the wrong place.
fn where_runs_are(database: &DatabaseUrl) -> String {
    match database {
        DatabaseUrl::Sqlite { path } => format!(
            "Runs are recorded in the store of the process that ran them: here DATABASE_URL is the \
             SQLite file {}, on this machine's own disk. On Heroku every dyno has its own \
             ephemeral disk, so a one-off dyno (`heroku run`) never sees the web dyno's runs: \
             set DATABASE_URL to Heroku Postgres to share the history, or read it on the web \
             dyno's /status page.",
            path.display()
        ),
        DatabaseUrl::Postgres { .. } => "DATABASE_URL points at PostgreSQL.".to_owned(),
    }
}

/// Heroku names one-off dynos `run.N`.
fn one_off_dyno() -> bool {
    std::env::var("DYNO").is_ok_and(|d| d.starts_with("run."))
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
