//! `GET /services/data/v{ver}/query?q=…` and `GET /services/data/v{ver}/query/{locator}` —
//! the REST API's SOQL query. Every object but `SetupAuditTrail` goes to the SOQL engine
//! (`soql.rs`, rows from `users.rs` and `access.rs`); `SetupAuditTrail` keeps this module's
//! strict parser.
//!
//! Supported SOQL subset over `SetupAuditTrail` (exactly what ipguard sends, and a little
//! slack):
//!
//! ```text
//! SELECT field[, field…] FROM SetupAuditTrail
//!   [WHERE CreatedDate op dateTime [AND CreatedDate op dateTime…]]
//!   [ORDER BY CreatedDate [ASC|DESC]]
//!   [LIMIT n]
//! ```
//!
//! Keywords ignore case; tokens are separated by whitespace (commas may touch fields); `op` is
//! one of `= != < <= > >=`; a dateTime is RFC 3339 (`2024-05-01T12:00:00Z`). Fields: `Id`,
//! `Action`, `Section`, `Display`, `CreatedDate`, `CreatedById`, `CreatedBy.Username`,
//! `DelegateUser`. Another object → 400 `INVALID_TYPE`; another field → 400 `INVALID_FIELD`;
//! anything else → 400 `MALFORMED_QUERY`. Without ORDER BY, entries come oldest first.
//!
//! Errors are Salesforce's REST shape `[{"message": …, "errorCode": …}]`: a missing, unknown
//! or expired bearer session → 401 `INVALID_SESSION_ID`; `REQUEST_LIMIT_EXCEEDED` → 403; a
//! user without "View Setup and Configuration" ([`super::SimOrg::set_audit_trail_readable`])
//! → 403 `INSUFFICIENT_ACCESS` (the code and message for that case are a GUESS). Every call is
//! logged as operation `query`.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::FailureKind;
use super::oauth::failure_outcome;
use super::soap::http_failure;
use super::state::{Shared, SimState};
use super::{AuditEntry, access, ids, soql, users};

const OPERATION: &str = "query";
const FIELDS: [&str; 8] = [
    "Id",
    "Action",
    "Section",
    "Display",
    "CreatedDate",
    "CreatedById",
    "CreatedBy.Username",
    "DelegateUser",
];

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed query of the supported subset.
#[derive(Debug)]
struct Query {
    fields: Vec<&'static str>,
    conditions: Vec<(Op, DateTime<Utc>)>,
    descending: bool,
    limit: Option<usize>,
}

type Tokens<'a> = std::iter::Peekable<std::str::SplitWhitespace<'a>>;

/// Takes the next token when it is `word` (ignoring case).
fn next_is(tokens: &mut Tokens<'_>, word: &str) -> bool {
    tokens.next_if(|t| t.eq_ignore_ascii_case(word)).is_some()
}

fn parse(soql: &str) -> Result<Query, Reply> {
    let spaced = soql.replace(',', " , ");
    let mut tokens = spaced.split_whitespace().peekable();
    if !next_is(&mut tokens, "SELECT") {
        return Err(malformed("unexpected token: expected SELECT"));
    }
    let mut fields = Vec::new();
    loop {
        let token = tokens
            .next()
            .ok_or_else(|| malformed("unexpected end of query: expected FROM"))?;
        let field = FIELDS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(token))
            .ok_or_else(|| {
                if token.eq_ignore_ascii_case("FROM") || token == "," {
                    malformed(format!("unexpected token: '{token}'"))
                } else {
                    error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_FIELD",
                        &format!("No such column '{token}' on entity 'SetupAuditTrail'."),
                    )
                }
            })?;
        fields.push(*field);
        if next_is(&mut tokens, ",") {
            continue;
        }
        if next_is(&mut tokens, "FROM") {
            break;
        }
        return Err(malformed(format!(
            "unexpected token: '{}'",
            tokens.peek().unwrap_or(&"")
        )));
    }
    let object = tokens
        .next()
        .ok_or_else(|| malformed("unexpected end of query: expected an object"))?;
    if !object.eq_ignore_ascii_case("SetupAuditTrail") {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            &format!("sObject type '{object}' is not supported."),
        ));
    }
    let mut query = Query {
        fields,
        conditions: Vec::new(),
        descending: false,
        limit: None,
    };
    if next_is(&mut tokens, "WHERE") {
        loop {
            if !next_is(&mut tokens, "CreatedDate") {
                return Err(malformed("the simulated org filters on CreatedDate only"));
            }
            let op = match tokens.next() {
                Some("=") => Op::Eq,
                Some("!=") => Op::Ne,
                Some("<") => Op::Lt,
                Some("<=") => Op::Le,
                Some(">") => Op::Gt,
                Some(">=") => Op::Ge,
                other => {
                    return Err(malformed(format!(
                        "unexpected token: '{}'",
                        other.unwrap_or_default()
                    )));
                }
            };
            let literal = tokens.next().unwrap_or_default();
            let at = DateTime::parse_from_rfc3339(literal)
                .map_err(|_| {
                    malformed(format!(
                        "value of filter criterion for field 'CreatedDate' must be of type \
                         dateTime and should not be enclosed in quotes: {literal}"
                    ))
                })?
                .with_timezone(&Utc);
            query.conditions.push((op, at));
            if !next_is(&mut tokens, "AND") {
                break;
            }
        }
    }
    if next_is(&mut tokens, "ORDER") {
        if !next_is(&mut tokens, "BY") || !next_is(&mut tokens, "CreatedDate") {
            return Err(malformed("the simulated org orders by CreatedDate only"));
        }
        if next_is(&mut tokens, "DESC") {
            query.descending = true;
        } else {
            next_is(&mut tokens, "ASC");
        }
    }
    if next_is(&mut tokens, "LIMIT") {
        let n = tokens.next().unwrap_or_default();
        query.limit = Some(
            n.parse()
                .map_err(|_| malformed(format!("unexpected token: '{n}'")))?,
        );
    }
    match tokens.next() {
        None => Ok(query),
        Some(extra) => Err(malformed(format!("unexpected token: '{extra}'"))),
    }
}

fn holds(op: Op, at: DateTime<Utc>, bound: DateTime<Utc>) -> bool {
    match op {
        Op::Eq => at == bound,
        Op::Ne => at != bound,
        Op::Lt => at < bound,
        Op::Le => at <= bound,
        Op::Gt => at > bound,
        Op::Ge => at >= bound,
    }
}

fn run_query(state: &mut SimState, version: &str, soql: &str) -> Result<Value, Reply> {
    if let Some(object) = soql::object_of(soql)
        && !object.eq_ignore_ascii_case("SetupAuditTrail")
    {
        let schema: Vec<&'static soql::Object> = users::OBJECTS
            .iter()
            .chain(access::OBJECTS)
            .copied()
            .collect();
        let records = soql::run(soql, &schema, version, |object| {
            if users::OBJECTS.iter().any(|o| o.name == object.name) {
                users::rows(state, object)
            } else {
                access::rows(state, object)
            }
        })
        .map_err(|(status, code, message)| error(status, code, &message))?;
        return Ok(page(state, version, records));
    }
    let query = parse(soql)?;
    if !state.audit_readable {
        return Err(error(
            StatusCode::FORBIDDEN,
            "INSUFFICIENT_ACCESS",
            "Insufficient privileges: querying SetupAuditTrail requires View Setup and Configuration",
        ));
    }
    let mut entries: Vec<&AuditEntry> = state
        .audit
        .iter()
        .filter(|e| {
            query
                .conditions
                .iter()
                .all(|(op, bound)| holds(*op, e.created_date, *bound))
        })
        .collect();
    // Stable: entries of the same millisecond keep the order they were made in.
    entries.sort_by_key(|e| e.created_date);
    if query.descending {
        entries.reverse();
    }
    entries.truncate(query.limit.unwrap_or(usize::MAX));
    let records = entries
        .into_iter()
        .map(|e| record(e, &query.fields, version))
        .collect();
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

/// A record with the selected fields, shaped like Salesforce's: `attributes` first, a
/// relationship field as a nested object with its own `attributes`.
fn record(entry: &AuditEntry, fields: &[&str], version: &str) -> Value {
    let mut map = Map::new();
    map.insert(
        "attributes".into(),
        json!({
            "type": "SetupAuditTrail",
            "url": format!("/services/data/{version}/sobjects/SetupAuditTrail/{}", entry.id),
        }),
    );
    for field in fields {
        let value = match *field {
            "Id" => json!(entry.id),
            "Action" => json!(entry.action),
            "Section" => json!(entry.section),
            "Display" => json!(entry.display),
            "CreatedDate" => json!(
                entry
                    .created_date
                    .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                    .to_string()
            ),
            "CreatedById" => json!(entry.created_by_id),
            "CreatedBy.Username" => {
                let created_by = map.entry("CreatedBy").or_insert_with(|| {
                    json!({
                        "attributes": {
                            "type": "User",
                            "url": format!("/services/data/{version}/sobjects/User/{}", entry.created_by_id),
                        }
                    })
                });
                created_by["Username"] = json!(entry.username);
                continue;
            }
            _ => Value::Null, // DelegateUser: the sim's admins never log in as someone else
        };
        map.insert((*field).to_owned(), value);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipguards_query_parses() {
        let q = parse(
            "SELECT Id, Action, Section, Display, CreatedDate, CreatedBy.Username, DelegateUser \
             FROM SetupAuditTrail WHERE CreatedDate >= 2024-05-01T12:00:00Z \
             ORDER BY CreatedDate DESC LIMIT 200",
        )
        .unwrap();
        assert_eq!(q.fields.len(), 7);
        assert_eq!(q.conditions.len(), 1);
        assert!(q.descending);
        assert_eq!(q.limit, Some(200));
    }

    #[test]
    fn outside_the_subset_is_refused_with_salesforce_codes() {
        let code = |soql: &str| parse(soql).unwrap_err().outcome;
        assert_eq!(code("SELECT Id FROM Account"), "INVALID_TYPE");
        assert_eq!(code("SELECT Name FROM SetupAuditTrail"), "INVALID_FIELD");
        assert_eq!(code("SELECT Id SetupAuditTrail"), "MALFORMED_QUERY");
        assert_eq!(
            code("SELECT Id FROM SetupAuditTrail WHERE CreatedDate >= '2024-05-01'"),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code("SELECT Id FROM SetupAuditTrail LIMIT 5 x"),
            "MALFORMED_QUERY"
        );
        assert_eq!(code("DELETE FROM SetupAuditTrail"), "MALFORMED_QUERY");
    }

    #[test]
    fn versions_look_like_v66_0() {
        assert!(is_version("v66.0"));
        assert!(!is_version("66.0") && !is_version("v66") && !is_version("vX.0"));
    }
}
