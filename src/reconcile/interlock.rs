//! The self-lock-out interlock (docs/contract.md §5 rule 10): a deploy whose target for the integration
//! user's profile would not admit ipguard's own way in is never sent.
//!
//! Its own way in: the space's NAT IPs (its egress when it runs in the space) and the source
//! IP Salesforce recorded for this process's latest token — the integration user's newest
//! successful `LoginHistory` row at or after the token was requested. Where `LoginHistory`
//! cannot be read, the NAT IPs alone.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::plan::{Plan, ProfilePlan, Reason};
use crate::ranges::{LoginIpRange, Source};
use crate::salesforce::client::MetadataClient;
use crate::salesforce::profile::{ProfileName, standard_label};
use crate::salesforce::soql;

/// Salesforce stamps `LoginTime` with its clock, the token request time is ours: a login this
/// much before our request still counts as the one that issued our token.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(2);

/// What Salesforce says about the integration user's latest login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginSeen {
    /// The source IP of the newest successful login at or after the token was requested.
    Found { ip: IpAddr, at: DateTime<Utc> },
    /// Readable, but no such row (yet): the NAT IPs alone.
    NotRecorded,
    /// Not readable (permission, API): the NAT IPs alone; `check` calls the interlock partial.
    Unreadable(String),
}

/// Which managed profile the integration user has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntegrationProfile {
    Managed(ProfileName),
    /// Its profile is not guarded: no deploy can change it.
    NotManaged(String),
    /// Salesforce did not say: every profile in the deploy is held to the rule.
    Unknown(String),
}

/// ipguard's own way in, as far as Salesforce and Heroku tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WayIn {
    /// The space's NAT IPs (empty without `HEROKU_SPACE`).
    pub nat: Vec<IpAddr>,
    pub login: LoginSeen,
    pub profile: IntegrationProfile,
}

/// A deploy the interlock stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "self-lock-out interlock: nothing deployed — the target for {profile} would not admit {missing} \
     (ipguard's own way in: {why}), so the next token request would be refused. Add the address \
     to IPGUARD_SOURCE_IPS (or run ipguard from the space), or, knowingly, `ipguard apply \
     --allow-self-lockout`"
)]
pub struct Refused {
    pub profile: String,
    pub missing: String,
    pub why: String,
}

/// The IPs of the space's sources (labelled by [`super::run::space_label`]).
pub fn nat_ips(sources: &[Source], space: Option<&str>) -> Vec<IpAddr> {
    let Some(space) = space else {
        return Vec::new();
    };
    let label = super::run::space_label(space);
    sources
        .iter()
        .filter(|s| s.label == label)
        .map(|s| s.net.addr())
        .collect()
}

/// Reads the integration user's profile and latest login; never fails (what cannot be read
/// is said in the result).
pub async fn own_way_in(
    client: &MetadataClient,
    username: Option<&str>,
    managed: &[ProfileName],
    nat: Vec<IpAddr>,
) -> WayIn {
    let Some(username) = username else {
        return WayIn {
            nat,
            login: LoginSeen::Unreadable("SALESFORCE_USERNAME is unset".into()),
            profile: IntegrationProfile::Unknown("SALESFORCE_USERNAME is unset".into()),
        };
    };
    let user = match client.query_json(&user_query(username)).await {
        Ok(answer) => read_user(&answer),
        Err(e) => Err(format!("cannot read the integration user: {e}")),
    };
    let (user_id, profile) = match user {
        Ok((id, profile_name)) => (Some(id), match_profile(&profile_name, managed)),
        Err(why) => (None, IntegrationProfile::Unknown(why)),
    };
    let login = match (user_id, client.session().await) {
        (None, _) => LoginSeen::Unreadable("the integration user's id is unknown".into()),
        (_, Err(e)) => LoginSeen::Unreadable(e.to_string()),
        (Some(id), Ok(session)) => {
            let since = session.requested_at - CLOCK_SKEW;
            match client.query_json(&login_query(&id, since)).await {
                Ok(answer) => read_login(&answer),
                Err(e) => LoginSeen::Unreadable(e.to_string()),
            }
        }
    };
    WayIn {
        nat,
        login,
        profile,
    }
}

/// `SELECT Id, Profile.Name FROM User WHERE Username = '…' LIMIT 1`
pub fn user_query(username: &str) -> String {
    format!(
        "SELECT Id, Profile.Name FROM User WHERE Username = {} LIMIT 1",
        soql::string_literal(username)
    )
}

/// The newest successful login of `user_id` at or after `since`.
pub fn login_query(user_id: &str, since: DateTime<Utc>) -> String {
    format!(
        "SELECT SourceIp, LoginTime FROM LoginHistory WHERE UserId = {} AND Status = 'Success' \
         AND LoginTime >= {} ORDER BY LoginTime DESC LIMIT 1",
        soql::string_literal(user_id),
        soql::datetime_literal(since)
    )
}

fn first_record(answer: &Value) -> Option<&Value> {
    answer.get("records")?.as_array()?.first()
}

fn read_user(answer: &Value) -> Result<(String, String), String> {
    let record = first_record(answer).ok_or("no User row for SALESFORCE_USERNAME")?;
    let id = record
        .get("Id")
        .and_then(Value::as_str)
        .ok_or("the User row has no Id")?;
    let profile = record
        .get("Profile")
        .and_then(|p| p.get("Name"))
        .and_then(Value::as_str)
        .ok_or("the User row has no Profile.Name")?;
    Ok((id.to_owned(), profile.to_owned()))
}

fn read_login(answer: &Value) -> LoginSeen {
    let Some(record) = first_record(answer) else {
        return LoginSeen::NotRecorded;
    };
    let ip = record
        .get("SourceIp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<IpAddr>().ok());
    let at = record
        .get("LoginTime")
        .and_then(Value::as_str)
        .and_then(soql::parse_datetime);
    match (ip, at) {
        (Some(ip), Some(at)) => LoginSeen::Found { ip, at },
        _ => LoginSeen::Unreadable("the LoginHistory row has no usable SourceIp/LoginTime".into()),
    }
}

/// The managed profile whose label is `profile_name` (`Profile.Name` is the label: a custom
/// profile's full name is its label percent-encoded; the well-known standard ones differ).
fn match_profile(profile_name: &str, managed: &[ProfileName]) -> IntegrationProfile {
    managed
        .iter()
        .find(|m| m.decoded() == profile_name || standard_label(m.as_str()) == Some(profile_name))
        .map_or_else(
            || IntegrationProfile::NotManaged(profile_name.to_owned()),
            |m| IntegrationProfile::Managed(m.clone()),
        )
}

fn admits(target: &[LoginIpRange], ip: IpAddr) -> bool {
    target.iter().any(|r| r.contains(ip))
}

/// Whether `ip` (the latest login's) lies in a range ipguard itself wrote for the space and now
/// retires: the space's egress moved with its NAT, so that address is no way in any more.
fn retired_egress(way_in: &WayIn, p: &ProfilePlan, ip: IpAddr) -> bool {
    !way_in.nat.is_empty()
        && p.remove
            .iter()
            .any(|r| r.contains(ip) && p.reason_for(r) == Some(Reason::OwnedNoLongerDesired))
}

/// `Ok` when every drifted profile that may be the integration user's keeps admitting every IP
/// of its way in.
pub fn judge(way_in: &WayIn, plan: &Plan) -> Result<(), Refused> {
    let why = describe(way_in);
    for p in plan.drifted() {
        let mut ips = way_in.nat.clone();
        if let LoginSeen::Found { ip, .. } = way_in.login
            && !ips.contains(&ip)
            && !retired_egress(way_in, p, ip)
        {
            ips.push(ip);
        }
        let held = match &way_in.profile {
            IntegrationProfile::Managed(name) => name == &p.name,
            IntegrationProfile::NotManaged(_) => false,
            IntegrationProfile::Unknown(_) => true,
        };
        if !held {
            continue;
        }
        let missing: Vec<String> = ips
            .iter()
            .filter(|ip| !admits(&p.target, **ip))
            .map(ToString::to_string)
            .collect();
        if !missing.is_empty() {
            let profile = match &way_in.profile {
                IntegrationProfile::Managed(_) => {
                    format!("the integration user's profile {}", p.name)
                }
                _ => format!(
                    "{} (it may be the integration user's profile: Salesforce did not say which is)",
                    p.name
                ),
            };
            return Err(Refused {
                profile,
                missing: missing.join(", "),
                why,
            });
        }
    }
    Ok(())
}

/// One line: where the way in comes from.
pub fn describe(way_in: &WayIn) -> String {
    let mut parts = Vec::new();
    if !way_in.nat.is_empty() {
        let nat: Vec<String> = way_in.nat.iter().map(ToString::to_string).collect();
        parts.push(format!("the space's NAT IPs {}", nat.join(", ")));
    }
    match &way_in.login {
        LoginSeen::Found { ip, at } => parts.push(format!(
            "this token's login from {ip} at {}",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        )),
        LoginSeen::NotRecorded => parts.push("no LoginHistory row for this token yet".to_owned()),
        LoginSeen::Unreadable(why) => {
            parts.push(format!("LoginHistory unreadable ({why}): NAT IPs only"))
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::reconcile::plan::{Owned, PolicyRules, plan_profile};
    use serde_json::json;

    fn r(start: &str, end: &str) -> LoginIpRange {
        LoginIpRange::parse_existing(start, end, None).unwrap()
    }

    fn name(n: &str) -> ProfileName {
        ProfileName::parse(n).unwrap()
    }

    fn exact_plan(profile: &str, actual: &[LoginIpRange], desired: &[LoginIpRange]) -> Plan {
        Plan::new(
            Policy::Exact,
            vec![plan_profile(
                name(profile),
                actual,
                desired,
                &PolicyRules::uniform(Policy::Exact),
                &Owned::ByDescription,
            )],
        )
    }

    /// The simulated org's query parser is tested on exactly these strings
    /// (crates/ipguard-sim/src/users.rs): a change here must be made there too.
    #[test]
    fn interlock_queries_are_the_text_the_sim_parses() {
        assert_eq!(
            user_query("integration@ipguard.example"),
            "SELECT Id, Profile.Name FROM User WHERE Username = 'integration@ipguard.example' LIMIT 1"
        );
        let since = soql::parse_datetime("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(
            login_query("005x", since),
            "SELECT SourceIp, LoginTime FROM LoginHistory WHERE UserId = '005x' \
             AND Status = 'Success' AND LoginTime >= 2024-05-01T12:00:00Z ORDER BY LoginTime DESC LIMIT 1"
        );
    }

    #[test]
    fn a_target_without_the_login_ip_is_refused() {
        let plan = exact_plan(
            "Custom%3A Integration",
            &[r("198.51.100.7", "198.51.100.7")],
            &[r("203.0.113.10", "203.0.113.11")],
        );
        let way_in = WayIn {
            nat: vec!["203.0.113.10".parse().unwrap()],
            login: LoginSeen::Found {
                ip: "198.51.100.7".parse().unwrap(),
                at: Utc::now(),
            },
            profile: IntegrationProfile::Managed(name("Custom%3A Integration")),
        };
        let refused = judge(&way_in, &plan).unwrap_err();
        assert_eq!(refused.missing, "198.51.100.7");
        // another profile's narrowing is none of the interlock's business
        let other = WayIn {
            profile: IntegrationProfile::NotManaged("Integration".into()),
            ..way_in.clone()
        };
        assert!(judge(&other, &plan).is_ok());
        // unknown profile: every drifted one is held to it
        let unknown = WayIn {
            profile: IntegrationProfile::Unknown("no access".into()),
            ..way_in
        };
        assert!(judge(&unknown, &plan).is_err());
    }

    #[test]
    fn a_login_from_the_space_s_retired_nat_ip_does_not_hold_the_move_back() {
        // the NAT moved: the token was issued from the old egress, which ipguard wrote and retires
        let old =
            LoginIpRange::parse_existing("203.0.113.10", "203.0.113.11", Some("ipguard: space s"))
                .unwrap();
        let new = [r("192.0.2.20", "192.0.2.21")];
        let plan = Plan::new(
            Policy::Merge,
            vec![plan_profile(
                name("Custom%3A Integration"),
                &[old],
                &new,
                &PolicyRules::uniform(Policy::Merge),
                &Owned::ByDescription,
            )],
        );
        let way_in = WayIn {
            nat: vec!["192.0.2.20".parse().unwrap(), "192.0.2.21".parse().unwrap()],
            login: LoginSeen::Found {
                ip: "203.0.113.10".parse().unwrap(),
                at: Utc::now(),
            },
            profile: IntegrationProfile::Managed(name("Custom%3A Integration")),
        };
        assert!(judge(&way_in, &plan).is_ok());
        // without a space, the same login IP is the operator's way in: refused
        let laptop = WayIn {
            nat: Vec::new(),
            ..way_in
        };
        assert!(judge(&laptop, &plan).is_err());
    }

    #[test]
    fn answers_are_read() {
        let user = json!({"records": [{"attributes": {}, "Id": "005x", "Profile": {"attributes": {}, "Name": "System Administrator"}}]});
        assert_eq!(
            read_user(&user),
            Ok(("005x".into(), "System Administrator".into()))
        );
        assert_eq!(
            match_profile("System Administrator", &[name("Admin")]),
            IntegrationProfile::Managed(name("Admin"))
        );
        assert_eq!(
            match_profile("Custom: Integration", &[name("Custom%3A Integration")]),
            IntegrationProfile::Managed(name("Custom%3A Integration"))
        );
        let login = json!({"records": [{"SourceIp": "52.1.2.3", "LoginTime": "2024-05-01T12:00:00.000+0000"}]});
        assert!(matches!(read_login(&login), LoginSeen::Found { .. }));
        assert_eq!(read_login(&json!({"records": []})), LoginSeen::NotRecorded);
    }
}
