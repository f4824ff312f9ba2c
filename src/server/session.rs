//! Signing in from a browser: a form takes the admin token once and sets a signed session
//! cookie (`__Host-ipguard_session`; `Secure; HttpOnly; SameSite=Strict; Path=/`).
//!
//! Why a form and a cookie rather than HTTP Basic (README › Signing in): a browser caches Basic
//! credentials and attaches them to every request to the host — cross-site form posts included
//! — until it quits, and there is no way to sign out. A `SameSite=Strict` cookie is never sent
//! on a request another site starts; on top of that every POST the page makes (sign-in,
//! sign-out, "Check now") must come from this origin (`Sec-Fetch-Site`/`Origin`).
//!
//! The cookie is `v1.<expiry>.<nonce>.<HMAC-SHA256>`, keyed by a key derived from the admin
//! token (ring's HMAC, verified in constant time): every dyno accepts it without shared state
//! or a new secret, and rotating `IPGUARD_ADMIN_TOKEN` signs every browser out. It holds no
//! secret itself. Scripts keep sending `Authorization: Bearer`.

use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::AppState;

/// The `__Host-` prefix makes browsers refuse the cookie unless it is `Secure`, `Path=/` and
/// host-only, so no sibling host can plant or overwrite it.
pub const COOKIE: &str = "__Host-ipguard_session";

/// A session lasts one working day; signing in again takes seconds.
pub const LIFETIME_SECS: i64 = 12 * 3600;

fn key(admin_token: &SecretString) -> hmac::Key {
    // A derived key, not the token itself: the cookie's MAC never doubles as a token check.
    let base = hmac::Key::new(hmac::HMAC_SHA256, admin_token.expose_secret().as_bytes());
    let derived = hmac::sign(&base, b"ipguard session cookie v1");
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// A fresh cookie value valid until `now + LIFETIME_SECS` (Unix seconds).
pub fn issue(admin_token: &SecretString, now: i64) -> String {
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let payload = format!(
        "v1.{}.{}",
        now + LIFETIME_SECS,
        URL_SAFE_NO_PAD.encode(nonce)
    );
    let tag = hmac::sign(&key(admin_token), payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Whether `value` is a cookie this admin token issued and it has not expired at `now`.
pub fn verify(admin_token: &SecretString, value: &str, now: i64) -> bool {
    let Some((payload, tag)) = value.rsplit_once('.') else {
        return false;
    };
    let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
        return false;
    };
    if hmac::verify(&key(admin_token), payload.as_bytes(), &tag).is_err() {
        return false;
    }
    let mut parts = payload.split('.');
    parts.next() == Some("v1")
        && parts
            .next()
            .and_then(|exp| exp.parse::<i64>().ok())
            .is_some_and(|exp| now < exp)
}

/// The session cookie's value from the request's `Cookie` headers, if any.
fn cookie_value(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether the request carries a valid session cookie.
pub fn has_session(req: &HttpRequest, state: &AppState) -> bool {
    let (Some(token), Some(value)) = (&state.admin_token, cookie_value(req)) else {
        return false;
    };
    verify(token, value, chrono::Utc::now().timestamp())
}

/// Whether the admin token was given, compared in constant time.
pub fn token_matches(expected: &SecretString, given: &str) -> bool {
    expected
        .expose_secret()
        .as_bytes()
        .ct_eq(given.as_bytes())
        .into()
}

/// Whether a browser request comes from a page of this service. Browsers send
/// `Sec-Fetch-Site` (and `Origin` on every POST); a request with neither is not from a
/// browser page, and cookie-authenticated writes need one.
pub fn same_origin(req: &HttpRequest) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // Behind the Heroku router the scheme the browser used is not ours to see (TLS ends
    // there), so the host and port decide.
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// Whether the caller asked for a page (a browser navigation) rather than JSON.
pub fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn set_cookie(value: &str, max_age: i64) -> String {
    format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict")
}

/// The stylesheet's hash for the Content-Security-Policy: pages run no script at all and
/// only this style applies.
fn style_hash(style: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, style.as_bytes());
    STANDARD.encode(digest.as_ref())
}

static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src 'sha256-{}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
        style_hash(super::status_page::STYLE)
    )
});

/// An HTML answer: never cached (it shows the org's state), never framed (clickjacking of
/// its buttons), no referrer, no script.
pub fn html(status: StatusCode) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP.as_str()))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    builder
}

/// 303 to `location`, a path of ours (a browser follows it with a GET).
pub fn see_other(location: &str) -> HttpResponseBuilder {
    // Our paths and org keys (`[a-z0-9-]`) are always valid header text.
    let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/status"));
    let mut builder = HttpResponse::SeeOther();
    builder
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    builder
}

fn forbidden_cross_site() -> HttpResponse {
    super::responses::json_error(
        StatusCode::FORBIDDEN,
        "cross_site",
        "this form must be sent from ipguard's own page",
    )
}

/// `GET /signin`: the form (or straight to the page when already signed in).
pub async fn signin_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if state.admin_token.is_none() {
        return html(StatusCode::FORBIDDEN).body(super::status_page::signin(Some(
            "Signing in is off: set IPGUARD_ADMIN_TOKEN on the service first.",
        )));
    }
    if has_session(&req, &state) {
        return see_other("/status").finish();
    }
    html(StatusCode::OK).body(super::status_page::signin(None))
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    token: String,
}

/// `POST /signin` (form: `token`): a session cookie and on to `/status`, or the form again
/// with a 401. The token is never echoed or logged.
pub async fn signin(
    req: HttpRequest,
    form: web::Form<SignIn>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(expected) = &state.admin_token else {
        return html(StatusCode::FORBIDDEN).body(super::status_page::signin(Some(
            "Signing in is off: set IPGUARD_ADMIN_TOKEN on the service first.",
        )));
    };
    if !same_origin(&req) {
        return forbidden_cross_site();
    }
    if !token_matches(expected, form.token.trim()) {
        tracing::warn!("sign-in refused: wrong admin token");
        return html(StatusCode::UNAUTHORIZED).body(super::status_page::signin(Some(
            "That is not the admin token (IPGUARD_ADMIN_TOKEN). Try again.",
        )));
    }
    let cookie = issue(expected, chrono::Utc::now().timestamp());
    see_other("/status")
        .insert_header((header::SET_COOKIE, set_cookie(&cookie, LIFETIME_SECS)))
        .finish()
}

/// `POST /signout`: the cookie is cleared and the browser sent back to the form.
pub async fn signout(req: HttpRequest) -> HttpResponse {
    if !same_origin(&req) {
        return forbidden_cross_site();
    }
    see_other("/signin")
        .insert_header((header::SET_COOKIE, set_cookie("", 0)))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> SecretString {
        SecretString::from("admin-token-0123456789abcdef")
    }

    #[test]
    fn a_cookie_verifies_until_it_expires_and_only_under_its_token() {
        let cookie = issue(&token(), 1_000);
        assert!(verify(&token(), &cookie, 1_001));
        assert!(!verify(&token(), &cookie, 1_000 + LIFETIME_SECS));
        assert!(!verify(
            &SecretString::from("another-admin-token-0123456789"),
            &cookie,
            1_001
        ));
        assert!(!cookie.contains("admin-token"));
    }

    #[test]
    fn a_tampered_cookie_is_refused() {
        let cookie = issue(&token(), 1_000);
        // a later expiry with the old tag
        let (_, rest) = cookie.split_once('.').unwrap();
        let (_, rest) = rest.split_once('.').unwrap();
        let forged = format!("v1.{}.{rest}", 9_999_999_999i64);
        assert!(!verify(&token(), &forged, 1_001));
        for junk in ["", ".", "v1", "v1.x.y.z", "v1.9999999999.AAAA.AAAA"] {
            assert!(!verify(&token(), junk, 1_001), "{junk}");
        }
    }
}
