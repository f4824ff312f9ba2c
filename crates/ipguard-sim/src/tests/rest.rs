//! The REST API: the query resource's paths, unknown paths and the Metadata REST deploy resource
//! jsforce's `deployRest` uses (issue 13).

use super::*;

#[tokio::test]
async fn the_query_resource_answers_with_a_trailing_slash() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    sim.set_login_ip_ranges("Admin", vec![range("1.2.3.4", "1.2.3.4")]);
    let response = client()
        .get(format!(
            "{}/services/data/v66.0/query/?q=SELECT+Id+FROM+SetupAuditTrail",
            sim.base_url()
        ))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["totalSize"], 1);
    sim.stop().await;
}

#[tokio::test]
async fn unknown_rest_paths_answer_salesforces_error_array() {
    let sim = start(config()).await;
    let response = client()
        .get(format!("{}/services/data/v66.0/nope", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!([{ "errorCode": "NOT_FOUND", "message": "The requested resource does not exist" }])
    );
    sim.stop().await;
}

/// A `multipart/form-data` body as jsforce's `deployRest` sends it: the zip as `file`, the
/// options as `entity_content`.
fn rest_deploy_body(zip: &[u8], options: &Value) -> (String, Vec<u8>) {
    let boundary = "----ipguard-sim-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"package.xml\"\r\n\
             Content-Type: application/zip\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(zip);
    body.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"entity_content\"\r\n\
             Content-Type: application/json\r\n\r\n{}\r\n--{boundary}--\r\n",
            json!({ "deployOptions": options })
        )
        .as_bytes(),
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn the_rest_deploy_resource_queues_like_soap_and_reports_in_json() {
    let sim = start(SimConfig {
        pending_for: Duration::from_millis(200),
        in_progress_for: Duration::from_millis(200),
        ..config()
    })
    .await;
    let session = login(&sim).await;
    let target = vec![range("52.1.2.8", "52.1.2.15")];
    let zip = Deploy::profiles(&[("Custom%3A Support", target.clone())]).zip;
    let (content_type, body) = rest_deploy_body(
        &zip,
        &json!({"rollbackOnError": true, "singlePackage": true}),
    );
    let url = format!(
        "{}/services/data/v66.0/metadata/deployRequest",
        sim.base_url()
    );
    let submitted = client()
        .post(&url)
        .bearer_auth(&session)
        .header("content-type", content_type.clone())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), StatusCode::CREATED);
    let submitted: Value = submitted.json().await.unwrap();
    let id = submitted["id"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with("0Af") && ids::is_valid_18(&id),
        "{submitted}"
    );
    assert_eq!(submitted["deployResult"]["status"], "Pending");
    assert_eq!(submitted["deployResult"]["done"], false);
    assert_eq!(submitted["deployOptions"]["rollbackOnError"], true);

    // the same job the SOAP side sees, finished and applied
    let (_, soap_result) = poll(&sim, &session, &id).await;
    assert_eq!(
        soap_result.child_text(METADATA_NS, "status"),
        Some("Succeeded")
    );
    let status: Value = client()
        .get(format!("{url}/{id}?includeDetails=true"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["id"], id.as_str());
    assert_eq!(status["deployResult"]["status"], "Succeeded");
    assert_eq!(status["deployResult"]["done"], true);
    assert_eq!(status["deployResult"]["success"], true);
    let successes = status["deployResult"]["details"]["componentSuccesses"]
        .as_array()
        .unwrap();
    assert!(
        successes
            .iter()
            .any(|s| s["fullName"] == "Custom%3A Support"),
        "{status:#}"
    );
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Custom%3A Support").unwrap()),
        keys_of(&target)
    );

    // no session → 401 in Salesforce's REST error shape; an unknown id → 404; not multipart → 400
    let refused = client()
        .post(&url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused[0]["errorCode"], "INVALID_SESSION_ID");
    let unknown = client()
        .get(format!("{url}/0Af000000000000AAA"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let not_multipart = client()
        .post(&url)
        .bearer_auth(&session)
        .json(&json!({"deployOptions": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_multipart.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sim.count("deployRequest"), 5);
}
