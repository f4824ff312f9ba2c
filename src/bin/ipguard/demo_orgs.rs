//! `ipguard demo --orgs N`: production and its sandboxes guarded by one service
//! (docs/contract.md §8), narrated.

use std::time::{Duration, Instant};

use ipguard::app::Application;
use ipguard::config::{Config, Needs};
use ipguard::ranges::LoginIpRange;
use ipguard::store::RunRecord;
use ipguard::trigger::Trigger;
use ipguard_sim::demo::DemoOrg;
use ipguard_sim::{SendRetry, SimOrg};

use super::demo::Narrator;

/// The sandboxes' keys, in order: `--orgs 3` guards prod, uat and dev1.
const SANDBOXES: &[&str] = &["uat", "dev1", "dev2", "dev3"];

/// Production plus `orgs - 1` sandboxes; `Ok(true)` when every org ends in sync.
pub async fn run(orgs: usize) -> Result<bool, String> {
    let n = Narrator(Instant::now());
    let keys = &SANDBOXES[..orgs.saturating_sub(1).min(SANDBOXES.len())];
    println!(
        "ipguard demo --orgs {} — production and its sandboxes from one service (no account needed)\n",
        keys.len() + 1
    );
    let mut demo = DemoOrg::start().await.map_err(|e| e.to_string())?;
    let sandboxes = demo.with_sandboxes(keys).await.map_err(|e| e.to_string())?;
    let config =
        Config::from_lookup(|name| demo.var(name), Needs::serve()).map_err(|e| e.to_string())?;
    let all: Vec<(&str, &SimOrg)> = std::iter::once(("prod", &demo.sim))
        .chain(keys.iter().copied().zip(&sandboxes))
        .collect();
    n.say(&format!(
        "IPGUARD_ORGS={}: one External Client App and one key pair; each org its own id, \
         login URL and integration username (IPGUARD_ORG_<KEY>_…).",
        demo.var("IPGUARD_ORGS").unwrap_or_default()
    ));
    for (key, sim) in &all {
        let user = demo
            .var(&format!(
                "IPGUARD_ORG_{}_SALESFORCE_USERNAME",
                key.to_ascii_uppercase()
            ))
            .or_else(|| demo.var("SALESFORCE_USERNAME"))
            .unwrap_or_default();
        n.detail(&format!(
            "{key}: org {} at {}, as {user}",
            sim.org_id(),
            sim.base_url()
        ));
    }
    n.detail("Production keeps the head office's block (policy merge); sandboxes hold exactly the space (IPGUARD_ORG_<KEY>_IPGUARD_POLICY=exact).");

    let (service, base) = super::demo::serve_locally(&config).await?;
    n.say(&format!(
        "`ipguard serve` is listening at {base}: one controller per org, each with its own lease."
    ));

    println!();
    n.say("Start-up runs, side by side:");
    for (key, sim) in &all {
        let run = finished_run(&service, &sim.org_id(), |_| true).await?;
        n.detail(&format!("{key}: {}", summary(&run)));
    }

    let (sandbox_key, sandbox) = all[all.len() - 1];
    let victim = "Custom%3A Support";
    println!();
    n.say(&format!(
        "In the `{sandbox_key}` sandbox an admin opens `{victim}` to every address; its flow sends an outbound message."
    ));
    let open = LoginIpRange::parse_existing("0.0.0.0", "255.255.255.255", None)
        .map_err(|e| e.to_string())?;
    let mut loosened = sandbox.login_ip_ranges(victim).unwrap_or_default();
    loosened.push(open);
    sandbox.set_login_ip_ranges(victim, loosened);
    let prod_deploys = demo.sim.count("deploy");
    let message = sandbox
        .send_outbound_message(
            &format!("{base}/salesforce/outbound-messages"),
            &["04l5g00000SNDBXAA4".to_owned()],
            SendRetry::default(),
        )
        .await;
    n.detail(&format!(
        "HTTP {}: routed by the OrganizationId it carries to `{sandbox_key}` alone.",
        message.last_status.unwrap_or_default()
    ));
    let run = finished_run(&service, &sandbox.org_id(), |r| {
        r.trigger.contains(Trigger::OutboundMessage)
    })
    .await?;
    n.say(&format!("`{sandbox_key}`: {}", summary(&run)));
    n.detail(&format!(
        "Production was not touched: {} deploy(s) there since the start-up run.",
        demo.sim.count("deploy") - prod_deploys
    ));

    println!();
    n.say("/status, every org at a glance:");
    let mut in_sync = true;
    for ((key, _), board) in all.iter().zip(&service.statuses) {
        let seen = board.snapshot();
        let synced = seen.profiles.iter().filter(|p| p.in_sync).count();
        in_sync &= !seen.profiles.is_empty() && synced == seen.profiles.len();
        n.detail(&format!(
            "{key}: {synced} of {} profiles in sync{}",
            seen.profiles.len(),
            if seen.leader {
                ", reconciled by this instance"
            } else {
                ""
            }
        ));
    }
    service.stop().await;
    drop(all);
    demo.sim.stop().await;
    for sandbox in sandboxes {
        sandbox.stop().await;
    }
    n.say(if in_sync {
        "Done: every org ends in sync."
    } else {
        "Done: NOT every org ended in sync."
    });
    Ok(in_sync)
}

/// The first finished run of the org with this store key that `which` accepts.
async fn finished_run(
    service: &Application,
    org_id: &str,
    which: impl Fn(&RunRecord) -> bool,
) -> Result<RunRecord, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = service
            .store
            .recent_runs_of(org_id, 20)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(run) = runs.iter().rev().find(|r| r.outcome.is_some() && which(r)) {
            return Ok(run.clone());
        }
        if Instant::now() > deadline {
            return Err(format!("no run of org {org_id} finished within 20 s"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn summary(run: &RunRecord) -> String {
    let outcome = run.outcome.map_or("running", |o| o.as_str());
    match &run.plan {
        Some(plan) => {
            let drifted = plan.profiles.iter().filter(|p| !p.in_sync).count();
            format!(
                "{outcome} ({drifted} of {} profiles fixed, run #{})",
                plan.profiles.len(),
                run.id
            )
        }
        None => format!("{outcome} (run #{})", run.id),
    }
}
