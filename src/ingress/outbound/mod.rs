//! Salesforce Outbound Messages (SOAP 1.1): a streaming parser for the request, the exact
//! ACK envelope and SOAP faults for the reply.
//!
//! The parser reads tokens straight off the request bytes through the one hardened reader
//! (`crate::xml::reader`: no DOCTYPE, no entities but the predefined ones, UTF-8 only, nothing
//! outside the root, depth bounded here by [`MAX_DEPTH`]) and keeps only what ipguard needs:
//! the OrganizationId, the ActionId and each notification's Id, sObject type and record Id.
//! Everything else — the SessionId in particular, and every sObject field — is skipped
//! without being stored. Elements are matched by namespace URI and local name, never by
//! prefix. More than [`MAX_NOTIFICATIONS`] notifications are refused (reading stops at the
//! first one too many).
//!
//! Only the *shape* of the OrganizationId is checked here; whether it is our org is for the
//! HTTP handler (`OrgId::matches`, constant time).

use std::borrow::Cow;

use quick_xml::events::BytesStart;

use crate::xml::reader::{
    ReadError, Reader, Token, echo, is_xml_char, is_xml_space, is_xml_space_char, local_part,
};
use crate::xml::{SOAP_ENV_NS, XSI_NS};

/// Namespace of `notifications`, `notificationsResponse` and their children.
pub const OUTBOUND_NS: &str = "http://soap.sforce.com/2005/09/outbound";
/// Namespace of the sObject fields (`sf:Id`, …) inside a notification.
pub const SOBJECT_NS: &str = "urn:sobject.enterprise.soap.sforce.com";

/// Salesforce sends at most 100 notifications in one message.
pub const MAX_NOTIFICATIONS: usize = 100;
/// An outbound message nests six levels deep; anything past this is not one.
pub const MAX_DEPTH: usize = 32;
/// Longest text kept for an id-like value; real ids have 18 characters.
const MAX_VALUE_BYTES: usize = 256;
/// Longest faultstring sent back (callers pass short messages; this is a backstop).
const MAX_FAULTSTRING_CHARS: usize = 1024;

/// `Content-Type` for [`ACK`] and [`fault`] replies.
pub const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// The reply that tells Salesforce every notification in the message was delivered.
///
/// Byte-identical to the aspnet receiver's `response-ack-true.xml`, including the XML
/// declaration and the final newline. That file has no byte order mark, and neither does
/// this, deliberately: a BOM is legal XML, but the one failure text recorded from
/// Salesforce's side for a bad reply is Java's "Content is not allowed in prolog" — what a
/// Java parser says when anything precedes `<?xml`, a BOM included once the bytes have been
/// decoded to characters — so we send exactly the bytes a working receiver sends.
pub const ACK: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n \
<soapenv:Body>\n  \
<notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\">\n   \
<Ack>true</Ack>\n  \
</notificationsResponse>\n \
</soapenv:Body>\n\
</soapenv:Envelope>\n";

/// One outbound message: the sending org and its notifications. The SessionId is never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// As sent (15 or 18 letters and digits); compare with `OrgId::matches`.
    pub organization_id: String,
    /// The workflow rule or flow action that sent the message.
    pub action_id: Option<String>,
    /// In document order; at most [`MAX_NOTIFICATIONS`].
    pub notifications: Vec<Notification>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The notification id (`04l…`): the key that makes redeliveries idempotent.
    pub id: String,
    /// Local part of the sObject's `xsi:type`, e.g. `Contact`.
    pub sobject_type: Option<String>,
    /// The sObject's `sf:Id`, when the message includes it.
    pub record_id: Option<String>,
}

/// Why a request body is not an outbound message. `Display` is short and safe to send back
/// as a faultstring: received values are echoed at most 64 characters long, with control
/// characters replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("the request body is empty")]
    Empty,
    #[error("the request body is not valid UTF-8 (at byte {0})")]
    NotUtf8(usize),
    #[error("the XML declaration names encoding `{0}`; only UTF-8 is accepted")]
    Encoding(String),
    #[error("malformed XML near byte {position}: {reason}")]
    Malformed { position: u64, reason: String },
    #[error("a DOCTYPE is not accepted")]
    Doctype,
    #[error(
        "entity reference `&{0};` is not accepted; only the five predefined entities and character references are"
    )]
    Entity(String),
    #[error("elements nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("namespace prefix `{0}` is not declared")]
    UndeclaredPrefix(String),
    #[error("text outside the root element")]
    TextOutsideRoot,
    #[error("content after the root element")]
    TrailingContent,
    #[error("the document ends before its root element is closed")]
    Truncated,
    #[error("the root element is not a SOAP 1.1 Envelope ({SOAP_ENV_NS})")]
    NotSoapEnvelope,
    #[error("unexpected element `{element}` in `{within}` (elements are matched by namespace)")]
    UnexpectedElement {
        within: &'static str,
        element: String,
    },
    #[error("unexpected text in `{0}`")]
    UnexpectedText(&'static str),
    #[error("the SOAP Envelope has no Body")]
    MissingBody,
    #[error("the SOAP Body has no `notifications` element in {OUTBOUND_NS}")]
    MissingNotifications,
    #[error("`{0}` appears more than once")]
    Duplicate(&'static str),
    #[error("the message has no OrganizationId")]
    MissingOrganizationId,
    #[error("notification {0} has no Id")]
    MissingNotificationId(usize),
    #[error("`{field}` is not a Salesforce id (15 or 18 letters and digits): `{value}`")]
    InvalidId { field: &'static str, value: String },
    #[error("`{0}` is longer than any Salesforce value")]
    TooLong(&'static str),
    #[error("`{0}` is not an sObject type name")]
    InvalidSObjectType(String),
    #[error("more than {MAX_NOTIFICATIONS} notifications in one message")]
    TooManyNotifications,
}

/// Who is at fault, in SOAP 1.1 terms: `soapenv:Client` (the message is wrong; Salesforce
/// retries it anyway, in vain) or `soapenv:Server` (we could not take it now; retry helps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Client,
    Server,
}

/// A SOAP 1.1 fault in the shape of the aspnet receiver's `response-soap-fault-template.xml`
/// (without that file's byte order mark, like [`ACK`]). `message` is XML-escaped; characters
/// XML 1.0 cannot carry are replaced and very long messages are cut.
pub fn fault(kind: FaultKind, message: &str) -> String {
    let code = match kind {
        FaultKind::Client => "soapenv:Client",
        FaultKind::Server => "soapenv:Server",
    };
    let mut text: String = message
        .chars()
        .take(MAX_FAULTSTRING_CHARS)
        .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
        .collect();
    if message.chars().nth(MAX_FAULTSTRING_CHARS).is_some() {
        text.push('…');
    }
    let text = quick_xml::escape::escape(text.as_str());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n \
<soapenv:Body>\n  \
<soapenv:Fault>\n   \
<faultcode>{code}</faultcode>\n   \
<faultstring>{text}</faultstring>\n   \
<detail />\n  \
</soapenv:Fault>\n \
</soapenv:Body>\n\
</soapenv:Envelope>\n"
    )
}

impl From<ReadError> for OutboundError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Empty => Self::Empty,
            ReadError::NotUtf8(at) => Self::NotUtf8(at),
            ReadError::Encoding(name) => Self::Encoding(name),
            ReadError::Malformed { position, reason } => Self::Malformed { position, reason },
            ReadError::Doctype => Self::Doctype,
            ReadError::Entity(name) => Self::Entity(name),
            ReadError::TooDeep(_) => Self::TooDeep,
            ReadError::UndeclaredPrefix(prefix) => Self::UndeclaredPrefix(prefix),
            ReadError::TextOutsideRoot => Self::TextOutsideRoot,
            ReadError::TrailingContent => Self::TrailingContent,
            ReadError::Truncated => Self::Truncated,
        }
    }
}

/// Parses an outbound-message request body.
pub fn parse(body: &[u8]) -> Result<OutboundMessage, OutboundError> {
    let mut parser = Parser {
        reader: Reader::new(body, MAX_DEPTH)?,
    };
    // The reader consumes the prolog and refuses any text in it.
    let (root_ns, root) = match parser.next()? {
        Ev::Start { ns, start } => (ns, start),
        _ => return Err(OutboundError::Empty),
    };
    if !(root_ns == Ns::SoapEnv && root.local_name().as_ref() == "Envelope") {
        return Err(OutboundError::NotSoapEnvelope);
    }
    let message = parser.envelope()?;
    // The reader refuses anything but blanks, comments and processing instructions after it.
    match parser.next()? {
        Ev::Eof => Ok(message),
        _ => Err(OutboundError::TrailingContent),
    }
}

/// The namespaces the parser tells apart; any other URI is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    SoapEnv,
    Outbound,
    SObject,
    Other,
    None,
}

/// A reader token with the element's namespace classified.
enum Ev<'i> {
    Start { ns: Ns, start: BytesStart<'i> },
    End,
    Text(Cow<'i, str>),
    Char(char),
    Eof,
}

struct Parser<'i> {
    reader: Reader<'i>,
}

impl<'i> Parser<'i> {
    fn next(&mut self) -> Result<Ev<'i>, OutboundError> {
        Ok(match self.reader.read()? {
            Token::Start(start) => Ev::Start {
                ns: classify(self.reader.element_ns(&start)?),
                start,
            },
            Token::End => Ev::End,
            Token::Text(text) => Ev::Text(text),
            Token::Char(c) => Ev::Char(c),
            Token::Eof => Ev::Eof,
        })
    }

    /// Consumes everything up to and including the end of the element just started,
    /// keeping nothing.
    fn skip(&mut self) -> Result<(), OutboundError> {
        Ok(self.reader.skip()?)
    }

    /// The trimmed text of a simple element just started; child elements are refused.
    fn value(&mut self, field: &'static str) -> Result<String, OutboundError> {
        let mut value = String::new();
        loop {
            match self.next()? {
                Ev::Text(text) => push_bounded(&mut value, &text, field)?,
                Ev::Char(c) => push_bounded(&mut value, c.encode_utf8(&mut [0; 4]), field)?,
                Ev::Start { start, .. } => {
                    return Err(unexpected_element(field, &start));
                }
                Ev::End => break,
                Ev::Eof => return Err(OutboundError::Truncated),
            }
        }
        Ok(value.trim_matches(is_xml_space_char).to_owned())
    }

    /// Whitespace between the elements of a structure is fine; anything else is not.
    fn structural(within: &'static str, ev: &Ev<'_>) -> Result<(), OutboundError> {
        let blank = match ev {
            Ev::Text(text) => text.bytes().all(is_xml_space),
            Ev::Char(c) => is_xml_space_char(*c),
            _ => true,
        };
        if blank {
            Ok(())
        } else {
            Err(OutboundError::UnexpectedText(within))
        }
    }

    /// Inside `Envelope`: an optional `Header` (ignored), then exactly one `Body`.
    fn envelope(&mut self) -> Result<OutboundMessage, OutboundError> {
        let mut seen_header = false;
        let mut message = None;
        loop {
            match self.next()? {
                Ev::Start { ns, start } => match (ns, start.local_name().as_ref()) {
                    (Ns::SoapEnv, "Header") if !seen_header && message.is_none() => {
                        seen_header = true;
                        self.skip()?;
                    }
                    (Ns::SoapEnv, "Body") if message.is_none() => message = Some(self.body()?),
                    (Ns::SoapEnv, "Body") => return Err(OutboundError::Duplicate("Body")),
                    _ => return Err(unexpected_element("Envelope", &start)),
                },
                Ev::End => return message.ok_or(OutboundError::MissingBody),
                Ev::Eof => return Err(OutboundError::Truncated),
                ev => Self::structural("Envelope", &ev)?,
            }
        }
    }

    /// Inside `Body`: exactly one `notifications` element.
    fn body(&mut self) -> Result<OutboundMessage, OutboundError> {
        let mut message = None;
        loop {
            match self.next()? {
                Ev::Start { ns, start } => match (ns, start.local_name().as_ref()) {
                    (Ns::Outbound, "notifications") if message.is_none() => {
                        message = Some(self.notifications()?);
                    }
                    (Ns::Outbound, "notifications") => {
                        return Err(OutboundError::Duplicate("notifications"));
                    }
                    _ => return Err(unexpected_element("Body", &start)),
                },
                Ev::End => return message.ok_or(OutboundError::MissingNotifications),
                Ev::Eof => return Err(OutboundError::Truncated),
                ev => Self::structural("Body", &ev)?,
            }
        }
    }

    /// Inside `notifications`. SessionId, EnterpriseUrl, PartnerUrl and anything unknown
    /// are skipped unread; order is not enforced.
    fn notifications(&mut self) -> Result<OutboundMessage, OutboundError> {
        let mut organization_id: Option<String> = None;
        let mut action_id: Option<String> = None;
        let mut seen_action_id = false;
        let mut notifications = Vec::new();
        loop {
            match self.next()? {
                Ev::Start { ns, start } => match (ns, start.local_name().as_ref()) {
                    (Ns::Outbound, "OrganizationId") => {
                        if organization_id.is_some() {
                            return Err(OutboundError::Duplicate("OrganizationId"));
                        }
                        let value = self.value("OrganizationId")?;
                        if value.is_empty() {
                            return Err(OutboundError::MissingOrganizationId);
                        }
                        organization_id = Some(checked_id("OrganizationId", value)?);
                    }
                    (Ns::Outbound, "ActionId") => {
                        if std::mem::replace(&mut seen_action_id, true) {
                            return Err(OutboundError::Duplicate("ActionId"));
                        }
                        let value = self.value("ActionId")?;
                        if !value.is_empty() {
                            action_id = Some(checked_id("ActionId", value)?);
                        }
                    }
                    (Ns::Outbound, "Notification") => {
                        if notifications.len() == MAX_NOTIFICATIONS {
                            return Err(OutboundError::TooManyNotifications);
                        }
                        notifications.push(self.notification(notifications.len() + 1)?);
                    }
                    _ => self.skip()?,
                },
                Ev::End => break,
                Ev::Eof => return Err(OutboundError::Truncated),
                ev => Self::structural("notifications", &ev)?,
            }
        }
        Ok(OutboundMessage {
            organization_id: organization_id.ok_or(OutboundError::MissingOrganizationId)?,
            action_id,
            notifications,
        })
    }

    /// Inside one `Notification` (1-based `index`): `Id` and an optional `sObject`.
    fn notification(&mut self, index: usize) -> Result<Notification, OutboundError> {
        let mut id: Option<String> = None;
        let mut sobject: Option<(Option<String>, Option<String>)> = None;
        loop {
            match self.next()? {
                Ev::Start { ns, start } => match (ns, start.local_name().as_ref()) {
                    (Ns::Outbound, "Id") => {
                        if id.is_some() {
                            return Err(OutboundError::Duplicate("Notification/Id"));
                        }
                        id = Some(self.value("Notification/Id")?);
                    }
                    (Ns::Outbound, "sObject") => {
                        if sobject.is_some() {
                            return Err(OutboundError::Duplicate("sObject"));
                        }
                        let sobject_type = self.sobject_type(&start)?;
                        sobject = Some((sobject_type, self.sobject()?));
                    }
                    _ => self.skip()?,
                },
                Ev::End => break,
                Ev::Eof => return Err(OutboundError::Truncated),
                ev => Self::structural("Notification", &ev)?,
            }
        }
        let id = match id {
            Some(id) if !id.is_empty() => checked_id("Notification/Id", id)?,
            _ => return Err(OutboundError::MissingNotificationId(index)),
        };
        let (sobject_type, record_id) = sobject.unwrap_or_default();
        Ok(Notification {
            id,
            sobject_type,
            record_id,
        })
    }

    /// The local part of `xsi:type` on `sObject` (e.g. `sf:Contact` → `Contact`). The
    /// attribute is found by namespace; its value's prefix is not resolved (Salesforce
    /// always binds it to the enterprise sObject namespace).
    fn sobject_type(&self, start: &BytesStart<'_>) -> Result<Option<String>, OutboundError> {
        for attribute in self.reader.attributes(start) {
            let (ns, local, value) = attribute?;
            if !(ns == Some(XSI_NS) && local == "type") {
                continue;
            }
            let value = value.trim_matches(is_xml_space_char);
            let name = local_part(value);
            let valid = (1..=80).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(OutboundError::InvalidSObjectType(echo(value)));
            }
            return Ok(Some(name.to_owned()));
        }
        Ok(None)
    }

    /// Inside `sObject`: keeps the direct `sf:Id` child; skips every other field unread.
    fn sobject(&mut self) -> Result<Option<String>, OutboundError> {
        let mut record_id: Option<String> = None;
        let mut seen_id = false;
        loop {
            match self.next()? {
                Ev::Start { ns, start } => match (ns, start.local_name().as_ref()) {
                    (Ns::SObject, "Id") => {
                        if std::mem::replace(&mut seen_id, true) {
                            return Err(OutboundError::Duplicate("sObject/Id"));
                        }
                        let value = self.value("sObject/Id")?;
                        if !value.is_empty() {
                            record_id = Some(checked_id("sObject/Id", value)?);
                        }
                    }
                    _ => self.skip()?,
                },
                Ev::End => return Ok(record_id),
                Ev::Eof => return Err(OutboundError::Truncated),
                // Text directly in sObject carries nothing ipguard uses.
                Ev::Text(_) | Ev::Char(_) => {}
            }
        }
    }
}

/// Maps an element's namespace URI onto the ones the parser knows.
fn classify(uri: Option<&str>) -> Ns {
    match uri {
        None => Ns::None,
        Some(SOAP_ENV_NS) => Ns::SoapEnv,
        Some(OUTBOUND_NS) => Ns::Outbound,
        Some(SOBJECT_NS) => Ns::SObject,
        Some(_) => Ns::Other,
    }
}

/// Salesforce ids are 15 (case-sensitive) or 18 letters and digits. The checksum of an
/// 18-character id is not verified: notification ids are only dedupe keys, and the org id
/// is verified by `OrgId::matches` in the handler.
fn checked_id(field: &'static str, value: String) -> Result<String, OutboundError> {
    if matches!(value.len(), 15 | 18) && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(value)
    } else {
        Err(OutboundError::InvalidId {
            field,
            value: echo(&value),
        })
    }
}

fn push_bounded(value: &mut String, more: &str, field: &'static str) -> Result<(), OutboundError> {
    if value.len() + more.len() > MAX_VALUE_BYTES {
        return Err(OutboundError::TooLong(field));
    }
    value.push_str(more);
    Ok(())
}

fn unexpected_element(within: &'static str, start: &BytesStart<'_>) -> OutboundError {
    OutboundError::UnexpectedElement {
        within,
        element: echo(start.name().as_ref()),
    }
}

#[cfg(test)]
mod tests;
