//! Who can use an app: SOQL over the setup objects that hold app access (docs/salesforce.md
//! § App access). Sources (Object Reference): `SetupEntityAccess` ties a permission set to an
//! app (`SetupEntityType` `ConnectedApplication` from API 28.0, `ExternalClientApplication`
//! from 60.0); a profile's grant is on the permission set it owns (`IsOwnedByProfile`,
//! `ProfileId`); `PermissionSetGroupComponent` says which groups hold a permission set;
//! `PermissionSetAssignment` says who holds a permission set or a group. The app's id is read
//! first and filtered on, as the SetupEntityAccess page advises for connected apps. Every
//! object needs "View Setup and Configuration".

use serde_json::Value;

use super::client::{MetadataClient, SalesforceError};
use super::soql::string_literal;

/// Ids per `IN (…)` list: keeps a query well inside Salesforce's URL and SOQL length limits.
const IN_CHUNK: usize = 200;

/// How a profile's users came to the app.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Via {
    /// The profile itself is granted the app.
    Profile,
    /// A user of the profile holds this permission set (API name), which grants the app.
    PermissionSet(String),
    /// A user of the profile holds this permission set group (developer name), one of whose
    /// permission sets grants the app.
    PermissionSetGroup(String),
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::Profile => f.write_str("granted to the profile"),
            Via::PermissionSet(name) => write!(f, "through permission set {name}"),
            Via::PermissionSetGroup(name) => write!(f, "through permission set group {name}"),
        }
    }
}

/// One profile (by record id, `00e…`) whose users can use the app, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileAccess {
    pub profile_id: String,
    pub via: Via,
}

#[derive(Debug, thiserror::Error)]
pub enum AppAccessError {
    #[error(
        "no External Client App nor connected app named `{0}` in the org (`@app:` takes the app's API name)"
    )]
    NoSuchApp(String),
    #[error("cannot read who may use app `{app}`: {source}")]
    Query {
        app: String,
        #[source]
        source: SalesforceError,
    },
    #[error("cannot read who may use app `{app}`: unexpected answer to `{query}`")]
    Unexpected { app: String, query: String },
}

pub fn eca_id_query(app: &str) -> String {
    format!(
        "SELECT Id FROM ExternalClientApplication WHERE DeveloperName = {}",
        string_literal(app)
    )
}

pub fn connected_app_id_query(app: &str) -> String {
    format!(
        "SELECT Id FROM ConnectedApplication WHERE Name = {}",
        string_literal(app)
    )
}

pub fn grants_query(app_id: &str) -> String {
    format!(
        "SELECT ParentId, Parent.Name, Parent.IsOwnedByProfile, Parent.ProfileId FROM SetupEntityAccess WHERE SetupEntityId = {}",
        string_literal(app_id)
    )
}

pub fn groups_query(permission_set_ids: &[&str]) -> String {
    format!(
        "SELECT PermissionSetId, PermissionSetGroupId, PermissionSetGroup.DeveloperName FROM PermissionSetGroupComponent WHERE PermissionSetId IN {}",
        in_list(permission_set_ids)
    )
}

/// Active users holding one of these permission sets (`field` `PermissionSetId`) or groups
/// (`PermissionSetGroupId`).
pub fn holders_query(field: &str, ids: &[&str]) -> String {
    format!(
        "SELECT Assignee.ProfileId, PermissionSetId, PermissionSetGroupId FROM PermissionSetAssignment WHERE Assignee.IsActive = true AND {field} IN {}",
        in_list(ids)
    )
}

fn in_list(ids: &[&str]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| string_literal(id)).collect();
    format!("({})", quoted.join(", "))
}

/// Every profile whose users can use `app` (an External Client App's developer name, else a
/// connected app's name), each with every way it came to it.
pub async fn profiles_of_app(
    client: &MetadataClient,
    app: &str,
) -> Result<Vec<ProfileAccess>, AppAccessError> {
    let lookup = Lookup { client, app };
    let app_id = lookup.app_id().await?;
    let mut access = Vec::new();
    // Permission sets (not profiles') that grant the app: id → API name.
    let mut sets: Named = Vec::new();
    for row in lookup.rows(grants_query(&app_id)).await? {
        let owned = row
            .pointer("/Parent/IsOwnedByProfile")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if owned {
            if let Some(profile_id) = text(&row, &["Parent", "ProfileId"]) {
                access.push(ProfileAccess {
                    profile_id,
                    via: Via::Profile,
                });
            }
        } else if let Some(id) = text(&row, &["ParentId"]) {
            let name = text(&row, &["Parent", "Name"]).unwrap_or_else(|| id.clone());
            sets.push((id, name));
        }
    }
    if sets.is_empty() {
        return Ok(dedup(access));
    }
    lookup
        .holders("PermissionSetId", &sets, Via::PermissionSet, &mut access)
        .await?;
    // Groups holding a granting set: their holders can use the app too.
    let mut groups: Named = Vec::new();
    for chunk in ids(&sets).chunks(IN_CHUNK) {
        for row in lookup.rows(groups_query(chunk)).await? {
            if let Some(id) = text(&row, &["PermissionSetGroupId"]) {
                let name = text(&row, &["PermissionSetGroup", "DeveloperName"])
                    .unwrap_or_else(|| id.clone());
                if name_of(&groups, &id).is_none() {
                    groups.push((id, name));
                }
            }
        }
    }
    lookup
        .holders(
            "PermissionSetGroupId",
            &groups,
            Via::PermissionSetGroup,
            &mut access,
        )
        .await?;
    Ok(dedup(access))
}

/// Record ids with the names they are reported by.
type Named = Vec<(String, String)>;

fn ids(named: &Named) -> Vec<&str> {
    named.iter().map(|(id, _)| id.as_str()).collect()
}

fn name_of<'a>(named: &'a Named, id: &str) -> Option<&'a str> {
    named
        .iter()
        .find(|(known, _)| same_id(known, id))
        .map(|(_, name)| name.as_str())
}

/// The queries of one app's lookup.
struct Lookup<'a> {
    client: &'a MetadataClient,
    app: &'a str,
}

impl Lookup<'_> {
    async fn rows(&self, soql: String) -> Result<Vec<Value>, AppAccessError> {
        let answer =
            self.client
                .query_json(&soql)
                .await
                .map_err(|source| AppAccessError::Query {
                    app: self.app.to_owned(),
                    source,
                })?;
        records(&answer).ok_or_else(|| AppAccessError::Unexpected {
            app: self.app.to_owned(),
            query: soql,
        })
    }

    /// The External Client App's id, else the connected app's.
    async fn app_id(&self) -> Result<String, AppAccessError> {
        for soql in [eca_id_query(self.app), connected_app_id_query(self.app)] {
            match self.rows(soql).await {
                Ok(rows) => {
                    if let Some(id) = rows.first().and_then(|r| text(r, &["Id"])) {
                        return Ok(id);
                    }
                }
                // An org or API version without External Client Apps: try the connected app.
                Err(AppAccessError::Query {
                    source: SalesforceError::Rest { ref code, .. },
                    ..
                }) if code == "INVALID_TYPE" => {}
                Err(e) => return Err(e),
            }
        }
        Err(AppAccessError::NoSuchApp(self.app.to_owned()))
    }

    /// The profiles of the active users holding one of `named` (by `field`:
    /// `PermissionSetId` or `PermissionSetGroupId`), each reported `via` its name.
    async fn holders(
        &self,
        field: &str,
        named: &Named,
        via: fn(String) -> Via,
        access: &mut Vec<ProfileAccess>,
    ) -> Result<(), AppAccessError> {
        for chunk in ids(named).chunks(IN_CHUNK) {
            for row in self.rows(holders_query(field, chunk)).await? {
                let (Some(profile_id), Some(held)) =
                    (text(&row, &["Assignee", "ProfileId"]), text(&row, &[field]))
                else {
                    continue;
                };
                if let Some(name) = name_of(named, &held) {
                    access.push(ProfileAccess {
                        profile_id,
                        via: via(name.to_owned()),
                    });
                }
            }
        }
        Ok(())
    }
}

fn dedup(mut access: Vec<ProfileAccess>) -> Vec<ProfileAccess> {
    access.sort_by(|a, b| (&a.profile_id, &a.via).cmp(&(&b.profile_id, &b.via)));
    access.dedup();
    access
}

/// Salesforce ids compare case-sensitively on their first 15 characters (the 18-character
/// form adds a checksum).
pub fn same_id(a: &str, b: &str) -> bool {
    let key = |id: &str| id.get(..15).unwrap_or(id).to_owned();
    key(a) == key(b)
}

fn records(answer: &Value) -> Option<Vec<Value>> {
    answer.get("records")?.as_array().cloned()
}

fn text(row: &Value, path: &[&str]) -> Option<String> {
    let mut value = row;
    for part in path {
        value = value.get(part)?;
    }
    value.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact texts the simulated org's unit tests parse (crates/ipguard-sim).
    #[test]
    fn queries_are_pinned() {
        assert_eq!(
            eca_id_query("IPGuard"),
            "SELECT Id FROM ExternalClientApplication WHERE DeveloperName = 'IPGuard'"
        );
        assert_eq!(
            connected_app_id_query("O'Brien"),
            "SELECT Id FROM ConnectedApplication WHERE Name = 'O\\'Brien'"
        );
        assert_eq!(
            holders_query("PermissionSetGroupId", &["0PG1", "0PG2"]),
            "SELECT Assignee.ProfileId, PermissionSetId, PermissionSetGroupId FROM PermissionSetAssignment WHERE Assignee.IsActive = true AND PermissionSetGroupId IN ('0PG1', '0PG2')"
        );
    }

    #[test]
    fn ids_compare_on_their_15_character_form() {
        assert!(same_id("00e5g000001AbCdEAF", "00e5g000001AbCd"));
        assert!(!same_id("00e5g000001AbCdEAF", "00e5g000001AbCe"));
    }
}
