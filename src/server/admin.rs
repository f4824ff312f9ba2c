//! Operator endpoints: `/reconcile`, `/status`, `/metrics` (admin bearer), `/healthz`, `/readyz`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::ACCEPT;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;
use super::responses::json_error;
use super::webhooks::bearer_token;
use crate::store::NewHint;

/// `None` when the caller may proceed; otherwise the refusal to send.
fn refuse_unless_admin(req: &HttpRequest, state: &AppState) -> Option<HttpResponse> {
    let Some(expected) = &state.admin_token else {
        return Some(json_error(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "set IPGUARD_ADMIN_TOKEN to use this endpoint",
        ));
    };
    let given = bearer_token(req).unwrap_or("");
    let ok: bool = expected
        .expose_secret()
        .as_bytes()
        .ct_eq(given.as_bytes())
        .into();
    if ok {
        None
    } else {
        Some(
            HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer realm=\"ipguard\""))
                .json(json!({"error": "unauthorized", "error_description": "admin bearer token required"})),
        )
    }
}

/// How long `POST /reconcile` may wait in all: below the Heroku router's 30 s request limit.
pub const ROUTER_BUDGET: Duration = Duration::from_secs(25);

#[derive(Deserialize)]
pub struct ReconcileQuery {
    #[serde(default)]
    wait: bool,
}

/// `POST /reconcile[?wait=true]`: a hint like any other; answers with the run that took it.
pub async fn reconcile(
    req: HttpRequest,
    query: web::Query<ReconcileQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refusal) = refuse_unless_admin(&req, &state) {
        return refusal;
    }
    let hint = NewHint {
        org_id: state.org_key.clone(),
        trigger: "admin".into(),
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
        return HttpResponse::Accepted().json(json!({ "run": null, "hint": hint_id }));
    };
    if !query.wait {
        return HttpResponse::Accepted().json(json!({ "run": run_id }));
    }
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(run)) = state.store.run(run_id).await
            && let Some(outcome) = &run.outcome
        {
            return HttpResponse::Ok().json(json!({
                "run": run_id, "outcome": outcome, "deploy_id": run.deploy_id,
                "error": run.error, "failures": run.failures,
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    HttpResponse::Accepted().json(json!({ "run": run_id, "outcome": null }))
}

/// `GET /status`: JSON, or a readable page for `Accept: text/html`.
pub async fn status(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refusal) = refuse_unless_admin(&req, &state) {
        return refusal;
    }
    // What the leader last saw comes from the store, so every instance behind the router
    // shows the same page; `leader` says whether this instance is the one reconciling.
    let (seen, lease, runs) = match tokio::try_join!(
        state.store.status(&state.org_key),
        state.store.lease(&state.org_key),
        state.store.recent_runs(50),
    ) {
        Ok(found) => found,
        Err(e) => {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &e.to_string(),
            );
        }
    };
    let mut doc = seen.unwrap_or_else(|| json!({}));
    let live = lease.filter(|l| !l.expires_in.is_zero());
    doc["leader"] = json!(state.status.snapshot().leader);
    doc["lease"] = match live {
        Some(l) => json!({ "holder": l.lease.holder, "expires_at": l.lease.expires_at }),
        None => serde_json::Value::Null,
    };
    doc["runs"] = json!(runs);
    let wants_html = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html {
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(super::status_page::render(&doc))
    } else {
        HttpResponse::Ok().json(doc)
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refusal) = refuse_unless_admin(&req, &state) {
        return refusal;
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
