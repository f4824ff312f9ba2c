//! Operator endpoints: `/reconcile`, `/status`, `/metrics` (admin bearer), `/healthz`, `/readyz`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::responses::json_error;
use super::session;
use super::webhooks::bearer_token;
use super::{AppState, OrgRoute};
use crate::store::{NewHint, StoreError};
use crate::trigger::Trigger;

/// How an operator proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// `Authorization: Bearer <IPGUARD_ADMIN_TOKEN>`: scripts, Prometheus.
    Bearer,
    /// The signed session cookie a browser got from `/signin`.
    Session,
}

/// Why a caller may not proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No `IPGUARD_ADMIN_TOKEN`: the operator endpoints are off.
    Disabled,
    /// A browser asking for a page: to the sign-in form.
    SignIn,
    /// Everything else: the JSON 401 with `WWW-Authenticate: Bearer`.
    Unauthorized,
}

impl Refusal {
    fn response(self) -> HttpResponse {
        match self {
            Refusal::Disabled => json_error(
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "set IPGUARD_ADMIN_TOKEN to use this endpoint",
            ),
            Refusal::SignIn => session::see_other("/signin").finish(),
            Refusal::Unauthorized => HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer realm=\"ipguard\""))
                .json(json!({"error": "unauthorized", "error_description": "admin bearer token required (or sign in at /signin)"})),
        }
    }
}

/// The caller, or why not.
fn authorize(req: &HttpRequest, state: &AppState) -> Result<Caller, Refusal> {
    let Some(expected) = &state.admin_token else {
        return Err(Refusal::Disabled);
    };
    if let Some(given) = bearer_token(req) {
        // A wrong bearer is refused even with a session: a script must not pass by luck.
        return if session::token_matches(expected, given) {
            Ok(Caller::Bearer)
        } else {
            Err(Refusal::Unauthorized)
        };
    }
    if session::has_session(req, state) {
        return Ok(Caller::Session);
    }
    if req.method() == actix_web::http::Method::GET && session::wants_html(req) {
        return Err(Refusal::SignIn);
    }
    Err(Refusal::Unauthorized)
}

/// How long `POST /reconcile` may wait in all: below the Heroku router's 30 s request limit.
pub const ROUTER_BUDGET: Duration = Duration::from_secs(25);

#[derive(Deserialize)]
pub struct ReconcileQuery {
    #[serde(default)]
    wait: bool,
    /// Which org (docs/contract.md §8); with several and none named, every org is asked.
    #[serde(default)]
    org: Option<String>,
}

/// `POST /reconcile[?wait=true]`: a hint like any other; answers with the run that took it.
pub async fn reconcile(
    req: HttpRequest,
    query: web::Query<ReconcileQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let caller = match authorize(&req, &state) {
        Ok(caller) => caller,
        Err(refusal) => return refusal.response(),
    };
    // The page's "Check now" button: a cookie alone must never be enough for a write that
    // another site could start.
    if caller == Caller::Session && !session::same_origin(&req) {
        return json_error(
            StatusCode::FORBIDDEN,
            "cross_site",
            "this form must be sent from ipguard's own page",
        );
    }
    let org = match the_org(&state, query.org.as_deref()) {
        Ok(Some(org)) => org,
        Ok(None) => return reconcile_every_org(&state, caller).await,
        Err(unknown) => return unknown.response(),
    };
    let hint = NewHint {
        org_id: org.store_key.clone(),
        trigger: Trigger::Admin,
        detail: None,
    };
    let hint_id = match state.store.enqueue_hint(&hint).await {
        Ok(id) => id,
        Err(e) => {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &e.to_string(),
            );
        }
    };
    // The page the button was on: the org's own when there are several.
    let page = if org.keyed {
        format!("/status?org={}", org.name)
    } else {
        "/status".to_owned()
    };
    // Heroku's router ends a request at 30 s (H12): every wait here fits in ROUTER_BUDGET,
    // and an answer without the outcome names the run (or hint) to follow on `/status`.
    let deadline = tokio::time::Instant::now() + ROUTER_BUDGET;
    let mut run_id = None;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(id)) = state.store.run_for_hint(hint_id).await {
            run_id = Some(id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(run_id) = run_id else {
        if caller == Caller::Session {
            return session::see_other(&page).finish();
        }
        return HttpResponse::Accepted().json(json!({ "run": null, "hint": hint_id }));
    };
    // The page's button waits like `?wait=true`, then shows the page again with the outcome.
    let wait = query.wait || caller == Caller::Session;
    if !wait {
        return HttpResponse::Accepted().json(json!({ "run": run_id }));
    }
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(run)) = state.store.run(run_id).await
            && let Some(outcome) = &run.outcome
        {
            if caller == Caller::Session {
                return session::see_other(&page).finish();
            }
            return HttpResponse::Ok().json(json!({
                "run": run_id, "outcome": outcome, "deploy_id": run.deploy_id,
                "error": run.error, "failures": run.failures,
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if caller == Caller::Session {
        return session::see_other(&page).finish();
    }
    HttpResponse::Accepted().json(json!({ "run": run_id, "outcome": null }))
}

/// `?org=KEY` names no org guarded here (404).
struct UnknownOrg;

impl UnknownOrg {
    fn response(self) -> HttpResponse {
        json_error(
            StatusCode::NOT_FOUND,
            "unknown_org",
            "no such org is guarded here",
        )
    }
}

/// The org a request names (`?org=KEY`), or the only one; `Ok(None)` when it names none
/// and several are guarded.
fn the_org<'s>(
    state: &'s AppState,
    name: Option<&str>,
) -> Result<Option<&'s OrgRoute>, UnknownOrg> {
    match name {
        Some(name) => state.org_named(name).map(Some).ok_or(UnknownOrg),
        None => Ok(state.only_org()),
    }
}

/// `POST /reconcile` naming no org while several are guarded: a hint for each, not waited on.
async fn reconcile_every_org(state: &AppState, caller: Caller) -> HttpResponse {
    let mut hints = Vec::with_capacity(state.orgs.len());
    for org in &state.orgs {
        let hint = NewHint {
            org_id: org.store_key.clone(),
            trigger: Trigger::Admin,
            detail: None,
        };
        match state.store.enqueue_hint(&hint).await {
            Ok(id) => hints.push(json!({ "org": org.name, "hint": id })),
            Err(e) => {
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    &e.to_string(),
                );
            }
        }
    }
    if caller == Caller::Session {
        return session::see_other("/status").finish();
    }
    HttpResponse::Accepted().json(json!({ "run": null, "hints": hints }))
}

#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    /// One org of several (docs/contract.md §8); without it, every org at a glance.
    #[serde(default)]
    org: Option<String>,
}

/// `GET /status[?org=KEY]`: JSON, or a readable page for `Accept: text/html`. With one org,
/// its status; with several, every org (`orgs`), or the one `org` names.
pub async fn status(
    req: HttpRequest,
    query: web::Query<StatusQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let caller = match authorize(&req, &state) {
        Ok(caller) => caller,
        Err(refusal) => return refusal.response(),
    };
    let page = super::status_page::Page {
        signed_in: caller == Caller::Session,
        org: None,
    };
    let one = match the_org(&state, query.org.as_deref()) {
        Ok(one) => one,
        Err(unknown) => return unknown.response(),
    };
    let found = match one {
        Some(org) => org_status(&state, org).await,
        None => every_org_status(&state).await,
    };
    let doc = match found {
        Ok(doc) => doc,
        Err(e) => {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &e.to_string(),
            );
        }
    };
    if !session::wants_html(&req) {
        return HttpResponse::Ok().json(doc);
    }
    let html = match one {
        Some(org) => {
            let page = super::status_page::Page {
                org: org.keyed.then(|| org.name.clone()),
                ..page
            };
            super::status_page::render_page(&doc, &page)
        }
        None => super::status_page::render_orgs(&doc, &page),
    };
    session::html(StatusCode::OK).body(html)
}

/// What the org's leader last saw, from the store, so every instance behind the router
/// shows the same; `leader` says whether this instance is the one reconciling it.
async fn org_status(state: &AppState, org: &OrgRoute) -> Result<serde_json::Value, StoreError> {
    let (seen, lease, runs) = tokio::try_join!(
        state.store.status(&org.store_key),
        state.store.lease(&org.store_key),
        state.store.recent_runs_of(&org.store_key, 50),
    )?;
    let mut doc = seen.unwrap_or_else(|| json!({}));
    let live = lease.filter(|l| !l.expires_in.is_zero());
    if org.keyed {
        doc["org"] = json!(org.name);
    }
    doc["leader"] = json!(org.status.snapshot().leader);
    doc["lease"] = match live {
        Some(l) => json!({ "holder": l.lease.holder, "expires_at": l.lease.expires_at }),
        None => serde_json::Value::Null,
    };
    doc["runs"] = json!(runs);
    mark_what_is_known(&mut doc);
    Ok(doc)
}

/// Every org's status, in `IPGUARD_ORGS` order.
async fn every_org_status(state: &AppState) -> Result<serde_json::Value, StoreError> {
    let mut orgs = Vec::with_capacity(state.orgs.len());
    for org in &state.orgs {
        orgs.push(org_status(state, org).await?);
    }
    Ok(json!({ "orgs": orgs }))
}

/// Each profile's `state` — `in_sync`, `drift`, or `unknown` while ipguard is locked out (the
/// ranges shown are from the last read before the lock-out, `checked_at`, and may have changed
/// since) — and `locked_out_since`, when the current lock-out's first run started.
fn mark_what_is_known(doc: &mut serde_json::Value) {
    let locked_out = doc["locked_out"].as_bool() == Some(true);
    if let Some(profiles) = doc["profiles"].as_array_mut() {
        for p in profiles {
            let state = match (locked_out, p["in_sync"].as_bool()) {
                (true, _) => "unknown",
                (false, Some(true)) => "in_sync",
                (false, _) => "drift",
            };
            p["state"] = json!(state);
        }
    }
    let since = locked_out
        .then(|| {
            doc["runs"]
                .as_array()?
                .iter()
                .filter(|r| !r["outcome"].is_null())
                .take_while(|r| r["outcome"] == "locked_out")
                .last()
                .map(|r| r["started_at"].clone())
        })
        .flatten();
    doc["locked_out_since"] = since.unwrap_or(serde_json::Value::Null);
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(refusal) = authorize(&req, &state) {
        return refusal.response();
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when the store takes a write (a full disk answers reads but refuses every webhook);
/// the configuration was validated before binding.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ready().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "store cannot write; not ready");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the store cannot take writes",
            )
        }
    }
}
