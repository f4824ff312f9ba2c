//! JSON admin endpoints for the standalone `ipguard sim`: look at the org, play the admin who
//! edits a profile in Setup, and turn the fault knobs. Not part of Salesforce's surface, so
//! these calls are not in the call log.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::state::{Actor, Shared};
use super::{AuditEntry, Call, DeployRecord, Faults, SimHeroku};
use ipguard_wire::ranges::LoginIpRange;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sim/state", web::get().to(state))
        .route("/sim/calls", web::get().to(calls))
        .route("/sim/calls", web::delete().to(clear_calls))
        .route("/sim/faults", web::get().to(faults))
        .route("/sim/faults", web::put().to(set_faults))
        .route("/sim/heroku", web::put().to(set_heroku))
        .route("/sim/settings", web::put().to(set_settings))
        .route(
            "/sim/profiles/{name}/login-ip-ranges",
            web::put().to(set_ranges),
        );
}

#[derive(Serialize)]
struct ProfileView {
    full_name: String,
    id: String,
    login_ip_ranges: Vec<LoginIpRange>,
}

#[derive(Serialize)]
struct StateView {
    org_id: String,
    base_url: String,
    integration_profile: String,
    caller_ip: String,
    production: bool,
    profiles: Vec<ProfileView>,
    deploys: Vec<DeployRecord>,
    heroku: SimHeroku,
    faults: Faults,
    audit_trail: Vec<AuditEntry>,
}

#[derive(Deserialize)]
struct RangeInput {
    start: String,
    end: String,
    #[serde(default)]
    description: Option<String>,
}

fn json(status: actix_web::http::StatusCode, body: &impl Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(serde_json::to_string_pretty(body).unwrap_or_else(|_| "{}".to_owned()))
}

fn ok(body: &impl Serialize) -> HttpResponse {
    json(actix_web::http::StatusCode::OK, body)
}

fn bad_request(message: String) -> HttpResponse {
    json(
        actix_web::http::StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": "bad_request", "message": message }),
    )
}

async fn state(shared: web::Data<Shared>) -> HttpResponse {
    let state = shared.lock();
    let view = StateView {
        org_id: state.org_id.clone(),
        base_url: state.base_url.clone(),
        integration_profile: state.integration_profile.clone(),
        caller_ip: state.caller_ip.to_string(),
        production: state.production,
        profiles: state
            .profiles
            .iter()
            .map(|p| ProfileView {
                full_name: p.full_name.clone(),
                id: p.id.clone(),
                login_ip_ranges: p.ranges.clone(),
            })
            .collect(),
        deploys: state.deploy_records(),
        heroku: state.heroku.clone(),
        faults: state.faults.clone(),
        audit_trail: state.audit.clone(),
    };
    ok(&view)
}

async fn calls(shared: web::Data<Shared>) -> HttpResponse {
    let calls: Vec<Call> = shared.lock().calls.clone();
    ok(&calls)
}

async fn clear_calls(shared: web::Data<Shared>) -> HttpResponse {
    shared.lock().calls.clear();
    HttpResponse::NoContent().finish()
}

async fn faults(shared: web::Data<Shared>) -> HttpResponse {
    let faults = shared.lock().faults.clone();
    ok(&faults)
}

async fn set_faults(body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            shared.lock().set_faults(faults.clone());
            ok(&faults)
        }
        Err(e) => bad_request(format!("faults: {e}")),
    }
}

/// Org settings a client test needs to reach paging and queueing: every field optional.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Records per REST query page (Salesforce's `batchSize`, default 2000).
    query_page_size: Option<usize>,
    /// How long deploys stay `Pending` (at least) and `InProgress`, in milliseconds.
    deploy_pending_ms: Option<u64>,
    deploy_in_progress_ms: Option<u64>,
}

async fn set_settings(body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let settings: Settings = match serde_json::from_slice(&body) {
        Ok(settings) => settings,
        Err(e) => return bad_request(format!("settings: {e}")),
    };
    let mut state = shared.lock();
    if let Some(size) = settings.query_page_size {
        state.query_page_size = size.max(1);
    }
    if let Some(ms) = settings.deploy_pending_ms {
        state.pending_for = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = settings.deploy_in_progress_ms {
        state.in_progress_for = std::time::Duration::from_millis(ms);
    }
    ok(&settings)
}

async fn set_heroku(body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    match serde_json::from_slice::<SimHeroku>(&body) {
        Ok(heroku) => {
            shared.lock().set_heroku(heroku.clone());
            ok(&heroku)
        }
        Err(e) => bad_request(format!("heroku: {e}")),
    }
}

/// The profile's full name from the raw path, percent-decoded once: a name that itself
/// contains `%3A` arrives as `Custom%253A%20Support`.
fn profile_from_path(path: &str) -> Option<String> {
    let encoded = path
        .strip_prefix("/sim/profiles/")?
        .strip_suffix("/login-ip-ranges")?;
    let name = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!name.trim().is_empty()).then_some(name)
}

async fn set_ranges(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let Some(name) = profile_from_path(req.uri().path()) else {
        return bad_request("the path must be /sim/profiles/{fullName}/login-ip-ranges".into());
    };
    let inputs: Vec<RangeInput> = match serde_json::from_slice(&body) {
        Ok(inputs) => inputs,
        Err(e) => return bad_request(format!("ranges: {e}")),
    };
    // An admin edit: well-formed ranges are accepted as they are (legacy sizes included).
    let mut ranges = Vec::new();
    for input in inputs {
        match LoginIpRange::parse_existing(&input.start, &input.end, input.description.as_deref()) {
            Ok(range) => ranges.push(range),
            Err(e) => return bad_request(e.to_string()),
        }
    }
    shared
        .lock()
        .set_ranges(&name, ranges.clone(), Actor::Admin);
    ok(&serde_json::json!({ "full_name": name, "login_ip_ranges": ranges }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_are_decoded_once() {
        assert_eq!(
            profile_from_path("/sim/profiles/Custom%253A%20Support/login-ip-ranges").as_deref(),
            Some("Custom%3A Support")
        );
        assert_eq!(
            profile_from_path("/sim/profiles/Admin/login-ip-ranges").as_deref(),
            Some("Admin")
        );
        assert_eq!(profile_from_path("/sim/profiles//login-ip-ranges"), None);
    }
}
