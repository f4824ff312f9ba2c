//! Who may use an app: the objects behind Setup's "Manage Profiles / Manage Permission Sets"
//! for a connected app or External Client App, as rows of the REST query resource.
//!
//! Modelled after Salesforce's Object Reference (sources in /work/notes/issue16-facts.md §1,
//! summarised in docs/sim.md):
//!
//! - `SetupEntityAccess` — ParentId (a PermissionSet), SetupEntityId (the app),
//!   SetupEntityType `ExternalClientApplication` (API 60.0+) or `ConnectedApplication`
//!   (API 28.0+) [OFFICIAL]. A profile grant is a row whose parent is the profile-owned
//!   permission set [OFFICIAL example filtering `isOwnedByProfile`].
//! - `PermissionSet` — Name (API name), Label, IsOwnedByProfile, ProfileId [OFFICIAL],
//!   PermissionSetGroupId [CODE]. Every profile owns one; its Name `X` + the profile's
//!   15-character id is a GUESS. Every group owns one too, holding the group's aggregate
//!   permissions [OFFICIAL: "PermissionSet contains the aggregated permissions for the
//!   group"]; its Name (`X` + the group's id) is a GUESS.
//! - `PermissionSetGroup` (DeveloperName, MasterLabel, Status) and
//!   `PermissionSetGroupComponent` (PermissionSetGroupId, PermissionSetId) [OFFICIAL].
//! - `PermissionSetAssignment` — AssigneeId (→ `User`), PermissionSetId, PermissionSetGroupId
//!   [OFFICIAL]. A group assignment's PermissionSetId is the group's aggregate permission set
//!   (sourced inference, facts §1e). Every user also has a row for their profile-owned
//!   permission set [CODE].
//! - `ConnectedApplication` (Id, Name) [OFFICIAL] and `ExternalClientApplication` (Id,
//!   DeveloperName, MasterLabel) [CODE: queried through the standard endpoint]. The key
//!   prefix `0xI` of ExternalClientApplication ids is a GUESS.
//!
//! Reading any of these needs "View Setup and Configuration" (official for SetupEntityAccess,
//! PermissionSet, PermissionSetAssignment, PermissionSetGroup and PermissionSetGroupComponent;
//! a GUESS for the two app objects, which document no rule):
//! [`super::SimOrg::set_audit_trail_readable`]`(false)` → 403 `INSUFFICIENT_ACCESS`.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use super::ids;
use super::soql::{Object, QueryError, Record};
use super::state::SimState;
use super::users;

/// A user of the org.
pub(crate) struct UserRecord {
    pub id: String,
    pub username: String,
    pub name: String,
    /// The profile's full name (as listMetadata names it).
    pub profile: String,
    pub active: bool,
    /// Id of the PermissionSetAssignment row of the profile-owned permission set.
    pub profile_assignment_id: String,
}

impl UserRecord {
    pub fn new(id: &str, username: &str, name: &str, profile: &str, active: bool) -> Self {
        Self {
            id: id.to_owned(),
            username: username.to_owned(),
            name: name.to_owned(),
            profile: profile.to_owned(),
            active,
            profile_assignment_id: ids::mint("0Pa"),
        }
    }
}

/// A permission set that is not profile-owned.
pub(crate) struct PermissionSetRecord {
    pub id: String,
    /// API name (`Name`).
    pub name: String,
    pub label: String,
    /// The group whose aggregate permission set this is.
    pub group_id: Option<String>,
}

pub(crate) struct GroupRecord {
    pub id: String,
    pub developer_name: String,
    /// The group's own (aggregate) PermissionSet.
    pub permission_set_id: String,
    /// PermissionSetGroupComponent rows: (row id, component permission set id).
    pub components: Vec<(String, String)>,
}

pub(crate) struct AssignmentRecord {
    pub id: String,
    pub user_id: String,
    pub permission_set_id: String,
    pub group_id: Option<String>,
}

pub(crate) struct EntityAccessRecord {
    pub id: String,
    pub parent_id: String,
    pub entity_id: String,
    pub entity_type: &'static str,
}

pub(crate) const PERMISSION_SET: Object = Object {
    name: "PermissionSet",
    fields: &[
        "Id",
        "Name",
        "Label",
        "IsOwnedByProfile",
        "ProfileId",
        "PermissionSetGroupId",
    ],
    relations: &[
        ("Profile", "Profile"),
        ("PermissionSetGroup", "PermissionSetGroup"),
    ],
    datetimes: &[],
};
pub(crate) const PERMISSION_SET_GROUP: Object = Object {
    name: "PermissionSetGroup",
    fields: &["Id", "DeveloperName", "MasterLabel", "Status"],
    relations: &[],
    datetimes: &[],
};
pub(crate) const PERMISSION_SET_GROUP_COMPONENT: Object = Object {
    name: "PermissionSetGroupComponent",
    fields: &["Id", "PermissionSetGroupId", "PermissionSetId"],
    relations: &[
        ("PermissionSetGroup", "PermissionSetGroup"),
        ("PermissionSet", "PermissionSet"),
    ],
    datetimes: &[],
};
pub(crate) const PERMISSION_SET_ASSIGNMENT: Object = Object {
    name: "PermissionSetAssignment",
    fields: &[
        "Id",
        "AssigneeId",
        "PermissionSetId",
        "PermissionSetGroupId",
    ],
    relations: &[
        ("Assignee", "User"),
        ("PermissionSet", "PermissionSet"),
        ("PermissionSetGroup", "PermissionSetGroup"),
    ],
    datetimes: &[],
};
pub(crate) const SETUP_ENTITY_ACCESS: Object = Object {
    name: "SetupEntityAccess",
    fields: &["Id", "ParentId", "SetupEntityId", "SetupEntityType"],
    relations: &[("Parent", "PermissionSet")],
    datetimes: &[],
};
pub(crate) const CONNECTED_APPLICATION: Object = Object {
    name: "ConnectedApplication",
    fields: &["Id", "Name"],
    relations: &[],
    datetimes: &[],
};
pub(crate) const EXTERNAL_CLIENT_APPLICATION: Object = Object {
    name: "ExternalClientApplication",
    fields: &["Id", "DeveloperName", "MasterLabel"],
    relations: &[],
    datetimes: &[],
};

/// The objects this module answers.
pub(crate) const OBJECTS: &[&Object] = &[
    &PERMISSION_SET,
    &PERMISSION_SET_GROUP,
    &PERMISSION_SET_GROUP_COMPONENT,
    &PERMISSION_SET_ASSIGNMENT,
    &SETUP_ENTITY_ACCESS,
    &CONNECTED_APPLICATION,
    &EXTERNAL_CLIENT_APPLICATION,
];

fn id_or_null(id: Option<&str>) -> Value {
    id.map_or(Value::Null, |id| json!(id))
}

fn group_record(state: &SimState, id: &str) -> Option<Record> {
    let group = state.permission_set_groups.iter().find(|g| g.id == id)?;
    Some(
        Record::new("PermissionSetGroup", &group.id)
            .field("DeveloperName", json!(group.developer_name))
            .field("MasterLabel", json!(group.developer_name))
            .field("Status", json!("Updated")),
    )
}

/// The PermissionSet row with this id: profile-owned, regular or a group's aggregate.
fn permission_set_record(state: &SimState, id: &str) -> Option<Record> {
    if let Some(profile) = state.profiles.iter().find(|p| p.permission_set_id == id) {
        return Some(
            Record::new("PermissionSet", id)
                .field("Name", json!(profile_permission_set_name(&profile.id)))
                .field("Label", json!(profile_permission_set_name(&profile.id)))
                .field("IsOwnedByProfile", json!(true))
                .field("ProfileId", json!(profile.id))
                .field("PermissionSetGroupId", Value::Null)
                .relation("Profile", users::profile_record(state, &profile.full_name))
                .relation("PermissionSetGroup", None),
        );
    }
    let set = state.permission_sets.iter().find(|p| p.id == id)?;
    Some(
        Record::new("PermissionSet", id)
            .field("Name", json!(set.name))
            .field("Label", json!(set.label))
            .field("IsOwnedByProfile", json!(false))
            .field("ProfileId", Value::Null)
            .field("PermissionSetGroupId", id_or_null(set.group_id.as_deref()))
            .relation("Profile", None)
            .relation(
                "PermissionSetGroup",
                set.group_id.as_deref().and_then(|g| group_record(state, g)),
            ),
    )
}

/// GUESS: a profile-owned permission set's Name is `X` + the profile's 15-character id.
fn profile_permission_set_name(profile_id: &str) -> String {
    format!("X{}", &profile_id[..15.min(profile_id.len())])
}

fn assignment_record(
    state: &SimState,
    id: &str,
    user_id: &str,
    permission_set_id: &str,
    group_id: Option<&str>,
) -> Record {
    Record::new("PermissionSetAssignment", id)
        .field("AssigneeId", json!(user_id))
        .field("PermissionSetId", json!(permission_set_id))
        .field("PermissionSetGroupId", id_or_null(group_id))
        .relation("Assignee", users::user_record(state, user_id))
        .relation(
            "PermissionSet",
            permission_set_record(state, permission_set_id),
        )
        .relation(
            "PermissionSetGroup",
            group_id.and_then(|g| group_record(state, g)),
        )
}

/// The rows of one of [`OBJECTS`]; 403 without "View Setup and Configuration".
pub(crate) fn rows(state: &SimState, object: &Object) -> Result<Vec<Record>, QueryError> {
    if !state.audit_readable {
        return Err((
            StatusCode::FORBIDDEN,
            "INSUFFICIENT_ACCESS",
            format!(
                "Insufficient privileges: querying {} requires View Setup and Configuration",
                object.name
            ),
        ));
    }
    let records = match object.name {
        "PermissionSet" => state
            .profiles
            .iter()
            .map(|p| p.permission_set_id.as_str())
            .chain(state.permission_sets.iter().map(|p| p.id.as_str()))
            .filter_map(|id| permission_set_record(state, id))
            .collect(),
        "PermissionSetGroup" => state
            .permission_set_groups
            .iter()
            .filter_map(|g| group_record(state, &g.id))
            .collect(),
        "PermissionSetGroupComponent" => state
            .permission_set_groups
            .iter()
            .flat_map(|g| g.components.iter().map(move |c| (g, c)))
            .map(|(group, (row, set))| {
                Record::new("PermissionSetGroupComponent", row)
                    .field("PermissionSetGroupId", json!(group.id))
                    .field("PermissionSetId", json!(set))
                    .relation("PermissionSetGroup", group_record(state, &group.id))
                    .relation("PermissionSet", permission_set_record(state, set))
            })
            .collect(),
        "PermissionSetAssignment" => {
            let profile_rows = state.users.iter().filter_map(|u| {
                let profile = state.profile(&u.profile)?;
                Some(assignment_record(
                    state,
                    &u.profile_assignment_id,
                    &u.id,
                    &profile.permission_set_id,
                    None,
                ))
            });
            let other_rows = state.assignments.iter().map(|a| {
                assignment_record(
                    state,
                    &a.id,
                    &a.user_id,
                    &a.permission_set_id,
                    a.group_id.as_deref(),
                )
            });
            profile_rows.chain(other_rows).collect()
        }
        "SetupEntityAccess" => state
            .entity_access
            .iter()
            .map(|r| {
                Record::new("SetupEntityAccess", &r.id)
                    .field("ParentId", json!(r.parent_id))
                    .field("SetupEntityId", json!(r.entity_id))
                    .field("SetupEntityType", json!(r.entity_type))
                    .relation("Parent", permission_set_record(state, &r.parent_id))
            })
            .collect(),
        "ConnectedApplication" => state
            .connected_apps
            .iter()
            .map(|a| Record::new("ConnectedApplication", &a.id).field("Name", json!(a.name)))
            .collect(),
        _ => state
            .external_client_apps
            .iter()
            .map(|a| {
                Record::new("ExternalClientApplication", &a.id)
                    .field("DeveloperName", json!(a.name))
                    .field("MasterLabel", json!(a.name))
            })
            .collect(),
    };
    Ok(records)
}

// ---------------------------------------------------------------------------------------
// The admin's hand (SimOrg's test helpers): panics on unknown names.

impl SimState {
    fn user_by_name(&self, username: &str) -> &UserRecord {
        self.users
            .iter()
            .find(|u| u.username == username)
            .unwrap_or_else(|| panic!("no user named {username}"))
    }

    fn permission_set_id(&self, api_name: &str) -> String {
        self.permission_sets
            .iter()
            .find(|p| p.name == api_name && p.group_id.is_none())
            .unwrap_or_else(|| panic!("no permission set named {api_name}"))
            .id
            .clone()
    }

    fn group(&self, developer_name: &str) -> &GroupRecord {
        self.permission_set_groups
            .iter()
            .find(|g| g.developer_name == developer_name)
            .unwrap_or_else(|| panic!("no permission set group named {developer_name}"))
    }

    fn profile_permission_set(&self, profile: &str) -> String {
        self.profile(profile)
            .unwrap_or_else(|| panic!("no profile named {profile}"))
            .permission_set_id
            .clone()
    }

    /// (id, SetupEntityType) of an app: an External Client App by DeveloperName, else a
    /// connected app by Name.
    fn app(&self, app: &str) -> (String, &'static str) {
        if let Some(eca) = self.eca(app) {
            return (eca.id.clone(), "ExternalClientApplication");
        }
        if let Some(connected) = self.connected_app_record(app) {
            return (connected.id.clone(), "ConnectedApplication");
        }
        panic!("no External Client App or connected app named {app}")
    }

    pub fn add_user(&mut self, username: &str, profile: &str, active: bool) -> String {
        assert!(
            self.profile(profile).is_some(),
            "no profile named {profile}"
        );
        assert!(
            self.users.iter().all(|u| u.username != username),
            "user {username} exists"
        );
        let id = ids::mint("005");
        self.users
            .push(UserRecord::new(&id, username, username, profile, active));
        id
    }

    pub fn add_permission_set(&mut self, api_name: &str) -> String {
        if let Some(existing) = self
            .permission_sets
            .iter()
            .find(|p| p.name == api_name && p.group_id.is_none())
        {
            return existing.id.clone();
        }
        let id = ids::mint("0PS");
        self.permission_sets.push(PermissionSetRecord {
            id: id.clone(),
            name: api_name.to_owned(),
            label: api_name.replace('_', " "),
            group_id: None,
        });
        id
    }

    pub fn add_permission_set_group(&mut self, developer_name: &str, sets: &[&str]) -> String {
        assert!(
            self.permission_set_groups
                .iter()
                .all(|g| g.developer_name != developer_name),
            "permission set group {developer_name} exists"
        );
        let components = sets
            .iter()
            .map(|s| (ids::mint("0PL"), self.permission_set_id(s)))
            .collect();
        let id = ids::mint("0PG");
        let permission_set_id = ids::mint("0PS");
        self.permission_sets.push(PermissionSetRecord {
            id: permission_set_id.clone(),
            name: format!("X{}", &id[..15]),
            label: developer_name.to_owned(),
            group_id: Some(id.clone()),
        });
        self.permission_set_groups.push(GroupRecord {
            id: id.clone(),
            developer_name: developer_name.to_owned(),
            permission_set_id,
            components,
        });
        id
    }

    pub fn assign_permission_set(&mut self, username: &str, api_name: &str) {
        let user_id = self.user_by_name(username).id.clone();
        let permission_set_id = self.permission_set_id(api_name);
        self.assignments.push(AssignmentRecord {
            id: ids::mint("0Pa"),
            user_id,
            permission_set_id,
            group_id: None,
        });
    }

    pub fn assign_permission_set_group(&mut self, username: &str, developer_name: &str) {
        let user_id = self.user_by_name(username).id.clone();
        let group = self.group(developer_name);
        let (group_id, permission_set_id) = (group.id.clone(), group.permission_set_id.clone());
        self.assignments.push(AssignmentRecord {
            id: ids::mint("0Pa"),
            user_id,
            permission_set_id,
            group_id: Some(group_id),
        });
    }

    pub fn unassign_all(&mut self, username: &str) {
        let user_id = self.user_by_name(username).id.clone();
        self.assignments.retain(|a| a.user_id != user_id);
    }

    fn grant(&mut self, app: &str, parent_id: String) {
        let (entity_id, entity_type) = self.app(app);
        if self
            .entity_access
            .iter()
            .any(|r| r.parent_id == parent_id && r.entity_id == entity_id)
        {
            return;
        }
        self.entity_access.push(EntityAccessRecord {
            id: ids::mint("0J0"),
            parent_id,
            entity_id,
            entity_type,
        });
    }

    fn revoke(&mut self, app: &str, parent_id: &str) {
        let (entity_id, _) = self.app(app);
        self.entity_access
            .retain(|r| !(r.parent_id == parent_id && r.entity_id == entity_id));
    }

    pub fn grant_app_to_profile(&mut self, app: &str, profile: &str) {
        let parent = self.profile_permission_set(profile);
        self.grant(app, parent);
    }

    pub fn grant_app_to_permission_set(&mut self, app: &str, api_name: &str) {
        let parent = self.permission_set_id(api_name);
        self.grant(app, parent);
    }

    pub fn revoke_app_from_profile(&mut self, app: &str, profile: &str) {
        let parent = self.profile_permission_set(profile);
        self.revoke(app, &parent);
    }

    pub fn revoke_app_from_permission_set(&mut self, app: &str, api_name: &str) {
        let parent = self.permission_set_id(api_name);
        self.revoke(app, &parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soql;

    /// The exact text of ipguard's app-access queries (issue 16; src/salesforce/app_access.rs
    /// sends them with real ids): the sim must parse every one.
    const QUERIES: [&str; 6] = [
        "SELECT Id FROM ExternalClientApplication WHERE DeveloperName = 'IPGuard'",
        "SELECT Id FROM ConnectedApplication WHERE Name = 'IPGuard'",
        "SELECT ParentId, Parent.Name, Parent.IsOwnedByProfile, Parent.ProfileId FROM SetupEntityAccess WHERE SetupEntityId = '0xI5g0000000001AAA'",
        "SELECT PermissionSetId, PermissionSetGroupId, PermissionSetGroup.DeveloperName FROM PermissionSetGroupComponent WHERE PermissionSetId IN ('0PS5g0000000001AAA', '0PS5g0000000002AAA')",
        "SELECT Assignee.ProfileId, PermissionSetId, PermissionSetGroupId FROM PermissionSetAssignment WHERE Assignee.IsActive = true AND PermissionSetId IN ('0PS5g0000000001AAA', '0PS5g0000000002AAA')",
        "SELECT Assignee.ProfileId, PermissionSetId, PermissionSetGroupId FROM PermissionSetAssignment WHERE Assignee.IsActive = true AND PermissionSetGroupId IN ('0PG5g0000000001AAA')",
    ];

    fn schema() -> Vec<&'static Object> {
        users::OBJECTS.iter().chain(OBJECTS).copied().collect()
    }

    #[test]
    fn ipguards_access_queries_parse() {
        let parsed: Vec<soql::Query> = QUERIES
            .iter()
            .map(|q| soql::parse(q, &schema()).unwrap_or_else(|e| panic!("{q}: {e:?}")))
            .collect();
        assert_eq!(parsed[0].object.name, "ExternalClientApplication");
        assert_eq!(parsed[1].object.name, "ConnectedApplication");
        assert_eq!(
            parsed[2].field_names(),
            [
                "ParentId",
                "Parent.Name",
                "Parent.IsOwnedByProfile",
                "Parent.ProfileId"
            ]
        );
        assert_eq!(
            parsed[3].field_names(),
            [
                "PermissionSetId",
                "PermissionSetGroupId",
                "PermissionSetGroup.DeveloperName"
            ]
        );
        assert_eq!(parsed[3].conditions[0].op, soql::Op::In);
        assert_eq!(parsed[3].conditions[0].values.len(), 2);
        for q in &parsed[4..] {
            assert_eq!(q.object.name, "PermissionSetAssignment");
            assert_eq!(q.conditions[0].path, ["Assignee", "IsActive"]);
            assert_eq!(q.conditions[0].values, [soql::Literal::Bool(true)]);
            assert_eq!(q.conditions[1].op, soql::Op::In);
        }
        assert_eq!(parsed[5].conditions[1].path, ["PermissionSetGroupId"]);
    }
}
