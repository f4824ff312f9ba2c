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

mod interlock_check;
mod settings_check;
mod sources_check;
mod token_check;
use interlock_check::interlock_check;
use settings_check::{app_check, session_settings_check};
use sources_check::{desired_check, heroku};
use token_check::token;

/// Longest wait for the checkOnly deploy (a doctor should not hang for the full deploy window).
const DEPLOY_WAIT: Duration = Duration::from_secs(120);
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

/// The profiles a run would guard now: `@app:` entries expanded (one line saying what they
/// gave), else the named ones.
async fn guarded_profiles(
    client: &MetadataClient,
    selection: &ProfileSelection,
    report: &mut Report,
) -> Vec<ProfileName> {
    let fallback = || {
        selection
            .named
            .iter()
            .filter(|p| !selection.excluded.contains(p))
            .cloned()
            .collect()
    };
    if selection.apps.is_empty() {
        return fallback();
    }
    match selection.resolve(client).await {
        Ok(guarded) => {
            let mut granted: Vec<String> = Vec::new();
            for grant in &guarded.grants {
                granted.push(format!(
                    "{} (app {}, {})",
                    grant.profile, grant.app, grant.via
                ));
            }
            report.emit(CheckLine::ok(
                "app grants",
                if granted.is_empty() {
                    format!(
                        "no profile's users can use {} (nothing guarded from the apps)",
                        selection.apps.join(", ")
                    )
                } else {
                    format!("guarded from the apps: {}", granted.join("; "))
                },
            ));
            guarded.profiles
        }
        Err(e) => {
            report.emit(CheckLine::fail(
                "app grants",
                e.to_string(),
                "give the integration user View Setup and Configuration (SetupEntityAccess, \
                 PermissionSet, PermissionSetAssignment and PermissionSetGroupComponent need it) \
                 and check the `@app:` API names",
            ));
            fallback()
        }
    }
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

fn profiles_check(names: &[ProfileName], listed: &[String]) -> CheckLine {
    let unknown: Vec<&ProfileName> = names
        .iter()
        .filter(|n| !listed.iter().any(|l| l == n.as_str()))
        .collect();
    if unknown.is_empty() {
        return CheckLine::ok(
            "profiles",
            format!(
                "all {} managed profile(s) exist among the org's {} profiles",
                names.len(),
                listed.len()
            ),
        );
    }
    let detail = unknown
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let fixes: Vec<String> = unknown
        .iter()
        .map(|n| match closest(n.as_str(), listed) {
            Some(best) => format!("for `{n}` use `{best}`"),
            None => format!("`{n}` matches no profile"),
        })
        .collect();
    let mut examples: Vec<&str> = listed.iter().take(6).map(String::as_str).collect();
    if listed.len() > examples.len() {
        examples.push("…");
    }
    CheckLine::fail(
        "profiles",
        format!("IPGUARD_PROFILES names no such profile: {detail}"),
        format!(
            "{} — IPGUARD_PROFILES takes full names exactly as listMetadata returns them \
             (the org has: {})",
            fixes.join("; "),
            examples.join(", ")
        ),
    )
}

/// The listed full name closest to `wanted`: equal once percent-decoded, case- and
/// space-folded (`Custom: Support` → `Custom%3A Support`), or within a few typos.
pub fn closest<'a>(wanted: &str, listed: &'a [String]) -> Option<&'a str> {
    let fold = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let wanted = fold(wanted);
    let budget = (wanted.chars().count() / 4).max(2);
    listed
        .iter()
        .map(|l| (levenshtein(&wanted, &fold(l)), l))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, l)| l.as_str())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// Reads the managed profiles that exist; `None` when nothing could be read.
async fn read_check(
    client: &MetadataClient,
    existing: &[ProfileName],
    desired: Option<&[LoginIpRange]>,
    report: &mut Report,
) -> Option<Vec<ProfileRecord>> {
    if existing.is_empty() {
        report.emit(CheckLine::skipped(
            "profile read",
            "none of the managed profiles exists (see profiles)",
        ));
        return None;
    }
    let records = match client.read_profiles(existing).await {
        Ok(records) => records,
        Err(e) => {
            report.emit(CheckLine::fail(
                "profile read",
                format!("readMetadata(Profile) failed: {e}"),
                permission_fix(&e),
            ));
            return None;
        }
    };
    let unread: Vec<&str> = existing
        .iter()
        .filter(|n| !records.iter().any(|r| r.full_name == n.as_str()))
        .map(ProfileName::as_str)
        .collect();
    if !unread.is_empty() {
        report.emit(CheckLine::fail(
            "profile read",
            format!("readMetadata returned nothing for {}", unread.join(", ")),
            "give the integration user read access to profiles (View Setup and Configuration)",
        ));
        return Some(records);
    }
    let detail = match desired {
        None => format!("read {} profile(s)", records.len()),
        Some(desired) => {
            let (holding, missing): (Vec<&ProfileRecord>, Vec<&ProfileRecord>) = records
                .iter()
                .partition(|r| covers_exactly(&r.ranges, desired));
            let names = |list: &[&ProfileRecord]| {
                if list.is_empty() {
                    "none".to_owned()
                } else {
                    list.iter()
                        .map(|r| r.full_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            let mut detail = format!(
                "read {} profile(s); holding the desired ranges: {}",
                records.len(),
                names(&holding)
            );
            if !missing.is_empty() {
                detail.push_str(&format!(
                    "; not yet (ipguard's next run adds them): {}",
                    names(&missing)
                ));
            }
            detail
        }
    };
    report.emit(CheckLine::ok("profile read", detail));
    Some(records)
}

/// Every desired range is on the profile as such (what a run would leave there).
fn covers_exactly(ranges: &[LoginIpRange], desired: &[LoginIpRange]) -> bool {
    desired
        .iter()
        .all(|d| ranges.iter().any(|r| r.key() == d.key()))
}

/// Every desired address is allowed (a profile without ranges allows every address).
fn allows(ranges: &[LoginIpRange], desired: &LoginIpRange) -> bool {
    ranges.is_empty()
        || ranges
            .iter()
            .any(|r| r.contains(desired.start()) && r.contains(desired.end()))
}

/// The parts of `desired` the profile does not allow: address by address for small ranges
/// (a space's few NAT IPs), the whole range otherwise.
fn not_allowed(ranges: &[LoginIpRange], desired: &LoginIpRange) -> Vec<String> {
    if allows(ranges, desired) {
        return Vec::new();
    }
    let (std::net::IpAddr::V4(start), std::net::IpAddr::V4(end)) = (desired.start(), desired.end())
    else {
        return vec![range_text(desired)];
    };
    if desired.size() > 256 {
        return vec![range_text(desired)];
    }
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for ip in u32::from(start)..=u32::from(end) {
        if ranges
            .iter()
            .any(|r| r.contains(std::net::Ipv4Addr::from(ip).into()))
        {
            continue;
        }
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == ip => *last = ip,
            _ => runs.push((ip, ip)),
        }
    }
    runs.into_iter()
        .map(|(a, b)| {
            let (a, b) = (std::net::Ipv4Addr::from(a), std::net::Ipv4Addr::from(b));
            if a == b {
                a.to_string()
            } else {
                format!("{a}–{b}")
            }
        })
        .collect()
}

fn integration_check(records: &[ProfileRecord], desired: &[LoginIpRange]) -> CheckLine {
    let name = "integration user's profile";
    let blocking: Vec<String> = records
        .iter()
        .filter_map(|r| {
            let missing: Vec<String> = desired
                .iter()
                .flat_map(|d| not_allowed(&r.ranges, d))
                .collect();
            (!missing.is_empty()).then(|| format!("{} (lacks {})", r.full_name, missing.join(", ")))
        })
        .collect();
    if blocking.is_empty() {
        return CheckLine::ok(
            name,
            "every managed profile already allows the space's IPs, so whichever is the \
             integration user's profile, its next token request is accepted",
        );
    }
    CheckLine::warn(
        name,
        format!(
            "managed profile(s) whose login IP ranges exclude the space's IPs: {}. If one of \
             them is the integration user's profile, its next token request from the space \
             will be refused (`ip restricted`) and ipguard cannot repair that itself",
            blocking.join("; ")
        ),
        "find the integration user's profile (Setup › Users › the integration user) and, if \
         it is listed here, add the Private Space's outbound IPs to it by hand now: Setup › \
         Profiles › that profile › Login IP Ranges",
    )
}

async fn deploy_check(
    config: &Config,
    org: &OrgSettings,
    client: &MetadataClient,
    settings: &RunSettings,
    records: &[ProfileRecord],
    desired: &[LoginIpRange],
) -> CheckLine {
    let name = "deploy permission";
    let plans: Vec<_> = records
        .iter()
        .filter_map(|r| {
            let profile = ProfileName::parse(&r.full_name).ok()?;
            Some(plan_profile(
                profile,
                &r.ranges,
                desired,
                &org.policy_rules(),
                &Owned::ByDescription,
            ))
        })
        .collect();
    let mut files: Vec<(ProfileName, Vec<LoginIpRange>)> = plans
        .iter()
        .filter(|p| !p.in_sync)
        .map(|p| (p.name.clone(), p.target.clone()))
        .collect();
    let what = if files.is_empty() {
        let Some(first) = plans.first() else {
            return CheckLine::skipped(name, "no profile to deploy");
        };
        files.push((first.name.clone(), first.target.clone()));
        format!("{}'s current list (in sync)", first.name)
    } else {
        format!("the current plan ({} profile(s))", files.len())
    };
    let zip = match deploy_zip(&files, client.api_version()) {
        Ok(zip) => zip,
        Err(e) => return CheckLine::fail(name, e.to_string(), "report this as a bug"),
    };
    let id = match client.deploy(&zip, true).await {
        Ok(id) => id,
        Err(e) => {
            return CheckLine::fail(
                name,
                format!("checkOnly deploy refused: {e}"),
                permission_fix(&e),
            );
        }
    };
    let window = config.deploy_timeout.min(DEPLOY_WAIT);
    let polled = deploy_poll::until_done(
        client,
        &id,
        settings.poll_delays(),
        settings.poll_max,
        Instant::now() + window,
        |_| {},
    )
    .await;
    let result = match polled {
        Ok(result) => result,
        Err(PollStop::IpRestricted(e) | PollStop::Refused(e)) => {
            return CheckLine::fail(
                name,
                format!("checkDeployStatus {id}: {e}"),
                permission_fix(&e),
            );
        }
        Err(PollStop::StillRunning(last)) => {
            let last = last.map_or_else(|| "Queued".to_owned(), |s| s.to_string());
            return CheckLine::fail(
                name,
                format!(
                    "checkOnly deploy {id} was still {last} after {}",
                    humantime::format_duration(window)
                ),
                "Salesforce's deploy queue is busy: see Setup › Deployment Status, then run check again",
            );
        }
    };
    if result.status == DeployStatus::Succeeded {
        return CheckLine::ok(
            name,
            format!("checkOnly deploy {id} of {what} Succeeded (nothing was changed)"),
        );
    }
    let failures = result.failure_messages();
    let failures = if failures.is_empty() {
        "no componentFailures given".to_owned()
    } else {
        failures.join("; ")
    };
    CheckLine::fail(
        name,
        format!(
            "checkOnly deploy {id} of {what} ended {}: {failures}",
            result.status
        ),
        "give the integration user Modify Metadata Through Metadata API Functions and \
         Manage Profiles and Permission Sets (the IPGuard_Integration permission set), or \
         correct the ranges named",
    )
}

fn broad_check(records: &[ProfileRecord], policy: Policy) -> CheckLine {
    let name = "broad ranges";
    let broad: Vec<String> = records
        .iter()
        .flat_map(|r| {
            r.ranges
                .iter()
                .filter(|range| !range.within_size_limit())
                .map(|range| format!("{}: {}", r.full_name, range_text(range)))
        })
        .collect();
    if broad.is_empty() {
        return CheckLine::ok(
            name,
            "no managed profile allows more than a /8 (IPv4) or /32 (IPv6)",
        );
    }
    let detail = format!(
        "ranges wider than a /8 (IPv4) or /32 (IPv6) let almost anyone log in: {}",
        broad.join("; ")
    );
    match policy {
        Policy::Merge => CheckLine::fail(
            name,
            detail,
            "set IPGUARD_POLICY=exact so ipguard replaces each list with exactly the desired \
             ranges, or delete the range in Setup › Profiles › the profile › Login IP Ranges",
        ),
        Policy::Exact => CheckLine::warn(
            name,
            detail,
            "none needed: policy `exact` removes them at the next run",
        ),
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
