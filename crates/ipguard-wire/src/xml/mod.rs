//! A small XML tree for the SOAP documents ipguard reads and writes, built on the one
//! hardened reader ([`reader`]: no DOCTYPE, so no entity definitions; only the five predefined
//! entities and character references; UTF-8 only; depth bounded).
//!
//! Salesforce documents are small, so a tree is simpler to query than a streaming cursor.
//! Names are matched by namespace URI and local name, never by prefix.

use std::borrow::Cow;

pub mod reader;
pub mod writer;

pub use reader::{ReadError, Reader, Token};

pub const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const METADATA_NS: &str = "http://soap.sforce.com/2006/04/metadata";
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Deeper than any Salesforce document; bounds recursion and memory on hostile input.
const MAX_DEPTH: usize = 64;

/// Why a document was refused (see [`reader`] for what is refused and why).
pub type XmlError = ReadError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub ns: Option<String>,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub ns: Option<String>,
    pub name: String,
    pub attributes: Vec<Attribute>,
    pub children: Vec<Element>,
    /// Concatenated text directly inside this element (not its children).
    pub text: String,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns.as_deref() == Some(ns)
    }

    /// First child with this namespace and local name.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// First child with this local name, whatever its namespace (for fault children, which
    /// Salesforce sends unqualified).
    pub fn child_local(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Trimmed text of the first child with this name, if present.
    pub fn child_text(&self, ns: &str, name: &str) -> Option<&str> {
        self.child(ns, name).map(|c| c.text.trim())
    }

    pub fn attribute(&self, ns: Option<&str>, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name && a.ns.as_deref() == ns)
            .map(|a| a.value.as_str())
    }

    /// `xsi:nil="true"`.
    pub fn is_nil(&self) -> bool {
        matches!(self.attribute(Some(XSI_NS), "nil"), Some("true" | "1"))
    }
}

/// Parses a whole document into its root element, through the hardened [`Reader`]. A UTF-8
/// BOM and an XML declaration are accepted; comments and processing instructions are skipped.
pub fn parse(input: &[u8]) -> Result<Element, XmlError> {
    let mut reader = Reader::new(input, MAX_DEPTH)?;
    let mut stack: Vec<Element> = Vec::new();
    loop {
        match reader.read()? {
            Token::Start(start) => {
                let mut element = Element {
                    ns: reader.element_ns(&start)?.map(str::to_owned),
                    name: start.local_name().as_ref().to_owned(),
                    ..Element::default()
                };
                for attribute in reader.attributes(&start) {
                    let (ns, name, value) = attribute?;
                    element.attributes.push(Attribute {
                        ns: ns.map(str::to_owned),
                        name: name.to_owned(),
                        value: value.into_owned(),
                    });
                }
                stack.push(element);
            }
            Token::End => {
                let element = stack
                    .pop()
                    .ok_or_else(|| reader.malformed("unexpected end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    // The reader refuses anything after the root but blanks and the end.
                    None => {
                        return match reader.read()? {
                            Token::Eof => Ok(element),
                            _ => Err(XmlError::TrailingContent),
                        };
                    }
                }
            }
            Token::Text(text) => push_text(&mut stack, &normalize_line_ends(&text)),
            Token::Char(c) => push_text(&mut stack, c.encode_utf8(&mut [0; 4])),
            Token::Eof => return Err(XmlError::Empty),
        }
    }
}

fn push_text(stack: &mut [Element], text: &str) {
    // Text outside the root never reaches here: the reader refuses it.
    if let Some(top) = stack.last_mut() {
        top.text.push_str(text);
    }
}

/// XML 1.0 end-of-line handling: `\r\n` and a lone `\r` read as `\n`.
fn normalize_line_ends(text: &str) -> Cow<'_, str> {
    if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Escapes text for element content and attribute values.
pub fn escape(text: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_matched_by_uri_not_prefix() {
        let a = parse(br#"<x:a xmlns:x="urn:n"><x:b>1</x:b></x:a>"#).unwrap();
        let b = parse(br#"<a xmlns="urn:n"><b>1</b></a>"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.child_text("urn:n", "b"), Some("1"));
    }

    #[test]
    fn bom_declaration_and_nil_are_understood() {
        let doc = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\
            <a xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><s xsi:nil=\"true\"/></a>";
        let root = parse(doc.as_bytes()).unwrap();
        assert!(root.children[0].is_nil());
    }

    #[test]
    fn predefined_entities_and_char_refs_decode() {
        let root = parse(b"<a>x &amp; y &lt; &#65;&#x42;</a>").unwrap();
        assert_eq!(root.text, "x & y < AB");
    }

    #[test]
    fn doctype_and_entities_are_refused() {
        let laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><a>&lol2;</a>"#;
        assert_eq!(parse(laughs), Err(XmlError::Doctype));
        let external =
            br#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>"#;
        assert_eq!(parse(external), Err(XmlError::Doctype));
        assert!(matches!(parse(b"<a>&x;</a>"), Err(XmlError::Entity(_))));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep(MAX_DEPTH)));
    }

    #[test]
    fn malformed_documents_are_refused() {
        assert!(parse(b"").is_err());
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a/><b/>").is_err());
        assert!(parse(b"<p:a/>").is_err());
        assert!(parse(b"<a>\xff</a>").is_err());
        assert_eq!(parse(b"<a/>text"), Err(XmlError::TrailingContent));
        assert_eq!(parse(b"text<a/>"), Err(XmlError::TextOutsideRoot));
        assert_eq!(parse(b"<a><b>"), Err(XmlError::Truncated));
    }

    #[test]
    fn line_ends_read_as_newlines_and_attributes_resolve() {
        let root = parse(b"<a x=\"1 &amp; 2\">l1\r\nl2\rl3</a>").unwrap();
        assert_eq!(root.text, "l1\nl2\nl3");
        assert_eq!(root.attribute(None, "x"), Some("1 & 2"));
    }

    #[test]
    fn only_utf8_is_read() {
        let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>";
        assert!(matches!(parse(latin1), Err(XmlError::Encoding(_))));
        assert!(matches!(parse(b"<a>\xff</a>"), Err(XmlError::NotUtf8(3))));
    }
}
