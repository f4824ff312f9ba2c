//! The Metadata SOAP API's reads: listMetadata, readMetadata, describeMetadata, the endpoint's
//! URL forms and how leniently envelopes are read (issue 13: what real clients send).

use super::*;

#[tokio::test]
async fn list_metadata_returns_file_properties_with_verbatim_names() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let reply = soap(&sim, &session, &list_profiles_body()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.content_type.starts_with("text/xml"),
        "{}",
        reply.content_type
    );
    let response = reply.body();
    assert!(response.is(METADATA_NS, "listMetadataResponse"));
    let results: Vec<&Element> = response.children_named(METADATA_NS, "result").collect();
    let full_names: Vec<&str> = results
        .iter()
        .map(|r| r.child_text(METADATA_NS, "fullName").unwrap())
        .collect();
    assert_eq!(
        full_names,
        [
            "Admin",
            "Custom%3A Support",
            "Custom%3A Integration",
            "Standard"
        ]
    );
    let support = results[1];
    assert_eq!(
        names(support),
        [
            "createdById",
            "createdByName",
            "createdDate",
            "fileName",
            "fullName",
            "id",
            "lastModifiedById",
            "lastModifiedByName",
            "lastModifiedDate",
            "manageableState",
            "type"
        ]
    );
    assert_eq!(
        support.child_text(METADATA_NS, "fileName"),
        Some("profiles/Custom%3A Support.profile")
    );
    assert_eq!(support.child_text(METADATA_NS, "type"), Some("Profile"));
    assert_eq!(
        support.child_text(METADATA_NS, "manageableState"),
        Some("unmanaged")
    );
    let id = support.child_text(METADATA_NS, "id").unwrap();
    assert!(id.starts_with("00e") && ids::is_valid_18(id), "{id}");

    // Another type: the empty response, exactly like Salesforce's.
    let body = format!(
        "<listMetadata xmlns=\"{METADATA_NS}\"><queries><type>CustomObject</type></queries>\
         <asOfVersion>66.0</asOfVersion></listMetadata>"
    );
    let empty = soap(&sim, &session, &body).await.body();
    assert!(empty.is(METADATA_NS, "listMetadataResponse"));
    assert!(empty.children.is_empty());
    assert_eq!(sim.count("listMetadata"), 2);
    sim.stop().await;
}

#[tokio::test]
async fn read_metadata_returns_profiles_and_empty_records_for_unknown_names() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let reply = soap(
        &sim,
        &session,
        &read_body(&["Custom%3A Support", "No Such"]),
    )
    .await;
    assert!(reply.body().is(METADATA_NS, "readMetadataResponse"));
    let result = reply.result();
    let records: Vec<&Element> = result.children_named(METADATA_NS, "records").collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].attribute(Some(XSI_NS), "type"), Some("Profile"));
    assert_eq!(
        records[0].child_text(METADATA_NS, "fullName"),
        Some("Custom%3A Support")
    );
    let ranges = profile::login_ip_ranges(records[0]).unwrap().unwrap();
    assert_eq!(
        keys_of(&ranges),
        keys_of(&[range("198.51.100.0", "198.51.100.255")])
    );
    assert_eq!(ranges[0].description(), Some("Head office"));
    let first_range = records[0].child(METADATA_NS, "loginIpRanges").unwrap();
    assert_eq!(
        names(first_range),
        ["description", "endAddress", "startAddress"]
    );
    assert_eq!(records[1].child(METADATA_NS, "fullName"), None);
    assert_eq!(profile::login_ip_ranges(records[1]).unwrap(), None);
    sim.stop().await;
}

#[tokio::test]
async fn read_metadata_refuses_more_than_ten_names() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let ten: Vec<String> = (0..10).map(|i| format!("P{i}")).collect();
    let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
    let reply = soap(&sim, &session, &read_body(&ten)).await;
    assert_eq!(reply.result().children.len(), 10);
    let mut eleven = ten.clone();
    eleven.push("Admin");
    let (code, message) = soap(&sim, &session, &read_body(&eleven)).await.fault();
    assert_eq!(code, "sf:EXCEEDED_ID_LIMIT");
    assert_eq!(
        message,
        "EXCEEDED_ID_LIMIT: record limit reached. cannot submit more than 10 records in this operation"
    );
    assert_eq!(sim.calls().last().unwrap().outcome, "EXCEEDED_ID_LIMIT");
    sim.stop().await;
}

/// POSTs a SOAP envelope to a path of the sim (not only `/services/Soap/m/66.0`).
async fn soap_at(sim: &SimOrg, path: &str, session: &str, body: &str) -> SoapReply {
    let response = client()
        .post(format!("{}{path}", sim.base_url()))
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", "\"\"")
        .body(envelope(session, body))
        .send()
        .await
        .unwrap();
    SoapReply {
        status: response.status(),
        content_type: String::new(),
        text: response.text().await.unwrap(),
    }
}

#[tokio::test]
async fn the_metadata_endpoint_answers_every_url_form_clients_use() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let org15 = &sim.org_id()[..15];
    // A trailing slash; `metadataServerUrl`'s org id suffix (15 characters, as the login
    // result gives it); simple-salesforce's `deployRequest` and `deployRequest/{id}`.
    for path in [
        "/services/Soap/m/66.0/".to_owned(),
        format!("/services/Soap/m/66.0/{org15}"),
        "/services/Soap/m/59.0/deployRequest".to_owned(),
    ] {
        let reply = soap_at(&sim, &path, &session, &list_profiles_body()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        assert!(
            reply.body().is(METADATA_NS, "listMetadataResponse"),
            "{path}"
        );
    }
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]),
    )
    .await;
    let body = format!(
        "<checkDeployStatus xmlns=\"{METADATA_NS}\"><asyncProcessId>{id}</asyncProcessId>\
         <includeDetails>true</includeDetails></checkDeployStatus>"
    );
    let path = format!("/services/Soap/m/59.0/deployRequest/{id}");
    let reply = soap_at(&sim, &path, &session, &body).await;
    assert_eq!(
        reply.result().child_text(METADATA_NS, "id"),
        Some(id.as_str())
    );
    sim.stop().await;
}

#[tokio::test]
async fn soap_booleans_are_read_leniently() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let body = Deploy {
        check_only: true,
        ..Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])])
    }
    .body()
    // What simple-salesforce's template makes of Python's True/False.
    .replace("<checkOnly>true</checkOnly>", "<checkOnly>True</checkOnly>")
    .replace(
        "<ignoreWarnings>false</ignoreWarnings>",
        "<ignoreWarnings>False</ignoreWarnings>",
    )
    .replace(
        "<rollbackOnError>true</rollbackOnError>",
        "<rollbackOnError> 1 </rollbackOnError>",
    )
    .replace(
        "<singlePackage>true</singlePackage>",
        "<singlePackage>TRUE</singlePackage>",
    );
    let reply = soap(&sim, &session, &body).await;
    let id = reply
        .result()
        .child_text(METADATA_NS, "id")
        .unwrap()
        .to_owned();
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "checkOnly"), Some("true"));
    assert_eq!(
        result.child_text(METADATA_NS, "rollbackOnError"),
        Some("true")
    );
    assert_eq!(
        result.child_text(METADATA_NS, "ignoreWarnings"),
        Some("false")
    );
    // Not a boolean in any spelling: still a fault.
    let bad = Deploy::profiles(&[("Admin", Vec::new())])
        .body()
        .replace("<checkOnly>false</checkOnly>", "<checkOnly>yes</checkOnly>");
    assert_eq!(soap(&sim, &session, &bad).await.fault().0, "soapenv:Client");
    sim.stop().await;
}

#[tokio::test]
async fn describe_metadata_has_the_wsdl_shape() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let body = format!(
        "<describeMetadata xmlns=\"{METADATA_NS}\"><asOfVersion>66.0</asOfVersion></describeMetadata>"
    );
    let reply = soap(&sim, &session, &body).await;
    assert!(reply.body().is(METADATA_NS, "describeMetadataResponse"));
    let result = reply.result();
    let mut order = names(&result);
    order.dedup();
    assert_eq!(
        order,
        [
            "metadataObjects",
            "organizationNamespace",
            "partialSaveAllowed",
            "testRequired"
        ]
    );
    let profile = result
        .children_named(METADATA_NS, "metadataObjects")
        .find(|o| o.child_text(METADATA_NS, "xmlName") == Some("Profile"))
        .unwrap();
    assert_eq!(
        names(profile),
        ["directoryName", "inFolder", "metaFile", "suffix", "xmlName"]
    );
    assert_eq!(
        profile.child_text(METADATA_NS, "directoryName"),
        Some("profiles")
    );
    assert_eq!(
        result.child_text(METADATA_NS, "testRequired"),
        Some("false")
    );
    sim.stop().await;
}
