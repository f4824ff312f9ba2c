//! `check`'s heroku and desired-ranges lines: where the IPs come from and what ipguard would
//! assert.

use super::{CheckLine, LISTED_RANGES, range_text};
use crate::app::parts;
use crate::config::{Config, OrgSettings};
use crate::heroku::{HerokuError, NatUnusable};
use crate::ranges::{LoginIpRange, Source, desired_ranges};

/// The heroku line and, when known, every source (static ones and the NAT's).
pub(super) async fn heroku(
    config: &Config,
    org: &OrgSettings,
    http: &reqwest::Client,
) -> (CheckLine, Option<Vec<Source>>) {
    let mut sources: Vec<Source> = config
        .source_ips
        .iter()
        .chain(&org.source_ips)
        .map(|net| Source {
            net: *net,
            label: "IPGUARD_SOURCE_IPS".into(),
        })
        .collect();
    let Some(heroku) = parts::sources(config, org, http).heroku else {
        return (
            CheckLine::skipped("heroku", "static sources only (no HEROKU_SPACE)"),
            Some(sources),
        );
    };
    let space = heroku.space().to_owned();
    let info = format!("`heroku spaces:info --space {space}`");
    let nat = match heroku.nat().await {
        Ok(nat) => nat,
        Err(e) => return (heroku_error_line(e), None),
    };
    // The same judgement every run makes (docs/contract.md §5 rule 1): one implementation.
    match nat.usable_sources(&space) {
        Ok(ips) => {
            let texts: Vec<String> = ips.iter().map(ToString::to_string).collect();
            let line = CheckLine::ok(
                "heroku",
                format!(
                    "space {space}: NAT enabled, outbound IPs {}",
                    texts.join(", ")
                ),
            );
            let label = crate::reconcile::run::space_label(&space);
            sources.extend(ips.iter().map(|ip| Source {
                net: (*ip).into(),
                label: label.clone(),
            }));
            (line, Some(sources))
        }
        Err(unusable @ NatUnusable::NoSources { .. }) => (
            CheckLine::fail(
                "heroku",
                unusable.to_string(),
                format!("wait until {info} shows its Outbound IPs, then run check again"),
            ),
            None,
        ),
        Err(unusable @ NatUnusable::NotEnabled { .. }) => {
            let fix = if nat.state == "updating" {
                format!("the NAT is being changed: wait until {info} shows its Outbound IPs")
            } else {
                format!(
                    "enable the space's stable outbound IPs (Heroku Dashboard › {space} › \
                     Network) and wait until {info} shows them"
                )
            };
            (CheckLine::fail("heroku", unusable.to_string(), fix), None)
        }
    }
}

pub(super) fn heroku_error_line(e: HerokuError) -> CheckLine {
    let fix = match &e {
        HerokuError::Unauthorized => {
            "create a long-lived token with `heroku authorizations:create` and set HEROKU_API_TOKEN"
        }
        HerokuError::NotFound(_) => {
            "set HEROKU_SPACE to the space's name or id (`heroku spaces`) and use a token of a team member"
        }
        _ => "check HEROKU_API_URL (default https://api.heroku.com) and this machine's network",
    };
    CheckLine::fail("heroku", e.to_string(), fix)
}

pub(super) fn desired_check(sources: &[Source]) -> (CheckLine, Option<Vec<LoginIpRange>>) {
    if sources.is_empty() {
        return (
            CheckLine::fail(
                "desired ranges",
                "no sources: ipguard would deploy an empty list",
                "set IPGUARD_SOURCE_IPS or HEROKU_SPACE and HEROKU_API_TOKEN",
            ),
            None,
        );
    }
    let desired = desired_ranges(sources);
    let too_large: Vec<String> = desired
        .iter()
        .filter(|r| !r.within_size_limit())
        .map(range_text)
        .collect();
    if desired.is_empty() || !too_large.is_empty() {
        return (
            CheckLine::fail(
                "desired ranges",
                format!(
                    "ranges Salesforce would refuse: {}",
                    if too_large.is_empty() {
                        "none produced".to_owned()
                    } else {
                        too_large.join(", ")
                    }
                ),
                "narrow IPGUARD_SOURCE_IPS",
            ),
            None,
        );
    }
    let mut listed: Vec<String> = desired.iter().take(LISTED_RANGES).map(range_text).collect();
    if desired.len() > LISTED_RANGES {
        listed.push("…".into());
    }
    (
        CheckLine::ok(
            "desired ranges",
            format!(
                "{} range(s) from {} source(s), all within Salesforce's size limits: {}",
                desired.len(),
                sources.len(),
                listed.join(", ")
            ),
        ),
        Some(desired),
    )
}
