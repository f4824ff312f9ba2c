//! SOAP 1.1 envelopes for the Metadata API and the faults Salesforce answers with.

use crate::xml::{self, Element, METADATA_NS, SOAP_ENV_NS};

/// A request envelope: `SessionHeader` (the OAuth access token as `sessionId`) and one body
/// element, which the caller builds in the metadata namespace.
pub fn request_envelope(session_id: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV_NS}\">\
<soapenv:Header><SessionHeader xmlns=\"{METADATA_NS}\"><sessionId>{}</sessionId></SessionHeader></soapenv:Header>\
<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>",
        xml::escape(session_id)
    )
}

/// A SOAP fault, by the local part of its `faultcode` (`sf:INVALID_SESSION_ID` →
/// `INVALID_SESSION_ID`) whatever prefix or namespace the server used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: String,
    pub message: String,
}

impl Fault {
    /// Whether trying again within seconds may succeed (the concurrent-request limit,
    /// maintenance). The daily `TotalRequests` limit is not: it frees up over a rolling 24 h, so
    /// retrying within a run would only spend calls; the controller's slower backoff retries it.
    pub fn is_transient(&self) -> bool {
        match self.code.as_str() {
            "REQUEST_LIMIT_EXCEEDED" => !self.is_daily_limit(),
            "SERVER_UNAVAILABLE" | "QUERY_TIMEOUT" | "UNKNOWN_EXCEPTION" => true,
            _ => false,
        }
    }

    /// `REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.`: the org's daily API allocation
    /// is spent (as opposed to `ConcurrentRequests`).
    pub fn is_daily_limit(&self) -> bool {
        self.code == "REQUEST_LIMIT_EXCEEDED" && self.message.contains("TotalRequests")
    }

    pub fn is_invalid_session(&self) -> bool {
        self.code == "INVALID_SESSION_ID"
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Salesforce's faultstring already starts with the code ("CODE: message").
        if self.message.starts_with(&self.code) {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

/// The single child of `Envelope/Body`, or an error describing what is wrong.
pub fn body_child(envelope: &Element) -> Result<&Element, String> {
    if !envelope.is(SOAP_ENV_NS, "Envelope") {
        return Err(format!(
            "expected a SOAP 1.1 Envelope, got <{}> in namespace {:?}",
            envelope.name, envelope.ns
        ));
    }
    let body = envelope
        .child(SOAP_ENV_NS, "Body")
        .ok_or("SOAP Envelope has no Body")?;
    match body.children.as_slice() {
        [only] => Ok(only),
        [] => Err("SOAP Body is empty".into()),
        _ => Err("SOAP Body has more than one child".into()),
    }
}

/// Reads a fault out of a response envelope, if it is one.
pub fn fault(envelope: &Element) -> Option<Fault> {
    let body_child = body_child(envelope).ok()?;
    if !body_child.is(SOAP_ENV_NS, "Fault") {
        return None;
    }
    let code = body_child
        .child_local("faultcode")
        .map(|c| c.text.trim())
        .unwrap_or_default();
    let code = code.rsplit(':').next().unwrap_or(code).to_owned();
    let message = body_child
        .child_local("faultstring")
        .map(|c| c.text.trim().to_owned())
        .unwrap_or_default();
    Some(Fault { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_escapes_the_session_and_parses_back() {
        let text = request_envelope("00D!a<b", "<x xmlns=\"urn:t\"/>");
        let root = xml::parse(text.as_bytes()).unwrap();
        let session = root
            .child(SOAP_ENV_NS, "Header")
            .and_then(|h| h.child(METADATA_NS, "SessionHeader"))
            .and_then(|s| s.child_text(METADATA_NS, "sessionId"));
        assert_eq!(session, Some("00D!a<b"));
        assert_eq!(body_child(&root).unwrap().name, "x");
    }

    #[test]
    fn the_concurrent_request_limit_is_transient_the_daily_one_is_not() {
        let limit = |message: &str| Fault {
            code: "REQUEST_LIMIT_EXCEEDED".to_owned(),
            message: message.to_owned(),
        };
        // both texts as Salesforce sends them (docs/salesforce.md §8)
        let concurrent = limit(
            "REQUEST_LIMIT_EXCEEDED: ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
        );
        assert!(concurrent.is_transient() && !concurrent.is_daily_limit());
        let daily = limit("REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.");
        assert!(!daily.is_transient() && daily.is_daily_limit());
    }

    #[test]
    fn faults_are_read_by_local_code_whatever_the_prefix() {
        let doc = format!(
            "<e:Envelope xmlns:e=\"{SOAP_ENV_NS}\" xmlns:x=\"urn:other\"><e:Body><e:Fault>\
             <faultcode>x:REQUEST_LIMIT_EXCEEDED</faultcode>\
             <faultstring>REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.</faultstring>\
             </e:Fault></e:Body></e:Envelope>"
        );
        let f = fault(&xml::parse(doc.as_bytes()).unwrap()).unwrap();
        assert_eq!(f.code, "REQUEST_LIMIT_EXCEEDED");
        // the daily allocation: not worth retrying within a run
        assert!(f.is_daily_limit() && !f.is_transient());
        assert_eq!(
            f.to_string(),
            "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."
        );
    }

    #[test]
    fn non_fault_bodies_are_not_faults() {
        let doc =
            format!("<e:Envelope xmlns:e=\"{SOAP_ENV_NS}\"><e:Body><ok/></e:Body></e:Envelope>");
        assert_eq!(fault(&xml::parse(doc.as_bytes()).unwrap()), None);
    }
}
