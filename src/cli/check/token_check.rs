//! The doctor's `token` line: one JWT bearer login, and for a refusal the fix — for
//! `user hasn't approved this consumer` also which of its two causes the configuration points
//! to.

use super::CheckLine;
use crate::config::OrgSettings;
use crate::salesforce::auth::AuthError;
use crate::salesforce::client::{MetadataClient, SalesforceError};

pub(super) async fn token(config: &OrgSettings, client: &MetadataClient) -> CheckLine {
    let username = config.salesforce.username().unwrap_or_default();
    match client.session().await {
        Ok(session) => CheckLine::ok(
            "token",
            format!(
                "JWT bearer login as {username} accepted; instance {}",
                session.instance_url.as_str().trim_end_matches('/')
            ),
        ),
        Err(SalesforceError::Auth(AuthError::Refused {
            error,
            description,
            hint,
        })) => {
            let fix = if description.eq_ignore_ascii_case("user hasn't approved this consumer") {
                format!("{} {hint}", unapproved_cause(config))
            } else {
                hint.to_owned()
            };
            CheckLine::fail(
                "token",
                format!("Salesforce refused the token request: {error}: {description}"),
                fix,
            )
        }
        Err(SalesforceError::Auth(AuthError::Signing(e))) => CheckLine::fail(
            "token",
            format!("cannot sign the assertion: {e}"),
            "set SALESFORCE_PRIVATE_KEY to the ipguard.key written by `ipguard keygen`",
        ),
        Err(e) => CheckLine::fail(
            "token",
            e.to_string(),
            format!(
                "check SALESFORCE_LOGIN_URL ({}) and that this machine reaches it",
                config.salesforce.login_url.as_str().trim_end_matches('/')
            ),
        ),
    }
}

/// Which cause of `user hasn't approved this consumer` applies, as far as the configuration
/// tells: Salesforce answers the same for a user who is not pre-authorized and for a username
/// the org does not have. A sandbox is known from its login URL or audience, and its My
/// Domain host (`name--sandbox.sandbox.my.salesforce.com`) names it; users copied into a
/// sandbox carry its name as a suffix (`user@acme.com.uat`).
fn unapproved_cause(config: &OrgSettings) -> String {
    let sf = &config.salesforce;
    let username = sf.username().unwrap_or_default();
    let host = sf.login_url.host_str().unwrap_or_default();
    let sandbox_name = host
        .strip_suffix(".sandbox.my.salesforce.com")
        .and_then(|sub| sub.split_once("--"))
        .map(|(_, name)| name.to_ascii_lowercase());
    let sandbox = sandbox_name.is_some()
        || host == "test.salesforce.com"
        || sf.audience == "https://test.salesforce.com";
    let suffix = username
        .rsplit_once('@')
        .and_then(|(_, domain)| domain.rsplit_once('.'))
        .map(|(_, last)| last.to_ascii_lowercase())
        .unwrap_or_default();
    match (sandbox, sandbox_name) {
        (true, Some(name)) if suffix == name => format!(
            "Likely cause (1): SALESFORCE_USERNAME {username} carries sandbox {name}'s suffix."
        ),
        (true, Some(name)) => format!(
            "Likely cause (2): the login URL is sandbox {name}, but SALESFORCE_USERNAME \
             {username} does not end in .{name} as users copied into it do — use \
             {username}.{name} if it is the production user's copy."
        ),
        (true, None) if looks_like_public_suffix(&suffix) => format!(
            "Likely cause (2): the login is to a sandbox ({}), but SALESFORCE_USERNAME \
             {username} ends in a public domain like a production username; its sandbox copy \
             is named {username}.<sandbox name>.",
            sf.audience
        ),
        (false, _) if !suffix.is_empty() && !looks_like_public_suffix(&suffix) => format!(
            "Likely cause (2): SALESFORCE_USERNAME {username} ends in .{suffix} like a sandbox \
             user, but the login URL is a production one ({}): use \
             SALESFORCE_LOGIN_URL=https://test.salesforce.com or the sandbox's My Domain.",
            sf.login_url.as_str().trim_end_matches('/')
        ),
        _ => "The configuration cannot tell which cause applies.".to_owned(),
    }
}

/// Whether a username's last label reads as a public top-level domain rather than a sandbox
/// name: the common generic ones, the reserved `example`, and two-letter country codes —
/// but never a usual sandbox name (`dev`, `test`, `qa`, …). A guess by design; the fix names
/// both causes anyway.
fn looks_like_public_suffix(label: &str) -> bool {
    const GENERIC: &[&str] = &[
        "com", "org", "net", "edu", "gov", "mil", "int", "info", "biz", "io", "example",
    ];
    const SANDBOX_LIKE: &[&str] = &["qa", "sb", "uat", "dev", "test", "full", "partial"];
    !SANDBOX_LIKE.contains(&label)
        && (GENERIC.contains(&label)
            || (label.len() == 2 && label.bytes().all(|b| b.is_ascii_alphabetic())))
}
