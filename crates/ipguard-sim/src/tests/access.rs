//! Who may use the app, over the REST query resource: the exact queries ipguard sends
//! (issue 16) against profile grants, permission-set grants with direct and group
//! assignments, inactive users and a user without "View Setup and Configuration".

use super::*;

fn in_list(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn q1(app: &str) -> String {
    format!("SELECT Id FROM ExternalClientApplication WHERE DeveloperName = '{app}'")
}

fn q2(app: &str) -> String {
    format!("SELECT Id FROM ConnectedApplication WHERE Name = '{app}'")
}

fn q3(app_id: &str) -> String {
    format!(
        "SELECT ParentId, Parent.Name, Parent.IsOwnedByProfile, Parent.ProfileId FROM SetupEntityAccess WHERE SetupEntityId = '{app_id}'"
    )
}

fn q4(sets: &[&str]) -> String {
    format!(
        "SELECT PermissionSetId, PermissionSetGroupId, PermissionSetGroup.DeveloperName FROM PermissionSetGroupComponent WHERE PermissionSetId IN ({})",
        in_list(sets)
    )
}

fn q5(sets: &[&str]) -> String {
    format!(
        "SELECT Assignee.ProfileId, PermissionSetId, PermissionSetGroupId FROM PermissionSetAssignment WHERE Assignee.IsActive = true AND PermissionSetId IN ({})",
        in_list(sets)
    )
}

fn q6(groups: &[&str]) -> String {
    format!(
        "SELECT Assignee.ProfileId, PermissionSetId, PermissionSetGroupId FROM PermissionSetAssignment WHERE Assignee.IsActive = true AND PermissionSetGroupId IN ({})",
        in_list(groups)
    )
}

fn id_of(profiles: &[(String, String)], name: &str) -> String {
    profiles.iter().find(|(n, _)| n == name).unwrap().1.clone()
}

async fn app_id(sim: &SimOrg, session: &str) -> String {
    let rows = records(sim, session, &q1(DEFAULT_APP)).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0]["Id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_default_org_grants_the_app_to_the_integration_profile() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let profiles = profile_ids(&sim, &session).await;
    let rows = records(&sim, &session, &q1(DEFAULT_APP)).await;
    assert_eq!(rows.len(), 1);
    let app = rows[0]["Id"].as_str().unwrap();
    assert!(app.starts_with("0xI") && ids::is_valid_18(app), "{app}");
    assert_eq!(rows[0]["attributes"]["type"], "ExternalClientApplication");
    assert_eq!(
        rows[0]["attributes"]["url"],
        format!("/services/data/v66.0/sobjects/ExternalClientApplication/{app}")
    );
    assert!(records(&sim, &session, &q1("Nope")).await.is_empty());
    assert!(records(&sim, &session, &q2(DEFAULT_APP)).await.is_empty());

    let grants = records(&sim, &session, &q3(app)).await;
    assert_eq!(grants.len(), 1, "{grants:?}");
    let grant = &grants[0];
    assert_eq!(grant["attributes"]["type"], "SetupEntityAccess");
    let parent = &grant["Parent"];
    assert_eq!(parent["attributes"]["type"], "PermissionSet");
    assert_eq!(parent["IsOwnedByProfile"], json!(true));
    assert_eq!(
        parent["ProfileId"],
        json!(id_of(&profiles, DEFAULT_INTEGRATION_PROFILE))
    );
    assert!(parent["Name"].as_str().unwrap().starts_with("X00e"));
    let parent_id = grant["ParentId"].as_str().unwrap();
    assert!(parent_id.starts_with("0PS") && ids::is_valid_18(parent_id));
    assert_eq!(
        parent["attributes"]["url"],
        format!("/services/data/v66.0/sobjects/PermissionSet/{parent_id}")
    );
    // The 15-character form of the app id answers the same.
    assert_eq!(records(&sim, &session, &q3(&app[..15])).await, grants);
    // The integration user's profile-owned assignment is there, nothing else is granted.
    let assignments = records(&sim, &session, &q5(&[parent_id])).await;
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0]["PermissionSetGroupId"], Value::Null);
    assert_eq!(
        assignments[0]["Assignee"]["ProfileId"],
        json!(id_of(&profiles, DEFAULT_INTEGRATION_PROFILE))
    );
    assert_eq!(assignments[0]["Assignee"]["attributes"]["type"], "User");
    sim.stop().await;
}

#[tokio::test]
async fn permission_set_grants_reach_direct_and_group_assignees() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let access = sim.add_permission_set("IPGuard_Access");
    let unrelated = sim.add_permission_set("Reports");
    sim.grant_app_to_permission_set(DEFAULT_APP, "IPGuard_Access");
    let group = sim.add_permission_set_group("Ops_Group", &["IPGuard_Access", "Reports"]);
    assert!(group.starts_with("0PG") && ids::is_valid_18(&group));
    sim.add_user("direct@acme.example", "Custom%3A Support", true);
    sim.add_user("grouped@acme.example", "Standard", true);
    sim.add_user("gone@acme.example", "Standard", false);
    sim.assign_permission_set("direct@acme.example", "IPGuard_Access");
    sim.assign_permission_set("gone@acme.example", "IPGuard_Access");
    sim.assign_permission_set_group("grouped@acme.example", "Ops_Group");
    sim.assign_permission_set_group("gone@acme.example", "Ops_Group");
    let profiles = profile_ids(&sim, &session).await;
    let app = app_id(&sim, &session).await;

    let grants = records(&sim, &session, &q3(&app)).await;
    assert_eq!(grants.len(), 2, "{grants:?}");
    let by_set = grants
        .iter()
        .find(|g| g["Parent"]["IsOwnedByProfile"] == json!(false))
        .unwrap();
    assert_eq!(by_set["ParentId"], json!(access));
    assert_eq!(by_set["Parent"]["Name"], "IPGuard_Access");
    assert_eq!(by_set["Parent"]["ProfileId"], Value::Null);

    // Which groups hold the granting permission set.
    let components = records(&sim, &session, &q4(&[&access])).await;
    assert_eq!(components.len(), 1, "{components:?}");
    assert_eq!(components[0]["PermissionSetId"], json!(access));
    assert_eq!(components[0]["PermissionSetGroupId"], json!(group));
    assert_eq!(
        components[0]["PermissionSetGroup"]["DeveloperName"],
        "Ops_Group"
    );
    assert_eq!(
        components[0]["PermissionSetGroup"]["attributes"]["type"],
        "PermissionSetGroup"
    );
    assert_eq!(
        records(&sim, &session, &q4(&[&unrelated, &access]))
            .await
            .len(),
        2
    );

    // Direct assignees, active only.
    let direct = records(&sim, &session, &q5(&[&access])).await;
    assert_eq!(direct.len(), 1, "{direct:?}");
    assert_eq!(
        direct[0]["Assignee"]["ProfileId"],
        json!(id_of(&profiles, "Custom%3A Support"))
    );
    assert_eq!(direct[0]["PermissionSetGroupId"], Value::Null);

    // Group assignees, active only: PermissionSetId is the group's aggregate permission set.
    let grouped = records(&sim, &session, &q6(&[&group])).await;
    assert_eq!(grouped.len(), 1, "{grouped:?}");
    assert_eq!(
        grouped[0]["Assignee"]["ProfileId"],
        json!(id_of(&profiles, "Standard"))
    );
    assert_eq!(grouped[0]["PermissionSetGroupId"], json!(group));
    let aggregate = grouped[0]["PermissionSetId"].as_str().unwrap();
    assert!(aggregate.starts_with("0PS") && aggregate != access && aggregate != unrelated);
    // The group's assignment is not a direct assignment of its components.
    assert_eq!(
        records(&sim, &session, &q5(&[&access, &unrelated]))
            .await
            .len(),
        1
    );

    // Revoking and unassigning take effect.
    sim.unassign_all("direct@acme.example");
    assert!(records(&sim, &session, &q5(&[&access])).await.is_empty());
    sim.revoke_app_from_permission_set(DEFAULT_APP, "IPGuard_Access");
    assert_eq!(records(&sim, &session, &q3(&app)).await.len(), 1);
    sim.revoke_app_from_profile(DEFAULT_APP, DEFAULT_INTEGRATION_PROFILE);
    assert!(records(&sim, &session, &q3(&app)).await.is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn connected_apps_and_new_profiles_are_granted_alike() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    sim.set_connected_app("IPGuard_Legacy", Some("ENFORCE"));
    sim.add_profile("Custom%3A Ops", vec![range("192.0.2.1", "192.0.2.1")]);
    sim.grant_app_to_profile("IPGuard_Legacy", "Custom%3A Ops");
    let profiles = profile_ids(&sim, &session).await;
    let ops = id_of(&profiles, "Custom%3A Ops");
    assert!(ops.starts_with("00e"));
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Custom%3A Ops").unwrap()),
        keys_of(&[range("192.0.2.1", "192.0.2.1")])
    );
    let rows = records(&sim, &session, &q2("IPGuard_Legacy")).await;
    assert_eq!(rows.len(), 1);
    let app = rows[0]["Id"].as_str().unwrap();
    assert!(app.starts_with("0H4") && ids::is_valid_18(app));
    let grants = records(
        &sim,
        &session,
        &format!("SELECT SetupEntityType, Parent.ProfileId, Parent.Profile.Name FROM SetupEntityAccess WHERE SetupEntityId = '{app}'"),
    )
    .await;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0]["SetupEntityType"], "ConnectedApplication");
    assert_eq!(grants[0]["Parent"]["ProfileId"], json!(ops));
    assert_eq!(grants[0]["Parent"]["Profile"]["Name"], "Custom: Ops");
    sim.stop().await;
}

#[tokio::test]
async fn access_objects_need_view_setup_and_configuration() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let app = app_id(&sim, &session).await;
    sim.set_audit_trail_readable(false);
    let id = "0PS5g0000000001AAA";
    for soql in [
        q1(DEFAULT_APP),
        q2(DEFAULT_APP),
        q3(&app),
        q4(&[id]),
        q5(&[id]),
        q6(&["0PG5g0000000001AAA"]),
    ] {
        let (status, body) = rest_query(&sim, &session, &soql).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{soql}");
        assert_eq!(body[0]["errorCode"], "INSUFFICIENT_ACCESS", "{soql}");
    }
    // The interlock's own User query still answers.
    let users = records(
        &sim,
        &session,
        "SELECT Id, Profile.Name FROM User WHERE Username = 'integration@ipguard.example' LIMIT 1",
    )
    .await;
    assert_eq!(users[0]["Profile"]["Name"], "Custom: Integration");
    assert_eq!(sim.count("query"), 8);
    sim.stop().await;
}
