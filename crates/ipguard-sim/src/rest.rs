//! `GET /services/data/v{ver}/query?q=…` and `GET /services/data/v{ver}/query/{locator}` —
//! the REST API's SOQL query: the plumbing around the SOQL engine (`soql.rs`, rows from
//! `audit.rs`, `users.rs` and `access.rs`) — sessions, injected failures, the API version and
//! paging behind `nextRecordsUrl`.
//!
//! Errors are Salesforce's REST shape `[{"message": …, "errorCode": …}]`: a missing, unknown
//! or expired bearer session → 401 `INVALID_SESSION_ID`; `REQUEST_LIMIT_EXCEEDED` → 403; a
//! query off the engine's subset → 400 `INVALID_TYPE`, `INVALID_FIELD` or `MALFORMED_QUERY`;
//! a user without "View Setup and Configuration" ([`super::SimOrg::set_audit_trail_readable`])
//! → 403 `INSUFFICIENT_ACCESS` for `SetupAuditTrail` and the app-access objects. Every call is
//! logged as operation `query`.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::FailureKind;
use super::oauth::failure_outcome;
use super::soap::http_failure;
use super::state::{Shared, SimState};
use super::{access, audit, ids, soql, users};

const OPERATION: &str = "query";

/// A REST error answer and what the call log says about it.
#[derive(Debug)]
pub(super) struct Reply {
    status: StatusCode,
    body: Value,
    outcome: String,
}

pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    Reply {
        status,
        body: json!([{ "message": message, "errorCode": code }]),
        outcome: code.to_owned(),
    }
}

fn malformed(message: impl AsRef<str>) -> Reply {
    error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", message.as_ref())
}

fn respond(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json;charset=UTF-8")
        .body(body.to_string())
}

pub(crate) async fn query(
    request: HttpRequest,
    version: web::Path<String>,
    params: web::Query<HashMap<String, String>>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let soql = params.get("q").cloned();
    serve(&request, &version, &shared, |state| match soql {
        Some(soql) => run_query(state, &version, &soql),
        None => Err(malformed("A query string (q) is required")),
    })
    .await
}

pub(crate) async fn query_more(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (version, locator) = path.into_inner();
    serve(&request, &version, &shared, |state| {
        let records = state.query_cursors.remove(&locator).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY_LOCATOR",
                "invalid query locator",
            )
        })?;
        Ok(page(state, &version, records))
    })
    .await
}

/// What every REST call goes through: latency, injected failures, the API version, the
/// bearer session; then `answer`.
async fn serve(
    request: &HttpRequest,
    version: &str,
    shared: &Shared,
    answer: impl FnOnce(&mut SimState) -> Result<Value, Reply>,
) -> HttpResponse {
    serve_as(OPERATION, StatusCode::OK, request, version, shared, answer).await
}

/// [`serve`] for another resource: `operation` names it in the call log, `ok` is its success
/// status.
pub(super) async fn serve_as(
    operation: &str,
    ok: StatusCode,
    request: &HttpRequest,
    version: &str,
    shared: &Shared,
    answer: impl FnOnce(&mut SimState) -> Result<Value, Reply>,
) -> HttpResponse {
    let latency: Duration = shared.lock().faults.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let token = bearer(request);
    let mut state = shared.lock();
    if let Some(kind) = state.take_failure(true) {
        state.record(operation, failure_outcome(kind));
        let reply = match kind {
            FailureKind::Http500 | FailureKind::Http503 => return http_failure(kind),
            // The REST text of the concurrent limit is not in the references: the SOAP one.
            FailureKind::RequestLimitExceeded => error(
                StatusCode::FORBIDDEN,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            ),
            FailureKind::DailyRequestLimitExceeded => error(
                StatusCode::FORBIDDEN,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            ),
            FailureKind::ServerUnavailable => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVER_UNAVAILABLE",
                "Server is temporarily unavailable, please try again later.",
            ),
            FailureKind::InvalidSession => {
                if let Some(token) = &token {
                    state.sessions.remove(token);
                }
                invalid_session()
            }
        };
        return respond(reply.status, &reply.body);
    }
    let result = if !is_version(version) {
        Err(error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        ))
    } else if !state.use_session(token.as_deref()) {
        Err(invalid_session())
    } else {
        answer(&mut state)
    };
    let (status, body, outcome) = match result {
        Ok(body) => (ok, body, "ok".to_owned()),
        Err(reply) => (reply.status, reply.body, reply.outcome),
    };
    state.record(operation, &outcome);
    respond(status, &body)
}

fn invalid_session() -> Reply {
    error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    )
}

/// `v66.0`.
fn is_version(version: &str) -> bool {
    version
        .strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major
                    .bytes()
                    .chain(minor.bytes())
                    .all(|b| b.is_ascii_digit())
        })
}

/// The session of `Authorization: Bearer <token>` (Salesforce also takes `OAuth <token>`).
fn bearer(request: &HttpRequest) -> Option<String> {
    let value = request.headers().get("Authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim().to_owned())
}

fn run_query(state: &mut SimState, version: &str, soql: &str) -> Result<Value, Reply> {
    let schema: Vec<&'static soql::Object> = audit::OBJECTS
        .iter()
        .chain(users::OBJECTS)
        .chain(access::OBJECTS)
        .copied()
        .collect();
    let records = soql::run(soql, &schema, version, |object| {
        let is = |objects: &[&soql::Object]| objects.iter().any(|o| o.name == object.name);
        if is(audit::OBJECTS) {
            audit::rows(state, object)
        } else if is(users::OBJECTS) {
            users::rows(state, object)
        } else {
            access::rows(state, object)
        }
    })
    .map_err(|(status, code, message)| error(status, code, &message))?;
    Ok(page(state, version, records))
}

/// One page of `records`; the rest waits behind a `nextRecordsUrl` locator.
fn page(state: &mut SimState, version: &str, mut records: Vec<Value>) -> Value {
    let keep = state.query_page_size.max(1).min(records.len());
    let rest = records.split_off(keep);
    let total = records.len() + rest.len();
    let mut answer = json!({ "totalSize": total, "done": rest.is_empty() });
    if !rest.is_empty() {
        let locator = format!("{}-{}", ids::mint("01g"), records.len());
        answer["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{locator}"));
        state.query_cursors.insert(locator, rest);
    }
    answer["records"] = Value::Array(records);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_look_like_v66_0() {
        assert!(is_version("v66.0"));
        assert!(!is_version("66.0") && !is_version("v66") && !is_version("vX.0"));
    }
}
