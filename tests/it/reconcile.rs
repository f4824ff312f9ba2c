//! A run against the simulated org over real HTTP (docs/contract.md §5): every outcome and the API calls
//! each one spends.

use std::collections::HashMap;
use std::time::Duration;

use ipguard::app::Parts;
use ipguard::config::{Config, Needs};
use ipguard::ranges::LoginIpRange;
use ipguard::reconcile::run::{Outcome, Run, RunReport, RunSettings};
use ipguard::salesforce::client::RetryPolicy;
use ipguard_sim::{DeployOutcome, FailureKind, Faults, SimConfig, SimOrg};
use secrecy::ExposeSecret;

pub(crate) use crate::service::{desired, keys, range};

/// A simulated org plus an ipguard configured against it, with one client reused across runs
/// (as the service does) so the token stays cached.
pub(crate) struct Harness {
    pub(crate) sim: SimOrg,
    pub(crate) config: Config,
    /// What `ipguard serve` and `apply` build from the same configuration.
    pub(crate) parts: Parts,
}

impl Harness {
    pub(crate) async fn start(
        adjust: impl FnOnce(&mut SimConfig),
        extra: &[(&'static str, &str)],
    ) -> Self {
        let mut sim_config = SimConfig::new(keys().certificate_pem.clone());
        adjust(&mut sim_config);
        let profiles: Vec<String> = sim_config.profiles.iter().map(|(n, _)| n.clone()).collect();
        let vars_base = [
            ("SALESFORCE_CLIENT_ID", sim_config.client_id.clone()),
            ("SALESFORCE_USERNAME", sim_config.username.clone()),
            ("HEROKU_SPACE", sim_config.heroku.space.clone()),
            ("HEROKU_API_TOKEN", sim_config.heroku.api_token.clone()),
            ("IPGUARD_PROFILES", profiles.join(",")),
        ];
        let sim = SimOrg::start(sim_config, 0).await.expect("sim starts");
        let mut vars: HashMap<&'static str, String> = HashMap::from(vars_base);
        vars.insert("SALESFORCE_LOGIN_URL", sim.base_url());
        vars.insert("HEROKU_API_URL", sim.base_url());
        vars.insert(
            "SALESFORCE_PRIVATE_KEY",
            keys().private_key_pem.expose_secret().to_owned(),
        );
        for (k, v) in extra {
            vars.insert(k, (*v).to_owned());
        }
        let config =
            Config::from_lookup(|k| vars.get(k).cloned(), Needs::salesforce()).expect("config");
        let retry = RetryPolicy {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            max_attempts: 4,
        };
        let mut parts = Parts::build(&config, &config.orgs[0], &[], retry).unwrap();
        if let Some(h) = parts.sources.heroku.take() {
            parts.sources.heroku =
                Some(h.with_retry_delays(Duration::from_millis(10), Duration::from_millis(50)));
        }
        Self { sim, config, parts }
    }

    fn settings(&self) -> RunSettings {
        let mut s = self.parts.settings.clone();
        s.poll.fast = Duration::from_millis(50);
        s.poll.max_gap = Duration::from_millis(200);
        s
    }

    async fn run_with(&self, settings: &RunSettings) -> RunReport {
        Run {
            client: &self.parts.client,
            sources: &self.parts.sources,
            settings,
            profiles: &self.parts.profiles,
            doors: &self.parts.doors,
        }
        .execute()
        .await
    }

    pub(crate) async fn run(&self) -> RunReport {
        self.run_with(&self.settings()).await
    }

    fn ranges(&self, profile: &str) -> Vec<LoginIpRange> {
        self.sim.login_ip_ranges(profile).expect("profile exists")
    }
}

pub(crate) fn assert_outcome(report: &RunReport, outcome: Outcome) {
    assert_eq!(report.outcome, outcome, "{report:#?}");
}

#[tokio::test]
async fn drift_is_remediated_in_one_deploy_and_verified() {
    let h = Harness::start(|_| {}, &[]).await;
    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    assert_eq!(h.sim.count("deploy"), 1);
    // merge (default): the office range stays, the space's range is added
    assert_eq!(
        h.ranges("Custom%3A Support"),
        vec![
            range("198.51.100.0", "198.51.100.255"),
            desired()[0].clone()
        ]
    );
    assert_eq!(h.ranges("Admin"), desired());
    let deploy = &h.sim.deploys()[0];
    assert!(!deploy.check_only && deploy.rollback_on_error);
    assert_eq!(deploy.test_level, None, "testLevel must be omitted");
    assert!(
        deploy
            .files
            .contains(&"profiles/Custom%3A Support.profile".to_string()),
        "{:?}",
        deploy.files
    );
    // one read to plan, one to verify
    assert_eq!(h.sim.count("readMetadata"), 2);
    h.sim.stop().await;
}

#[tokio::test]
async fn an_in_sync_org_costs_one_read_and_no_deploy() {
    let h = Harness::start(|_| {}, &[]).await;
    assert_outcome(&h.run().await, Outcome::Remediated);
    h.sim.clear_calls();
    let report = h.run().await;
    assert_outcome(&report, Outcome::InSync);
    let ops: Vec<String> = h.sim.calls().into_iter().map(|c| c.operation).collect();
    assert_eq!(
        ops,
        ["heroku.nat", "readMetadata"],
        "token cached, no deploy"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn exact_policy_removes_other_ranges_merge_keeps_them() {
    let h = Harness::start(|_| {}, &[("IPGUARD_POLICY", "exact")]).await;
    assert_outcome(&h.run().await, Outcome::Remediated);
    assert_eq!(h.ranges("Custom%3A Support"), desired());
    // an admin widens a profile: exact reverts it
    h.sim.set_login_ip_ranges(
        "Custom%3A Support",
        vec![range("0.0.0.0", "255.255.255.255")],
    );
    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    let plan = report.plan.unwrap();
    let support = plan
        .profiles
        .iter()
        .find(|p| p.name.as_str() == "Custom%3A Support")
        .unwrap();
    assert_eq!(support.remove, [range("0.0.0.0", "255.255.255.255")]);
    assert_eq!(h.ranges("Custom%3A Support"), desired());
    h.sim.stop().await;
}

#[tokio::test]
async fn more_than_ten_profiles_are_read_in_batches_of_ten() {
    let h = Harness::start(
        |c| {
            for i in 0..21 {
                c.profiles
                    .push((format!("Custom%3A Team {i:02}"), Vec::new()));
            }
        },
        &[],
    )
    .await;
    assert_eq!(h.parts.profiles.named.len(), 25);
    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    // ⌈25/10⌉ reads to plan and again to verify; still one deploy
    assert_eq!(h.sim.count("readMetadata"), 6);
    assert_eq!(h.sim.count("deploy"), 1);
    assert_eq!(
        h.sim.deploys()[0].profiles.len(),
        25,
        "every drifted profile in one zip"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn failed_deploy_records_every_component_failure() {
    for problems in [
        vec!["Invalid range".to_string()],
        vec!["first problem".to_string(), "second problem".to_string()],
    ] {
        let h = Harness::start(|_| {}, &[]).await;
        h.sim.set_faults(Faults {
            deploy_outcome: DeployOutcome::Fail(problems.clone()),
            ..Faults::default()
        });
        let report = h.run().await;
        assert_outcome(&report, Outcome::Failed);
        assert_eq!(report.failures.len(), problems.len(), "{report:#?}");
        for p in &problems {
            assert!(report.failures.iter().any(|f| f.contains(p.as_str())));
        }
        assert_eq!(h.ranges("Admin"), Vec::new(), "nothing applied");
        h.sim.stop().await;
    }
}

#[tokio::test]
async fn invalid_session_mid_run_costs_exactly_one_new_token() {
    let h = Harness::start(|_| {}, &[]).await;
    // get a session first, then kill it at the next SOAP call
    assert_outcome(&h.run().await, Outcome::Remediated);
    h.sim.set_login_ip_ranges("Admin", Vec::new());
    h.sim.clear_calls();
    h.sim.set_faults(Faults {
        next_failures: vec![FailureKind::InvalidSession],
        ..Faults::default()
    });
    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    assert_eq!(h.sim.count("token"), 1, "{:?}", h.sim.calls());
    h.sim.stop().await;
}

fn refused_for_the_limit(h: &Harness) -> usize {
    h.sim
        .calls()
        .iter()
        .filter(|c| c.outcome == "REQUEST_LIMIT_EXCEEDED")
        .count()
}

/// The daily allocation is spent: the run fails at once (no retry within it, which would only
/// spend more calls), and a later run succeeds.
#[tokio::test]
async fn the_daily_request_limit_fails_the_run_without_retrying() {
    let h = Harness::start(|_| {}, &[]).await;
    h.sim.set_faults(Faults {
        next_failures: vec![FailureKind::DailyRequestLimitExceeded],
        ..Faults::default()
    });
    let report = h.run().await;
    assert_outcome(&report, Outcome::Failed);
    let limited = refused_for_the_limit(&h);
    assert_eq!(limited, 1, "{:#?}", h.sim.calls());
    assert_eq!(h.sim.count("deploy"), 0);
    assert_outcome(&h.run().await, Outcome::Remediated);
    h.sim.stop().await;
}

#[tokio::test]
async fn request_limit_exceeded_is_retried_then_succeeds() {
    let h = Harness::start(|_| {}, &[]).await;
    h.sim.set_faults(Faults {
        next_failures: vec![
            FailureKind::RequestLimitExceeded,
            FailureKind::ServerUnavailable,
        ],
        ..Faults::default()
    });
    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    let limited = refused_for_the_limit(&h);
    assert_eq!(limited, 1);
    h.sim.stop().await;
}

#[tokio::test]
async fn a_stuck_deploy_ends_unknown_never_success() {
    let h = Harness::start(|_| {}, &[]).await;
    h.sim.set_faults(Faults {
        deploy_outcome: DeployOutcome::Stuck,
        ..Faults::default()
    });
    let mut settings = h.settings();
    settings.deploy_timeout = Duration::from_millis(800);
    let report = h.run_with(&settings).await;
    assert_outcome(&report, Outcome::Unknown);
    assert!(report.deploy_id.is_some());
    assert!(h.sim.count("checkDeployStatus") >= 2);
    h.sim.stop().await;
}

#[tokio::test]
async fn an_empty_source_set_never_deploys() {
    let h = Harness::start(|c| c.heroku.sources.clear(), &[]).await;
    let report = h.run().await;
    assert_outcome(&report, Outcome::Failed);
    // an enabled NAT with no IPs is a partial source (docs/contract.md §5 rule 1), not a smaller list
    assert!(
        report
            .error
            .unwrap()
            .contains("enabled` but lists no outbound IPs")
    );
    assert_eq!(h.sim.count("deploy"), 0);
    h.sim.stop().await;
}

#[tokio::test]
async fn nat_not_enabled_fails_without_deploying() {
    let h = Harness::start(|c| c.heroku.state = "updating".into(), &[]).await;
    let report = h.run().await;
    assert_outcome(&report, Outcome::Failed);
    assert!(report.error.unwrap().contains("updating"));
    assert_eq!(h.sim.count("deploy"), 0);
    assert_eq!(h.sim.count("readMetadata"), 0);
    h.sim.stop().await;
}

#[tokio::test]
async fn ip_restricted_token_is_locked_out_with_exit_3() {
    let h = Harness::start(
        |c| {
            let integration = c.integration_profile.clone();
            for (name, ranges) in &mut c.profiles {
                if *name == integration {
                    *ranges = vec![range("192.0.2.1", "192.0.2.1")];
                }
            }
        },
        &[],
    )
    .await;
    let report = h.run().await;
    assert_outcome(&report, Outcome::LockedOut);
    assert!(report.error.as_deref().unwrap().contains("ip restricted"));
    assert_eq!(ipguard::cli::exit_code(report.outcome), 3);
    assert_eq!(h.sim.count("deploy"), 0);
    h.sim.stop().await;
}

#[tokio::test]
async fn dry_run_sends_check_only_and_changes_nothing() {
    let h = Harness::start(|_| {}, &[("IPGUARD_MODE", "dry-run")]).await;
    let report = h.run().await;
    assert_outcome(&report, Outcome::Planned);
    assert!(h.sim.deploys()[0].check_only);
    assert_eq!(h.ranges("Admin"), Vec::new());
    assert_eq!(ipguard::cli::exit_code(report.outcome), 2);
    h.sim.stop().await;
}

#[tokio::test]
async fn unknown_profile_name_fails_with_a_hint() {
    let h = Harness::start(|_| {}, &[("IPGUARD_PROFILES", "Custom: Support")]).await;
    let report = h.run().await;
    assert_outcome(&report, Outcome::Failed);
    assert!(report.error.unwrap().contains("Custom%3A"));
    assert_eq!(h.sim.count("deploy"), 0);
    h.sim.stop().await;
}

#[tokio::test]
async fn demo_org_ends_in_sync() {
    let demo = ipguard_sim::demo::DemoOrg::start().await.unwrap();
    // The configuration `ipguard demo` builds from the same vars.
    let config = Config::from_lookup(|name| demo.var(name), Needs::serve()).unwrap();
    let first = ipguard::cli::apply_with(&config, &config.orgs[0], &[], Default::default())
        .await
        .unwrap();
    assert_eq!(first.report.outcome, Outcome::Remediated);
    let again = ipguard::cli::apply_with(&config, &config.orgs[0], &[], Default::default())
        .await
        .unwrap();
    assert_eq!(again.report.outcome, Outcome::InSync);
    // issue 10, item 1: `apply` runs through the store, recorded with trigger `cli`
    let store = ipguard::store::Store::open_existing(&config.database)
        .await
        .unwrap();
    let runs = store.recent_runs(10).await.unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| (
                Some(r.id),
                r.trigger.to_string(),
                r.outcome.map(Outcome::as_str)
            ))
            .collect::<Vec<_>>(),
        [
            (again.run, "cli".to_owned(), Some("in_sync")),
            (first.run, "cli".to_owned(), Some("remediated")),
        ]
    );
    assert!(runs[1].deploy_id.is_some(), "the deploy was journaled");
    // merge with IPGUARD_KEEP_WITHIN: the head office's range stays beside the space's
    assert_eq!(
        demo.sim.login_ip_ranges("Custom%3A Support").unwrap(),
        vec![
            range("198.51.100.0", "198.51.100.255"),
            desired()[0].clone()
        ]
    );
    demo.sim.stop().await;
}

#[tokio::test]
async fn heroku_rate_limits_and_5xx_are_retried() {
    let h = Harness::start(|_| {}, &[]).await;
    h.sim.set_faults(Faults {
        heroku_failures: vec![429, 503, 500],
        ..Faults::default()
    });
    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    assert_eq!(h.sim.count("heroku.nat"), 4);
    h.sim.stop().await;
}

#[tokio::test]
async fn a_refused_heroku_token_fails_clearly_without_retrying() {
    let h = Harness::start(|_| {}, &[("HEROKU_API_TOKEN", "not-the-space-token")]).await;
    let report = h.run().await;
    assert_outcome(&report, Outcome::Failed);
    assert!(report.error.unwrap().contains("HEROKU_API_TOKEN"));
    assert_eq!(h.sim.count("heroku.nat"), 1);
    assert_eq!(h.sim.count("deploy"), 0);
    h.sim.stop().await;
}

/// The API calls a run spends, for the closing note and as a budget: an in-sync run costs
/// ⌈P/10⌉ reads (token cached), a remediation one token, 2·⌈P/10⌉ reads, one deploy and the
/// polls.
#[tokio::test]
async fn api_call_budget_for_3_25_and_200_profiles() {
    for extra in [0usize, 22, 197] {
        let h = Harness::start(
            |c| {
                c.profiles.truncate(3);
                for i in 0..extra {
                    c.profiles
                        .push((format!("Custom%3A Team {i:02}"), Vec::new()));
                }
            },
            &[],
        )
        .await;
        let p = h.parts.profiles.named.len();
        let reads = p.div_ceil(10);
        let remediation = h.run().await;
        assert_outcome(&remediation, Outcome::Remediated);
        let polls = h.sim.count("checkDeployStatus");
        let queries = h.sim.count("query");
        assert_eq!(
            queries, 3,
            "one SetupAuditTrail query attributes the drift; the interlock reads User and LoginHistory"
        );
        assert_eq!(h.sim.count("token"), 1);
        assert_eq!(h.sim.count("readMetadata"), 2 * reads);
        assert_eq!(h.sim.count("deploy"), 1);
        let remediation_calls = h.sim.calls().len();
        h.sim.clear_calls();
        assert_outcome(&h.run().await, Outcome::InSync);
        let in_sync_calls = h.sim.calls().len();
        assert_eq!(h.sim.count("readMetadata"), reads);
        assert_eq!(in_sync_calls, 1 + reads, "NAT + reads, no token, no deploy");
        eprintln!(
            "API budget, {p} profiles: remediation {remediation_calls} calls \
             (1 token, 1 NAT, {} reads, {queries} queries (audit, User, LoginHistory), 1 deploy, {polls} polls); \
             in sync {in_sync_calls} calls \
             (1 NAT, {reads} reads)",
            2 * reads
        );
        h.sim.stop().await;
    }
}

#[tokio::test]
async fn a_resumed_deploy_is_polled_and_verified_never_redeployed() {
    let h = Harness::start(|_| {}, &[]).await;
    h.sim.set_faults(Faults {
        deploy_outcome: DeployOutcome::Stuck,
        ..Faults::default()
    });
    let mut settings = h.settings();
    settings.deploy_timeout = Duration::from_millis(500);
    let first = h.run_with(&settings).await;
    assert_outcome(&first, Outcome::Unknown);
    // the org finishes the deploy later; a new process picks it up from the journal
    h.sim.set_faults(Faults::default());
    let resumed = Run {
        client: &h.parts.client,
        sources: &h.parts.sources,
        settings: &h.settings(),
        profiles: &h.parts.profiles,
        doors: &h.parts.doors,
    }
    .resume(
        first.deploy_id.clone().unwrap(),
        false,
        chrono::Utc::now(),
        &Default::default(),
        &mut |_| {},
    )
    .await;
    assert_outcome(&resumed, Outcome::Remediated);
    assert_eq!(h.sim.count("deploy"), 1, "resuming never deploys again");
    assert_eq!(h.ranges("Admin"), desired());
    h.sim.stop().await;
}

/// A deploy recorded longer ago than the deploy timeout is looked at once and, still
/// running, closed: its run ends `unknown` with the reason and is never resumed again
/// (issue 10, item 3). Before, every resume polled it for a whole new window.
#[tokio::test]
async fn a_resumed_deploy_older_than_the_timeout_is_closed_after_one_look() {
    let h = Harness::start(|_| {}, &[]).await;
    h.sim.set_faults(Faults {
        deploy_outcome: DeployOutcome::Stuck,
        ..Faults::default()
    });
    let mut settings = h.settings();
    settings.deploy_timeout = Duration::from_millis(300);
    let first = h.run_with(&settings).await;
    assert_outcome(&first, Outcome::Unknown);
    assert!(!first.deploy_closed, "a fresh run's window leaves it open");
    h.sim.clear_calls();
    let mut long = h.settings();
    long.deploy_timeout = Duration::from_secs(60);
    let started = std::time::Instant::now();
    let resumed = Run {
        client: &h.parts.client,
        sources: &h.parts.sources,
        settings: &long,
        profiles: &h.parts.profiles,
        doors: &h.parts.doors,
    }
    .resume(
        first.deploy_id.clone().unwrap(),
        false,
        chrono::Utc::now() - chrono::Duration::minutes(5),
        &Default::default(),
        &mut |_| {},
    )
    .await;
    assert_outcome(&resumed, Outcome::Unknown);
    assert!(resumed.deploy_closed, "{resumed:#?}");
    assert!(
        resumed
            .error
            .as_deref()
            .unwrap()
            .contains("after it was submitted"),
        "{resumed:#?}"
    );
    assert_eq!(h.sim.count("checkDeployStatus"), 1, "one look");
    assert_eq!(h.sim.count("deploy"), 0);
    assert!(started.elapsed() < Duration::from_secs(5));
    h.sim.stop().await;
}
