//! Salesforce → ipguard: outbound messages (SOAP) and platform event callouts (JWT). Both are
//! hints: they are recorded durably, deduplicated and acknowledged; the IPs to assert never
//! come from them.

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::body::{BodyRefusal, read_limited, refuse_before_reading};
use super::responses::{invalid_token, json_error, soap, soap_fault};
use super::{AppState, OrgRoute};
use crate::ingress::events::parse_events;
use crate::ingress::jwt::{RejectReason, Rejection};
use crate::ingress::outbound::{self, FaultKind};
use crate::metrics::ReasonLabels;
use crate::store::{Delivery, DeliverySource, NewHint, StoreError};
use crate::trigger::Trigger;

const OM: &str = Trigger::OutboundMessage.as_str();
const PE: &str = Trigger::PlatformEvent.as_str();

/// `POST /salesforce/outbound-messages` (only when no path token is configured).
pub async fn outbound_plain(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let body = match read_outbound_body(&req, payload).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    if state.outbound_token.is_some() {
        return super::responses::not_found().await;
    }
    outbound_message(&req, &body, &state).await
}

/// `POST /salesforce/outbound-messages/{token}`: the token is compared in constant time and a
/// wrong one looks exactly like an unknown path.
pub async fn outbound_with_token(
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let body = match read_outbound_body(&req, payload).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let Some(expected) = &state.outbound_token else {
        return super::responses::not_found().await;
    };
    let matches: bool = expected
        .expose_secret()
        .as_bytes()
        .ct_eq(token.as_bytes())
        .into();
    if !matches {
        return super::responses::not_found().await;
    }
    outbound_message(&req, &body, &state).await
}

/// The body is read before anything else, as the `web::Bytes` extractor did.
async fn read_outbound_body(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<web::Bytes, HttpResponse> {
    read_limited(req, payload, |refusal| {
        soap_fault(refusal.status(), FaultKind::Client, &refusal.message())
    })
    .await
}

async fn outbound_message(req: &HttpRequest, body: &[u8], state: &AppState) -> HttpResponse {
    let metrics = &state.metrics;
    if !is_soap_content_type(req) {
        metrics.notification(OM, "malformed");
        return soap_fault(
            StatusCode::BAD_REQUEST,
            FaultKind::Client,
            "expected a SOAP 1.1 message (Content-Type text/xml)",
        );
    }
    if state.orgs.iter().all(|o| o.org_id.is_none()) {
        metrics.notification(OM, "not_configured");
        return soap_fault(
            StatusCode::SERVICE_UNAVAILABLE,
            FaultKind::Server,
            "SALESFORCE_ORG_ID is not configured",
        );
    };
    let message = match outbound::parse(body) {
        Ok(m) => m,
        Err(e) => {
            metrics.notification(OM, "malformed");
            return soap_fault(StatusCode::BAD_REQUEST, FaultKind::Client, &e.to_string());
        }
    };
    let Some(org) = state.org_with_id(&message.organization_id) else {
        metrics.notification(OM, "wrong_org");
        tracing::warn!("outbound message from another organization refused");
        return soap_fault(
            StatusCode::FORBIDDEN,
            FaultKind::Client,
            "this endpoint does not accept messages from that organization",
        );
    };
    let deliveries: Vec<Delivery> = message
        .notifications
        .iter()
        .map(|n| Delivery {
            source: DeliverySource::OutboundMessage,
            key: org.delivery_key(&n.id),
        })
        .collect();
    if !deliveries.is_empty() {
        let hint = NewHint {
            org_id: org.store_key.clone(),
            trigger: Trigger::OutboundMessage,
            detail: Some(format!("{} notification(s)", deliveries.len())),
        };
        match state.store.record_deliveries(&deliveries, &hint).await {
            Ok(outcome) => {
                let label = if outcome.new > 0 {
                    "accepted"
                } else {
                    "duplicate"
                };
                metrics.notification(OM, label);
            }
            Err(e) => return store_unavailable_fault(state, e),
        }
    } else {
        metrics.notification(OM, "empty");
    }
    soap(StatusCode::OK, outbound::ACK.to_owned())
}

fn store_unavailable_fault(state: &AppState, e: StoreError) -> HttpResponse {
    state.metrics.notification(OM, "store_unavailable");
    tracing::error!(error = %e, "cannot record outbound message; not acknowledging");
    soap_fault(
        StatusCode::SERVICE_UNAVAILABLE,
        FaultKind::Server,
        "temporarily unable to record the message; please retry",
    )
}

fn is_soap_content_type(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("text/xml") || mime.eq_ignore_ascii_case("application/soap+xml")
}

/// `POST /salesforce/events` with `Authorization: Bearer <JWT>`: the only org's (with many,
/// each org's flow calls its own path).
pub async fn platform_events_plain(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(org) = state.only_org().cloned() else {
        let names: Vec<&str> = state.orgs.iter().map(|o| o.name.as_str()).collect();
        let refusal = json_error(
            StatusCode::NOT_FOUND,
            "org_required",
            &format!(
                "several orgs are guarded: post to /salesforce/events/{{org}} ({})",
                names.join(", ")
            ),
        );
        return refuse_before_reading(&req, payload, refusal).await;
    };
    platform_events(req, payload, &state, &org).await
}

/// `POST /salesforce/events/{org}`: a callout on one org's path starts runs for that org only.
pub async fn platform_events_for_org(
    req: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(org) = state.org_named(&name).cloned() else {
        let refusal = json_error(
            StatusCode::NOT_FOUND,
            "unknown_org",
            "no such org is guarded here",
        );
        return refuse_before_reading(&req, payload, refusal).await;
    };
    platform_events(req, payload, &state, &org).await
}

async fn platform_events(
    req: HttpRequest,
    payload: web::Payload,
    state: &AppState,
    org: &OrgRoute,
) -> HttpResponse {
    // The token is judged before the body is read: a forged flood costs a header parse and at
    // most one RSA verification a request.
    if let Err(refusal) = authorize_event_callout(&req, state).await {
        return refuse_before_reading(&req, payload, refusal).await;
    }
    let refuse = |refusal: BodyRefusal| {
        let code = match refusal {
            BodyRefusal::TooLarge => "payload_too_large",
            BodyRefusal::Unreadable => "invalid_request",
            BodyRefusal::TooSlow => "request_timeout",
        };
        json_error(refusal.status(), code, &refusal.message())
    };
    let body = match read_limited(&req, payload, refuse).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let metrics = &state.metrics;
    let events = match parse_events(&body) {
        Ok(events) => events,
        Err(e) => {
            metrics.notification(PE, "malformed");
            return json_error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string());
        }
    };
    let deliveries: Vec<Delivery> = events
        .iter()
        .map(|e| Delivery {
            source: DeliverySource::PlatformEvent,
            key: org.delivery_key(&e.dedupe_key),
        })
        .collect();
    let hint = NewHint {
        org_id: org.store_key.clone(),
        trigger: Trigger::PlatformEvent,
        detail: events.first().map(|e| e.channel.clone()),
    };
    match state.store.record_deliveries(&deliveries, &hint).await {
        Ok(outcome) => {
            metrics.notification(
                PE,
                if outcome.new > 0 {
                    "accepted"
                } else {
                    "duplicate"
                },
            );
            HttpResponse::Accepted()
                .json(json!({ "accepted": outcome.new, "duplicates": outcome.duplicates }))
        }
        Err(e) => events_store_unavailable(state, e),
    }
}

/// Every JWT rule of docs/contract.md §3 for an event callout, and the `jti` spent; `Err` is the response
/// to send instead.
async fn authorize_event_callout(req: &HttpRequest, state: &AppState) -> Result<(), HttpResponse> {
    let metrics = &state.metrics;
    let reject = |rejection: Rejection| {
        metrics
            .jwt_rejections
            .get_or_create(&ReasonLabels {
                reason: rejection.reason.as_str(),
            })
            .inc();
        metrics.notification(PE, "rejected");
        invalid_token(&rejection.description)
    };
    let Some(verifier) = &state.verifier else {
        return Err(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "EVENTS_JWT_CERTS, EVENTS_JWT_ISSUER and EVENTS_JWT_AUDIENCE are not configured",
        ));
    };
    // RFC 6750 allows a query-string token; we never do (it ends up in logs and proxies).
    let Some(token) = bearer_token(req) else {
        return Err(reject(Rejection {
            reason: RejectReason::Malformed,
            description: "a bearer token in the Authorization header is required".into(),
        }));
    };
    let verified = verifier
        .verify(token, chrono::Utc::now().timestamp())
        .map_err(reject)?;
    // The jti is spent before the body is read, so a token seen once (even on a request refused
    // for its body) can never be replayed.
    if let Some(jti) = &verified.jti {
        // The store keeps it JTI_LEEWAY past `exp`, matching the verifier's leeway.
        let expires = chrono::DateTime::from_timestamp(verified.exp, 0).unwrap_or_default();
        match state.store.consume_jti(jti, expires).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(reject(Rejection {
                    reason: RejectReason::Replayed,
                    description: "token already used".into(),
                }));
            }
            Err(e) => return Err(events_store_unavailable(state, e)),
        }
    }
    Ok(())
}

fn events_store_unavailable(state: &AppState, e: StoreError) -> HttpResponse {
    state.metrics.notification(PE, "store_unavailable");
    tracing::error!(error = %e, "cannot record platform events");
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "unable to record the events; please retry",
    )
}

/// The token of an `Authorization: Bearer …` header, if well-formed and non-empty.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get("Authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
