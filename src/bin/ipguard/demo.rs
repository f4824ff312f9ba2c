//! `ipguard demo` (the whole product against an embedded simulated org, narrated) and
//! `ipguard sim` (a standalone simulated org).

use std::time::{Duration, Instant};

use ipguard::app::{Application, Overrides};
use ipguard::cli::{EXIT_ERROR, EXIT_OK};
use ipguard::config::{Config, Needs};
use ipguard::keygen;
use ipguard::ranges::LoginIpRange;
use ipguard::reconcile::plan::{Owned, plan_profile};
use ipguard::store::RunRecord;
use ipguard_sim::demo::{DemoOrg, EVENTS_AUDIENCE, EVENTS_ISSUER, KEEP_WITHIN};
use ipguard_sim::{EventClaims, SendRetry, SimConfig, TlsMaterial};

/// `ipguard demo [--orgs N]`: exit 0 when every org ends in sync.
pub async fn demo(orgs: usize) -> u8 {
    let ran = if orgs > 1 {
        super::demo_orgs::run(orgs).await
    } else {
        run_demo().await
    };
    match ran {
        Ok(true) => EXIT_OK,
        Ok(false) => EXIT_ERROR,
        Err(e) => {
            eprintln!("ipguard demo: {e}");
            EXIT_ERROR
        }
    }
}

pub(crate) struct Narrator(pub(crate) Instant);

impl Narrator {
    pub(crate) fn say(&self, text: &str) {
        println!("[{:>5.2}s] {text}", self.0.elapsed().as_secs_f64());
    }

    pub(crate) fn detail(&self, text: &str) {
        println!("         {text}");
    }
}

async fn run_demo() -> Result<bool, String> {
    let n = Narrator(Instant::now());
    println!(
        "ipguard demo — the whole product against a simulated Salesforce org (no account needed)\n"
    );
    let demo = DemoOrg::start().await.map_err(|e| e.to_string())?;
    let config =
        Config::from_lookup(|name| demo.var(name), Needs::serve()).map_err(|e| e.to_string())?;
    n.say(&format!(
        "A simulated Salesforce org {} is up at {}: OAuth, Metadata API, Heroku Platform API.",
        demo.sim.org_id(),
        demo.sim.base_url()
    ));
    n.detail("ipguard's certificate (what `ipguard keygen` writes) is registered with its External Client App.");
    n.detail(&format!(
        "Guarded profiles: {} — policy merge (the default): the Private Space's IPs, plus \
         others' ranges inside IPGUARD_KEEP_WITHIN={KEEP_WITHIN} (the head office).",
        config.orgs[0]
            .profiles
            .entries()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let (service, base) = serve_locally(&config).await?;
    n.say(&format!(
        "`ipguard serve` is listening at {base} (SQLite store, webhooks, reconciler)."
    ));

    println!();
    n.say("Start-up run: read the space's NAT IPs, read every profile and the guarded side door, deploy what differs, read back.");
    n.detail("IPGUARD_SIDE_DOORS=every-request: the org has \"Enforce login IP ranges on every request\" off, so ranges would only be checked at login.");
    let first = wait_for_run(&service, 1).await?;
    narrate_run(&n, &first);

    let victim = "Custom%3A Support";
    println!();
    n.say(&format!(
        "An admin loosens `{victim}` in Setup: 0.0.0.0 – 255.255.255.255 is added beside the space's IPs."
    ));
    let open = LoginIpRange::parse_existing("0.0.0.0", "255.255.255.255", None)
        .map_err(|e| e.to_string())?;
    let mut loosened = demo.sim.login_ip_ranges(victim).unwrap_or_default();
    loosened.push(open);
    demo.sim.set_login_ip_ranges(victim, loosened);

    let claims = EventClaims::new(
        EVENTS_ISSUER,
        EVENTS_AUDIENCE,
        "integration@ipguard.example",
    );
    let event = demo
        .sim
        .send_platform_events(
            &format!("{base}/salesforce/events"),
            &[victim.to_owned()],
            &claims,
            SendRetry::default(),
        )
        .await;
    n.say(&format!(
        "The org's Apex monitor publishes IPGuard_Profile_Change__e; its callout (RS256 JWT) gets HTTP {}.",
        event.last_status.unwrap_or_default()
    ));
    let message = demo
        .sim
        .send_outbound_message(
            &format!("{base}/salesforce/outbound-messages"),
            &["04l5g00000ABCDEAA4".to_owned()],
            SendRetry::default(),
        )
        .await;
    n.say(&format!(
        "A flow's outbound message arrives too; ipguard records it and ACKs (HTTP {}, <Ack>true</Ack>).",
        message.last_status.unwrap_or_default()
    ));
    n.detail("Both are only hints: the IPs to assert always come from the Heroku API, never from a request.");

    let second = wait_for_run(&service, 2).await?;
    n.say("The two hints coalesced into one run:");
    narrate_run(&n, &second);
    for line in removal_reasons(&second) {
        n.detail(&line);
    }

    println!();
    // Judged by the planner a run uses: in sync means the policy wants nothing changed.
    let org = &config.orgs[0];
    let rules = org.policy_rules();
    let space = LoginIpRange::parse_existing("203.0.113.10", "203.0.113.11", None)
        .map_err(|e| e.to_string())?;
    let mut held: Vec<(String, String, bool)> = Vec::new();
    for p in &org.profiles.named {
        let ranges = demo.sim.login_ip_ranges(p.as_str()).unwrap_or_default();
        let plan = plan_profile(
            p.clone(),
            &ranges,
            std::slice::from_ref(&space),
            &rules,
            &Owned::ByDescription,
        );
        let kept: Vec<String> = ranges
            .iter()
            .filter(|r| r.key() != space.key())
            .map(|r| format!("{} – {}", r.start(), r.end()))
            .collect();
        let what = if kept.is_empty() {
            "203.0.113.10 – 203.0.113.11 only".to_owned()
        } else {
            format!(
                "203.0.113.10 – 203.0.113.11 + {} (inside the head office's block)",
                kept.join(", ")
            )
        };
        held.push((p.to_string(), what, plan.in_sync));
    }
    for (profile, what, ok) in &held {
        n.detail(&format!(
            "{profile}: {}",
            if *ok {
                format!("{what} ✓")
            } else {
                format!("NOT as the policy says ✗ ({what})")
            }
        ));
    }
    let every_request = demo.sim.enforce_ip_ranges_every_request();
    n.detail(&format!(
        "Session Settings › \"Enforce login IP ranges on every request\": {}",
        if every_request { "on ✓" } else { "OFF ✗" }
    ));
    let in_sync = held.iter().all(|(_, _, ok)| *ok) && every_request;
    let calls = demo.sim.calls().len();
    service.stop().await;
    demo.sim.stop().await;
    n.say(&format!(
        "Done: {} — {calls} requests reached the simulated org.",
        if in_sync {
            "the org ends in sync"
        } else {
            "the org did NOT end in sync"
        }
    ));
    // The demo's store is its own file, not the `DATABASE_URL` that `ipguard history` reads
    // by default: keep it and say exactly how to read it (issue 14).
    let kept = demo.dir.keep();
    let db = kept.join("demo.db");
    n.detail(&format!(
        "Every run is in the demo's own store: DATABASE_URL=sqlite://{} ipguard history",
        db.display()
    ));
    n.detail(&format!(
        "(a throw-away file; `rm -r {}` when done)",
        kept.display()
    ));
    Ok(in_sync)
}

/// `ipguard serve`'s application on a free local port, and its base URL.
pub(crate) async fn serve_locally(config: &Config) -> Result<(Application, String), String> {
    let overrides = Overrides {
        bind: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Overrides::default()
    };
    let service = Application::build_with(config, overrides)
        .await
        .map_err(|e| e.to_string())?;
    let base = format!("http://127.0.0.1:{}", service.port);
    Ok((service, base))
}

/// The `count`-th run, once finished.
async fn wait_for_run(service: &Application, count: usize) -> Result<RunRecord, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = service
            .store
            .recent_runs(10)
            .await
            .map_err(|e| e.to_string())?;
        if runs.len() >= count
            && let Some(run) = runs.iter().rev().nth(count - 1)
            && run.outcome.is_some()
        {
            return Ok(run.clone());
        }
        if Instant::now() > deadline {
            return Err(format!("run {count} did not finish within 20 s"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// "Removed X from P: why (policy …)" for every range a run's plan removed.
fn removal_reasons(run: &RunRecord) -> Vec<String> {
    let mut lines = Vec::new();
    let Some(plan) = &run.plan else {
        return lines;
    };
    for p in &plan.profiles {
        for w in p.why.iter().filter(|w| w.action == "remove") {
            lines.push(format!(
                "Removed {} – {} from {}: {} (policy {} via {}).",
                w.start,
                w.end,
                p.name,
                w.reason.text(),
                p.policy.as_str(),
                p.policy_from.variable(),
            ));
        }
    }
    lines
}

fn narrate_run(n: &Narrator, run: &RunRecord) {
    let took = run
        .finished_at
        .map(|f| (f - run.started_at).num_milliseconds())
        .unwrap_or_default();
    if let Some(plan) = &run.plan {
        for p in &plan.profiles {
            if p.in_sync {
                n.detail(&format!("{}: in sync", p.name));
                continue;
            }
            n.detail(&format!("{}: drift", p.name));
            for (sign, ranges) in [("+", &p.add), ("-", &p.remove)] {
                for r in ranges {
                    n.detail(&format!("    {sign} {}", span(r)));
                }
            }
        }
        for d in &plan.doors {
            n.detail(&format!(
                "side door {} ({}): {}",
                d.door,
                d.subject,
                if d.in_sync {
                    format!("{} as it should be", d.actual)
                } else {
                    format!("{} → {} (in the same deploy)", d.actual, d.wanted)
                }
            ));
        }
    }
    n.say(&format!(
        "Run #{} (trigger {}): {}{} in {took} ms.",
        run.id,
        run.trigger,
        run.outcome
            .map_or("running", ipguard::outcome::Outcome::as_str),
        run.deploy_id
            .as_deref()
            .map(|d| format!(" — deploy {d} polled to Succeeded and verified by reading back"))
            .unwrap_or_default(),
    ));
    if let Some(error) = &run.error {
        n.detail(&format!("error: {error}"));
    }
}

fn span(range: &LoginIpRange) -> String {
    let (start, end) = (range.start().to_string(), range.end().to_string());
    if start == end {
        start
    } else {
        format!("{start} – {end}")
    }
}

/// `ipguard sim --port N [--tls]`: a standalone simulated org with a generated key pair
/// (and, with `--tls`, a generated HTTPS certificate whose CA is written beside the key).
pub async fn sim(port: u16, tls: bool) -> u8 {
    let keys = match keygen::generate("ipguard-sim", 30) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("ipguard sim: {e}");
            return EXIT_ERROR;
        }
    };
    let dir = std::env::temp_dir().join(format!("ipguard-sim-{}", std::process::id()));
    let key_path = match keygen::write(&dir, &keys) {
        Ok((key, _)) => key,
        Err(e) => {
            eprintln!("ipguard sim: {e}");
            return EXIT_ERROR;
        }
    };
    let tls = match tls.then(TlsMaterial::generate).transpose() {
        Ok(material) => material.map(|m| (m, dir.join("sim-ca.pem"))),
        Err(e) => {
            eprintln!("ipguard sim: {e}");
            return EXIT_ERROR;
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let config = SimConfig::new(keys.certificate_pem.clone());
    println!("# point ipguard at this simulated org:");
    println!("export SALESFORCE_LOGIN_URL={scheme}://127.0.0.1:{port}");
    println!("export HEROKU_API_URL={scheme}://127.0.0.1:{port}");
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
    match ipguard_sim::run_standalone(config, port, tls).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("ipguard sim: {e}");
            EXIT_ERROR
        }
    }
}
