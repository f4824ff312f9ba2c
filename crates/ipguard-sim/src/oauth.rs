//! `POST /services/oauth2/token` — the OAuth 2.0 JWT bearer flow as Salesforce runs it: the
//! assertion is checked against the app's registered certificate, its claims against the app
//! and user, and the login against the integration profile's login IP ranges (JWT bearer
//! logins always enforce them — that is how a lock-out happens). Errors are HTTP 400 with
//! Salesforce's compact JSON; success carries no refresh token, signature or issued_at.

use actix_web::{HttpResponse, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;
use serde_json::Value;
use x509_parser::public_key::PublicKey;

use super::state::{Shared, SimState};
use super::{FailureKind, soap};

pub(crate) const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub(crate) const AUDIENCES: [&str; 2] = [
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];
/// "exp … within 3 minutes"; a few seconds of slack for clock skew.
const MAX_EXP_AHEAD_SECS: i64 = 180 + 10;

/// The RSA public key of the registered certificate, for RS256 verification.
pub(crate) fn decoding_key(certificate_pem: &str) -> Result<DecodingKey, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes())
        .map_err(|e| format!("the registered certificate is not PEM: {e}"))?;
    let certificate = pem
        .parse_x509()
        .map_err(|e| format!("the registered certificate is not X.509: {e}"))?;
    let key_info = certificate.public_key();
    match key_info.parsed() {
        Ok(PublicKey::RSA(_)) => Ok(DecodingKey::from_rsa_der(&key_info.subject_public_key.data)),
        _ => Err("the registered certificate does not hold an RSA public key".to_owned()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenError {
    pub error: &'static str,
    pub description: &'static str,
}

const fn grant_error(description: &'static str) -> TokenError {
    TokenError {
        error: "invalid_grant",
        description,
    }
}

const INVALID_ASSERTION: TokenError = grant_error("invalid assertion");

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    scope: &'a str,
    instance_url: &'a str,
    id: &'a str,
    token_type: &'a str,
}

#[derive(Serialize)]
struct ErrorResponse<'a> {
    error: &'a str,
    error_description: &'a str,
}

pub(crate) async fn token(body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let latency = shared.lock().faults.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut state = shared.lock();
    if let Some(kind) = state.take_failure(false) {
        let response = soap::http_failure(kind);
        state.record("token", failure_outcome(kind));
        return response;
    }
    let now = chrono::Utc::now().timestamp();
    match verify(&state, &body, now) {
        Ok(()) => {
            let access_token = state.new_session();
            state.record("token", "ok");
            state.record_login("Success");
            let id = format!("{}/id/{}/{}", state.base_url, state.org_id, state.user_id);
            let body = TokenResponse {
                access_token: &access_token,
                scope: "api",
                instance_url: &state.base_url,
                id: &id,
                token_type: "Bearer",
            };
            json(HttpResponse::Ok(), &body)
        }
        Err(e) => {
            state.record("token", e.description);
            // Only refusals of the integration user's own login are its LoginHistory; the
            // status text of a refused login is a GUESS (docs/sim.md).
            if e.description == "ip restricted" {
                state.record_login("Restricted IP");
            }
            let body = ErrorResponse {
                error: e.error,
                error_description: e.description,
            };
            json(HttpResponse::BadRequest(), &body)
        }
    }
}

pub(crate) fn failure_outcome(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Http500 => "http_500",
        FailureKind::Http503 => "http_503",
        FailureKind::RequestLimitExceeded | FailureKind::DailyRequestLimitExceeded => {
            "REQUEST_LIMIT_EXCEEDED"
        }
        FailureKind::ServerUnavailable => "SERVER_UNAVAILABLE",
        FailureKind::InvalidSession => "INVALID_SESSION_ID",
    }
}

fn json(mut builder: actix_web::HttpResponseBuilder, body: &impl Serialize) -> HttpResponse {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    builder
        .content_type("application/json;charset=UTF-8")
        .insert_header((
            "Cache-Control",
            "no-cache,must-revalidate,max-age=0,no-store,private",
        ))
        .body(text)
}

/// Checks one token request, in the order Salesforce can: the app is found by `iss` before
/// the signature can be checked with its certificate; the user and their IP come last.
pub(crate) fn verify(state: &SimState, body: &[u8], now: i64) -> Result<(), TokenError> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("grant_type") != Some(JWT_BEARER_GRANT) {
        return Err(TokenError {
            error: "unsupported_grant_type",
            description: "grant type not supported",
        });
    }
    let assertion = field("assertion").unwrap_or_default().trim();
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| INVALID_ASSERTION)?;
    if header.alg != Algorithm::RS256 {
        return Err(INVALID_ASSERTION);
    }
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|_| INVALID_ASSERTION)?;
    if claims.get("iss").and_then(Value::as_str) != Some(state.client_id.as_str()) {
        return Err(TokenError {
            error: "invalid_client_id",
            description: "client identifier invalid",
        });
    }

    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(assertion, &state.decoding_key, &validation)
        .map_err(|_| INVALID_ASSERTION)?;

    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => AUDIENCES.contains(&aud.as_str()),
        Some(Value::Array(auds)) => auds
            .iter()
            .filter_map(Value::as_str)
            .any(|aud| AUDIENCES.contains(&aud)),
        _ => false,
    };
    if !audience_ok {
        return Err(grant_error("audience is invalid"));
    }

    // Salesforce's own example sends exp as a string of digits; accept both forms.
    let exp = match claims.get("exp") {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let Some(exp) = exp else {
        return Err(INVALID_ASSERTION);
    };
    if exp <= now {
        return Err(grant_error("expired authorization code"));
    }
    if exp > now + MAX_EXP_AHEAD_SECS {
        return Err(INVALID_ASSERTION);
    }

    // "If both are specified, prn is used."
    let subject = claims
        .get("prn")
        .or_else(|| claims.get("sub"))
        .and_then(Value::as_str);
    if subject != Some(state.username.as_str()) || !state.faults.user_approved {
        return Err(grant_error("user hasn't approved this consumer"));
    }
    if !state.caller_allowed() {
        return Err(grant_error("ip restricted"));
    }
    Ok(())
}
