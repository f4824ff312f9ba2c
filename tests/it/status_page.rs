//! `/status` as HTML, in headless Debian Chromium, used as a person would: open the URL, sign
//! in on the form, read the page, sign out.
//!
//! Drives `tests/browser/status-page.mjs` (playwright-core) against a live service guarding the
//! simulated org, three times: after a remediation with attribution, after ipguard is locked
//! out, and after the lock-out is fixed in the org, where the page's "Check now" must run at
//! once despite the real five-minute lock-out backoff. Full-page screenshots (desktop 1280
//! wide, phone 390×844) land in `target/test-artefacts/status-page/`:
//! `status-{remediated,locked-out,recovered}-{desktop,phone}.png` and `signin-*.png`.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules`. `.ci/run` installs both; on a
//! developer's machine without them the test says SKIPPED loudly and passes, unless `CI` is set.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::service::{ADMIN_TOKEN, Org, desired, fast_timing, range};

const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What is missing to run the browser test, if anything.
fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    if !chromium().exists() {
        missing.push(format!(
            "{} (Debian package chromium)",
            chromium().display()
        ));
    }
    if !Path::new(BROWSER_DIR)
        .join("node_modules/playwright-core")
        .exists()
    {
        missing.push(format!("{BROWSER_DIR}/node_modules (npm ci)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node".into());
    }
    missing
}

/// `target/test-artefacts/status-page/`, following `CARGO_TARGET_DIR` if set.
fn artefact_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .join("test-artefacts/status-page")
}

/// Whether the browser tests can run here: a loud SKIPPED line if not (a failure under `CI`).
pub(crate) fn browser_available() -> bool {
    let missing = missing_prerequisites();
    if !missing.is_empty() {
        let why = format!("status page browser test needs: {}", missing.join(", "));
        if std::env::var_os("CI").is_some() {
            panic!("{why} — CI must run the browser test; .ci/run installs them");
        }
        // Straight to fd 2, not eprintln!: libtest swallows a passing test's eprintln! output,
        // and a skip nobody sees is a silent pass.
        let banner = format!(
            "\n=========================================================================\n\
             SKIPPED: {why}\n\
             run .ci/run or: apt-get install chromium && (cd tests/browser && npm ci)\n\
             =========================================================================\n"
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), banner.as_bytes());
        return false;
    }
    true
}

/// Runs a script of `tests/browser/` against `base` (as `localhost`) with the admin token and
/// `envs` in its environment, on a blocking thread; echoes its checks and panics if any fails.
pub(crate) async fn run_browser_script(
    script: &'static str,
    base: &str,
    envs: Vec<(&'static str, String)>,
) {
    let out = artefact_dir();
    // `localhost`, as a person would type it: a potentially trustworthy origin, where the
    // browser keeps the `Secure` session cookie even over plain HTTP.
    let base = base.replace("127.0.0.1", "localhost");
    let started = std::time::Instant::now();
    // Blocking wait on its own thread: the service keeps answering on the runtime's workers.
    // The token goes in the environment, never argv (visible in `ps`); never print the Command.
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(Path::new(BROWSER_DIR).join(script))
            .arg(&base)
            .arg(&out)
            .env("IPGUARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("CHROMIUM", chromium())
            .envs(envs)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stdout.contains(ADMIN_TOKEN) && !stderr.contains(ADMIN_TOKEN),
        "the browser script printed the admin token"
    );
    // the script never prints the token (checked above) before its output is echoed
    eprintln!("{script} ({:.1?}):\n{stdout}{stderr}", started.elapsed());
    assert!(
        output.status.success(),
        "{script}: checks failed ({})",
        output.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_headless_chromium_sign_in_remediation_lock_out_and_recovery() {
    if !browser_available() {
        return;
    }

    let org = Org::start(&[]).await;
    // the real lock-out backoff: only an operator's request may look again within 5 minutes
    let app = org
        .serve_with(ipguard::reconcile::controller::ControllerTiming {
            locked_out_backoff: Duration::from_secs(300),
            max_backoff: Duration::from_secs(300),
            ..fast_timing()
        })
        .await;
    // the start-up run brings the org in sync
    let runs = app
        .wait_for_runs(Duration::from_secs(10), |r| {
            r.iter().any(|run| run.outcome.is_some())
        })
        .await;
    assert_eq!(
        runs[0].outcome,
        Some(ipguard::outcome::Outcome::Remediated),
        "{runs:#?}"
    );
    // an admin loosens a profile; the resulting run has a deploy id and a "changed by"
    let report = org
        .loosen_and_notify(&app, "Admin", "04l1I000000fztEQAQ")
        .await;
    assert!(report.delivered, "{report:?}");
    app.wait_for_runs(Duration::from_secs(10), |r| {
        r.iter().any(|run| {
            run.trigger
                .contains(ipguard::trigger::Trigger::OutboundMessage)
                && run.outcome.is_some()
        })
    })
    .await;

    browser_checks(&app.base, "remediated").await;

    // the integration user's own profile is narrowed and its session dies: ipguard is locked
    // out, and the page must say so at the top
    org.sim.set_login_ip_ranges(
        "Custom%3A Integration",
        vec![range("192.0.2.1", "192.0.2.1")],
    );
    org.sim.set_faults(ipguard_sim::Faults {
        next_failures: vec![ipguard_sim::FailureKind::InvalidSession],
        ..Default::default()
    });
    org.sim
        .send_outbound_message(
            &app.url("/salesforce/outbound-messages"),
            &["04l000000000010AAA".to_string()],
            ipguard_sim::SendRetry::default(),
        )
        .await;
    app.wait_for_runs(Duration::from_secs(10), |r| {
        r.iter()
            .any(|run| run.outcome == Some(ipguard::outcome::Outcome::LockedOut))
    })
    .await;
    browser_checks(&app.base, "locked-out").await;

    // someone fixes the integration user's profile; the page still says locked out until the
    // operator presses "Check now", which must run at once
    org.sim
        .set_login_ip_ranges("Custom%3A Integration", desired());
    browser_checks(&app.base, "recovered").await;
    let runs = app.runs().await;
    assert!(
        matches!(
            runs[0].outcome,
            Some(ipguard::outcome::Outcome::InSync | ipguard::outcome::Outcome::Remediated)
        ),
        "{runs:#?}"
    );
    assert_eq!(
        runs[0].trigger,
        ipguard::trigger::Trigger::Admin,
        "the page's button ran it"
    );
    app.service.stop().await;
}

/// Runs `status-page.mjs` against `base` for `phase`, echoing its checks; panics if any
/// fails.
async fn browser_checks(base: &str, phase: &'static str) {
    let mut expected_shots: Vec<String> = ["desktop", "phone"]
        .iter()
        .map(|device| format!("status-{phase}-{device}.png"))
        .collect();
    if phase == "remediated" {
        expected_shots.extend(["signin-desktop.png".into(), "signin-phone.png".into()]);
    }
    run_browser_script(
        "status-page.mjs",
        base,
        vec![
            (
                "IPGUARD_EXPECT_CHANGED_BY",
                ipguard_sim::ADMIN_USERNAME.to_owned(),
            ),
            ("IPGUARD_PHASE", phase.to_owned()),
        ],
    )
    .await;
    for shot in expected_shots {
        let path = artefact_dir().join(shot);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "{} missing or empty", path.display());
    }
}
