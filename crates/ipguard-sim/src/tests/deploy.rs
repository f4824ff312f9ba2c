//! deploy / checkDeployStatus over SOAP: the lifecycle, what is validated and applied, the
//! queue of one deploy at a time and when a deploy is stamped finished.

use super::*;

#[tokio::test]
async fn deploy_goes_pending_in_progress_succeeded_and_replaces_the_list() {
    let sim = start(SimConfig {
        pending_for: Duration::from_millis(400),
        in_progress_for: Duration::from_millis(400),
        ..config()
    })
    .await;
    let session = login(&sim).await;
    let admin_before = sim.login_ip_ranges("Admin").unwrap();
    let target = vec![
        LoginIpRange::parse_existing("52.1.2.3", "52.1.2.3", Some("ipguard: acme-space")).unwrap(),
        range("52.1.2.8", "52.1.2.15"),
    ];
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Custom%3A Support", target.clone())]),
    )
    .await;
    let (seen, result) = poll(&sim, &session, &id).await;
    assert_eq!(seen, ["Pending", "InProgress", "Succeeded"]);
    assert_eq!(
        names(&result),
        [
            "checkOnly",
            "completedDate",
            "createdBy",
            "createdByName",
            "createdDate",
            "details",
            "done",
            "id",
            "ignoreWarnings",
            "lastModifiedDate",
            "numberComponentErrors",
            "numberComponentsDeployed",
            "numberComponentsTotal",
            "numberTestErrors",
            "numberTestsCompleted",
            "numberTestsTotal",
            "rollbackOnError",
            "runTestsEnabled",
            "startDate",
            "status",
            "success"
        ]
    );
    assert_eq!(result.child_text(METADATA_NS, "success"), Some("true"));
    assert_eq!(result.child_text(METADATA_NS, "id"), Some(id.as_str()));
    assert_eq!(
        result.child_text(METADATA_NS, "numberComponentsDeployed"),
        Some("1")
    );
    let details = result.child(METADATA_NS, "details").unwrap();
    let success = details.child(METADATA_NS, "componentSuccesses").unwrap();
    assert_eq!(
        names(success),
        [
            "changed",
            "componentType",
            "created",
            "createdDate",
            "deleted",
            "fileName",
            "fullName",
            "success"
        ]
    );
    assert_eq!(
        success.child_text(METADATA_NS, "componentType"),
        Some("Profile")
    );
    assert_eq!(success.child_text(METADATA_NS, "changed"), Some("true"));
    assert_eq!(
        success.child_text(METADATA_NS, "fileName"),
        Some("profiles/Custom%3A Support.profile")
    );
    // REPLACE: the office range is gone, exactly the deployed list remains.
    let now_support = sim.login_ip_ranges("Custom%3A Support").unwrap();
    assert_eq!(keys_of(&now_support), keys_of(&target));
    assert_eq!(now_support[0].description(), Some("ipguard: acme-space"));
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Admin").unwrap()),
        keys_of(&admin_before)
    );
    // The change is visible to readMetadata and attributed to the integration user.
    let reply = soap(&sim, &session, &read_body(&["Custom%3A Support"])).await;
    let record = reply.result().children[0].clone();
    assert_eq!(
        keys_of(&profile::login_ip_ranges(&record).unwrap().unwrap()),
        keys_of(&target)
    );
    let records = sim.deploys();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, id);
    assert_eq!(records[0].status, "Succeeded");
    assert_eq!(records[0].profiles, ["Custom%3A Support"]);
    assert_eq!(
        records[0].files,
        ["package.xml", "profiles/Custom%3A Support.profile"]
    );
    assert!(!records[0].check_only);
    sim.stop().await;
}

#[tokio::test]
async fn pending_and_in_progress_results_match_the_samples() {
    let sim = start(SimConfig {
        pending_for: Duration::from_secs(30),
        ..config()
    })
    .await;
    let session = login(&sim).await;
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]),
    )
    .await;
    let pending = check_status(&sim, &session, &id).await;
    // Pending: no completedDate, no startDate (as in check-deploy-status-pending.xml).
    assert_eq!(pending.child(METADATA_NS, "completedDate"), None);
    assert_eq!(pending.child(METADATA_NS, "startDate"), None);
    assert_eq!(pending.child_text(METADATA_NS, "status"), Some("Pending"));
    assert_eq!(pending.child_text(METADATA_NS, "done"), Some("false"));
    assert_eq!(
        pending.child_text(METADATA_NS, "createdByName"),
        Some("Integration User")
    );
    // A 15-character form of the id finds the same deploy.
    let short = check_status(&sim, &session, &id[..15]).await;
    assert_eq!(short.child_text(METADATA_NS, "id"), Some(id.as_str()));
    assert_eq!(sim.deploys()[0].status, "Pending");
    // Unknown id: a fault, never a panic.
    let body = format!(
        "<checkDeployStatus xmlns=\"{METADATA_NS}\"><asyncProcessId>0Af000000000000AAA</asyncProcessId>\
         <includeDetails>true</includeDetails></checkDeployStatus>"
    );
    let (code, message) = soap(&sim, &session, &body).await.fault();
    assert_eq!(code, "sf:INVALID_CROSS_REFERENCE_KEY");
    assert_eq!(
        message,
        "INVALID_CROSS_REFERENCE_KEY: invalid cross reference id"
    );
    sim.stop().await;
}

#[tokio::test]
async fn deploy_finishes_even_when_nobody_polls() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Admin").unwrap()),
        keys_of(&[range("1.2.3.4", "1.2.3.4")])
    );
    assert_eq!(sim.deploys()[0].status, "Succeeded");
    sim.stop().await;
}

#[tokio::test]
async fn a_file_without_login_ip_ranges_leaves_the_list_alone() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let before = sim.login_ip_ranges("Custom%3A Support").unwrap();
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Custom%3A Support", Vec::new())]),
    )
    .await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    let success = result
        .child(METADATA_NS, "details")
        .unwrap()
        .child(METADATA_NS, "componentSuccesses")
        .unwrap()
        .clone();
    assert_eq!(success.child_text(METADATA_NS, "changed"), Some("false"));
    let after = sim.login_ip_ranges("Custom%3A Support").unwrap();
    assert_eq!(keys_of(&after), keys_of(&before));
    assert!(!after.is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn check_only_validates_and_changes_nothing() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let before = sim.login_ip_ranges("Custom%3A Support").unwrap();
    let request = Deploy {
        check_only: true,
        ..Deploy::profiles(&[("Custom%3A Support", vec![range("52.1.2.3", "52.1.2.3")])])
    };
    let id = deploy(&sim, &session, &request).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "checkOnly"), Some("true"));
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    assert_eq!(result.child_text(METADATA_NS, "success"), Some("true"));
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Custom%3A Support").unwrap()),
        keys_of(&before)
    );
    assert!(sim.deploys()[0].check_only);
    sim.stop().await;
}

#[tokio::test]
async fn an_oversized_new_range_fails_the_deploy_and_nothing_is_applied() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let support_before = sim.login_ip_ranges("Custom%3A Support").unwrap();
    let request = Deploy::profiles(&[
        ("Custom%3A Support", vec![range("52.1.2.3", "52.1.2.3")]),
        ("Admin", vec![range("10.0.0.0", "11.255.255.255")]),
    ]);
    let id = deploy(&sim, &session, &request).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    assert_eq!(result.child_text(METADATA_NS, "success"), Some("false"));
    assert_eq!(
        result.child_text(METADATA_NS, "numberComponentErrors"),
        Some("1")
    );
    let failures = failures(&result);
    assert_eq!(failures.len(), 1);
    let failure = &failures[0];
    assert_eq!(
        names(failure),
        [
            "changed",
            "componentType",
            "created",
            "createdDate",
            "deleted",
            "fileName",
            "fullName",
            "problem",
            "problemType",
            "success"
        ]
    );
    assert_eq!(
        failure.child_text(METADATA_NS, "componentType"),
        Some("Profile")
    );
    assert_eq!(
        failure.child_text(METADATA_NS, "fileName"),
        Some("profiles/Admin.profile")
    );
    assert_eq!(failure.child_text(METADATA_NS, "fullName"), Some("Admin"));
    assert_eq!(
        failure.child_text(METADATA_NS, "problemType"),
        Some("Error")
    );
    assert_eq!(failure.child_text(METADATA_NS, "success"), Some("false"));
    let problem = failure.child_text(METADATA_NS, "problem").unwrap();
    assert!(problem.contains("10.0.0.0 - 11.255.255.255"), "{problem}");
    // rollbackOnError: the valid Support change was not applied either.
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Custom%3A Support").unwrap()),
        keys_of(&support_before)
    );
    assert!(sim.login_ip_ranges("Admin").unwrap().is_empty());
    assert_eq!(sim.deploys()[0].problems, [problem.to_owned()]);
    sim.stop().await;
}

#[tokio::test]
async fn a_legacy_range_already_on_the_profile_is_carried_as_it_is() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let legacy = LoginIpRange::existing(
        "0.0.0.0".parse().unwrap(),
        "255.255.255.255".parse().unwrap(),
        Some("everyone (pre-Winter '26)".into()),
    )
    .unwrap();
    sim.set_login_ip_ranges("Admin", vec![legacy.clone()]);
    let target = vec![legacy, range("52.1.2.3", "52.1.2.3")];
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", target.clone())]),
    )
    .await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Admin").unwrap()),
        keys_of(&target)
    );
    sim.stop().await;
}

#[tokio::test]
async fn unknown_profile_missing_file_and_missing_package_xml_fail() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    // An unknown profile.
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Ghost", vec![range("1.1.1.1", "1.1.1.1")])]),
    )
    .await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    assert_eq!(
        failures(&result)[0].child_text(METADATA_NS, "problem"),
        Some("In field: fullName - no Profile named Ghost found")
    );
    // No package.xml: the sample's failure.
    let zip = {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file(
            "profiles/Admin.profile",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(profile::profile_file(&[range("1.1.1.1", "1.1.1.1")]).as_bytes())
            .unwrap();
        zip.finish().unwrap().into_inner()
    };
    let id = deploy(&sim, &session, &Deploy::of(zip)).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    assert_eq!(
        result.child_text(METADATA_NS, "numberComponentErrors"),
        Some("0")
    );
    let failure = &failures(&result)[0];
    assert_eq!(
        failure.child_text(METADATA_NS, "problem"),
        Some("No package.xml found")
    );
    assert_eq!(
        failure.child_text(METADATA_NS, "fileName"),
        Some("package.xml")
    );
    assert_eq!(failure.child_text(METADATA_NS, "componentType"), Some(""));
    // Not a zip at all.
    let id = deploy(&sim, &session, &Deploy::of(b"garbage".to_vec())).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    assert!(sim.login_ip_ranges("Admin").unwrap().is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn production_refuses_no_test_run() {
    let sim = start(SimConfig {
        production: true,
        ..config()
    })
    .await;
    let session = login(&sim).await;
    let mut request = Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]);
    request.test_level = Some("NoTestRun");
    let (code, message) = soap(&sim, &session, &request.body()).await.fault();
    assert_eq!(code, "sf:INVALID_OPERATION");
    assert_eq!(
        message,
        "INVALID_OPERATION: testLevel of NoTestRun cannot be used in production organizations"
    );
    assert!(sim.deploys().is_empty());
    assert_eq!(sim.calls().last().unwrap().outcome, "INVALID_OPERATION");
    // Omitting testLevel (what ipguard does) is fine.
    request.test_level = None;
    let id = deploy(&sim, &session, &request).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    sim.stop().await;
}

#[tokio::test]
async fn forced_failure_and_stuck_deploys() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let request = Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]);
    sim.set_faults(Faults {
        deploy_outcome: DeployOutcome::Fail(vec!["first problem".into(), "second problem".into()]),
        ..Faults::default()
    });
    let id = deploy(&sim, &session, &request).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    let problems: Vec<String> = failures(&result)
        .iter()
        .map(|f| f.child_text(METADATA_NS, "problem").unwrap().to_owned())
        .collect();
    assert_eq!(problems, ["first problem", "second problem"]);
    assert!(sim.login_ip_ranges("Admin").unwrap().is_empty());

    sim.set_faults(Faults {
        deploy_outcome: DeployOutcome::Stuck,
        ..Faults::default()
    });
    let id = deploy(&sim, &session, &request).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let result = check_status(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("InProgress"));
    assert_eq!(result.child_text(METADATA_NS, "done"), Some("false"));
    sim.set_faults(Faults::default());
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    assert_eq!(sim.login_ip_ranges("Admin").unwrap().len(), 1);
    sim.stop().await;
}

#[tokio::test]
async fn a_deploy_can_lock_the_integration_user_out() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let request = Deploy::profiles(&[(
        DEFAULT_INTEGRATION_PROFILE,
        vec![range("198.51.100.7", "198.51.100.7")],
    )]);
    let id = deploy(&sim, &session, &request).await;
    poll(&sim, &session, &id).await;
    let (status, body) = token_request(&sim, &sign(key(), &good_claims())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("ip restricted"), "{body}");
    sim.stop().await;
}

#[tokio::test]
async fn an_out_of_order_profile_file_fails_the_deploy() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let profile = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Profile xmlns=\"{METADATA_NS}\">\
         <loginIpRanges><endAddress>1.2.3.4</endAddress><startAddress>1.2.3.4</startAddress>\
         </loginIpRanges><custom>false</custom></Profile>"
    );
    let package = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Package xmlns=\"{METADATA_NS}\"><types>\
         <members>Admin</members><name>Profile</name></types><version>66.0</version></Package>"
    );
    let zip = {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("package.xml", options).unwrap();
        zip.write_all(package.as_bytes()).unwrap();
        zip.start_file("profiles/Admin.profile", options).unwrap();
        zip.write_all(profile.as_bytes()).unwrap();
        zip.finish().unwrap().into_inner()
    };
    let id = deploy(&sim, &session, &Deploy::of(zip)).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    let failures = failures(&result);
    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0].child_text(METADATA_NS, "problem"),
        Some("Error parsing file: Element custom invalid at this location in type Profile")
    );
    assert!(
        sim.login_ip_ranges("Admin").unwrap().is_empty(),
        "nothing applied"
    );
    sim.stop().await;
}

#[tokio::test]
async fn an_org_runs_one_deploy_at_a_time_and_queues_the_rest() {
    let sim = start(config()).await;
    // The first deploy runs long enough that both looks below land while it runs, even when
    // the machine stalls this test for a second (tests run eight at a time on two cores).
    sim.set_deploy_timing(Duration::from_millis(20), Duration::from_secs(2));
    let session = login(&sim).await;
    let first = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", vec![range("1.1.1.1", "1.1.1.1")])]),
    )
    .await;
    let second = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Standard", vec![range("2.2.2.2", "2.2.2.2")])]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let status = |result: &Element| result.child_text(METADATA_NS, "status").unwrap().to_owned();
    assert_eq!(
        status(&check_status(&sim, &session, &first).await),
        "InProgress"
    );
    assert_eq!(
        status(&check_status(&sim, &session, &second).await),
        "Pending",
        "the second deploy waits for the first"
    );
    let (_, first_result) = poll(&sim, &session, &first).await;
    let (seen, second_result) = poll(&sim, &session, &second).await;
    assert_eq!(seen.last().map(String::as_str), Some("Succeeded"));
    let date = |result: &Element, name: &str| {
        chrono::DateTime::parse_from_rfc3339(result.child_text(METADATA_NS, name).unwrap()).unwrap()
    };
    assert!(
        date(&second_result, "startDate") >= date(&first_result, "completedDate"),
        "the second started after the first completed"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_deploy_is_stamped_when_it_finished_not_when_it_was_noticed() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]),
    )
    .await;
    // Finished after ~120 ms; nobody asks until well after.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let result = check_status(&sim, &session, &id).await;
    let completed = result
        .child_text(METADATA_NS, "completedDate")
        .unwrap()
        .to_owned();
    let audit = sim.audit_trail();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0]
            .created_date
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        completed
    );
    let listed = soap(&sim, &session, &list_profiles_body()).await.body();
    let admin = listed
        .children
        .iter()
        .find(|r| r.child_text(METADATA_NS, "fullName") == Some("Admin"))
        .unwrap();
    assert_eq!(
        admin.child_text(METADATA_NS, "lastModifiedDate"),
        Some(completed.as_str())
    );
    sim.stop().await;
}
