//! `check`'s "self-lock-out interlock" line: what the interlock would hold as ipguard's own
//! way in before a deploy, and whether that is the full check or only the NAT IPs
//! (docs/contract.md §5 rule 10).

use super::CheckLine;
use crate::config::{Config, OrgSettings};
use crate::ranges::Source;
use crate::reconcile::interlock::{self, LoginSeen};
use crate::salesforce::client::MetadataClient;
use crate::salesforce::profile::ProfileName;

const NAME: &str = "self-lock-out interlock";

/// Reads what a run reads (the integration user and its latest login) through the same
/// function, so the line says what the next deploy will be held to.
pub(super) async fn interlock_check(
    config: &Config,
    org: &OrgSettings,
    client: &MetadataClient,
    managed: &[ProfileName],
    sources: Option<&[Source]>,
) -> CheckLine {
    let space = config.heroku.as_ref().map(|h| h.space.as_str());
    let nat = sources
        .map(|s| interlock::nat_ips(s, space))
        .unwrap_or_default();
    let way_in = interlock::own_way_in(client, org.salesforce.username(), managed, nat).await;
    let seen = interlock::describe(&way_in);
    match &way_in.login {
        LoginSeen::Unreadable(_) if way_in.nat.is_empty() => CheckLine::warn(
            NAME,
            format!(
                "blind: {seen}, and without HEROKU_SPACE there are no NAT IPs to hold — a deploy could shut ipguard out unseen"
            ),
            "let the integration user read LoginHistory (README › Self-lock-out interlock), or set HEROKU_SPACE",
        ),
        LoginSeen::Unreadable(_) => CheckLine::warn(
            NAME,
            format!("partial: {seen}"),
            "let the integration user read LoginHistory for the full check (README › Self-lock-out interlock)",
        ),
        LoginSeen::Found { .. } | LoginSeen::NotRecorded => CheckLine::ok(NAME, seen),
    }
}
