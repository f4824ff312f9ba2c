//! `check`'s org-setting lines: "Enforce login IP ranges on every request" and the app's IP
//! relaxation.

use super::CheckLine;
use crate::reconcile::doors::{Door, SideDoors};
use crate::salesforce::client::{MetadataClient, SalesforceError};

/// Whether ipguard keeps `door` shut, in words for a check line.
fn guarded_note(doors: &SideDoors, door: Door) -> String {
    if doors.guards(door) {
        format!("; ipguard guards it (IPGUARD_SIDE_DOORS has {door})")
    } else {
        format!("; not guarded (add {door} to IPGUARD_SIDE_DOORS to have ipguard keep it)")
    }
}

pub(super) async fn session_settings_check(
    client: &MetadataClient,
    doors: &SideDoors,
) -> CheckLine {
    let line = session_settings_line(client).await;
    line.noted(&guarded_note(doors, Door::EveryRequest))
}

async fn session_settings_line(client: &MetadataClient) -> CheckLine {
    let name = "ip enforcement";
    match client.read_session_settings().await {
        Ok(Some(settings)) if settings.enforce_ip_ranges_every_request => CheckLine::ok(
            name,
            "\"Enforce login IP ranges on every request\" is on: every request, not only the \
             login, is checked against the profile ranges (informational)",
        ),
        Ok(Some(_)) => CheckLine::ok(
            name,
            "\"Enforce login IP ranges on every request\" is off: ranges are checked at login \
             (every JWT bearer token request) only (informational)",
        ),
        Ok(None) => CheckLine::warn(
            name,
            "readMetadata(SecuritySettings, Security) returned no record",
            "see Setup › Session Settings › \"Enforce login IP ranges on every request\" by hand",
        ),
        Err(e) => CheckLine::warn(
            name,
            format!("cannot read the Session Settings: {e}"),
            "grant the integration user View Setup and Configuration to let check read them, \
             or look in Setup › Session Settings",
        ),
    }
}

pub(super) async fn app_check(client: &MetadataClient, app: &str, doors: &SideDoors) -> CheckLine {
    let line = app_line(client, app).await;
    line.noted(&guarded_note(doors, Door::AppRelaxation))
}

async fn app_line(client: &MetadataClient, app: &str) -> CheckLine {
    let name = "app ip relaxation";
    let full_name = format!("{app}_oauthPlcy");
    match client.read_eca_oauth_policies(&full_name).await {
        Ok(Some(policies)) => match policies.ip_relaxation_policy_type.as_deref() {
            None | Some("Enforce") => CheckLine::ok(
                name,
                format!(
                    "External Client App `{app}`: IP relaxation {} (JWT bearer enforces the \
                     profile ranges regardless)",
                    if policies.ip_relaxation_policy_type.is_some() {
                        "Enforce"
                    } else {
                        "not set (Salesforce's default, Enforce)"
                    }
                ),
            ),
            Some(other) => CheckLine::fail(
                name,
                format!(
                    "External Client App `{app}`: IP relaxation is `{other}`: JWT bearer still \
                     enforces profile ranges, but this app's other flows skip them"
                ),
                format!(
                    "Setup › External Client App Manager › {app} › Policies › OAuth Policies › \
                     IP Relaxation: Enforce IP restrictions"
                ),
            ),
        },
        Ok(None) => legacy_app_check(client, app).await,
        Err(SalesforceError::Fault(f)) if f.code == "INVALID_TYPE" => {
            CheckLine::skipped(name, "this org or API version has no External Client Apps")
        }
        Err(e) => CheckLine::warn(
            name,
            format!("cannot read the app's OAuth policies: {e}"),
            "grant the integration user \"View all External Client Apps, view their settings, \
             and edit their policies\" to let check read them, or look in Setup by hand",
        ),
    }
}

/// No External Client App by that name: orgs that predate them use a connected app.
pub(super) async fn legacy_app_check(client: &MetadataClient, app: &str) -> CheckLine {
    let name = "app ip relaxation";
    match client.read_connected_app(app).await {
        Ok(Some(policy)) => match policy.ip_relaxation.as_deref() {
            Some("ENFORCE") | None => CheckLine::ok(
                name,
                format!(
                    "connected app `{app}`: IP relaxation {} (JWT bearer enforces the profile \
                     ranges regardless)",
                    policy.ip_relaxation.as_deref().unwrap_or("not set")
                ),
            ),
            Some(other) => CheckLine::fail(
                name,
                format!(
                    "connected app `{app}`: IP relaxation is `{other}`: JWT bearer still \
                     enforces profile ranges, but this app's other flows skip them"
                ),
                format!(
                    "Setup › Connected Apps › Manage Connected Apps › {app} › Edit Policies › \
                     IP Relaxation: Enforce IP restrictions"
                ),
            ),
        },
        Ok(None) | Err(SalesforceError::Fault(_)) => CheckLine::skipped(
            name,
            format!(
                "no External Client App `{app}` nor connected app `{app}` in the org (pass \
                 --app with the app's API name)"
            ),
        ),
        Err(e) => CheckLine::warn(
            name,
            format!("cannot read the connected app: {e}"),
            "look at the app's IP relaxation in Setup by hand",
        ),
    }
}
