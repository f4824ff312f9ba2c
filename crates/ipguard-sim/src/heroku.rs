//! `GET /spaces/{space}/nat` — the Heroku Platform API's Space Network Address Translation:
//! `{"created_at","sources","state","updated_at"}` for the one simulated space, behind a
//! bearer token.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::state::Shared;

#[derive(Serialize)]
struct SpaceNat<'a> {
    created_at: String,
    sources: &'a [String],
    state: &'a str,
    updated_at: String,
}

#[derive(Serialize)]
struct HerokuError<'a> {
    id: &'a str,
    message: &'a str,
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) async fn nat(
    req: HttpRequest,
    space: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let latency = shared.lock().faults.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut state = shared.lock();
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let injected =
        (!state.faults.heroku_failures.is_empty()).then(|| state.faults.heroku_failures.remove(0));
    let injected_label = injected.map(|status| format!("http_{status}"));
    let (status, body, outcome) = if let Some(status) = injected {
        let body = if status == 429 {
            HerokuError {
                id: "rate_limit",
                message: "Your account reached the API rate limit",
            }
        } else {
            HerokuError {
                id: "internal_server_error",
                message: "Internal server error.",
            }
        };
        (
            status,
            serde_json::to_string(&body),
            injected_label.as_deref().unwrap_or("http"),
        )
    } else if token != Some(state.heroku.api_token.as_str()) {
        let body = HerokuError {
            id: "unauthorized",
            message: "Invalid credentials provided.",
        };
        (401, serde_json::to_string(&body), "unauthorized")
    } else if space.as_str() != state.heroku.space {
        let body = HerokuError {
            id: "not_found",
            message: "Couldn't find that space.",
        };
        (404, serde_json::to_string(&body), "not_found")
    } else {
        let body = SpaceNat {
            created_at: timestamp(state.heroku_created),
            sources: &state.heroku.sources,
            state: &state.heroku.state,
            updated_at: timestamp(state.heroku_updated),
        };
        (200, serde_json::to_string(&body), "ok")
    };
    state.record("heroku.nat", outcome);
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header(("RateLimit-Remaining", "4499"))
        .body(body.unwrap_or_else(|_| "{}".to_owned()))
}
