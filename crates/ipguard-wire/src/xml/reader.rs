//! The one hardened XML pull reader: both the tree ([`super::parse`]) and the service's
//! streaming outbound-message parser read through it.
//!
//! It reads events straight off the input (`quick_xml::reader::NsReader` borrowing the
//! bytes, nothing copied into a buffer) and refuses hostile or non-XML input as early as it
//! can: a DOCTYPE (so no entity definitions: billion laughs, external entities), references
//! to entities other than the five predefined ones and character references (in text and in
//! attribute values), nesting deeper than the caller's limit, invalid UTF-8, a declared
//! encoding other than UTF-8, a declaration anywhere but first, text or elements outside the
//! root, and a document that ends inside an element. Comments and processing instructions
//! are checked and skipped. Whitespace outside the root is skipped.

use std::borrow::Cow;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::reader::NsReader;

/// Longest echo of received input in an error message.
const MAX_ECHO_CHARS: usize = 64;

/// Why input is not (acceptable) XML. `Display` is short and safe to send back: received
/// values are echoed at most 64 characters long, with control characters replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("the document is empty")]
    Empty,
    #[error("the document is not valid UTF-8 (at byte {0})")]
    NotUtf8(usize),
    #[error("the XML declaration names encoding `{0}`; only UTF-8 is accepted")]
    Encoding(String),
    #[error("malformed XML near byte {position}: {reason}")]
    Malformed { position: u64, reason: String },
    #[error("a DOCTYPE is not accepted (entity definitions are never processed)")]
    Doctype,
    #[error(
        "entity reference `&{0};` is not accepted; only the five predefined entities and character references are"
    )]
    Entity(String),
    #[error("elements nest deeper than {0} levels")]
    TooDeep(usize),
    #[error("namespace prefix `{0}` is not declared")]
    UndeclaredPrefix(String),
    #[error("text outside the root element")]
    TextOutsideRoot,
    #[error("content after the root element")]
    TrailingContent,
    #[error("the document ends before its root element is closed")]
    Truncated,
}

/// What a reader hands on: the declaration, comments, processing instructions and blank
/// text outside the root are consumed (and checked) by [`Reader::read`].
#[derive(Debug)]
pub enum Token<'i> {
    /// An element opens (a self-closing one is followed by its [`Token::End`]). Resolve its
    /// namespace with [`Reader::element_ns`] before reading on.
    Start(BytesStart<'i>),
    End,
    /// Character data (text or CDATA) as written; references arrive separately as `Char`.
    Text(Cow<'i, str>),
    /// A predefined entity or character reference, resolved.
    Char(char),
    /// The end of a complete document.
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Prolog,
    Root,
    Epilogue,
}

pub struct Reader<'i> {
    inner: NsReader<&'i [u8]>,
    /// Bytes before the reader's input (a stripped BOM), so positions match the input.
    offset: u64,
    max_depth: usize,
    /// Open elements, counted here so the limit also holds inside skipped content.
    depth: usize,
    place: Place,
    /// Nothing has been read yet (an XML declaration may only come first).
    at_start: bool,
    /// The last `Start` was a self-closing tag, whose `End` is still to be reported.
    pending_end: bool,
}

impl<'i> Reader<'i> {
    /// A reader over `input`: a UTF-8 byte order mark is skipped, the rest must be UTF-8 and
    /// not blank; elements may nest `max_depth` deep.
    pub fn new(input: &'i [u8], max_depth: usize) -> Result<Self, ReadError> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        let (offset, bytes) = match input.strip_prefix(BOM) {
            Some(rest) => (BOM.len(), rest),
            None => (0, input),
        };
        let text =
            std::str::from_utf8(bytes).map_err(|e| ReadError::NotUtf8(offset + e.valid_up_to()))?;
        if text.bytes().all(is_xml_space) {
            return Err(ReadError::Empty);
        }
        let mut inner = NsReader::from_str(text);
        let config = inner.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.allow_dangling_amp = false;
        config.allow_unmatched_ends = false;
        Ok(Reader {
            inner,
            offset: offset as u64,
            max_depth,
            depth: 0,
            place: Place::Prolog,
            at_start: true,
            pending_end: false,
        })
    }

    /// A `Malformed` error at the current position.
    pub fn malformed(&self, reason: &str) -> ReadError {
        ReadError::Malformed {
            position: self.offset + self.inner.buffer_position(),
            reason: echo(reason),
        }
    }

    /// The next token of the document.
    pub fn read(&mut self) -> Result<Token<'i>, ReadError> {
        loop {
            let token = self.next_token()?;
            match (self.place, &token) {
                (Place::Root, _) => {}
                (_, Token::Text(t)) if t.bytes().all(is_xml_space) => continue,
                (_, Token::Char(c)) if is_xml_space_char(*c) => continue,
                (Place::Prolog, Token::Text(_) | Token::Char(_)) => {
                    return Err(ReadError::TextOutsideRoot);
                }
                (Place::Prolog, Token::Eof) => return Err(ReadError::Empty),
                (Place::Epilogue, Token::Eof) => {}
                (Place::Epilogue, _) => return Err(ReadError::TrailingContent),
                (Place::Prolog, Token::Start(_)) => self.place = Place::Root,
                // The inner reader refuses an end tag without its start.
                (Place::Prolog, Token::End) => {
                    return Err(self.malformed("end tag without a start tag"));
                }
            }
            if self.place == Place::Root && self.depth == 0 {
                self.place = Place::Epilogue;
            }
            return Ok(token);
        }
    }

    fn next_token(&mut self) -> Result<Token<'i>, ReadError> {
        if self.pending_end {
            self.pending_end = false;
            self.depth -= 1;
            return Ok(Token::End);
        }
        loop {
            let event = match self.inner.read_event() {
                Ok(event) => event,
                Err(error) => {
                    return Err(ReadError::Malformed {
                        position: self.offset + self.inner.error_position(),
                        reason: echo(&error.to_string()),
                    });
                }
            };
            let at_start = std::mem::replace(&mut self.at_start, false);
            match event {
                Event::Start(_) | Event::Empty(_) if self.depth >= self.max_depth => {
                    return Err(ReadError::TooDeep(self.max_depth));
                }
                Event::Start(start) => {
                    self.depth += 1;
                    self.check_attributes(&start)?;
                    return Ok(Token::Start(start));
                }
                Event::Empty(start) => {
                    self.depth += 1;
                    self.pending_end = true;
                    self.check_attributes(&start)?;
                    return Ok(Token::Start(start));
                }
                Event::End(_) => {
                    // The reader refuses unmatched end tags, so depth is at least 1 here.
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(Token::End);
                }
                Event::Text(text) => return Ok(Token::Text(text.into_inner())),
                Event::CData(data) => return Ok(Token::Text(data.into_inner())),
                Event::GeneralRef(reference) => {
                    return Ok(Token::Char(resolve_reference(&reference)?));
                }
                Event::Decl(decl) => {
                    if !at_start {
                        return Err(self.malformed("XML declaration not at the start"));
                    }
                    match decl.encoding() {
                        None => {}
                        Some(Ok(encoding)) if encoding.eq_ignore_ascii_case("UTF-8") => {}
                        Some(Ok(encoding)) => return Err(ReadError::Encoding(echo(&encoding))),
                        Some(Err(error)) => return Err(self.malformed(&error.to_string())),
                    }
                }
                Event::PI(_) | Event::Comment(_) => {}
                Event::DocType(_) => return Err(ReadError::Doctype),
                Event::Eof if self.depth > 0 => return Err(ReadError::Truncated),
                Event::Eof => return Ok(Token::Eof),
            }
        }
    }

    /// The namespace URI of the element [`Reader::read`] just returned (`None`: unbound).
    pub fn element_ns(&self, start: &BytesStart<'_>) -> Result<Option<&str>, ReadError> {
        let (resolved, _) = self.inner.resolver().resolve_element(start.name());
        uri(resolved)
    }

    /// The element's attributes other than namespace bindings: (namespace URI, local name,
    /// normalized value with references resolved).
    pub fn attributes<'s>(
        &'s self,
        start: &'s BytesStart<'_>,
    ) -> impl Iterator<Item = Result<(Option<&'s str>, &'s str, Cow<'s, str>), ReadError>> + 's
    {
        start.attributes().filter_map(move |attribute| {
            let attribute = match attribute {
                Ok(a) => a,
                Err(e) => return Some(Err(self.malformed(&e.to_string()))),
            };
            let key = attribute.key;
            if key.as_namespace_binding().is_some() {
                return None;
            }
            let (resolved, local) = self.inner.resolver().resolve_attribute(key);
            let ns = match uri(resolved) {
                Ok(ns) => ns,
                Err(e) => return Some(Err(e)),
            };
            let local = local.into_inner();
            let value = match attribute.normalized_value(quick_xml::XmlVersion::Implicit1_0) {
                Ok(v) => Cow::Owned(v.into_owned()),
                Err(e) => return Some(Err(self.malformed(&e.to_string()))),
            };
            Some(Ok((ns, local, value)))
        })
    }

    /// Consumes everything up to and including the end of the element just started,
    /// keeping nothing.
    pub fn skip(&mut self) -> Result<(), ReadError> {
        let mut open = 1usize;
        loop {
            match self.read()? {
                Token::Start(_) => open += 1,
                Token::End => {
                    open -= 1;
                    if open == 0 {
                        return Ok(());
                    }
                }
                Token::Text(_) | Token::Char(_) => {}
                Token::Eof => return Err(ReadError::Truncated),
            }
        }
    }

    /// Attributes must be well-formed and their values may only use the predefined
    /// entities and character references — checked without decoding the values.
    fn check_attributes(&self, start: &BytesStart<'_>) -> Result<(), ReadError> {
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| self.malformed(&e.to_string()))?;
            check_references(&attribute.value)?;
        }
        Ok(())
    }
}

/// The local part of a qualified name as written (`sf:Contact` → `Contact`).
pub fn local_part(qualified: &str) -> &str {
    QName(qualified).local_name().into_inner()
}

fn uri(resolved: ResolveResult<'_>) -> Result<Option<&str>, ReadError> {
    match resolved {
        ResolveResult::Bound(namespace) => Ok(Some(namespace.0)),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(ReadError::UndeclaredPrefix(echo(prefix.as_ref()))),
    }
}

/// Without a DTD only the five predefined entities and character references exist.
fn resolve_reference(reference: &BytesRef<'_>) -> Result<char, ReadError> {
    let name: &str = reference;
    let refused = || ReadError::Entity(echo(name));
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
fn check_references(raw: &str) -> Result<(), ReadError> {
    for after_amp in raw.split('&').skip(1) {
        let name = match after_amp.find(';') {
            Some(end) => &after_amp[..end],
            None => return Err(ReadError::Entity(echo(after_amp))),
        };
        resolve_reference(&BytesRef::new(name))?;
    }
    Ok(())
}

/// A received value as it may appear in an error message: at most 64 characters, control
/// characters replaced.
pub fn echo(value: &str) -> String {
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

pub fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

pub fn is_xml_space_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// XML 1.0 `Char`: what a document may contain at all, even escaped.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}
