//! Request ids and access logs for every request.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Keeps a caller's `X-Request-Id` when it is a sane token, else makes one; echoes it on the
/// response and logs method, route (never the query string), status and timing — never headers
/// or bodies, which carry tokens.
pub async fn request_id_and_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_owned)
        // From the thread's seeded generator: `new_v4` asks the kernel for 16 bytes on every
        // request, and an id needs to be unique, not secret.
        .unwrap_or_else(|| {
            uuid::Builder::from_random_bytes(rand::random())
                .into_uuid()
                .to_string()
        });
    let method = req.method().to_string();
    let mut response = next.call(req).await?;
    // The route pattern, not the path: `/salesforce/outbound-messages/{token}` must never
    // log its secret segment.
    let path = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| response.request().path().to_owned());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    tracing::info!(
        request_id = %id,
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(response)
}
