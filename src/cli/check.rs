//! `ipguard check`: the doctor a newcomer runs before going live (docs/contract.md §4).
//!
//! One line per check, printed as soon as it is known: `✓ name — detail`, `✗ name — what is
//! wrong. Fix: …`, `! name — …` (a warning) or `– name — skipped: why`; when stdout is not a
//! terminal the marks are `[ok]`, `[FAIL]`, `[warn]` and `[skip]`. Checks run in order and are
//! independent where possible: a refused token skips the Salesforce checks, an unknown NAT
//! skips those that need the desired ranges. Exit 0 when nothing failed (warnings and skips
//! do not fail), 1 otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use super::{EXIT_ERROR, EXIT_OK};
use crate::app::Parts;
use crate::config::{Config, Needs, OrgSettings, Policy};
use crate::ranges::LoginIpRange;
use crate::reconcile::guarded::ProfileSelection;
use crate::reconcile::plan::{Owned, plan_profile};
use crate::reconcile::run::RunSettings;
use crate::salesforce::client::{MetadataClient, RetryPolicy, SalesforceError};
use crate::salesforce::deploy_poll::{self, PollStop};
use crate::salesforce::metadata::{DeployStatus, ProfileRecord};
use crate::salesforce::package::deploy_zip;
use crate::salesforce::profile::ProfileName;

mod deploy_check;
mod grants_check;
mod interlock_check;
mod profiles_check;
mod settings_check;
mod sources_check;
mod token_check;
use deploy_check::deploy_check;
use grants_check::guarded_profiles;
use interlock_check::interlock_check;
use profiles_check::{broad_check, integration_check, profiles_check, read_check};
use settings_check::{app_check, session_settings_check};
use sources_check::{desired_check, heroku};
use token_check::token;

/// How many desired ranges the `desired ranges` line lists before `…`.
const LISTED_RANGES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skipped,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub status: Status,
    pub name: &'static str,
    pub detail: String,
    pub fix: Option<String>,
}

impl CheckLine {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(Status::Ok, name, detail, None)
    }

    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(Status::Warn, name, detail, Some(fix.into()))
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(Status::Fail, name, detail, Some(fix.into()))
    }

    pub fn skipped(name: &'static str, reason: impl Into<String>) -> Self {
        Self::new(Status::Skipped, name, reason, None)
    }

    /// The line with `note` added to its detail.
    pub fn noted(mut self, note: &str) -> Self {
        self.detail.push_str(note);
        self
    }

    fn new(
        status: Status,
        name: &'static str,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            status,
            name,
            detail: detail.into(),
            fix,
        }
    }

    /// The line as printed: glyphs on a terminal (`fancy`), bracketed words otherwise.
    pub fn render(&self, fancy: bool) -> String {
        let mark = match (self.status, fancy) {
            (Status::Ok, true) => "✓",
            (Status::Warn, true) => "!",
            (Status::Fail, true) => "✗",
            (Status::Skipped, true) => "–",
            (Status::Ok, false) => "[ok]",
            (Status::Warn, false) => "[warn]",
            (Status::Fail, false) => "[FAIL]",
            (Status::Skipped, false) => "[skip]",
        };
        let skipped = if self.status == Status::Skipped {
            "skipped: "
        } else {
            ""
        };
        let mut line = format!("{mark} {} — {skipped}{}", self.name, self.detail);
        if let Some(fix) = &self.fix {
            line.truncate(line.trim_end_matches(['.', ' ']).len());
            line.push_str(&format!(". Fix: {fix}"));
        }
        line
    }
}

/// Prints each line as it comes and counts the outcome.
struct Report {
    fancy: bool,
    failed: usize,
    warned: usize,
    total: usize,
}

impl Report {
    fn emit(&mut self, line: CheckLine) -> Status {
        self.total += 1;
        match line.status {
            Status::Fail => self.failed += 1,
            Status::Warn => self.warned += 1,
            _ => {}
        }
        println!("{}", line.render(self.fancy));
        line.status
    }

    fn finish(&self) -> u8 {
        if self.failed == 0 {
            println!(
                "{} checks: none failed, {} warning(s)",
                self.total, self.warned
            );
            EXIT_OK
        } else {
            println!(
                "{} checks: {} failed, {} warning(s) — fix the failures above, then run `ipguard check` again",
                self.total, self.failed, self.warned
            );
            EXIT_ERROR
        }
    }
}

/// `ipguard check [--app NAME] [--org KEY]`: every org unless one is named.
pub async fn check(app: Option<&str>, org: Option<&str>) -> u8 {
    let mut report = Report {
        fancy: std::io::stdout().is_terminal(),
        failed: 0,
        warned: 0,
        total: 0,
    };
    let config = match Config::from_env(Needs::salesforce()) {
        Ok(config) => config,
        Err(e) => {
            report.emit(CheckLine::fail(
                "config",
                format!("{} problem(s) in the environment", e.problems.len()),
                "set or correct these variables (README › Config vars):",
            ));
            for problem in &e.problems {
                println!("    {problem}");
            }
            return report.finish();
        }
    };
    let orgs = match config.orgs_named(org) {
        Ok(orgs) => orgs,
        Err(e) => {
            report.emit(CheckLine::fail(
                "config",
                e.to_string(),
                "name a configured org",
            ));
            return report.finish();
        }
    };
    for org in orgs {
        if let Some(key) = &org.key {
            println!("org {key}:");
        }
        run_checks(&config, org, app, &mut report).await;
    }
    report.finish()
}

async fn run_checks(config: &Config, org: &OrgSettings, app: Option<&str>, report: &mut Report) {
    // 1. config
    let retry = RetryPolicy {
        min_delay: Duration::from_millis(300),
        max_delay: Duration::from_secs(3),
        max_attempts: 3,
    };
    let (http, client, selection, settings) = match Parts::build(config, org, &[], retry) {
        Ok(parts) => (parts.http, parts.client, parts.profiles, parts.settings),
        Err(e) => {
            report.emit(CheckLine::fail(
                "config",
                e.to_string(),
                "correct the variable named, then run `ipguard check` again",
            ));
            return;
        }
    };
    report.emit(CheckLine::ok(
        "config",
        format!(
            "{} managed profile(s){}, policy {}, mode {}, API v{}",
            selection.named.len(),
            if selection.apps.is_empty() {
                String::new()
            } else {
                format!(" and the profiles of app(s) {}", selection.apps.join(", "))
            },
            org.policy,
            org.mode,
            org.salesforce.api_version
        ),
    ));

    // 2. heroku
    let (heroku_line, sources) = heroku(config, org, &http).await;
    report.emit(heroku_line);

    // 3. desired ranges
    let desired = match &sources {
        None => {
            report.emit(CheckLine::skipped(
                "desired ranges",
                "the space's outbound IPs are unknown (see heroku)",
            ));
            None
        }
        Some(sources) => {
            let (line, desired) = desired_check(sources);
            report.emit(line);
            desired
        }
    };

    // 4. token
    let token = token(org, &client).await;
    let token_ok = report.emit(token) == Status::Ok;
    let salesforce_checks = [
        "profiles",
        "profile read",
        "integration user's profile",
        "self-lock-out interlock",
        "deploy permission",
        "broad ranges",
        "ip enforcement",
        "app ip relaxation",
    ];
    if !token_ok {
        if !selection.apps.is_empty() {
            report.emit(CheckLine::skipped(
                "app grants",
                "no Salesforce session (see token)",
            ));
        }
        for name in salesforce_checks {
            report.emit(CheckLine::skipped(
                name,
                "no Salesforce session (see token)",
            ));
        }
        return;
    }

    // 5. profiles: the apps' expanded first
    let names = guarded_profiles(&client, &selection, report).await;
    let existing = match client.list_profiles().await {
        Ok(listed) => {
            let listed: Vec<String> = listed.into_iter().map(|c| c.full_name).collect();
            report.emit(profiles_check(&names, &listed));
            names
                .iter()
                .filter(|n| listed.iter().any(|l| l == n.as_str()))
                .cloned()
                .collect()
        }
        Err(e) => {
            report.emit(CheckLine::fail(
                "profiles",
                format!("listMetadata(Profile) failed: {e}"),
                permission_fix(&e),
            ));
            names.clone()
        }
    };

    // 6. profile read
    let records = read_check(&client, &existing, desired.as_deref(), report).await;

    // 7. integration user's own profile
    match (&records, &desired) {
        (Some(records), Some(desired)) => report.emit(integration_check(records, desired)),
        (None, _) => report.emit(CheckLine::skipped(
            "integration user's profile",
            "no profile was read (see profile read)",
        )),
        (_, None) => report.emit(CheckLine::skipped(
            "integration user's profile",
            "the desired ranges are unknown",
        )),
    };

    // 8. what the interlock holds before a deploy
    report.emit(interlock_check(config, org, &client, &names, sources.as_deref()).await);

    // 9. deploy permission
    match (&records, &desired) {
        (Some(records), Some(desired)) if !records.is_empty() => {
            report.emit(deploy_check(config, org, &client, &settings, records, desired).await)
        }
        (_, None) => report.emit(CheckLine::skipped(
            "deploy permission",
            "the desired ranges are unknown",
        )),
        _ => report.emit(CheckLine::skipped(
            "deploy permission",
            "no profile was read (see profile read)",
        )),
    };

    // 10. broad ranges
    match &records {
        Some(records) => report.emit(broad_check(records, org.policy)),
        None => report.emit(CheckLine::skipped(
            "broad ranges",
            "no profile was read (see profile read)",
        )),
    };

    // 11. every-request enforcement and the app's IP relaxation
    report.emit(session_settings_check(&client, &org.side_doors).await);
    report.emit(app_check(&client, app.unwrap_or(&org.side_doors.app), &org.side_doors).await);
}

/// What to do when a Metadata API call is refused.
fn permission_fix(error: &SalesforceError) -> String {
    match error {
        SalesforceError::Fault(f)
            if f.code == "INSUFFICIENT_ACCESS"
                || f.code == "API_DISABLED_FOR_ORG"
                || f.code == "API_CURRENTLY_DISABLED" =>
        {
            "assign the IPGuard_Integration permission set (API Enabled, Modify Metadata Through \
             Metadata API Functions, Manage Profiles and Permission Sets) to the integration user"
                .to_owned()
        }
        e if e.is_transient() => {
            "Salesforce is busy or unreachable: run check again in a minute".to_owned()
        }
        _ => "see the error; `ipguard check` again once it is fixed".to_owned(),
    }
}

fn range_text(range: &LoginIpRange) -> String {
    if range.start() == range.end() {
        range.start().to_string()
    } else {
        format!("{}–{}", range.start(), range.end())
    }
}

#[cfg(test)]
mod tests;
