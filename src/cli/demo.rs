//! `ipguard demo` (the whole loop against an embedded simulated org, narrated) and
//! `ipguard sim` (a standalone simulated org).

use std::collections::HashMap;
use std::time::Instant;

use secrecy::ExposeSecret;

use super::{EXIT_ERROR, EXIT_OK, render};
use crate::config::{Config, Needs};
use crate::reconcile::run::{Outcome, RunEvent};
use crate::sim::{SimConfig, SimOrg};

const DEMO_CN: &str = "ipguard-demo";

/// Everything the demo needs: a running simulated org and a configuration pointing at it.
pub struct DemoOrg {
    pub sim: SimOrg,
    pub config: Config,
    pub variables: HashMap<&'static str, String>,
}

/// Starts a simulated org with a freshly generated key pair and builds the configuration an
/// operator would set as config vars (policy `exact`, so any loosening is reverted).
pub async fn start_demo_org() -> Result<DemoOrg, String> {
    let keys = crate::keygen::generate(DEMO_CN, 1).map_err(|e| e.to_string())?;
    let sim_config = SimConfig::new(keys.certificate_pem.clone());
    let profiles: Vec<String> = sim_config.profiles.iter().map(|(n, _)| n.clone()).collect();
    let (client_id, username) = (sim_config.client_id.clone(), sim_config.username.clone());
    let (space, token) = (
        sim_config.heroku.space.clone(),
        sim_config.heroku.api_token.clone(),
    );
    let sim = SimOrg::start(sim_config, 0)
        .await
        .map_err(|e| format!("cannot start the simulated org: {e}"))?;
    let base = sim.base_url();
    let variables: HashMap<&'static str, String> = HashMap::from([
        ("SALESFORCE_LOGIN_URL", base.clone()),
        ("SALESFORCE_CLIENT_ID", client_id),
        ("SALESFORCE_USERNAME", username),
        (
            "SALESFORCE_PRIVATE_KEY",
            keys.private_key_pem.expose_secret().to_owned(),
        ),
        ("SALESFORCE_ORG_ID", sim.org_id()),
        ("IPGUARD_PROFILES", profiles.join(",")),
        ("HEROKU_SPACE", space),
        ("HEROKU_API_TOKEN", token),
        ("HEROKU_API_URL", base),
        ("IPGUARD_POLICY", "exact".into()),
        ("IPGUARD_DEPLOY_TIMEOUT", "30s".into()),
    ]);
    let lookup = |name: &str| variables.get(name).cloned();
    let config = Config::from_lookup(lookup, Needs::salesforce()).map_err(|e| e.to_string())?;
    Ok(DemoOrg {
        sim,
        config,
        variables,
    })
}

/// `ipguard demo`: exit 0 when the org ends in sync.
pub async fn demo() -> u8 {
    let started = Instant::now();
    let say = |text: &str| println!("[{:>6.2}s] {text}", started.elapsed().as_secs_f64());
    println!(
        "ipguard demo — the whole loop against a simulated Salesforce org (no account needed)\n"
    );
    let demo = match start_demo_org().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ipguard demo: {e}");
            return EXIT_ERROR;
        }
    };
    say("Generated an RSA-2048 key and self-signed certificate (what `ipguard keygen` writes).");
    say(&format!(
        "Simulated org {} is listening at {} — the certificate is registered with its External Client App,",
        demo.sim.org_id(),
        demo.sim.base_url()
    ));
    say("and it also answers the Heroku Platform API for space `acme-space`.");
    say(&format!(
        "Guarding profiles: {} (policy exact: only the space's IPs may log in).",
        demo.config.profiles.join(", ")
    ));

    println!();
    say(
        "Step 1 — first reconcile: read the space's NAT IPs, read the profiles, deploy what differs.",
    );
    let http = match crate::wiring::http_client() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("ipguard demo: {e}");
            return EXIT_ERROR;
        }
    };
    // One client for every run, as the service keeps it: the session token is reused.
    let client = match crate::wiring::metadata_client(
        &demo.config,
        &http,
        crate::salesforce::client::RetryPolicy::default(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ipguard demo: {e}");
            return EXIT_ERROR;
        }
    };
    let ctx = (&demo, &http, &client);
    let Some(first) = reconcile(ctx, &say).await else {
        return EXIT_ERROR;
    };

    let victim = "Custom%3A Support";
    println!();
    say(&format!(
        "Step 2 — an admin loosens `{victim}` in Setup: its Login IP Ranges become 0.0.0.0 – 255.255.255.255."
    ));
    let open = crate::ranges::LoginIpRange::parse_existing("0.0.0.0", "255.255.255.255", None)
        .expect("a valid legacy range");
    demo.sim.set_login_ip_ranges(victim, vec![open]);
    say(
        "(In production a platform event or outbound message would wake ipguard; the periodic resync catches it regardless.)",
    );

    println!();
    say(
        "Step 3 — ipguard reconciles again: the drift is found, the full list is re-deployed and read back.",
    );
    let Some(second) = reconcile(ctx, &say).await else {
        return EXIT_ERROR;
    };

    println!();
    say("Step 4 — a last check: nothing should differ any more.");
    let Some(last) = reconcile(ctx, &say).await else {
        return EXIT_ERROR;
    };
    let calls = demo.sim.calls().len();
    demo.sim.stop().await;
    println!();
    say(&format!(
        "Done: runs ended {first}, {second}, {last}; {calls} calls reached the simulated org."
    ));
    if last == Outcome::InSync {
        say("The org ends in sync.");
        EXIT_OK
    } else {
        say("The org did NOT end in sync.");
        EXIT_ERROR
    }
}

async fn reconcile(
    (demo, http, client): (
        &DemoOrg,
        &reqwest::Client,
        &crate::salesforce::client::MetadataClient,
    ),
    say: &(dyn Fn(&str) + Sync),
) -> Option<Outcome> {
    let observe = |event: &RunEvent<'_>| match event {
        RunEvent::Sources(_) => {}
        RunEvent::Desired(ranges) => {
            let list: Vec<String> = ranges.iter().map(render::range_line).collect();
            say(&format!("  desired ranges: {}", list.join("; ")));
        }
        RunEvent::Read(records) => say(&format!(
            "  readMetadata: {} profile(s) read",
            records.len()
        )),
        RunEvent::Planned(plan) => {
            say("  plan:");
            for line in render::plan_text(plan).lines() {
                println!("           {line}");
            }
        }
        RunEvent::DeployStarted { id, .. } => say(&format!(
            "  deploy {id} submitted (one zip, every drifted profile)"
        )),
        RunEvent::DeployProgress(r) => say(&format!("  checkDeployStatus: {}", r.status)),
        RunEvent::Verified(_) => {
            say("  read back: every profile now holds exactly the desired ranges")
        }
    };
    let names = crate::wiring::profile_names(&demo.config, &[]).ok()?;
    let sources = crate::wiring::sources(&demo.config, http);
    let settings = crate::wiring::run_settings(&demo.config, false);
    let run = crate::reconcile::run::Run {
        client,
        sources: &sources,
        settings: &settings,
        profiles: &names,
        observe: &observe,
        journal: &crate::reconcile::run::NoJournal,
    };
    let report = run.execute().await;
    say(&format!(
        "  outcome: {} in {} ms{}",
        report.outcome,
        report.duration_ms,
        report
            .error
            .as_deref()
            .map(|e| format!(" — {e}"))
            .unwrap_or_default()
    ));
    Some(report.outcome)
}

/// `ipguard sim --port N`: a standalone simulated org with a generated key pair.
pub async fn sim(port: u16) -> u8 {
    let keys = match crate::keygen::generate("ipguard-sim", 30) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("ipguard sim: {e}");
            return EXIT_ERROR;
        }
    };
    let dir = std::env::temp_dir().join(format!("ipguard-sim-{}", std::process::id()));
    let key_path = match crate::keygen::write(&dir, &keys) {
        Ok((key, _)) => key,
        Err(e) => {
            eprintln!("ipguard sim: {e}");
            return EXIT_ERROR;
        }
    };
    let config = SimConfig::new(keys.certificate_pem.clone());
    println!("# point ipguard at this simulated org:");
    println!("export SALESFORCE_LOGIN_URL=http://127.0.0.1:{port}");
    println!("export HEROKU_API_URL=http://127.0.0.1:{port}");
    println!("export SALESFORCE_CLIENT_ID='{}'", config.client_id);
    println!("export SALESFORCE_USERNAME='{}'", config.username);
    println!(
        "export SALESFORCE_PRIVATE_KEY_FILE='{}'",
        key_path.display()
    );
    println!("export SALESFORCE_ORG_ID='{}'", config.org_id);
    println!("export HEROKU_SPACE='{}'", config.heroku.space);
    println!("export HEROKU_API_TOKEN='{}'", config.heroku.api_token);
    let profiles: Vec<&str> = config.profiles.iter().map(|(n, _)| n.as_str()).collect();
    println!("export IPGUARD_PROFILES='{}'", profiles.join(","));
    match crate::sim::run_standalone(config, port).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("ipguard sim: {e}");
            EXIT_ERROR
        }
    }
}
