//! Response helpers shared by the handlers: JSON errors, 404/405, SOAP replies.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::json;

use crate::ingress::outbound::{self, FaultKind};

pub fn json_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": error, "error_description": description }))
}

pub async fn not_found() -> HttpResponse {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub async fn method_not_allowed() -> HttpResponse {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

pub fn soap(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

pub fn soap_fault(status: StatusCode, kind: FaultKind, message: &str) -> HttpResponse {
    soap(status, outbound::fault(kind, message))
}

/// RFC 6750 refusal: the description is ours, never the token's content.
pub fn invalid_token(description: &str) -> HttpResponse {
    let header = format!(
        "Bearer error=\"invalid_token\", error_description=\"{}\"",
        description.replace(['"', '\\'], "'")
    );
    HttpResponse::Unauthorized()
        .insert_header(("WWW-Authenticate", header))
        .json(json!({ "error": "invalid_token", "error_description": description }))
}
