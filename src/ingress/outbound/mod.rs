//! Salesforce Outbound Messages (SOAP 1.1): a streaming parser for the request, the exact
//! ACK envelope and SOAP faults for the reply.
//!
//! The parser reads events straight off the request bytes (`quick_xml::reader::NsReader`
//! borrowing the body, so nothing is copied into a buffer) and keeps only what ipguard
//! needs: the OrganizationId, the ActionId and each notification's Id, sObject type and
//! record Id. Everything else — the SessionId in particular, and every sObject field — is
//! skipped without being stored. Elements are matched by namespace URI and local name, never
//! by prefix.
//!
//! Hostile input is refused early: a DOCTYPE (so no entity definitions: billion laughs,
//! external entities), references to entities other than the five predefined ones, nesting
//! deeper than [`MAX_DEPTH`], invalid UTF-8, a declared encoding other than UTF-8, text or
//! elements outside the root, and more than [`MAX_NOTIFICATIONS`] notifications (reading
//! stops at the first one too many).
//!
//! Only the *shape* of the OrganizationId is checked here; whether it is our org is for the
//! HTTP handler (`OrgId::matches`, constant time).

use std::borrow::Cow;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::reader::NsReader;

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
/// Longest echo of received input in an error message.
const MAX_ECHO_CHARS: usize = 64;
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

/// Parses an outbound-message request body.
pub fn parse(body: &[u8]) -> Result<OutboundMessage, OutboundError> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let (offset, bytes) = match body.strip_prefix(BOM) {
        Some(rest) => (BOM.len(), rest),
        None => (0, body),
    };
    let text =
        std::str::from_utf8(bytes).map_err(|e| OutboundError::NotUtf8(offset + e.valid_up_to()))?;
    if text.bytes().all(is_xml_space) {
        return Err(OutboundError::Empty);
    }
    let mut parser = Parser::new(text, offset as u64);

    // Prolog: the declaration, comments and processing instructions are consumed by `next`.
    let (root_ns, root) = loop {
        match parser.next()? {
            Ev::Start { ns, start } => break (ns, start),
            Ev::Text(t) if t.bytes().all(is_xml_space) => {}
            Ev::Text(_) | Ev::Char(_) => return Err(OutboundError::TextOutsideRoot),
            Ev::End => return Err(parser.malformed("end tag without a start tag")),
            Ev::Eof => return Err(OutboundError::Empty),
        }
    };
    if !(root_ns == Ns::SoapEnv && root.local_name().as_ref() == "Envelope") {
        return Err(OutboundError::NotSoapEnvelope);
    }
    let message = parser.envelope()?;

    // Epilogue: only whitespace, comments and processing instructions may follow.
    loop {
        match parser.next()? {
            Ev::Eof => return Ok(message),
            Ev::Text(t) if t.bytes().all(is_xml_space) => {}
            _ => return Err(OutboundError::TrailingContent),
        }
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

/// What the structural code sees: comments, processing instructions and the declaration
/// are consumed (and checked) by [`Parser::next`].
enum Ev<'i> {
    Start {
        ns: Ns,
        start: BytesStart<'i>,
    },
    End,
    /// Character data (text or CDATA) as written; references arrive separately as `Char`.
    Text(Cow<'i, str>),
    /// A predefined entity or character reference, resolved.
    Char(char),
    Eof,
}

struct Parser<'i> {
    reader: NsReader<&'i [u8]>,
    /// Bytes before the reader's input (a stripped BOM), so positions match the body.
    offset: u64,
    /// Open elements, counted here so the limit also holds inside skipped content.
    depth: usize,
    /// Nothing has been read yet (an XML declaration may only come first).
    at_start: bool,
    /// The last `Start` was a self-closing tag, whose `End` is still to be reported.
    pending_end: bool,
}

impl<'i> Parser<'i> {
    fn new(text: &'i str, offset: u64) -> Self {
        let mut reader = NsReader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.allow_dangling_amp = false;
        config.allow_unmatched_ends = false;
        Parser {
            reader,
            offset,
            depth: 0,
            at_start: true,
            pending_end: false,
        }
    }

    fn malformed(&self, reason: &str) -> OutboundError {
        OutboundError::Malformed {
            position: self.offset + self.reader.buffer_position(),
            reason: echo(reason),
        }
    }

    fn next(&mut self) -> Result<Ev<'i>, OutboundError> {
        if self.pending_end {
            self.pending_end = false;
            self.depth -= 1;
            return Ok(Ev::End);
        }
        loop {
            let (ns, event) = match self.reader.read_resolved_event() {
                Ok((resolved, event)) => (classify(resolved)?, event),
                Err(error) => {
                    return Err(OutboundError::Malformed {
                        position: self.offset + self.reader.error_position(),
                        reason: echo(&error.to_string()),
                    });
                }
            };
            let at_start = std::mem::replace(&mut self.at_start, false);
            match event {
                Event::Start(_) | Event::Empty(_) if self.depth >= MAX_DEPTH => {
                    return Err(OutboundError::TooDeep);
                }
                Event::Start(start) => {
                    self.depth += 1;
                    self.check_attributes(&start)?;
                    return Ok(Ev::Start { ns, start });
                }
                Event::Empty(start) => {
                    self.depth += 1;
                    self.pending_end = true;
                    self.check_attributes(&start)?;
                    return Ok(Ev::Start { ns, start });
                }
                Event::End(_) => {
                    // The reader refuses unmatched end tags, so depth is at least 1 here.
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(Ev::End);
                }
                Event::Text(text) => return Ok(Ev::Text(text.into_inner())),
                Event::CData(data) => return Ok(Ev::Text(data.into_inner())),
                Event::GeneralRef(reference) => {
                    return Ok(Ev::Char(resolve_reference(&reference)?));
                }
                Event::Decl(decl) => {
                    if !at_start {
                        return Err(self.malformed("XML declaration not at the start"));
                    }
                    match decl.encoding() {
                        None => {}
                        Some(Ok(encoding)) if encoding.eq_ignore_ascii_case("UTF-8") => {}
                        Some(Ok(encoding)) => return Err(OutboundError::Encoding(echo(&encoding))),
                        Some(Err(error)) => return Err(self.malformed(&error.to_string())),
                    }
                }
                Event::PI(_) | Event::Comment(_) => {}
                Event::DocType(_) => return Err(OutboundError::Doctype),
                Event::Eof if self.depth > 0 => return Err(OutboundError::Truncated),
                Event::Eof => return Ok(Ev::Eof),
            }
        }
    }

    /// Attributes must be well-formed and their values may only use the predefined
    /// entities and character references — checked without decoding the values.
    fn check_attributes(&self, start: &BytesStart<'_>) -> Result<(), OutboundError> {
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| self.malformed(&e.to_string()))?;
            check_references(&attribute.value)?;
        }
        Ok(())
    }

    /// Consumes everything up to and including the end of the element just started,
    /// keeping nothing.
    fn skip(&mut self) -> Result<(), OutboundError> {
        let mut open = 1usize;
        loop {
            match self.next()? {
                Ev::Start { .. } => open += 1,
                Ev::End => {
                    open -= 1;
                    if open == 0 {
                        return Ok(());
                    }
                }
                Ev::Text(_) | Ev::Char(_) => {}
                Ev::Eof => return Err(OutboundError::Truncated),
            }
        }
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
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| self.malformed(&e.to_string()))?;
            if attribute.key.as_namespace_binding().is_some() {
                continue;
            }
            let (resolved, local) = self.reader.resolver().resolve_attribute(attribute.key);
            let is_xsi = matches!(classify_uri(resolved)?, Some(uri) if uri == XSI_NS);
            if !(is_xsi && local.as_ref() == "type") {
                continue;
            }
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| self.malformed(&e.to_string()))?;
            let value = value.trim_matches(is_xml_space_char);
            let name = QName(value).local_name();
            let name = name.as_ref();
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

/// Maps a resolved element namespace onto the ones the parser knows.
fn classify(resolved: ResolveResult<'_>) -> Result<Ns, OutboundError> {
    Ok(match classify_uri(resolved)? {
        None => Ns::None,
        Some(SOAP_ENV_NS) => Ns::SoapEnv,
        Some(OUTBOUND_NS) => Ns::Outbound,
        Some(SOBJECT_NS) => Ns::SObject,
        Some(_) => Ns::Other,
    })
}

fn classify_uri(resolved: ResolveResult<'_>) -> Result<Option<&str>, OutboundError> {
    match resolved {
        ResolveResult::Bound(namespace) => Ok(Some(namespace.0)),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => {
            Err(OutboundError::UndeclaredPrefix(echo(prefix.as_ref())))
        }
    }
}

/// Without a DTD only the five predefined entities and character references exist.
fn resolve_reference(reference: &BytesRef<'_>) -> Result<char, OutboundError> {
    let name: &str = reference;
    let refused = || OutboundError::Entity(echo(name));
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => Ok(c),
            _ => Err(refused()),
        };
    }
    match name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        _ => Err(refused()),
    }
}

/// Checks every `&…;` in a raw attribute value, without decoding it.
fn check_references(raw: &str) -> Result<(), OutboundError> {
    for after_amp in raw.split('&').skip(1) {
        let name = match after_amp.find(';') {
            Some(end) => &after_amp[..end],
            None => return Err(OutboundError::Entity(echo(after_amp))),
        };
        resolve_reference(&BytesRef::new(name))?;
    }
    Ok(())
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

/// A received value as it may appear in an error message: at most [`MAX_ECHO_CHARS`]
/// characters, control characters replaced.
fn echo(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(MAX_ECHO_CHARS)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if value.chars().nth(MAX_ECHO_CHARS).is_some() {
        out.push('…');
    }
    out
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_xml_space_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// XML 1.0 `Char`: what a document may contain at all, even escaped.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::ids::OrgId;

    const TWO_CONTACTS: &[u8] = include_bytes!(
        "../../tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/request-2-contact-notifications.xml"
    );
    const THREE_LEADS: &[u8] = include_bytes!(
        "../../tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/request-3-lead-notifications-anonymised.xml"
    );
    const EMPTY_NOTIFICATIONS: &[u8] = include_bytes!(
        "../../tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/request-empty-notifications.xml"
    );
    const ACK_FIXTURE: &[u8] = include_bytes!(
        "../../tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/response-ack-true.xml"
    );
    const FAULT_TEMPLATE: &str = include_str!(
        "../../tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/response-soap-fault-template.xml"
    );

    /// The second capture in salesforce-protocols.md §1.2, verbatim (its `…` elisions
    /// included): an XML declaration with `standalone="no"`, an 18-character org id, and
    /// `xmlns:sf` declared on `sObject` before `xsi:type`.
    const STANDALONE_NO_CAPTURE: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>ABC90000000gNcmEAE</OrganizationId>
   <ActionId>00190000000PGrlAAG</ActionId>
   <SessionId>ABC90000000gNcm!ARcAQJ.8aOC5VjE5D1VicpNZqe2PZe9Z7Fq0W4wEvF_xbmqyOs3V4QwJtUsPZ84vaw2dpHcHR5aooybd9C3sbet94cJujlCY</SessionId>
   <EnterpriseUrl>https://na1.salesforce.com/services/Soap/c/41.0/ABC90000000gNcm</EnterpriseUrl>
   <PartnerUrl>https://na1.salesforce.com/services/Soap/u/41.0/ABC90000000gNcm</PartnerUrl>
   <Notification>
    <Id>04l9000001olR84AAE</Id>
    <sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com" xsi:type="sf:Account">
     <sf:Id>0019000001KwyWtAAJ</sf:Id>
     …
     <sf:Name>Salesforce.com Inc.</sf:Name>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#;

    const ORG: &str = "00D000000000062EAA";

    /// A message in the default-namespace style Salesforce sends, with `notifications`
    /// children given verbatim.
    fn message(inner: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">{inner}</notifications>
 </soapenv:Body>
</soapenv:Envelope>"#
        )
    }

    fn notification(i: usize) -> String {
        format!(
            r#"<Notification><Id>04l{i:015}</Id><sObject xsi:type="sf:User" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>005{i:015}</sf:Id><sf:ProfileId>00e000000000001AAA</sf:ProfileId></sObject></Notification>"#
        )
    }

    fn with_notifications(count: usize) -> String {
        let notifications: String = (0..count).map(notification).collect();
        message(&format!(
            "<OrganizationId>{ORG}</OrganizationId><SessionId xsi:nil=\"true\"/>{notifications}"
        ))
    }

    fn parse_str(body: &str) -> Result<OutboundMessage, OutboundError> {
        parse(body.as_bytes())
    }

    #[test]
    fn two_contact_fixture() {
        let parsed = parse(TWO_CONTACTS).expect("fixture parses");
        assert_eq!(parsed.organization_id, "012345678901234");
        assert_eq!(parsed.action_id.as_deref(), Some("04k1I000000bmsHQAQ"));
        assert_eq!(
            parsed.notifications,
            vec![
                Notification {
                    id: "04l1I000000fztEQAQ".into(),
                    sobject_type: Some("Contact".into()),
                    record_id: Some("0031I0000081tbPQAQ".into()),
                },
                Notification {
                    id: "04l1I000000fzt9QAA".into(),
                    sobject_type: Some("Contact".into()),
                    record_id: Some("0031I0000081tb0QAA".into()),
                },
            ]
        );
        // The session id is never kept.
        assert!(!format!("{parsed:?}").contains("AQsAQOjGFnFJzGPA12yhUGL9"));
    }

    #[test]
    fn three_lead_fixture_with_bom() {
        assert!(
            THREE_LEADS.starts_with(b"\xEF\xBB\xBF"),
            "fixture starts with a BOM"
        );
        let parsed = parse(THREE_LEADS).expect("fixture parses");
        assert_eq!(parsed.organization_id, "0123456789ABCDENNN");
        assert_eq!(parsed.action_id.as_deref(), Some("05h370200108OsUAAU"));
        let ids: Vec<_> = parsed.notifications.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "04l37000000L0E5AAK",
                "14l37000123L0E5AAK",
                "24l37123450L0E5AAK"
            ]
        );
        let types: Vec<_> = parsed
            .notifications
            .iter()
            .map(|n| n.sobject_type.as_deref())
            .collect();
        assert_eq!(types, [Some("Lead1"), Some("Lead2"), Some("Lead3")]);
        assert_eq!(
            parsed.notifications[2].record_id.as_deref(),
            Some("2123456789ABCDEEAE")
        );
    }

    #[test]
    fn the_empty_fixture_has_no_organization_id_and_is_refused() {
        // `request-empty-notifications.xml` is an empty `<notifications>` element: no
        // OrganizationId, which SPEC §3 calls malformed.
        assert!(EMPTY_NOTIFICATIONS.starts_with(b"\xEF\xBB\xBF"));
        assert!(!String::from_utf8_lossy(EMPTY_NOTIFICATIONS).contains("OrganizationId"));
        assert_eq!(
            parse(EMPTY_NOTIFICATIONS),
            Err(OutboundError::MissingOrganizationId)
        );
    }

    #[test]
    fn zero_notifications_with_an_organization_id() {
        let body = message(&format!("<OrganizationId>{ORG}</OrganizationId>"));
        let parsed = parse_str(&body).expect("parses");
        assert_eq!(parsed.organization_id, ORG);
        assert_eq!(parsed.action_id, None);
        assert!(parsed.notifications.is_empty());
        // Also as a self-closing element carrying only the id.
        let body = with_notifications(0);
        assert!(parse_str(&body).expect("parses").notifications.is_empty());
    }

    #[test]
    fn standalone_no_capture_with_18_char_org() {
        let parsed = parse_str(STANDALONE_NO_CAPTURE).expect("capture parses");
        assert_eq!(parsed.organization_id, "ABC90000000gNcmEAE");
        assert_eq!(parsed.action_id.as_deref(), Some("00190000000PGrlAAG"));
        assert_eq!(
            parsed.notifications,
            vec![Notification {
                id: "04l9000001olR84AAE".into(),
                sobject_type: Some("Account".into()),
                record_id: Some("0019000001KwyWtAAJ".into()),
            }]
        );
        // Why only the shape is checked here: this (anonymised) id is not a valid org id,
        // and the handler's `OrgId::matches` refuses it as someone else's org.
        assert!(OrgId::parse(&parsed.organization_id).is_err());
        let ours = OrgId::parse(ORG).expect("valid");
        assert!(!ours.matches(&parsed.organization_id));
    }

    #[test]
    fn nil_session_id_and_the_other_optional_elements() {
        let body = message(&format!(
            r#"<OrganizationId>{ORG}</OrganizationId><ActionId xsi:nil="true"/><SessionId xsi:nil="true"/><EnterpriseUrl/>{}"#,
            notification(7)
        ));
        let parsed = parse_str(&body).expect("parses");
        assert_eq!(parsed.action_id, None);
        assert_eq!(parsed.notifications.len(), 1);
        assert_eq!(parsed.notifications[0].id, "04l000000000000007");
    }

    #[test]
    fn prefixes_do_not_matter_only_namespaces() {
        let default_ns = parse(TWO_CONTACTS).expect("parses");
        let original = String::from_utf8_lossy(TWO_CONTACTS);
        // Every namespace under another prefix: s: envelope, o: outbound, x: xsi, t: sObject.
        let renamed = original
            .replace("soapenv:", "s:")
            .replace("xmlns:soapenv", "xmlns:s")
            .replace("xmlns:xsi", "xmlns:x")
            .replace("xsi:type=\"sf:", "x:type=\"t:")
            .replace("xmlns:sf", "xmlns:t")
            .replace("sf:", "t:")
            .replace("<notifications xmlns=", "<o:notifications xmlns:o=")
            .replace("</notifications>", "</o:notifications>");
        let renamed = [
            "OrganizationId",
            "ActionId",
            "SessionId",
            "EnterpriseUrl",
            "PartnerUrl",
            "Notification",
            "Id>",
            "sObject",
        ]
        .iter()
        .fold(renamed, |doc, name| {
            doc.replace(&format!("<{name}"), &format!("<o:{name}"))
                .replace(&format!("</{name}"), &format!("</o:{name}"))
        });
        assert!(renamed.contains("<o:Id>") && renamed.contains("<t:Id>"));
        assert!(!renamed.contains("soapenv") && !renamed.contains("sf:"));
        assert_eq!(parse_str(&renamed), Ok(default_ns.clone()));

        // The envelope in a default namespace and the outbound namespace on a prefix.
        let inverted = format!(
            r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><n:notifications xmlns:n="http://soap.sforce.com/2005/09/outbound" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><n:OrganizationId>{ORG}</n:OrganizationId><n:Notification><n:Id>04l1I000000fztEQAQ</n:Id><n:sObject i:type="q:Contact" xmlns:q="urn:sobject.enterprise.soap.sforce.com"><q:Id>0031I0000081tbPQAQ</q:Id></n:sObject></n:Notification></n:notifications></Body></Envelope>"#
        );
        let parsed = parse_str(&inverted).expect("parses");
        assert_eq!(parsed.notifications[0], default_ns.notifications[0]);
    }

    #[test]
    fn names_in_the_wrong_namespace_do_not_count() {
        // `Id` under a prefix bound elsewhere is not the notification's Id.
        let body = message(&format!(
            r#"<OrganizationId>{ORG}</OrganizationId><Notification><x:Id xmlns:x="urn:other">04l000000000000001</x:Id></Notification>"#
        ));
        assert_eq!(
            parse_str(&body),
            Err(OutboundError::MissingNotificationId(1))
        );
        // A `type` attribute outside the xsi namespace is not the sObject type.
        let body = message(&format!(
            r#"<OrganizationId>{ORG}</OrganizationId><Notification><Id>04l000000000000001</Id><sObject type="sf:User"/></Notification>"#
        ));
        assert_eq!(
            parse_str(&body).expect("parses").notifications[0].sobject_type,
            None
        );
    }

    #[test]
    fn one_hundred_notifications_are_accepted_and_101_refused() {
        let parsed = parse_str(&with_notifications(MAX_NOTIFICATIONS)).expect("100 parse");
        assert_eq!(parsed.notifications.len(), 100);
        assert_eq!(parsed.notifications[99].id, "04l000000000000099");
        assert_eq!(
            parse_str(&with_notifications(MAX_NOTIFICATIONS + 1)),
            Err(OutboundError::TooManyNotifications)
        );
        // Reading stops at the 101st: what follows it is never looked at.
        let hundred: String = (0..100).map(notification).collect();
        let body = format!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{ORG}</OrganizationId>{hundred}<Notification>&lol; <broken"#
        );
        assert_eq!(parse_str(&body), Err(OutboundError::TooManyNotifications));
    }

    #[test]
    fn doctype_and_entities_are_refused() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&lol2;</soapenv:Body></soapenv:Envelope>"#;
        assert_eq!(parse_str(laughs), Err(OutboundError::Doctype));
        let external = r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&xxe;</soapenv:Body></soapenv:Envelope>"#;
        assert_eq!(parse_str(external), Err(OutboundError::Doctype));
        let bare_doctype = format!("<!DOCTYPE Envelope>{}", with_notifications(1));
        assert_eq!(parse_str(&bare_doctype), Err(OutboundError::Doctype));

        // Undefined entities are refused even without a DOCTYPE, in text and attributes,
        // including inside content that is otherwise skipped.
        let in_session = with_notifications(1).replace(
            "<SessionId xsi:nil=\"true\"/>",
            "<SessionId>&xxe;</SessionId>",
        );
        assert_eq!(
            parse_str(&in_session),
            Err(OutboundError::Entity("xxe".into()))
        );
        let in_attribute =
            with_notifications(1).replace("<sf:ProfileId>", "<sf:ProfileId note=\"&lol;\">");
        assert_eq!(
            parse_str(&in_attribute),
            Err(OutboundError::Entity("lol".into()))
        );
        // The predefined entities and character references are fine.
        let body = message(
            "<OrganizationId>&#48;&#x30;D000000000062EAA</OrganizationId><SessionId>a&amp;b&lt;&gt;&apos;&quot;</SessionId>",
        );
        assert_eq!(parse_str(&body).expect("parses").organization_id, ORG);
    }

    #[test]
    fn deep_nesting_is_refused_quickly() {
        // Inside the Header, which is skipped unread: only the depth limit stops it.
        let deep = format!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header>{}{}</soapenv:Header></soapenv:Envelope>"#,
            "<a>".repeat(10_000),
            "</a>".repeat(10_000)
        );
        let started = Instant::now();
        assert_eq!(parse_str(&deep), Err(OutboundError::TooDeep));
        // Deep content inside a skipped sObject field counts too.
        let nested = with_notifications(1).replace(
            "<sf:ProfileId>",
            &format!("<sf:ProfileId>{}", "<sf:x>".repeat(10_000)),
        );
        assert_eq!(parse_str(&nested), Err(OutboundError::TooDeep));
        assert!(started.elapsed() < Duration::from_secs(1));

        // 32 levels are fine: Envelope, Body, notifications, Notification and sObject take
        // five, so 27 more fit inside sObject and the 28th is refused.
        let levels = MAX_DEPTH - 5;
        let fits = with_notifications(1).replace(
            "<sf:ProfileId>00e000000000001AAA</sf:ProfileId>",
            &format!("{}{}", "<sf:x>".repeat(levels), "</sf:x>".repeat(levels)),
        );
        assert!(parse_str(&fits).is_ok());
        let one_more = with_notifications(1).replace(
            "<sf:ProfileId>00e000000000001AAA</sf:ProfileId>",
            &format!(
                "{}{}",
                "<sf:x>".repeat(levels + 1),
                "</sf:x>".repeat(levels + 1)
            ),
        );
        assert_eq!(parse_str(&one_more), Err(OutboundError::TooDeep));
    }

    #[test]
    fn invalid_utf8_and_other_encodings_are_refused() {
        let mut body = with_notifications(1).into_bytes();
        let at = body.len() - 40;
        body[at] = 0xFF;
        assert_eq!(parse(&body), Err(OutboundError::NotUtf8(at)));
        // Invalid bytes in skipped content count too.
        let skipped = with_notifications(1).replace("00e000000000001AAA", "00e\u{e9}");
        let mut latin1 = skipped.into_bytes();
        let e9 = latin1
            .windows(2)
            .position(|w| w == [0xC3, 0xA9])
            .expect("é");
        latin1.splice(e9..e9 + 2, [0xE9]);
        assert!(matches!(parse(&latin1), Err(OutboundError::NotUtf8(_))));
        // UTF-16 with its BOM.
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(
                with_notifications(1)
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert!(matches!(parse(&utf16), Err(OutboundError::NotUtf8(_))));
        let declared = with_notifications(1).replace("UTF-8", "ISO-8859-1");
        assert_eq!(
            parse_str(&declared),
            Err(OutboundError::Encoding("ISO-8859-1".into()))
        );
        let lower_case = with_notifications(1).replace("UTF-8", "utf-8");
        assert!(parse_str(&lower_case).is_ok());
    }

    #[test]
    fn wrong_namespaces_are_refused() {
        let wrong_outbound = with_notifications(1).replace(
            "http://soap.sforce.com/2005/09/outbound",
            "http://soap.sforce.com/2005/09/outbund",
        );
        assert_eq!(
            parse_str(&wrong_outbound),
            Err(OutboundError::UnexpectedElement {
                within: "Body",
                element: "notifications".into()
            })
        );
        let soap12 = with_notifications(1).replace(
            "http://schemas.xmlsoap.org/soap/envelope/",
            "http://www.w3.org/2003/05/soap-envelope",
        );
        assert_eq!(parse_str(&soap12), Err(OutboundError::NotSoapEnvelope));
        let undeclared = with_notifications(1).replace("xmlns:soapenv=", "xmlns:other=");
        assert_eq!(
            parse_str(&undeclared),
            Err(OutboundError::UndeclaredPrefix("soapenv".into()))
        );
        let no_body = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/></soapenv:Envelope>"#;
        assert_eq!(parse_str(no_body), Err(OutboundError::MissingBody));
        let empty_body = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/></soapenv:Envelope>"#;
        assert_eq!(
            parse_str(empty_body),
            Err(OutboundError::MissingNotifications)
        );
    }

    #[test]
    fn header_comments_and_processing_instructions_are_skipped() {
        let body = with_notifications(2)
            .replace(
                "<soapenv:Body>",
                "<!-- c --><soapenv:Header><h:Auth xmlns:h=\"urn:h\" soapenv:mustUnderstand=\"0\">x<h:y/></h:Auth></soapenv:Header><?pi data?><soapenv:Body><!-- c -->",
            )
            .replace("<sf:ProfileId>", "<!-- c --><sf:ProfileId><![CDATA[<not markup>]]>");
        let body = format!("{body}\n<!-- trailing comment -->\n<?pi after?>\n");
        assert_eq!(parse_str(&body).expect("parses").notifications.len(), 2);
    }

    #[test]
    fn organization_id_is_required_once_and_id_shaped() {
        let missing = message(&notification(1));
        assert_eq!(
            parse_str(&missing),
            Err(OutboundError::MissingOrganizationId)
        );
        let empty = message("<OrganizationId> </OrganizationId>");
        assert_eq!(parse_str(&empty), Err(OutboundError::MissingOrganizationId));
        let twice = message(&format!(
            "<OrganizationId>{ORG}</OrganizationId><OrganizationId>{ORG}</OrganizationId>"
        ));
        assert_eq!(
            parse_str(&twice),
            Err(OutboundError::Duplicate("OrganizationId"))
        );
        for bad in [
            "00D00000000006",
            "00D000000000062EA",
            "00D000000000062-AA",
            "00D 00000000062",
        ] {
            let body = message(&format!("<OrganizationId>{bad}</OrganizationId>"));
            assert_eq!(
                parse_str(&body),
                Err(OutboundError::InvalidId {
                    field: "OrganizationId",
                    value: bad.into()
                }),
                "{bad}"
            );
        }
        let nested = message("<OrganizationId><x/></OrganizationId>");
        assert!(matches!(
            parse_str(&nested),
            Err(OutboundError::UnexpectedElement {
                within: "OrganizationId",
                ..
            })
        ));
        let huge = message(&format!(
            "<OrganizationId>{}</OrganizationId>",
            "0".repeat(100_000)
        ));
        assert_eq!(
            parse_str(&huge),
            Err(OutboundError::TooLong("OrganizationId"))
        );
        // Surrounding whitespace is not part of the id.
        let padded = message(&format!("<OrganizationId>\n {ORG}\n</OrganizationId>"));
        assert_eq!(parse_str(&padded).expect("parses").organization_id, ORG);
    }

    #[test]
    fn every_notification_needs_an_id() {
        let org = format!("<OrganizationId>{ORG}</OrganizationId>");
        let without = message(&format!(
            "{org}{}<Notification><sObject xsi:type=\"sf:User\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\"/></Notification>",
            notification(1)
        ));
        assert_eq!(
            parse_str(&without),
            Err(OutboundError::MissingNotificationId(2))
        );
        let empty = message(&format!("{org}<Notification><Id/></Notification>"));
        assert_eq!(
            parse_str(&empty),
            Err(OutboundError::MissingNotificationId(1))
        );
        let bad = message(&format!(
            "{org}<Notification><Id>04l-not-an-id</Id></Notification>"
        ));
        assert!(matches!(
            parse_str(&bad),
            Err(OutboundError::InvalidId {
                field: "Notification/Id",
                ..
            })
        ));
        let twice = message(&format!(
            "{org}<Notification><Id>04l000000000000001</Id><Id>04l000000000000002</Id></Notification>"
        ));
        assert_eq!(
            parse_str(&twice),
            Err(OutboundError::Duplicate("Notification/Id"))
        );
        // A notification for a deleted record carries no sObject data: still fine.
        let bare = message(&format!(
            "{org}<Notification><Id>04l000000000000001</Id></Notification>"
        ));
        assert_eq!(
            parse_str(&bare).expect("parses").notifications,
            vec![Notification {
                id: "04l000000000000001".into(),
                sobject_type: None,
                record_id: None
            }]
        );
    }

    #[test]
    fn content_outside_the_root_is_refused() {
        let good = with_notifications(1);
        assert_eq!(
            parse_str(&format!("{good}garbage")),
            Err(OutboundError::TrailingContent)
        );
        assert_eq!(
            parse_str(&format!("{good}<again/>")),
            Err(OutboundError::TrailingContent)
        );
        assert_eq!(
            parse_str(&format!("{good}&amp;")),
            Err(OutboundError::TrailingContent)
        );
        let before = good.replacen("<soapenv:Envelope", "text<soapenv:Envelope", 1);
        assert_eq!(parse_str(&before), Err(OutboundError::TextOutsideRoot));
        let in_body = good.replace("<soapenv:Body>", "<soapenv:Body>stray");
        assert_eq!(
            parse_str(&in_body),
            Err(OutboundError::UnexpectedText("Body"))
        );
        let late_decl = format!("{good}<?xml version=\"1.0\"?>");
        assert!(matches!(
            parse_str(&late_decl),
            Err(OutboundError::Malformed { .. })
        ));
        let truncated = &good[..good.len() - 20];
        assert_eq!(parse_str(truncated), Err(OutboundError::Truncated));
        let mismatched = good.replace("</soapenv:Body>", "</soapenv:Bod>");
        assert!(matches!(
            parse_str(&mismatched),
            Err(OutboundError::Malformed { .. })
        ));
    }

    #[test]
    fn empty_bodies_are_refused() {
        assert_eq!(parse(b""), Err(OutboundError::Empty));
        assert_eq!(parse(b" \r\n\t"), Err(OutboundError::Empty));
        assert_eq!(parse(b"\xEF\xBB\xBF"), Err(OutboundError::Empty));
        assert_eq!(
            parse(b"<?xml version=\"1.0\"?><!-- nothing -->"),
            Err(OutboundError::Empty)
        );
    }

    #[test]
    fn error_messages_are_short_and_safe() {
        let long_name = "x".repeat(10_000);
        let body = with_notifications(1)
            .replace("<soapenv:Body>", &format!("<soapenv:Body><{long_name}/>"));
        let error = parse_str(&body).expect_err("refused");
        assert!(error.to_string().len() < 200, "{error}");
        let bad = message(&format!(
            "<OrganizationId>{}</OrganizationId>",
            "\u{7}".repeat(200)
        ));
        let error = parse_str(&bad).expect_err("refused");
        let text = error.to_string();
        assert!(text.len() < 400 && !text.contains('\u{7}'), "{text}");
    }

    #[test]
    fn ack_is_the_fixture_byte_for_byte() {
        // The fixture has no BOM; ACK sends none either (see ACK's doc comment).
        assert!(!ACK_FIXTURE.starts_with(b"\xEF\xBB\xBF"));
        assert_eq!(ACK.as_bytes(), ACK_FIXTURE);
        let root = crate::xml::parse(ACK.as_bytes()).expect("ACK is XML");
        assert!(root.is(SOAP_ENV_NS, "Envelope"));
        let ack = root
            .child(SOAP_ENV_NS, "Body")
            .and_then(|body| body.child(OUTBOUND_NS, "notificationsResponse"))
            .and_then(|response| response.child_text(OUTBOUND_NS, "Ack"));
        assert_eq!(ack, Some("true"));
    }

    #[test]
    fn fault_follows_the_template_and_escapes() {
        let message = "bad <Id> & \"more\" >";
        let expected = FAULT_TEMPLATE
            .strip_prefix('\u{feff}')
            .expect("the template starts with a BOM")
            .replace("{0}", "bad &lt;Id&gt; &amp; &quot;more&quot; &gt;");
        assert_eq!(fault(FaultKind::Client, message), expected);

        let server = fault(FaultKind::Server, "store unavailable");
        let root = crate::xml::parse(server.as_bytes()).expect("fault is XML");
        let fault_element = root
            .child(SOAP_ENV_NS, "Body")
            .and_then(|body| body.child(SOAP_ENV_NS, "Fault"))
            .expect("Body/Fault");
        assert_eq!(
            fault_element
                .child_local("faultcode")
                .map(|e| e.text.as_str()),
            Some("soapenv:Server")
        );

        let root = crate::xml::parse(fault(FaultKind::Client, message).as_bytes()).expect("XML");
        let faultstring = root
            .child(SOAP_ENV_NS, "Body")
            .and_then(|body| body.child(SOAP_ENV_NS, "Fault"))
            .and_then(|f| f.child_local("faultstring"))
            .map(|e| e.text.clone());
        assert_eq!(faultstring.as_deref(), Some(message));

        // Characters XML cannot carry are replaced, so the fault still parses.
        let control = fault(FaultKind::Client, "a\u{0}b\u{1b}c");
        assert!(crate::xml::parse(control.as_bytes()).is_ok());
        assert!(control.contains("a\u{FFFD}b\u{FFFD}c"));
    }

    #[test]
    fn parse_errors_make_parseable_client_faults() {
        let error = parse_str(&format!("{}<x/>", with_notifications(1))).expect_err("refused");
        let body = fault(FaultKind::Client, &error.to_string());
        assert!(body.contains("<faultcode>soapenv:Client</faultcode>"));
        assert!(crate::xml::parse(body.as_bytes()).is_ok());
    }
}
