//! A small, hardened XML tree for the SOAP documents ipguard reads and writes.
//!
//! Salesforce documents are small, so a tree is simpler to query than a streaming cursor.
//! Names are matched by namespace URI and local name, never by prefix. A DOCTYPE is refused,
//! which rules out entity definitions (billion laughs, external entities); only the five
//! predefined entities and character references are decoded. Depth is bounded.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::name::{NamespaceResolver, ResolveResult};
use quick_xml::reader::NsReader;

pub const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const METADATA_NS: &str = "http://soap.sforce.com/2006/04/metadata";
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Deeper than any Salesforce document; bounds recursion and memory on hostile input.
const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("XML is not well-formed: {0}")]
    Syntax(String),
    #[error("XML with a DOCTYPE is refused (entity definitions are never processed)")]
    Doctype,
    #[error("XML nests deeper than {MAX_DEPTH} elements")]
    TooDeep,
    #[error("XML has no root element")]
    Empty,
    #[error("XML has content after the root element")]
    TrailingContent,
}

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

/// Parses a whole document into its root element. A UTF-8 BOM and an XML declaration are
/// accepted; comments and processing instructions are skipped.
pub fn parse(input: &[u8]) -> Result<Element, XmlError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut reader = NsReader::from_reader(input);
    reader.config_mut().expand_empty_elements = false;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| XmlError::Syntax(e.to_string()))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::TrailingContent);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let element = open_element(reader.resolver(), &start)?;
                stack.push(element);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(XmlError::TrailingContent);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let element = open_element(reader.resolver(), &start)?;
                close(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| XmlError::Syntax("unexpected end tag".into()))?;
                close(&mut stack, &mut root, element);
            }
            Event::Text(text) => {
                push_text(&mut stack, &text.xml10_content())?;
            }
            Event::GeneralRef(reference) => {
                // Only character references and the predefined entities exist without a DTD.
                let text = if let Some(ch) = reference
                    .resolve_char_ref()
                    .map_err(|e| XmlError::Syntax(e.to_string()))?
                {
                    ch.to_string()
                } else {
                    let name = reference.into_inner();
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => s.to_string(),
                        None => {
                            return Err(XmlError::Syntax(format!("undefined entity &{name};")));
                        }
                    }
                };
                push_text(&mut stack, &text)?;
            }
            Event::CData(data) => {
                push_text(&mut stack, &data.into_inner())?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax("document ended inside an element".into()));
    }
    root.ok_or(XmlError::Empty)
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(top) => top.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err(XmlError::Syntax("text outside the root element".into())),
    }
    Ok(())
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

fn open_element(
    resolver: &NamespaceResolver,
    start: &quick_xml::events::BytesStart<'_>,
) -> Result<Element, XmlError> {
    let (resolve, local) = resolver.resolve_element(start.name());
    let ns = namespace(resolve)?;
    let name = local.as_ref().to_owned();
    let mut attributes = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Syntax(e.to_string()))?;
        let key = attr.key;
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let (resolve, local) = resolver.resolve_attribute(key);
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| XmlError::Syntax(e.to_string()))?;
        attributes.push(Attribute {
            ns: namespace(resolve)?,
            name: local.as_ref().to_owned(),
            value: value.into_owned(),
        });
    }
    Ok(Element {
        ns,
        name,
        attributes,
        ..Element::default()
    })
}

fn namespace(resolve: ResolveResult<'_>) -> Result<Option<String>, XmlError> {
    match resolve {
        ResolveResult::Bound(ns) => Ok(Some(ns.0.to_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(XmlError::Syntax(format!(
            "undeclared namespace prefix `{}`",
            prefix
        ))),
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
        assert!(matches!(parse(b"<a>&x;</a>"), Err(XmlError::Syntax(_))));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
    }

    #[test]
    fn malformed_documents_are_refused() {
        assert!(parse(b"").is_err());
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a/><b/>").is_err());
        assert!(parse(b"<p:a/>").is_err());
        assert!(parse(b"<a>\xff</a>").is_err());
    }
}
