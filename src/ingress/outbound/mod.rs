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
mod tests;
