//! Rows of `SetupAuditTrail` for the SOQL engine (`soql.rs`): the entries the sim recorded
//! (`SimState::audit`), what ipguard's drift attribution reads.
//!
//! Fields: `Id`, `Action`, `Section`, `Display`, `CreatedDate` (dateTime), `CreatedById`,
//! `DelegateUser` (always null: the sim's admins never log in as someone else); relationship
//! `CreatedBy` → `User` (`CreatedBy.Username`, the `User` row of `users.rs`). Without ORDER BY
//! the entries come oldest first; entries of the same millisecond keep the order they were made
//! in (reversed by `ORDER BY CreatedDate DESC`). Reading them without "View Setup and
//! Configuration" ([`super::SimOrg::set_audit_trail_readable`]) → 403 `INSUFFICIENT_ACCESS`
//! (the code and message for that case are a GUESS).

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use super::AuditEntry;
use super::soql::{Object, QueryError, Record};
use super::state::SimState;
use super::users;

pub(crate) const SETUP_AUDIT_TRAIL: Object = Object {
    name: "SetupAuditTrail",
    fields: &[
        "Id",
        "Action",
        "Section",
        "Display",
        "CreatedDate",
        "CreatedById",
        "DelegateUser",
    ],
    relations: &[("CreatedBy", "User")],
    datetimes: &["CreatedDate"],
};

/// The objects this module answers.
pub(crate) const OBJECTS: &[&Object] = &[&SETUP_AUDIT_TRAIL];

/// The rows of `SetupAuditTrail`, oldest first.
pub(crate) fn rows(state: &SimState, _object: &Object) -> Result<Vec<Record>, QueryError> {
    if !state.audit_readable {
        return Err((
            StatusCode::FORBIDDEN,
            "INSUFFICIENT_ACCESS",
            "Insufficient privileges: querying SetupAuditTrail requires View Setup and \
             Configuration"
                .to_owned(),
        ));
    }
    let mut entries: Vec<&AuditEntry> = state.audit.iter().collect();
    // Stable: entries of the same millisecond keep the order they were made in.
    entries.sort_by_key(|e| e.created_date);
    Ok(entries.into_iter().map(|e| record(state, e)).collect())
}

fn record(state: &SimState, entry: &AuditEntry) -> Record {
    Record::new("SetupAuditTrail", &entry.id)
        .field("Action", json!(entry.action))
        .field("Section", json!(entry.section))
        .field("Display", json!(entry.display))
        .field(
            "CreatedDate",
            json!(
                entry
                    .created_date
                    .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                    .to_string()
            ),
        )
        .field("CreatedById", json!(entry.created_by_id))
        .field("DelegateUser", Value::Null)
        .relation("CreatedBy", Some(created_by(state, entry)))
}

/// The `User` row of the entry's author, its `Username` the one the entry recorded.
fn created_by(state: &SimState, entry: &AuditEntry) -> Record {
    let mut user = users::user_record(state, &entry.created_by_id)
        .unwrap_or_else(|| Record::new("User", &entry.created_by_id));
    user.fields.retain(|(name, _)| *name != "Username");
    user.field("Username", json!(entry.username))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soql;

    /// ipguard's query (`query` in src/reconcile/attribution.rs, whose tests pin the text).
    const IPGUARD_QUERY: &str = "SELECT Id, Action, Section, Display, CreatedDate, \
        CreatedBy.Username, DelegateUser FROM SetupAuditTrail \
        WHERE CreatedDate >= 2024-05-01T12:00:00Z ORDER BY CreatedDate DESC LIMIT 200";

    fn schema() -> Vec<&'static Object> {
        OBJECTS.iter().chain(users::OBJECTS).copied().collect()
    }

    #[test]
    fn ipguards_query_parses() {
        let q = soql::parse(IPGUARD_QUERY, &schema()).unwrap();
        assert_eq!(q.object.name, "SetupAuditTrail");
        assert_eq!(
            q.field_names(),
            [
                "Id",
                "Action",
                "Section",
                "Display",
                "CreatedDate",
                "CreatedBy.Username",
                "DelegateUser"
            ]
        );
        assert_eq!(q.conditions.len(), 1);
        assert_eq!(q.order, Some((vec!["CreatedDate"], true)));
        assert_eq!(q.limit, Some(200));
    }

    #[test]
    fn outside_the_subset_is_refused_with_salesforce_codes() {
        let code = |soql: &str| soql::parse(soql, &schema()).unwrap_err().1;
        assert_eq!(code("SELECT Id FROM Account"), "INVALID_TYPE");
        assert_eq!(code("SELECT Name FROM SetupAuditTrail"), "INVALID_FIELD");
        assert_eq!(code("SELECT Id SetupAuditTrail"), "MALFORMED_QUERY");
        assert_eq!(
            code("SELECT Id FROM SetupAuditTrail WHERE CreatedDate >= '2024-05-01'"),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code("SELECT Id FROM SetupAuditTrail WHERE CreatedDate >= 2024-05-01"),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code("SELECT Id FROM SetupAuditTrail LIMIT 5 x"),
            "MALFORMED_QUERY"
        );
        assert_eq!(code("DELETE FROM SetupAuditTrail"), "MALFORMED_QUERY");
    }
}
