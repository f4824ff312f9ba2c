//! Rows of `User`, `Profile` and `LoginHistory` for the SOQL engine (`soql.rs`): what the
//! self-lock-out interlock reads (the integration user's profile and its latest successful
//! login), and the users behind `PermissionSetAssignment.Assignee`.
//!
//! `User` fields: `Id`, `Username`, `Name`, `ProfileId`, `IsActive`, relationship `Profile`;
//! `Profile`: `Id`, `Name` (the label); `LoginHistory`: `Id`, `UserId`, `SourceIp`,
//! `LoginTime` (dateTime), `Status`. The org has the integration user, the Setup admin and the
//! users tests add ([`super::SimOrg::add_user`]). LoginHistory holds one row per token request
//! of the integration user (the admin's Setup logins are not modelled). Reading LoginHistory
//! without the permission ([`super::SimOrg::set_login_history_readable`]) → 403
//! `INSUFFICIENT_ACCESS`.

use actix_web::http::StatusCode;
use serde_json::json;

use super::soql::{Object, QueryError, Record};
use super::state::SimState;
use ipguard_wire::profile::{ProfileName, standard_label};

pub(crate) const USER: Object = Object {
    name: "User",
    fields: &["Id", "Username", "Name", "ProfileId", "IsActive"],
    relations: &[("Profile", "Profile")],
    datetimes: &[],
};
pub(crate) const PROFILE: Object = Object {
    name: "Profile",
    fields: &["Id", "Name"],
    relations: &[],
    datetimes: &[],
};
pub(crate) const LOGIN_HISTORY: Object = Object {
    name: "LoginHistory",
    fields: &["Id", "UserId", "SourceIp", "LoginTime", "Status"],
    relations: &[],
    datetimes: &["LoginTime"],
};

/// The objects this module answers.
pub(crate) const OBJECTS: &[&Object] = &[&USER, &PROFILE, &LOGIN_HISTORY];

/// What Setup calls a profile (`Profile.Name`): the label, not the metadata full name.
fn profile_label(full_name: &str) -> String {
    standard_label(full_name).map_or_else(
        || {
            ProfileName::parse(full_name)
                .map(|n| n.decoded())
                .unwrap_or_else(|_| full_name.to_owned())
        },
        str::to_owned,
    )
}

/// The `Profile` row of a profile (by full name); `None` when the org has no such profile.
pub(crate) fn profile_record(state: &SimState, full_name: &str) -> Option<Record> {
    let profile = state.profile(full_name)?;
    Some(Record::new("Profile", &profile.id).field("Name", json!(profile_label(full_name))))
}

/// The `User` row with this id.
pub(crate) fn user_record(state: &SimState, id: &str) -> Option<Record> {
    let user = state.users.iter().find(|u| u.id == id)?;
    let profile = profile_record(state, &user.profile);
    let profile_id = profile
        .as_ref()
        .map_or(serde_json::Value::Null, |p| json!(p.id));
    Some(
        Record::new("User", &user.id)
            .field("Username", json!(user.username))
            .field("Name", json!(user.name))
            .field("ProfileId", profile_id)
            .field("IsActive", json!(user.active))
            .relation("Profile", profile),
    )
}

/// The rows of one of [`OBJECTS`].
pub(crate) fn rows(state: &SimState, object: &Object) -> Result<Vec<Record>, QueryError> {
    Ok(match object.name {
        "User" => state
            .users
            .iter()
            .filter_map(|u| user_record(state, &u.id))
            .collect(),
        "Profile" => state
            .profiles
            .iter()
            .filter_map(|p| profile_record(state, &p.full_name))
            .collect(),
        _ => {
            if !state.login_history_readable {
                return Err((
                    StatusCode::FORBIDDEN,
                    "INSUFFICIENT_ACCESS",
                    "Insufficient privileges: LoginHistory requires Manage Users".to_owned(),
                ));
            }
            state
                .logins
                .iter()
                .map(|l| {
                    Record::new("LoginHistory", &l.id)
                        .field("UserId", json!(state.user_id))
                        .field("SourceIp", json!(l.source_ip.to_string()))
                        .field(
                            "LoginTime",
                            json!(
                                l.login_time
                                    .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                                    .to_string()
                            ),
                        )
                        .field("Status", json!(l.status))
                })
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soql;

    /// The exact text of ipguard's interlock queries (`user_query`, `login_query` in
    /// src/reconcile/interlock.rs, whose tests pin the same strings): the sim must parse them.
    const USER_QUERY: &str =
        "SELECT Id, Profile.Name FROM User WHERE Username = 'integration@ipguard.example' LIMIT 1";
    const LOGIN_QUERY: &str = "SELECT SourceIp, LoginTime FROM LoginHistory WHERE UserId = '005x' \
        AND Status = 'Success' AND LoginTime >= 2024-05-01T12:00:00Z ORDER BY LoginTime DESC LIMIT 1";

    #[test]
    fn interlock_queries_parse() {
        let user = USER_QUERY;
        let q = soql::parse(user, OBJECTS).unwrap();
        assert_eq!(q.object.name, "User");
        assert_eq!(q.field_names(), ["Id", "Profile.Name"]);
        let login = LOGIN_QUERY;
        let q = soql::parse(login, OBJECTS).unwrap();
        assert_eq!(q.object.name, "LoginHistory");
        assert_eq!(q.conditions.len(), 3);
        assert_eq!(q.order, Some((vec!["LoginTime"], true)));
        assert_eq!(q.limit, Some(1));
        assert_eq!(
            soql::parse("SELECT Id FROM SetupAuditTrail", OBJECTS)
                .unwrap_err()
                .1,
            "INVALID_TYPE"
        );
    }

    #[test]
    fn labels_of_profiles() {
        assert_eq!(profile_label("Admin"), "System Administrator");
        assert_eq!(
            profile_label("Custom%3A Integration"),
            "Custom: Integration"
        );
    }
}
