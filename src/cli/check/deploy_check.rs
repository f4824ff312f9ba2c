//! `check`'s `deploy permission` line: a checkOnly deploy of what a run would deploy.

use super::*;

/// Longest wait for the checkOnly deploy (a doctor should not hang for the full deploy window).
const DEPLOY_WAIT: Duration = Duration::from_secs(120);

pub(super) async fn deploy_check(
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
    let polled =
        deploy_poll::until_done(client, &id, &settings.poll, Instant::now() + window, |_| {}).await;
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
