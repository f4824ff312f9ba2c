//! The schema xmllint validates against: extracted from the v66.0 WSDL once per test process,
//! with the changes the module docs of `schema` list.

use super::*;

/// The path of the extracted schema, built once per test process.
///
/// It is written atomically (temp file + rename) to a fixed name in Cargo's scratch directory
/// for integration tests, `CARGO_TARGET_TMPDIR`, so concurrent test processes never read a
/// half-written file and repeated runs do not pile up copies.
pub(super) fn schema_path() -> &'static Path {
    static SCHEMA: OnceLock<PathBuf> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let wsdl = std::fs::read_to_string(WSDL_PATH)
            .unwrap_or_else(|e| panic!("cannot read the WSDL fixture {WSDL_PATH}: {e}"));
        let xsd = build_schema(&wsdl);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("salesforce-metadata-v66");
        std::fs::create_dir_all(&dir).expect("create the schema directory in CARGO_TARGET_TMPDIR");
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)
            .expect("create a temp file for the extracted schema");
        tmp.write_all(xsd.as_bytes())
            .expect("write the extracted schema");
        let path = dir.join("metadata-v66.xsd");
        tmp.persist(&path)
            .expect("move the extracted schema into place");
        path
    })
}

/// Extracts the schema from the WSDL text and applies the changes listed in the module docs.
pub(super) fn build_schema(wsdl: &str) -> String {
    /// Attributes of XML Schema whose values are QNames (resolved with in-scope prefixes).
    const QNAME_ATTRIBUTES: &[&str] = &[
        "type",
        "base",
        "ref",
        "itemType",
        "memberTypes",
        "substitutionGroup",
        "refer",
    ];
    struct SchemaStart {
        offset: usize,
        qname_len: usize,
        in_scope: Vec<(Option<String>, String)>,
        own: BTreeSet<Option<String>>,
    }

    let mut reader = NsReader::from_str(wsdl);
    let mut schema: Option<SchemaStart> = None;
    let mut schema_end: Option<(usize, usize)> = None; // (start of `</xsd:schema>`, end)
    let mut depth = 0usize; // inside the schema element: 1 = its direct children
    let mut used: BTreeSet<Option<String>> = BTreeSet::new();
    let mut global_type: Option<String> = None;
    let mut global_types = BTreeSet::new();
    let mut global_elements = BTreeSet::new();
    let mut test_level_insertions = Vec::new();

    loop {
        let start = offset(&reader);
        let (res, event) = reader
            .read_resolved_event()
            .expect("metadata.wsdl is well-formed XML");
        let ns = namespace_of(res).expect("metadata.wsdl declares every prefix it uses");
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let is_xsd =
                    |local: &str| ns.as_deref() == Some(XSD_NS) && e.local_name().as_ref() == local;
                if depth == 0 {
                    if is_xsd("schema") {
                        assert!(
                            schema.is_none(),
                            "metadata.wsdl holds more than one xsd:schema; expected exactly one"
                        );
                        assert!(!empty, "metadata.wsdl's xsd:schema is empty");
                        schema = Some(SchemaStart {
                            offset: start,
                            qname_len: e.name().as_ref().len(),
                            in_scope: in_scope_bindings(&reader),
                            own: declared_prefixes(e).expect("xsd:schema has sane attributes"),
                        });
                        note_prefixes(e, QNAME_ATTRIBUTES, &mut used);
                        depth = 1;
                    }
                    continue;
                }
                note_prefixes(e, QNAME_ATTRIBUTES, &mut used);
                let name = attribute(e, "name");
                if depth == 1 {
                    if is_xsd("complexType") {
                        global_types.extend(name.clone());
                        if !empty {
                            global_type.clone_from(&name);
                        }
                    } else if is_xsd("element") {
                        global_elements.extend(name.clone());
                    }
                }
                if is_xsd("element")
                    && name.as_deref() == Some("testLevel")
                    && global_type.as_deref() == Some("DeployOptions")
                {
                    assert_eq!(
                        attribute(e, "minOccurs"),
                        None,
                        "DeployOptions/testLevel in metadata.wsdl already has minOccurs; \
                         re-check the documented testLevel deviation in tests/it/schema/mod.rs"
                    );
                    test_level_insertions.push(start + 1 + e.name().as_ref().len());
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(_) if depth > 0 => {
                depth -= 1;
                if depth == 1 {
                    global_type = None;
                } else if depth == 0 {
                    schema_end = Some((start, offset(&reader)));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }

    let schema = schema.expect("metadata.wsdl has no xsd:schema element");
    let (end_tag, end) = schema_end.expect("metadata.wsdl's xsd:schema is not closed");
    assert_eq!(
        test_level_insertions.len(),
        1,
        "the testLevel deviation must patch exactly one element DeployOptions/testLevel in \
         metadata.wsdl, found {}; the WSDL changed, re-check the deviation",
        test_level_insertions.len()
    );
    let test_level = test_level_insertions[0];
    for required in ["Profile", "Package", "DeployOptions"] {
        assert!(
            global_types.contains(required),
            "metadata.wsdl has no complexType {required}"
        );
    }
    for added in ADDED_ROOTS {
        assert!(
            global_types.contains(*added),
            "metadata.wsdl has no complexType {added}"
        );
        assert!(
            !global_elements.contains(*added),
            "metadata.wsdl now declares a global element {added}; drop it from the additions"
        );
    }
    let bound_to = |prefix: &str| {
        schema
            .in_scope
            .iter()
            .find(|(p, _)| p.as_deref() == Some(prefix))
            .map(|(_, ns)| ns.as_str())
    };
    // The added elements are written with these prefixes.
    assert_eq!(bound_to("xsd"), Some(XSD_NS), "prefix xsd in metadata.wsdl");
    assert_eq!(
        bound_to("tns"),
        Some(METADATA_NS),
        "prefix tns in metadata.wsdl"
    );
    for prefix in used.iter().flatten() {
        assert!(
            prefix == "xml" || bound_to(prefix).is_some(),
            "the schema uses prefix {prefix}, which metadata.wsdl does not declare"
        );
    }
    let copied: Vec<_> = schema
        .in_scope
        .iter()
        .filter(|(prefix, _)| used.contains(prefix) && !schema.own.contains(prefix))
        .cloned()
        .collect();

    let name_end = schema.offset + 1 + schema.qname_len;
    assert!(name_end < test_level && test_level < end_tag && end_tag < end);
    let mut xsd = String::with_capacity(end - schema.offset + 1024);
    xsd.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xsd.push_str(
        "<!-- Extracted by tests/it/schema/ from tests/fixtures/salesforce/metadata.wsdl \
         (Metadata API v66.0). Changes: namespace declarations copied from definitions; global \
         elements for the metadata root types added; DeployOptions/testLevel made optional \
         (minOccurs=0), a deliberate deviation documented in tests/it/schema/mod.rs. -->\n",
    );
    xsd.push_str(&wsdl[schema.offset..name_end]);
    xsd.push_str(&xmlns_attributes(&copied));
    xsd.push_str(&wsdl[name_end..test_level]);
    xsd.push_str(" minOccurs=\"0\"");
    xsd.push_str(&wsdl[test_level..end_tag]);
    for added in ADDED_ROOTS {
        let _ = write!(
            xsd,
            " <xsd:element name=\"{added}\" type=\"tns:{added}\"/>\n  "
        );
    }
    xsd.push_str(&wsdl[end_tag..end]);
    xsd.push('\n');
    xsd
}

/// Records the namespace prefixes an element of the schema depends on: its own name's, its
/// attributes' and those inside QName-valued attributes (`None` = the default namespace).
fn note_prefixes(
    e: &BytesStart<'_>,
    qname_attributes: &[&str],
    used: &mut BTreeSet<Option<String>>,
) {
    used.insert(e.name().prefix().map(|p| p.as_ref().to_owned()));
    for attr in e.attributes() {
        let attr = attr.expect("metadata.wsdl has well-formed attributes");
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        if let Some(prefix) = attr.key.prefix() {
            used.insert(Some(prefix.as_ref().to_owned()));
        }
        if qname_attributes.contains(&attr.key.as_ref()) {
            for qname in attr.value.split_whitespace() {
                used.insert(qname.split_once(':').map(|(p, _)| p.to_owned()));
            }
        }
    }
}

/// The raw value of an unprefixed attribute.
fn attribute(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .filter_map(Result::ok)
        .find(|a| a.key.as_ref() == name)
        .map(|a| a.value.into_owned())
}
