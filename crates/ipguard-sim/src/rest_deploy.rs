//! The REST deploy resource, `/services/data/vXX.X/metadata/deployRequest[/{id}]`: the same
//! queue as the SOAP `deploy`, reached as jsforce's `deployRest` and `checkDeployStatus(…,
//! rest)` reach a real org.
//!
//! - `POST …/deployRequest`, `multipart/form-data`: a part `file` (the zip) and a part
//!   `entity_content` (JSON `{"deployOptions": {…}}`) → 201 `{"id", "deployOptions",
//!   "deployResult"}`.
//! - `GET …/deployRequest/{id}[?includeDetails=true]` → 200 `{"id", "url", "deployResult"}`.
//!
//! Shapes follow Salesforce's "Deploy Metadata with Apex Testing Using REST" and "Check the
//! Status of Your Deployment Using REST Resources" (docs/sim.md § Guesses says what they do
//! not settle).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::deploy::{self, DeployOptions, Message};
use super::rest::{Reply, error, serve_as};
use super::soap::TEST_LEVELS;
use super::state::{DeployJob, Phase, Shared, SimState};

const OPERATION: &str = "deployRequest";

/// The two parts of a deploy request, read before the session is checked (the body must be
/// consumed either way).
struct Parts {
    zip: Option<Bytes>,
    entity: Option<Bytes>,
}

async fn read_parts(request: &HttpRequest, body: Bytes) -> Result<Parts, String> {
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| "the body must be multipart/form-data with a boundary".to_owned())?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut parts = Parts {
        zip: None,
        entity: None,
    };
    while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|e| e.to_string())?;
        match name.as_str() {
            "file" => parts.zip = Some(bytes),
            "entity_content" | "json" => parts.entity = Some(bytes),
            _ => {}
        }
    }
    Ok(parts)
}

/// Where the client reached the sim (`https://127.0.0.1:…`), for the `url` fields.
fn base_url(request: &HttpRequest) -> String {
    let info = request.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

fn bad_request(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, "INVALID_INPUT", message)
}

pub(crate) async fn submit(
    request: HttpRequest,
    version: web::Path<String>,
    body: Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let parts = read_parts(&request, body).await;
    let base = base_url(&request);
    serve_as(
        OPERATION,
        StatusCode::CREATED,
        &request,
        &version,
        &shared,
        |state| {
            let parts = parts.map_err(|e| bad_request(&e))?;
            let zip = parts
                .zip
                .ok_or_else(|| bad_request("the request has no `file` part (the zip)"))?;
            let entity: Value = match &parts.entity {
                Some(bytes) => serde_json::from_slice(bytes)
                    .map_err(|e| bad_request(&format!("entity_content is not JSON: {e}")))?,
                None => json!({}),
            };
            let options = options_of(&entity["deployOptions"])?;
            if state.production && options.test_level.as_deref() == Some("NoTestRun") {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_OPERATION",
                    "testLevel of NoTestRun cannot be used in production organizations",
                ));
            }
            let id = state.enqueue_deploy(options, deploy::read_package(&zip));
            let job = state.deploy(&id).expect("just queued");
            Ok(json!({
                "id": id,
                "validatedDeployRequestId": null,
                "deployOptions": options_json(&job.options),
                "deployResult": deploy_result(state, job, false),
                "url": format!("{base}/services/data/{}/metadata/deployRequest/{id}", version.as_str()),
            }))
        },
    )
    .await
}

pub(crate) async fn status(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    params: web::Query<HashMap<String, String>>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (version, id) = path.into_inner();
    let include_details = params.get("includeDetails").map(String::as_str) == Some("true");
    let base = base_url(&request);
    serve_as(
        OPERATION,
        StatusCode::OK,
        &request,
        &version,
        &shared,
        |state| {
            let job = state.deploy(&id).ok_or_else(|| {
                error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "The requested resource does not exist",
                )
            })?;
            let query = if include_details {
                "?includeDetails=true"
            } else {
                ""
            };
            Ok(json!({
                "id": id,
                "validatedDeployRequestId": null,
                "url": format!("{base}/services/data/{version}/metadata/deployRequest/{id}{query}"),
                "deployResult": deploy_result(state, job, include_details),
            }))
        },
    )
    .await
}

/// Deploy options from JSON; absent ones take the Metadata API defaults (false, no test level).
fn options_of(value: &Value) -> Result<DeployOptions, Reply> {
    let flag = |name: &str| match &value[name] {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        other => Err(bad_request(&format!(
            "deployOptions.{name} must be a boolean, not {other}"
        ))),
    };
    let test_level = match &value["testLevel"] {
        Value::Null => None,
        Value::String(level) if TEST_LEVELS.contains(&level.as_str()) => Some(level.clone()),
        other => {
            return Err(bad_request(&format!(
                "{other} is not a valid value for the enum 'TestLevel'"
            )));
        }
    };
    Ok(DeployOptions {
        check_only: flag("checkOnly")?,
        ignore_warnings: flag("ignoreWarnings")?,
        rollback_on_error: flag("rollbackOnError")?,
        single_package: flag("singlePackage")?,
        test_level,
    })
}

fn options_json(options: &DeployOptions) -> Value {
    json!({
        "checkOnly": options.check_only,
        "ignoreWarnings": options.ignore_warnings,
        "rollbackOnError": options.rollback_on_error,
        "singlePackage": options.single_package,
        "testLevel": options.test_level,
    })
}

fn date(d: DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// The DeployResult as the SOAP answer gives it, in JSON.
fn deploy_result(state: &SimState, job: &DeployJob, include_details: bool) -> Value {
    let counts = job.counts();
    let (failures, successes): (Vec<Value>, Vec<Value>) = match (&job.phase, job.completed_date) {
        (Phase::Done(evaluation), Some(completed)) if include_details => (
            evaluation
                .failures
                .iter()
                .map(|m| message(m, completed))
                .collect(),
            evaluation
                .successes
                .iter()
                .map(|m| message(m, completed))
                .collect(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    json!({
        "checkOnly": job.options.check_only,
        "completedDate": job.completed_date.map(date),
        "createdBy": state.user_id15(),
        "createdByName": super::state::INTEGRATION_USER_NAME,
        "createdDate": date(job.created_date),
        "details": {
            "componentFailures": failures,
            "componentSuccesses": successes,
            "retrieveResult": null,
            "runTestResult": {"numFailures": 0, "numTestsRun": 0, "totalTime": 0.0},
        },
        "done": counts.done,
        "errorMessage": null,
        "errorStatusCode": null,
        "id": job.id,
        "ignoreWarnings": job.options.ignore_warnings,
        "lastModifiedDate": date(job.last_modified()),
        "numberComponentErrors": counts.errors,
        "numberComponentsDeployed": counts.deployed,
        "numberComponentsTotal": counts.total,
        "numberTestErrors": 0,
        "numberTestsCompleted": 0,
        "numberTestsTotal": 0,
        "rollbackOnError": job.options.rollback_on_error,
        "runTestsEnabled": false,
        "startDate": job.start_date.map(date),
        "status": job.status(),
        "success": counts.success,
    })
}

fn message(m: &Message, created: DateTime<Utc>) -> Value {
    json!({
        "changed": m.changed,
        "componentType": m.component_type,
        "created": m.created,
        "createdDate": date(created),
        "deleted": m.deleted,
        "fileName": m.file_name,
        "fullName": m.full_name,
        "problem": m.problem,
        "problemType": m.problem.as_ref().map(|_| "Error"),
        "success": m.success,
    })
}
