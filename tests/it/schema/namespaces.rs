//! Namespace-aware reading helpers both the envelope splitter and the schema extraction use.

use super::*;

/// In-scope namespace bindings (prefix, raw attribute value) after the last element read,
/// including that element's own; overridden and undeclared (`xmlns=""`) ones are left out.
pub(super) fn in_scope_bindings(reader: &NsReader<&[u8]>) -> Vec<(Option<String>, String)> {
    reader
        .resolver()
        .bindings()
        .map(|(prefix, Namespace(ns))| {
            let prefix = match prefix {
                PrefixDeclaration::Default => None,
                PrefixDeclaration::Named(p) => Some(p.to_owned()),
            };
            (prefix, ns.to_owned())
        })
        .collect()
}

/// The prefixes (`None` = default namespace) an element declares itself.
pub(super) fn declared_prefixes(e: &BytesStart<'_>) -> Result<BTreeSet<Option<String>>, String> {
    let mut own = BTreeSet::new();
    for attr in e.attributes() {
        let attr =
            attr.map_err(|err| format!("bad attribute on <{}>: {err}", e.name().as_ref()))?;
        match attr.key.as_namespace_binding() {
            Some(PrefixDeclaration::Default) => {
                own.insert(None);
            }
            Some(PrefixDeclaration::Named(p)) => {
                own.insert(Some(p.to_owned()));
            }
            None => {}
        }
    }
    Ok(own)
}

/// ` xmlns="…" xmlns:p="…"` for the given bindings (values are raw attribute text).
pub(super) fn xmlns_attributes(bindings: &[(Option<String>, String)]) -> String {
    let mut out = String::new();
    for (prefix, value) in bindings {
        let value = value.replace('"', "&quot;"); // raw text may come from a '…'-quoted value
        match prefix {
            None => {
                let _ = write!(out, " xmlns=\"{value}\"");
            }
            Some(p) => {
                let _ = write!(out, " xmlns:{p}=\"{value}\"");
            }
        }
    }
    out
}

pub(super) fn parse_error(reader: &NsReader<&[u8]>, e: quick_xml::Error) -> String {
    format!(
        "not well-formed XML at byte {}: {e}",
        reader.error_position()
    )
}

pub(super) fn namespace_of(res: ResolveResult<'_>) -> Result<Option<String>, String> {
    match res {
        ResolveResult::Bound(Namespace(ns)) => Ok(Some(ns.to_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(format!("undeclared namespace prefix `{prefix}`")),
    }
}

pub(super) fn is_xml_whitespace(text: &str) -> bool {
    text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

pub(super) fn offset(reader: &NsReader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).expect("a &str's byte offset fits in usize")
}
