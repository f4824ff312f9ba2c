//! OAuth 2.0 JWT bearer flow (service → Salesforce).
//!
//! Assertion: RS256, `iss` = consumer key, `sub` = username, `aud` = login/test host (even
//! when the token endpoint is a My Domain), `exp` within 3 minutes. No refresh token exists:
//! a dead session is replaced by signing a new assertion.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Salesforce accepts assertions that expire within 3 minutes; stay well inside it.
const ASSERTION_LIFETIME_SECS: i64 = 150;

/// The integration's RSA private key, parsed once (by the configuration) and used to sign
/// every JWT bearer assertion. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey(EncodingKey);

impl SigningKey {
    /// Any RSA private key PEM jsonwebtoken can sign RS256 with (PKCS#8 or PKCS#1).
    pub fn from_rsa_pem(pem: &str) -> Result<Self, AuthError> {
        EncodingKey::from_rsa_pem(pem.as_bytes())
            .map(Self)
            .map_err(|e| AuthError::Signing(e.to_string()))
    }

    /// `claims` signed RS256 (PKCS#1 v1.5: the same claims always give the same token).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<SecretString, AuthError> {
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &self.0)
            .map(SecretString::from)
            .map_err(|e| AuthError::Signing(e.to_string()))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Salesforce refused the token request: {error}: {description}. {hint}")]
    Refused {
        error: String,
        description: String,
        hint: &'static str,
    },
    #[error("cannot sign the JWT bearer assertion: {0}")]
    Signing(String),
    #[error("token endpoint unreachable: {0}")]
    Transport(String),
    #[error("token endpoint answered HTTP {status}: {excerpt}")]
    Http { status: u16, excerpt: String },
}

impl AuthError {
    /// The integration user's own profile no longer allows the space's IPs: ipguard is locked
    /// out and only a human can fix it.
    pub fn is_ip_restricted(&self) -> bool {
        matches!(self, Self::Refused { description, .. } if description.eq_ignore_ascii_case("ip restricted"))
    }

    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// What to do about each documented token refusal.
pub fn hint_for(error: &str, description: &str) -> &'static str {
    let description = description.to_ascii_lowercase();
    match (error, description.as_str()) {
        (_, "ip restricted") => {
            "The integration user's profile Login IP Ranges do not include this dyno's outbound IP. \
             JWT bearer logins always enforce profile IP ranges, so ipguard cannot fix this itself: \
             in Setup › Profiles › <integration user's profile> › Login IP Ranges, add the Private \
             Space's outbound IPs (`heroku spaces:info`), then run `ipguard check`."
        }
        (_, "user hasn't approved this consumer") => {
            "Salesforce says this for two different causes: (1) the integration user is not \
             pre-authorized — in the External Client App's policies choose 'Admin approved users \
             are pre-authorized' and assign the IPGuard_Integration permission set to the user; \
             or (2) SALESFORCE_USERNAME is not a user of the org SALESFORCE_LOGIN_URL reaches \
             (misspelt, or another org's: a production username against a sandbox login URL, \
             whose copy is named <username>.<sandbox>). Setup › Login History tells them apart: \
             a 'Failed: Not approved for access' row for the user means (1); no row means (2)."
        }
        ("invalid_app_access", _) | (_, "user is not admin approved to access this app") => {
            "Assign the IPGuard_Integration permission set (pre-authorized on the app) to the \
             integration user."
        }
        ("invalid_client_id", _) => {
            "SALESFORCE_CLIENT_ID does not match the External Client App's consumer key."
        }
        ("invalid_client", _) => {
            "The app rejected the client: check SALESFORCE_CLIENT_ID and that the app is enabled."
        }
        (_, "audience is invalid") | (_, "audience validation failed") => {
            "Set SALESFORCE_AUDIENCE to https://login.salesforce.com (production) or \
             https://test.salesforce.com (sandbox) — not the My Domain host."
        }
        (_, "invalid assertion") | (_, "invalid signature") => {
            "The certificate uploaded to the External Client App does not match \
             SALESFORCE_PRIVATE_KEY: upload ipguard.crt from `ipguard keygen` again."
        }
        (_, "user is locked") | (_, "user is inactive") => {
            "Unlock or reactivate the integration user (SALESFORCE_USERNAME)."
        }
        (_, d) if d.starts_with("authentication failure") => {
            "Check SALESFORCE_USERNAME: it must be the integration user's exact username."
        }
        (_, d) if d.contains("expired") => {
            "The assertion expired in transit: check that this machine's clock is correct (NTP)."
        }
        _ => "See Setup › Login History for the integration user for the reason.",
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// An access token and where to use it. The token is a secret and never printed.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: SecretString,
    pub instance_url: Url,
    /// When this process asked for the token (its own clock): the login Salesforce recorded
    /// for it is at or after this, less clock skew.
    pub requested_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Everything needed to sign assertions and request tokens.
pub struct JwtBearer {
    http: reqwest::Client,
    token_url: Url,
    audience: String,
    client_id: String,
    username: String,
    key: SigningKey,
}

impl std::fmt::Debug for JwtBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtBearer")
            .field("token_url", &self.token_url.as_str())
            .field("audience", &self.audience)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl JwtBearer {
    pub fn new(
        http: reqwest::Client,
        login_url: &Url,
        audience: &str,
        client_id: &str,
        username: &str,
        key: &SigningKey,
    ) -> Result<Self, AuthError> {
        let token_url = login_url
            .join("/services/oauth2/token")
            .map_err(|e| AuthError::Signing(e.to_string()))?;
        Ok(Self {
            http,
            token_url,
            audience: audience.to_owned(),
            client_id: client_id.to_owned(),
            username: username.to_owned(),
            key: key.clone(),
        })
    }

    /// Signs a fresh assertion valid from `now` (seconds since the epoch).
    pub fn assertion(&self, now: i64) -> Result<SecretString, AuthError> {
        let claims = Claims {
            iss: &self.client_id,
            sub: &self.username,
            aud: &self.audience,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        self.key.sign(&claims)
    }

    /// Requests a new session with a freshly signed assertion.
    pub async fn login(&self) -> Result<Session, AuthError> {
        let requested_at = chrono::Utc::now();
        let assertion = self.assertion(chrono::Utc::now().timestamp())?;
        let form = [
            ("grant_type", JWT_BEARER_GRANT),
            ("assertion", assertion.expose_secret()),
        ];
        let response = self
            .http
            .post(self.token_url.clone())
            .form(&form)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| AuthError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| AuthError::Transport(e.without_url().to_string()))?;
        let mut session = read_token_response(status.as_u16(), &body)?;
        session.requested_at = requested_at;
        Ok(session)
    }
}

/// Turns a token endpoint answer into a session or a typed refusal (pure, for tests).
pub fn read_token_response(status: u16, body: &[u8]) -> Result<Session, AuthError> {
    if (200..300).contains(&status) {
        let token: TokenResponse = serde_json::from_slice(body).map_err(|e| AuthError::Http {
            status,
            excerpt: format!("unreadable token response ({e})"),
        })?;
        let instance_url = Url::parse(&token.instance_url).map_err(|e| AuthError::Http {
            status,
            excerpt: format!("bad instance_url ({e})"),
        })?;
        return Ok(Session {
            access_token: SecretString::from(token.access_token),
            instance_url,
            requested_at: chrono::Utc::now(),
        });
    }
    match serde_json::from_slice::<TokenErrorResponse>(body) {
        Ok(err) if (400..500).contains(&status) => Err(AuthError::Refused {
            hint: hint_for(&err.error, &err.error_description),
            error: err.error,
            description: err.error_description,
        }),
        _ => Err(AuthError::Http {
            status,
            excerpt: excerpt(body),
        }),
    }
}

/// The start of a response body for an error message (never a request's content).
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_refusal_has_a_specific_hint() {
        let generic = hint_for("x", "y");
        for (error, description) in [
            ("invalid_grant", "ip restricted"),
            ("invalid_grant", "user hasn't approved this consumer"),
            (
                "invalid_app_access",
                "user is not admin approved to access this app",
            ),
            ("invalid_client_id", "client identifier invalid"),
            ("invalid_grant", "audience is invalid"),
            ("invalid_grant", "Audience validation failed"),
            ("invalid_grant", "user is locked"),
            ("invalid_grant", "expired access/refresh token"),
            (
                "invalid_grant",
                "authentication failure - invalid client credentials",
            ),
        ] {
            assert_ne!(
                hint_for(error, description),
                generic,
                "{error} {description}"
            );
        }
    }

    #[test]
    fn ip_restricted_is_recognised_as_lock_out() {
        let e = AuthError::Refused {
            error: "invalid_grant".into(),
            description: "ip restricted".into(),
            hint: "",
        };
        assert!(e.is_ip_restricted());
        assert!(!e.is_transient());
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/salesforce/oauth/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn real_token_errors_map_to_typed_refusals() {
        for (file, error, locked_out) in [
            (
                "token-error-invalid-grant-ip-restricted.json",
                "invalid_grant",
                true,
            ),
            (
                "token-error-invalid-grant-not-approved.json",
                "invalid_grant",
                false,
            ),
            (
                "token-error-invalid-client-id.json",
                "invalid_client_id",
                false,
            ),
            (
                "token-error-invalid-grant-authentication-failure.json",
                "invalid_grant",
                false,
            ),
            (
                "token-error-invalid-grant-expired-token.json",
                "invalid_grant",
                false,
            ),
        ] {
            let refusal = read_token_response(400, &fixture(file)).unwrap_err();
            assert!(
                matches!(&refusal, AuthError::Refused { error: e, hint, .. } if e == error && *hint != hint_for("x", "y")),
                "{file}: {refusal:?}"
            );
            assert_eq!(refusal.is_ip_restricted(), locked_out, "{file}");
        }
    }

    #[test]
    fn real_token_success_gives_a_session() {
        // The documented password-flow sample carries the same two fields the JWT flow uses.
        let session =
            read_token_response(200, &fixture("token-success-password-flow.json")).unwrap();
        assert_eq!(session.instance_url.as_str(), "https://na1.salesforce.com/");
        assert!(
            session
                .access_token
                .expose_secret()
                .starts_with("00Dx0000000BV7z!")
        );
        assert!(!format!("{session:?}").contains("00Dx0000000BV7z!"));
    }

    #[test]
    fn server_errors_are_transient_not_refusals() {
        let e = read_token_response(503, b"<html>down</html>").unwrap_err();
        assert!(e.is_transient());
    }

    #[test]
    fn excerpt_is_bounded() {
        assert_eq!(excerpt(&[b'a'; 500]).chars().count(), 201);
    }
}
