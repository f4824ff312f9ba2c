//! The Metadata API over HTTP: session reuse, one re-login on `INVALID_SESSION_ID`, backoff
//! with jitter on transient failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use secrecy::ExposeSecret;
use tokio::sync::Mutex;

use super::auth::{AuthError, JwtBearer, Session, excerpt};
use super::metadata::{
    self, DeployId, DeployResult, ListedComponent, ProfileRecord, ResponseError,
};
use super::profile::ProfileName;
use super::soap::{self, Fault};
use crate::xml;

#[derive(Debug, thiserror::Error)]
pub enum SalesforceError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("Metadata API fault {0}")]
    Fault(Fault),
    #[error("Metadata API answered HTTP {status}: {excerpt}")]
    Http { status: u16, excerpt: String },
    /// A REST API error: `[{"message": …, "errorCode": …}]` with a non-2xx status.
    #[error("Salesforce REST API answered HTTP {status} {code}: {message}")]
    Rest {
        status: u16,
        code: String,
        message: String,
    },
    #[error("Metadata API unreachable: {0}")]
    Transport(String),
    #[error(transparent)]
    Response(#[from] ResponseError),
}

impl SalesforceError {
    pub fn is_ip_restricted(&self) -> bool {
        matches!(self, Self::Auth(a) if a.is_ip_restricted())
    }

    /// A short, bounded label for metrics.
    pub fn label(&self) -> String {
        match self {
            Self::Auth(AuthError::Refused { error, .. }) => format!("auth_{error}"),
            Self::Auth(_) => "auth_unreachable".into(),
            Self::Fault(f) => f.code.clone(),
            Self::Http { status, .. } => format!("http_{status}"),
            Self::Rest { code, .. } => code.clone(),
            Self::Transport(_) => "transport".into(),
            Self::Response(_) => "bad_response".into(),
        }
    }

    /// Salesforce answered the call with a fault that another attempt will not change (for
    /// `checkDeployStatus`: e.g. an id it does not know).
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Fault(f) => !f.is_transient() && !f.is_invalid_session(),
            _ => false,
        }
    }

    /// Worth another attempt after a pause.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Auth(a) => a.is_transient(),
            Self::Fault(f) => f.is_transient(),
            Self::Http { status, .. } => *status == 429 || *status >= 500,
            // REST carries the SOAP fault codes (`REQUEST_LIMIT_EXCEEDED` comes as HTTP 403).
            Self::Rest {
                status,
                code,
                message,
            } => Self::rest_fault(code, message).is_transient() || *status == 429 || *status >= 500,
            Self::Transport(_) => true,
            Self::Response(_) => false,
        }
    }

    /// The session is dead: sign a new assertion and try once more. REST says so with HTTP
    /// 401 `INVALID_SESSION_ID`, SOAP with a fault.
    pub fn is_invalid_session(&self) -> bool {
        match self {
            Self::Fault(f) => f.is_invalid_session(),
            Self::Rest {
                status,
                code,
                message,
            } => *status == 401 || Self::rest_fault(code, message).is_invalid_session(),
            Self::Http { status, .. } => *status == 401,
            _ => false,
        }
    }

    fn rest_fault(code: &str, message: &str) -> Fault {
        Fault {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    /// Proof that Salesforce did not accept the request, so repeating a non-idempotent call
    /// (a deploy) cannot start a second one.
    fn surely_not_accepted(&self) -> bool {
        match self {
            Self::Fault(f) => f.is_transient() || f.is_invalid_session(),
            Self::Http { status, .. } => *status == 429 || *status == 503,
            Self::Rest { .. } => self.is_transient() || self.is_invalid_session(),
            Self::Auth(_) => true,
            _ => false,
        }
    }
}

/// How transient failures are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub max_attempts: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_attempts: 6,
        }
    }
}

impl RetryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter()
    }
}

/// One attempt's answer, or its error with the session it used (if it got that far).
type Attempt<T> = Result<(Arc<Session>, T), (Option<Arc<Session>>, SalesforceError)>;

/// How many pages of one REST query are fetched (`nextRecordsUrl`) before stopping; a query
/// cut short keeps `done: false` and its `nextRecordsUrl`.
pub const MAX_QUERY_PAGES: usize = 5;

/// Told about every Metadata API call: operation and outcome (`ok`, a fault code, `http_503`…).
pub type CallObserver = Arc<dyn Fn(&'static str, &str) + Send + Sync>;

/// A Metadata API client for one org.
pub struct MetadataClient {
    http: reqwest::Client,
    auth: JwtBearer,
    api_version: String,
    retry: RetryPolicy,
    session: Mutex<Option<Arc<Session>>>,
    observer: Option<CallObserver>,
}

impl MetadataClient {
    pub fn new(
        http: reqwest::Client,
        auth: JwtBearer,
        api_version: &str,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            http,
            auth,
            api_version: api_version.to_owned(),
            retry,
            session: Mutex::new(None),
            observer: None,
        }
    }

    /// Reports every call (metrics).
    pub fn with_call_observer(mut self, observer: CallObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// A cached session, or a new one.
    pub async fn session(&self) -> Result<Arc<Session>, SalesforceError> {
        let mut cached = self.session.lock().await;
        if let Some(session) = cached.as_ref() {
            return Ok(session.clone());
        }
        let session = Arc::new(self.auth.login().await?);
        *cached = Some(session.clone());
        Ok(session)
    }

    async fn forget_session(&self, stale: &Arc<Session>) {
        let mut cached = self.session.lock().await;
        if cached.as_ref().is_some_and(|s| Arc::ptr_eq(s, stale)) {
            *cached = None;
        }
    }

    /// One SOAP call with the session policy (one re-login on INVALID_SESSION_ID) and the retry
    /// policy. `idempotent` calls are retried on any transient error; others only when the
    /// error proves Salesforce did not take the request.
    async fn call(
        &self,
        operation: &'static str,
        body: &str,
        idempotent: bool,
    ) -> Result<xml::Element, SalesforceError> {
        self.with_policy(operation, idempotent, || self.call_once(operation, body))
            .await
    }

    /// The session and retry policy around any one request (SOAP or REST): `attempt` is run
    /// again at once after one re-login when the session it used proved invalid, and after a
    /// backoff pause when the failure is transient (and retrying is safe). Every attempt is
    /// observed.
    async fn with_policy<T, F, Fut>(
        &self,
        operation: &'static str,
        idempotent: bool,
        attempt: F,
    ) -> Result<T, SalesforceError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        // One re-login per call, not per retry: a session refused twice is not a stale cache.
        let relogged = AtomicBool::new(false);
        let once = || async {
            loop {
                let result = attempt().await;
                self.observe(operation, &result);
                match result {
                    Ok((_, value)) => return Ok(value),
                    Err((Some(session), error))
                        if error.is_invalid_session()
                            && !relogged.swap(true, Ordering::Relaxed) =>
                    {
                        tracing::info!(operation, "session expired; signing a new assertion");
                        self.forget_session(&session).await;
                    }
                    Err((_, error)) => return Err(error),
                }
            }
        };
        once.retry(self.retry.backoff())
            .when(|error: &SalesforceError| {
                error.is_transient() && (idempotent || error.surely_not_accepted())
            })
            .notify(|error, delay| {
                tracing::warn!(operation, error = %error, ?delay, "transient Salesforce failure; retrying");
            })
            .await
    }

    fn observe<T>(&self, operation: &'static str, result: &Attempt<T>) {
        if let Some(observer) = &self.observer {
            let outcome = match result {
                Ok(_) => "ok".to_owned(),
                Err((_, e)) => e.label(),
            };
            observer(operation, &outcome);
        }
    }

    async fn call_once(&self, operation: &'static str, body: &str) -> Attempt<xml::Element> {
        let session = self.session().await.map_err(|e| (None, e))?;
        let fail = |e| (Some(session.clone()), e);
        let url = session
            .instance_url
            .join(&format!("/services/Soap/m/{}", self.api_version))
            .map_err(|e| fail(SalesforceError::Transport(e.to_string())))?;
        let envelope = soap::request_envelope(session.access_token.expose_secret(), body);
        let request = self
            .http
            .post(url)
            .header("Content-Type", "text/xml; charset=UTF-8")
            .header("SOAPAction", "\"\"")
            .body(envelope)
            .timeout(Duration::from_secs(120));
        let (status, bytes) = exchange(request).await.map_err(fail)?;
        let parsed = xml::parse(&bytes);
        if let Ok(root) = &parsed
            && let Some(fault) = soap::fault(root)
        {
            tracing::debug!(operation, code = %fault.code, "Metadata API fault");
            return Err(fail(SalesforceError::Fault(fault)));
        }
        if !status.is_success() {
            return Err(fail(SalesforceError::Http {
                status: status.as_u16(),
                excerpt: excerpt(&bytes),
            }));
        }
        let root = parsed.map_err(|e| fail(ResponseError(e.to_string()).into()))?;
        let child = soap::body_child(&root)
            .map_err(|e| fail(ResponseError(e).into()))?
            .clone();
        Ok((session, child))
    }

    /// A SOQL query over the REST API (`GET /services/data/v{ver}/query?q=…`) with the same
    /// session and retry policy as the Metadata calls (it is idempotent). Follows
    /// `nextRecordsUrl` up to [`MAX_QUERY_PAGES`] pages, appending every page's `records` to
    /// the first answer. Build `soql` with [`super::soql`] so literals are escaped.
    pub async fn query_json(&self, soql: &str) -> Result<serde_json::Value, SalesforceError> {
        let path = format!("/services/data/v{}/query", self.api_version);
        let mut answer = self
            .with_policy("query", true, || self.get_json_once(&path, Some(soql)))
            .await?;
        for _ in 1..MAX_QUERY_PAGES {
            let Some(next) = answer
                .get("nextRecordsUrl")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
            else {
                break;
            };
            // Only a path on the same instance: the bearer token must never be sent elsewhere.
            if !next.starts_with("/services/data/") {
                return Err(ResponseError(format!(
                    "nextRecordsUrl is not a /services/data/ path: {}",
                    excerpt(next.as_bytes())
                ))
                .into());
            }
            let page = self
                .with_policy("query", true, || self.get_json_once(&next, None))
                .await?;
            merge_page(&mut answer, page)?;
        }
        Ok(answer)
    }

    /// One authenticated GET of a REST path on the instance, answered with JSON.
    async fn get_json_once(&self, path: &str, q: Option<&str>) -> Attempt<serde_json::Value> {
        let session = self.session().await.map_err(|e| (None, e))?;
        let fail = |e| (Some(session.clone()), e);
        let mut url = session
            .instance_url
            .join(path)
            .map_err(|e| fail(SalesforceError::Transport(e.to_string())))?;
        if let Some(q) = q {
            url.query_pairs_mut().append_pair("q", q);
        }
        let request = self
            .http
            .get(url)
            .bearer_auth(session.access_token.expose_secret())
            .header("Accept", "application/json")
            .timeout(Duration::from_secs(60));
        let (status, bytes) = exchange(request).await.map_err(fail)?;
        if !status.is_success() {
            return Err(fail(rest_error(status.as_u16(), &bytes)));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            fail(
                ResponseError(format!(
                    "unreadable REST response ({e}): {}",
                    excerpt(&bytes)
                ))
                .into(),
            )
        })?;
        Ok((session, value))
    }

    pub async fn list_profiles(&self) -> Result<Vec<ListedComponent>, SalesforceError> {
        let body = metadata::list_metadata_body("Profile", &self.api_version);
        let response = self.call("listMetadata", &body, true).await?;
        Ok(metadata::read_list_metadata(&response)?)
    }

    /// Reads profiles in batches of ten (Salesforce's per-call limit).
    pub async fn read_profiles(
        &self,
        names: &[ProfileName],
    ) -> Result<Vec<ProfileRecord>, SalesforceError> {
        let mut records = Vec::with_capacity(names.len());
        for batch in names.chunks(metadata::READ_BATCH) {
            let body = metadata::read_metadata_body(batch);
            let response = self.call("readMetadata", &body, true).await?;
            records.extend(metadata::read_read_metadata(&response)?);
        }
        Ok(records)
    }

    pub async fn deploy(&self, zip: &[u8], check_only: bool) -> Result<DeployId, SalesforceError> {
        let body = metadata::deploy_body(zip, check_only);
        let response = self.call("deploy", &body, false).await?;
        Ok(metadata::read_deploy_response(&response)?)
    }

    pub async fn check_deploy_status(
        &self,
        id: &DeployId,
    ) -> Result<DeployResult, SalesforceError> {
        let body = metadata::check_deploy_status_body(id);
        let response = self.call("checkDeployStatus", &body, true).await?;
        Ok(metadata::read_check_deploy_status(&response)?)
    }

    /// The org's Session Settings (`readMetadata('SecuritySettings', ['Security'])`).
    pub async fn read_session_settings(
        &self,
    ) -> Result<Option<metadata::SessionSettingsRecord>, SalesforceError> {
        let body = metadata::read_metadata_of_body("SecuritySettings", &["Security"]);
        let response = self.call("readMetadata", &body, true).await?;
        Ok(metadata::read_security_settings(&response)?)
    }

    /// An External Client App's OAuth policies by their full name (`<App>_oauthPlcy`).
    pub async fn read_eca_oauth_policies(
        &self,
        full_name: &str,
    ) -> Result<Option<metadata::EcaOauthPolicies>, SalesforceError> {
        let body =
            metadata::read_metadata_of_body("ExtlClntAppOauthConfigurablePolicies", &[full_name]);
        let response = self.call("readMetadata", &body, true).await?;
        Ok(metadata::read_eca_oauth_policies(&response)?)
    }

    /// A legacy connected app by its full name, for its IP relaxation policy.
    pub async fn read_connected_app(
        &self,
        full_name: &str,
    ) -> Result<Option<metadata::ConnectedAppPolicy>, SalesforceError> {
        let body = metadata::read_metadata_of_body("ConnectedApp", &[full_name]);
        let response = self.call("readMetadata", &body, true).await?;
        Ok(metadata::read_connected_app(&response)?)
    }
}

/// Sends a request and reads the whole answer; transport errors never carry the URL (it may
/// hold a query) and never the request.
async fn exchange(
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, bytes::Bytes), SalesforceError> {
    let transport = |e: reqwest::Error| SalesforceError::Transport(e.without_url().to_string());
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(transport)?;
    Ok((status, bytes))
}

/// A REST error answer: `[{"message": "…", "errorCode": "…"}]`, else the status and an excerpt.
fn rest_error(status: u16, body: &[u8]) -> SalesforceError {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct RestError {
        error_code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Vec<RestError>>(body) {
        Ok(errors) if !errors.is_empty() => {
            let first = &errors[0];
            SalesforceError::Rest {
                status,
                code: first.error_code.clone(),
                message: first.message.clone(),
            }
        }
        _ => SalesforceError::Http {
            status,
            excerpt: excerpt(body),
        },
    }
}

/// Appends a `nextRecordsUrl` page to the first answer and takes over its `done` and
/// `nextRecordsUrl`.
fn merge_page(
    answer: &mut serde_json::Value,
    page: serde_json::Value,
) -> Result<(), SalesforceError> {
    let serde_json::Value::Object(mut page) = page else {
        return Err(ResponseError("a query page is not a JSON object".into()).into());
    };
    let Some(records) = answer
        .get_mut("records")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return Err(ResponseError("a query answer has no records array".into()).into());
    };
    if let Some(serde_json::Value::Array(more)) = page.remove("records") {
        records.extend(more);
    }
    let Some(answer) = answer.as_object_mut() else {
        return Ok(());
    };
    answer.insert(
        "done".into(),
        page.remove("done").unwrap_or(serde_json::Value::Bool(true)),
    );
    match page.remove("nextRecordsUrl") {
        Some(next) => answer.insert("nextRecordsUrl".into(), next),
        None => answer.remove("nextRecordsUrl"),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_errors_are_typed_and_classified() {
        let expired = rest_error(
            401,
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        );
        assert!(expired.is_invalid_session());
        assert!(!expired.is_transient());
        let limit = rest_error(
            403,
            br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        );
        assert!(
            !limit.is_transient(),
            "the daily limit is left to the controller's backoff"
        );
        assert_eq!(limit.label(), "REQUEST_LIMIT_EXCEEDED");
        let concurrent = rest_error(
            403,
            br#"[{"message":"ConcurrentRequests (Concurrent API Requests) Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        );
        assert!(concurrent.is_transient());
        let denied = rest_error(
            403,
            br#"[{"message":"no","errorCode":"INSUFFICIENT_ACCESS"}]"#,
        );
        assert!(!denied.is_transient() && !denied.is_invalid_session());
        let html = rest_error(503, b"<html>down</html>");
        assert!(matches!(html, SalesforceError::Http { status: 503, .. }));
        assert!(html.is_transient());
    }

    #[test]
    fn pages_are_appended_and_done_is_taken_over() {
        let mut answer = serde_json::json!({
            "totalSize": 3, "done": false, "nextRecordsUrl": "/services/data/v66.0/query/01g-1",
            "records": [{"Id": "a"}]
        });
        merge_page(
            &mut answer,
            serde_json::json!({"totalSize": 3, "done": true, "records": [{"Id": "b"}, {"Id": "c"}]}),
        )
        .unwrap();
        assert_eq!(answer["done"], true);
        assert!(answer.get("nextRecordsUrl").is_none());
        assert_eq!(answer["records"].as_array().unwrap().len(), 3);
    }
}
