//! Writes a read metadata record back as a file body: the record's children, in the order
//! Salesforce sent them (its XSD sequence), in the Metadata namespace as the default one.
//! Used for read-modify-write of components whose deploy replaces the whole component.

use super::{Element, METADATA_NS, escape};

/// `<root xmlns="…metadata">` + the children of `record` (without `fullName`, which a file
/// takes from its name, and without `xsi:nil` children, which carry no value).
pub fn metadata_file(root: &str, children: &[Element]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!("<{root} xmlns=\"{METADATA_NS}\">\n"));
    for child in children {
        if child.name == "fullName" || child.is_nil() {
            continue;
        }
        write_element(&mut out, child, 1);
    }
    out.push_str(&format!("</{root}>\n"));
    out
}

fn write_element(out: &mut String, element: &Element, depth: usize) {
    let indent = "    ".repeat(depth);
    if element.children.is_empty() {
        out.push_str(&format!(
            "{indent}<{name}>{text}</{name}>\n",
            name = element.name,
            text = escape(element.text.trim())
        ));
        return;
    }
    out.push_str(&format!("{indent}<{}>\n", element.name));
    for child in element.children.iter().filter(|c| !c.is_nil()) {
        write_element(out, child, depth + 1);
    }
    out.push_str(&format!("{indent}</{}>\n", element.name));
}

/// A text-only element in the Metadata namespace (to insert into a read record).
pub fn text_element(name: &str, text: &str) -> Element {
    Element {
        ns: Some(METADATA_NS.to_owned()),
        name: name.to_owned(),
        text: text.to_owned(),
        ..Element::default()
    }
}

/// Sets the text child `name` of `children`, replacing it where present and otherwise
/// inserting it where `sequence` (the type's XSD sequence) puts it.
pub fn set_in_sequence(children: &mut Vec<Element>, sequence: &[&str], name: &str, text: &str) {
    if let Some(existing) = children.iter_mut().find(|c| c.name == name) {
        existing.text = text.to_owned();
        existing.children.clear();
        existing.attributes.clear();
        return;
    }
    let rank = |n: &str| sequence.iter().position(|s| *s == n).unwrap_or(usize::MAX);
    let at = children
        .iter()
        .position(|c| rank(&c.name) > rank(name))
        .unwrap_or(children.len());
    children.insert(at, text_element(name, text));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn a_read_record_round_trips_without_full_name_and_nils() {
        let record = parse(
            br#"<records xmlns="http://soap.sforce.com/2006/04/metadata" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><fullName>X</fullName><a>1 &amp; 2</a><b xsi:nil="true"/><c><d>x</d></c></records>"#,
        )
        .unwrap();
        let file = metadata_file("T", &record.children);
        assert_eq!(
            file,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<T xmlns=\"http://soap.sforce.com/2006/04/metadata\">\n    <a>1 &amp; 2</a>\n    <c>\n        <d>x</d>\n    </c>\n</T>\n"
        );
        let again = parse(file.as_bytes()).unwrap();
        assert_eq!(again.child_text(METADATA_NS, "a"), Some("1 & 2"));
    }

    #[test]
    fn set_in_sequence_replaces_or_inserts_in_order() {
        let seq = ["a", "b", "c", "d"];
        let mut children = vec![text_element("a", "1"), text_element("d", "4")];
        set_in_sequence(&mut children, &seq, "c", "3");
        set_in_sequence(&mut children, &seq, "a", "one");
        let names: Vec<(&str, &str)> = children
            .iter()
            .map(|c| (c.name.as_str(), c.text.as_str()))
            .collect();
        assert_eq!(names, [("a", "one"), ("c", "3"), ("d", "4")]);
    }
}
