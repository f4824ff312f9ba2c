//! Splitting a SOAP 1.1 envelope into the standalone documents xmllint validates: each Header
//! child and the Body child, lifted out with the namespace declarations in scope.

use super::*;

/// A document handed to xmllint: the whole input, or one child lifted out of a SOAP envelope.
pub(super) struct Part {
    /// `document`, `header1-SessionHeader`, `body-readMetadata`, … (also part of the file name).
    pub(super) name: String,
    pub(super) xml: String,
    pub(super) lifted: bool,
}

/// Splits a SOAP 1.1 envelope into its Header children and its Body child, each a standalone
/// document; any other document is returned whole.
pub(super) fn split_document(xml: &str) -> Result<Vec<Part>, String> {
    let mut reader = NsReader::from_str(xml);

    // Prolog, up to the root element.
    let (root_ns, root_local, root_empty) = loop {
        let (res, event) = match reader.read_resolved_event() {
            Ok(next) => next,
            Err(e) => return Err(parse_error(&reader, e)),
        };
        let ns = namespace_of(res)?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                break (
                    ns,
                    e.local_name().as_ref().to_owned(),
                    matches!(event, Event::Empty(_)),
                );
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Text(ref t) if is_xml_whitespace(t) => {}
            Event::DocType(_) => return Err("a DTD is not allowed in a SOAP message".into()),
            Event::Eof => return Err("document has no root element".into()),
            other => {
                return Err(format!(
                    "unexpected content before the root element: {other:?}"
                ));
            }
        }
    };
    if root_local != "Envelope" {
        return Ok(vec![Part {
            name: "document".into(),
            xml: xml.to_owned(),
            lifted: false,
        }]);
    }
    if root_ns.as_deref() != Some(SOAP_ENV_NS) {
        return Err(format!(
            "root element Envelope is in namespace {root_ns:?}; a SOAP 1.1 envelope must be in \
             {SOAP_ENV_NS}"
        ));
    }
    if root_empty {
        return Err("SOAP Envelope has no Body".into());
    }

    let mut parts = Vec::new();
    let mut section: Option<&'static str> = None; // inside Header or Body
    let (mut seen_header, mut seen_body) = (false, false);
    let mut body_children: Vec<String> = Vec::new();
    loop {
        let start = offset(&reader);
        let (res, event) = match reader.read_resolved_event() {
            Ok(next) => next,
            Err(e) => return Err(parse_error(&reader, e)),
        };
        let ns = namespace_of(res)?;
        let place = section.unwrap_or("Envelope");
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let qname = e.name().as_ref().to_owned();
                let local = e.local_name().as_ref().to_owned();
                let Some(sec) = section else {
                    // A child of Envelope.
                    if ns.as_deref() != Some(SOAP_ENV_NS) {
                        return Err(format!(
                            "unexpected element <{qname}> (namespace {ns:?}) in Envelope: only \
                             Header and Body of {SOAP_ENV_NS} are allowed"
                        ));
                    }
                    match local.as_str() {
                        "Header" if !seen_header && !seen_body => seen_header = true,
                        "Header" => return Err("Header must appear once, before Body".into()),
                        "Body" if !seen_body => seen_body = true,
                        "Body" => return Err("Envelope has more than one Body".into()),
                        _ => return Err(format!("unexpected SOAP element <{qname}> in Envelope")),
                    }
                    if !empty {
                        section = Some(if local == "Header" { "Header" } else { "Body" });
                    }
                    continue;
                };
                // A child of Header or Body: lift it out with the declarations in scope.
                if xml.as_bytes().get(start) != Some(&b'<') {
                    return Err(format!(
                        "internal error: <{qname}> was expected to start at byte {start}"
                    ));
                }
                let in_scope = in_scope_bindings(&reader);
                let own = declared_prefixes(e)?;
                if !empty {
                    reader
                        .read_to_end(e.name())
                        .map_err(|err| parse_error(&reader, err))?;
                }
                let end = offset(&reader);
                let inherited: Vec<_> = in_scope
                    .into_iter()
                    .filter(|(prefix, _)| !own.contains(prefix))
                    .collect();
                let name = if sec == "Header" {
                    format!("header{}-{local}", parts.len() + 1)
                } else {
                    body_children.push(qname.clone());
                    format!("body-{local}")
                };
                parts.push(Part {
                    name,
                    xml: lift(&xml[start..end], qname.len(), &xmlns_attributes(&inherited)),
                    lifted: true,
                });
            }
            Event::End(_) => {
                if section.take().is_none() {
                    break; // </Envelope>
                }
            }
            Event::Text(ref t) if is_xml_whitespace(t) => {}
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => return Err("document ends inside the Envelope".into()),
            other => {
                return Err(format!(
                    "unexpected content directly inside {place}: {other:?} (only elements and \
                     whitespace are allowed)"
                ));
            }
        }
    }
    loop {
        match reader.read_event().map_err(|e| parse_error(&reader, e))? {
            Event::Eof => break,
            Event::Comment(_) | Event::PI(_) => {}
            Event::Text(ref t) if is_xml_whitespace(t) => {}
            other => return Err(format!("unexpected content after the Envelope: {other:?}")),
        }
    }
    if !seen_body {
        return Err("SOAP Envelope has no Body".into());
    }
    match body_children.len() {
        1 => Ok(parts),
        0 => Err("SOAP Body is empty: it must hold exactly one request element".into()),
        _ => Err(format!(
            "SOAP Body must hold exactly one element, found {}: {}",
            body_children.len(),
            body_children.join(", ")
        )),
    }
}

/// A standalone document from one element's source text, with extra namespace declarations
/// inserted right after its name.
fn lift(element: &str, qname_len: usize, declarations: &str) -> String {
    let cut = 1 + qname_len; // `<` + name
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}{declarations}{}\n",
        &element[..cut],
        &element[cut..]
    )
}
