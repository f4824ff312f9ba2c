//! Validation of the XML ipguard sends to Salesforce against the Metadata API v66.0 schema.
//!
//! The schema is the single `<xsd:schema>` inside `tests/fixtures/salesforce/metadata.wsdl`, a
//! byte-identical copy of Salesforce's published v66.0 WSDL (see `SOURCES.md` there). It is
//! extracted once per test process and checked with libxml2's `xmllint`. The extracted schema
//! differs from the WSDL in exactly these ways:
//!
//! - the namespace declarations of `<definitions>` that the schema uses (`xsd`, `tns`) are copied
//!   onto `<xsd:schema>`, so that it stands alone;
//! - global elements `Profile` and `Package` are added: the WSDL declares only the complexTypes,
//!   but `profiles/*.profile` and `package.xml` in a deploy zip have them as root elements; for
//!   the same reason so are the other metadata types in [`ADDED_ROOTS`], the root elements of
//!   the files in `salesforce-metadata/` (checked by `salesforce_metadata.rs`);
//! - **one deliberate deviation**: in complexType `DeployOptions`, `testLevel` gets
//!   `minOccurs="0"`. ipguard omits `testLevel` on purpose: production orgs refuse `NoTestRun`
//!   (`INVALID_OPERATION: testLevel of NoTestRun cannot be used in production organizations`)
//!   and, since API 34.0, a deploy whose package holds no Apex runs no tests by default.
//!   Building the schema panics if this patch does not apply exactly once, so a changed WSDL
//!   cannot silently drop it.
//!
//! Accepted documents: a document whose root is a global element of the schema (`deploy`,
//! `readMetadata`, `SessionHeader`, …, `Profile`, `Package`), or a whole SOAP 1.1 envelope. An
//! envelope's structure is checked here (`Envelope`, optional `Header` before exactly one
//! `Body`, whose single child is the request; no other elements or text), and each `Header`
//! child and the `Body` child are lifted out, with the namespace declarations in scope from their
//! ancestors, and validated on their own. Header blocks are validated as they are, so SOAP
//! attributes such as `soapenv:mustUnderstand` on them would be reported (ipguard sends none).
//!
//! Cost: one `xmllint` run takes about 0.5 s (measured 0.49 s on a 2-core machine), nearly
//! all of it compiling the 2 MB schema; 20 documents in one run cost the same. Check
//! several documents in one run with [`assert_all_valid`] or [`validate_each`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, PrefixDeclaration, ResolveResult};

const METADATA_NS: &str = "http://soap.sforce.com/2006/04/metadata";
const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";
const WSDL_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/salesforce/metadata.wsdl"
);
/// ComplexTypes of the WSDL that get a global element of the same name, so that a metadata file
/// whose root is one of them validates: `Profile` and `Package` for ipguard's deploys, the rest
/// for `salesforce-metadata/`. Building the schema panics if the WSDL lacks one of the types or
/// already declares such an element.
pub const ADDED_ROOTS: &[&str] = &[
    "Profile",
    "Package",
    "ApexClass",
    "ApexTrigger",
    "ConnectedApp",
    "CustomField",
    "CustomMetadata",
    "CustomObject",
    "ExternalClientApplication",
    "ExternalCredential",
    "ExtlClntAppConfigurablePolicies",
    "ExtlClntAppGlobalOauthSettings",
    "ExtlClntAppOauthConfigurablePolicies",
    "ExtlClntAppOauthSettings",
    "Flow",
    "NamedCredential",
    "PermissionSet",
    "PlatformEventSubscriberConfig",
    "Workflow",
];
/// How much of a document a failure message shows (head and tail).
const EXCERPT_BYTES: usize = 4096;
const XMLLINT_MISSING: &str = "xmllint not found: install libxml2-utils (apt-get install \
     libxml2-utils) — outgoing Metadata API XML must be validated against the WSDL schema";

/// Panics unless `xml` is valid against the Metadata API v66.0 schema (see the module docs for
/// what is accepted). The panic message holds xmllint's full error output and the document,
/// truncated to a few KB.
pub fn assert_valid(xml: &str) {
    if skipped_without_xmllint() {
        return;
    }
    if let Err(report) = validate(xml) {
        panic!(
            "XML is not valid against the Metadata API v66.0 schema:\n{report}\n\
             --- document ({} bytes) ---\n{}",
            xml.len(),
            excerpt(xml)
        );
    }
}

/// [`assert_valid`] for many documents with a single `xmllint` run (one run costs ~0.5 s).
/// Panics listing every invalid document by index.
pub fn assert_all_valid(docs: &[&str]) {
    if skipped_without_xmllint() {
        return;
    }
    let failures: Vec<String> = validate_each(docs)
        .into_iter()
        .zip(docs)
        .enumerate()
        .filter_map(|(i, (result, doc))| {
            result.err().map(|report| {
                format!(
                    "=== document #{i} ===\n{report}\n--- document #{i} ({} bytes) ---\n{}",
                    doc.len(),
                    excerpt(doc)
                )
            })
        })
        .collect();
    if !failures.is_empty() {
        panic!(
            "{} of {} documents are not valid against the Metadata API v66.0 schema:\n{}",
            failures.len(),
            docs.len(),
            failures.join("\n")
        );
    }
}

/// True when `xmllint` is missing on a developer's machine: the caller skips its schema check.
/// The first call says SKIPPED loudly on stderr. Under CI (`CI` set) a missing `xmllint`
/// panics instead, since CI must validate every outgoing document (`.ci/run` installs it).
/// Tests that call [`validate`] or [`validate_each`] directly (to see a document refused) call
/// this first; those two panic when `xmllint` is missing, so a forgotten guard fails loudly.
pub fn skipped_without_xmllint() -> bool {
    static MISSING: OnceLock<bool> = OnceLock::new();
    let missing = *MISSING.get_or_init(|| {
        let missing = Command::new("xmllint")
            .arg("--version")
            .output()
            .is_err_and(|e| e.kind() == ErrorKind::NotFound);
        if missing && std::env::var_os("CI").is_none() {
            // Straight to fd 2: libtest swallows a passing test's eprintln! output.
            let banner = "\n=========================================================================\n\
                 SKIPPED: the Metadata API schema checks need xmllint (not installed)\n\
                 run .ci/run or: apt-get install libxml2-utils\n\
                 =========================================================================\n";
            let _ = std::io::stderr().write_all(banner.as_bytes());
        }
        missing
    });
    if missing && std::env::var_os("CI").is_some() {
        panic!("{XMLLINT_MISSING} — CI must run the schema checks; .ci/run installs it");
    }
    missing
}

/// Non-panicking form of [`assert_valid`]: `Err` holds the reason (xmllint's output for the
/// document, or the envelope structure error). Panics only when validation itself cannot run
/// (xmllint missing, schema not compiling), so that an `Err` always means "invalid document".
pub fn validate(xml: &str) -> Result<(), String> {
    validate_each(&[xml])
        .pop()
        .expect("validate_each returns one result per document")
}

/// [`validate`] for many documents with a single `xmllint` run; one result per document, in order.
pub fn validate_each(docs: &[&str]) -> Vec<Result<(), String>> {
    let dir = tempfile::Builder::new()
        .prefix("ipguard-xml-")
        .tempdir()
        .expect("create a temp dir for the documents to validate");
    let split: Vec<Result<Vec<(Part, String)>, String>> = docs
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            split_document(doc).map(|parts| {
                parts
                    .into_iter()
                    .map(|part| {
                        let file = format!("d{i}-{}.xml", part.name);
                        std::fs::write(dir.path().join(&file), &part.xml)
                            .expect("write a document to validate into the temp dir");
                        (part, file)
                    })
                    .collect()
            })
        })
        .collect();
    let files: Vec<&str> = split
        .iter()
        .flatten()
        .flatten()
        .map(|(_, file)| file.as_str())
        .collect();
    if files.is_empty() {
        return split.into_iter().map(|r| r.map(|_| ())).collect();
    }
    let (code, output) = run_xmllint(schema_path(), dir.path(), &files);

    // xmllint prefixes its messages with the file name; continuation lines (source excerpts and
    // carets under parser errors) belong to the file named last.
    let mut by_file: BTreeMap<&str, String> = BTreeMap::new();
    let mut unattributed = String::new();
    let mut current: Option<&str> = None;
    for line in output.lines() {
        if let Some(file) = files.iter().copied().find(|f| {
            line.strip_prefix(f)
                .is_some_and(|rest| rest.starts_with([':', ' ']))
        }) {
            current = Some(file);
        }
        let sink = match current {
            Some(file) => by_file.entry(file).or_default(),
            None => &mut unattributed,
        };
        sink.push_str(line);
        sink.push('\n');
    }
    let passed = |file: &str| {
        by_file
            .get(file)
            .is_some_and(|out| out.lines().any(|l| l == format!("{file} validates")))
    };
    let all_passed = files.iter().all(|f| passed(f));
    assert_eq!(
        code == 0,
        all_passed,
        "xmllint's exit status ({code}) disagrees with its per-file verdicts:\n{output}"
    );

    split
        .iter()
        .map(|parts| {
            let parts = parts.as_ref().map_err(String::clone)?;
            let mut report = String::new();
            for (part, file) in parts {
                if passed(file) {
                    continue;
                }
                let out = by_file.get(file.as_str()).map_or("", String::as_str);
                let _ = writeln!(report, "xmllint on {} ({file}):\n{out}", part.name);
                if part.lifted {
                    let _ = writeln!(
                        report,
                        "--- lifted {} as validated ---\n{}",
                        part.name,
                        excerpt(&part.xml)
                    );
                }
            }
            if report.is_empty() {
                Ok(())
            } else {
                if !unattributed.is_empty() {
                    let _ = writeln!(report, "other xmllint output:\n{unattributed}");
                }
                Err(report)
            }
        })
        .collect()
}

/// A document handed to xmllint: the whole input, or one child lifted out of a SOAP envelope.
struct Part {
    /// `document`, `header1-SessionHeader`, `body-readMetadata`, … (also part of the file name).
    name: String,
    xml: String,
    lifted: bool,
}

/// Splits a SOAP 1.1 envelope into its Header children and its Body child, each a standalone
/// document; any other document is returned whole.
fn split_document(xml: &str) -> Result<Vec<Part>, String> {
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

/// In-scope namespace bindings (prefix, raw attribute value) after the last element read,
/// including that element's own; overridden and undeclared (`xmlns=""`) ones are left out.
fn in_scope_bindings(reader: &NsReader<&[u8]>) -> Vec<(Option<String>, String)> {
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
fn declared_prefixes(e: &BytesStart<'_>) -> Result<BTreeSet<Option<String>>, String> {
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
fn xmlns_attributes(bindings: &[(Option<String>, String)]) -> String {
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

fn parse_error(reader: &NsReader<&[u8]>, e: quick_xml::Error) -> String {
    format!(
        "not well-formed XML at byte {}: {e}",
        reader.error_position()
    )
}

fn namespace_of(res: ResolveResult<'_>) -> Result<Option<String>, String> {
    match res {
        ResolveResult::Bound(Namespace(ns)) => Ok(Some(ns.to_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(format!("undeclared namespace prefix `{prefix}`")),
    }
}

fn is_xml_whitespace(text: &str) -> bool {
    text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

fn offset(reader: &NsReader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).expect("a &str's byte offset fits in usize")
}

/// The path of the extracted schema, built once per test process.
///
/// It is written atomically (temp file + rename) to a fixed name in Cargo's scratch directory
/// for integration tests, `CARGO_TARGET_TMPDIR`, so concurrent test processes never read a
/// half-written file and repeated runs do not pile up copies.
fn schema_path() -> &'static Path {
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
fn build_schema(wsdl: &str) -> String {
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
                         re-check the documented testLevel deviation in tests/it/schema.rs"
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
        "<!-- Extracted by tests/it/schema.rs from tests/fixtures/salesforce/metadata.wsdl \
         (Metadata API v66.0). Changes: namespace declarations copied from definitions; global \
         elements for the metadata root types added; DeployOptions/testLevel made optional \
         (minOccurs=0), a deliberate deviation documented in tests/it/schema.rs. -->\n",
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

/// Runs `xmllint --noout --nonet --schema <xsd> <files…>` in `dir`; returns its exit status and
/// its output (stderr, then stdout).
fn run_xmllint(schema: &Path, dir: &Path, files: &[&str]) -> (i32, String) {
    let output = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(schema)
        .args(files)
        .current_dir(dir)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!("{XMLLINT_MISSING}"),
        Err(e) => panic!("cannot run xmllint: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let code = output
        .status
        .code()
        .unwrap_or_else(|| panic!("xmllint was killed: {}\n{text}", output.status));
    match code {
        // 0 valid; 1 not well-formed; 3, 4 schema validity errors.
        0 | 1 | 3 | 4 => (code, text),
        5 => panic!(
            "xmllint could not compile the extracted schema {}:\n{text}",
            schema.display()
        ),
        _ => panic!("xmllint failed to run (exit status {code}):\n{text}"),
    }
}

/// The document, or its head and tail if it is longer than [`EXCERPT_BYTES`].
fn excerpt(s: &str) -> Cow<'_, str> {
    if s.len() <= EXCERPT_BYTES {
        return Cow::Borrowed(s);
    }
    let mut head = EXCERPT_BYTES * 3 / 4;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - EXCERPT_BYTES / 4;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    Cow::Owned(format!(
        "{}\n[… {} bytes elided …]\n{}",
        &s[..head],
        tail - head,
        &s[tail..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = METADATA_NS;
    const SOAP: &str = SOAP_ENV_NS;
    /// An empty zip archive (end-of-central-directory record only), base64.
    const EMPTY_ZIP_B64: &str = "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==";
    /// DeployOptions as ipguard sends them: WSDL order, no `testLevel`.
    const OPTIONS: [(&str, &str); 8] = [
        ("allowMissingFiles", "false"),
        ("autoUpdatePackage", "false"),
        ("checkOnly", "false"),
        ("ignoreWarnings", "false"),
        ("performRetrieve", "false"),
        ("purgeOnDelete", "false"),
        ("rollbackOnError", "true"),
        ("singlePackage", "true"),
    ];

    fn deploy(zip_b64: &str, options: &[(&str, &str)]) -> String {
        let options: String = options
            .iter()
            .map(|(name, value)| format!("<{name}>{value}</{name}>"))
            .collect();
        format!(
            r#"<deploy xmlns="{MD}"><ZipFile>{zip_b64}</ZipFile><DeployOptions>{options}</DeployOptions></deploy>"#
        )
    }

    fn options_with(
        insert_after: &str,
        extra: (&'static str, &'static str),
    ) -> Vec<(&'static str, &'static str)> {
        let mut options = OPTIONS.to_vec();
        let at = options
            .iter()
            .position(|(name, _)| *name == insert_after)
            .expect("option to insert after exists");
        options.insert(at + 1, extra);
        options
    }

    fn profile(ranges: &[(Option<&str>, &str, &str)]) -> String {
        let ranges: String = ranges
            .iter()
            .map(|(description, first, second)| {
                let description = description
                    .map(|d| format!("<description>{d}</description>"))
                    .unwrap_or_default();
                format!("<loginIpRanges>{description}{first}{second}</loginIpRanges>")
            })
            .collect();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Profile xmlns=\"{MD}\">{ranges}</Profile>\n"
        )
    }

    const READ_METADATA: &str = r#"<readMetadata xmlns="http://soap.sforce.com/2006/04/metadata"><type>Profile</type><fullNames>Admin</fullNames><fullNames>Custom%3A Sales</fullNames><fullNames>Standard</fullNames></readMetadata>"#;

    /// The `Err` of `result`, which must mention every one of `needles`.
    #[track_caller]
    fn assert_invalid(case: &str, result: &Result<(), String>, needles: &[&str]) {
        match result {
            Ok(()) => panic!("{case}: expected invalid, but it validated"),
            Err(report) => {
                for needle in needles {
                    assert!(
                        report.contains(needle),
                        "{case}: the error should mention {needle:?}:\n{report}"
                    );
                }
            }
        }
    }

    #[track_caller]
    fn assert_ok(case: &str, result: &Result<(), String>) {
        if let Err(report) = result {
            panic!("{case}: expected valid:\n{report}");
        }
    }

    #[test]
    fn deploy_options_follow_the_v66_wsdl_without_test_level() {
        if skipped_without_xmllint() {
            return;
        }
        let valid = deploy(EMPTY_ZIP_B64, &OPTIONS);
        let with_run_all_tests = deploy(
            EMPTY_ZIP_B64,
            &options_with("rollbackOnError", ("runAllTests", "false")),
        );
        let mut swapped = OPTIONS.to_vec();
        swapped.swap(1, 2); // checkOnly before autoUpdatePackage
        let out_of_order = deploy(EMPTY_ZIP_B64, &swapped);
        // The deviation makes testLevel optional, it does not remove it.
        let with_test_level = deploy(
            EMPTY_ZIP_B64,
            &options_with("singlePackage", ("testLevel", "RunLocalTests")),
        );
        let bad_test_level = deploy(
            EMPTY_ZIP_B64,
            &options_with("singlePackage", ("testLevel", "RunNoTests")),
        );
        let bad_base64 = deploy("not base64!", &OPTIONS);

        let results = validate_each(&[
            &valid,
            &with_run_all_tests,
            &out_of_order,
            &with_test_level,
            &bad_test_level,
            &bad_base64,
        ]);
        assert_ok("deploy, WSDL order, no testLevel", &results[0]);
        assert_invalid(
            "deploy with runAllTests",
            &results[1],
            &["runAllTests", "not expected"],
        );
        assert_invalid(
            "deploy options out of order",
            &results[2],
            &["checkOnly", "not expected"],
        );
        assert_ok("deploy with testLevel RunLocalTests", &results[3]);
        assert_invalid(
            "deploy with unknown testLevel",
            &results[4],
            &["testLevel", "RunNoTests"],
        );
        assert_invalid(
            "deploy with a non-base64 zip",
            &results[5],
            &["ZipFile", "base64Binary"],
        );
    }

    #[test]
    fn profile_login_ip_ranges_follow_xsd_order() {
        if skipped_without_xmllint() {
            return;
        }
        let end = "<endAddress>52.1.2.10</endAddress>";
        let start = "<startAddress>52.1.2.3</startAddress>";
        let valid = profile(&[
            (Some("Heroku Private Space outbound (ipguard)"), end, start),
            (
                None,
                "<endAddress>54.9.9.9</endAddress>",
                "<startAddress>54.9.9.9</startAddress>",
            ),
        ]);
        let start_first = profile(&[(Some("range"), start, end)]);
        let missing_end = profile(&[(Some("range"), start, "")]);

        let results = validate_each(&[&valid, &start_first, &missing_end]);
        assert_ok("profile, description/endAddress/startAddress", &results[0]);
        assert_invalid(
            "startAddress before endAddress",
            &results[1],
            &["startAddress", "endAddress"],
        );
        assert_invalid(
            "missing endAddress",
            &results[2],
            &["startAddress", "endAddress"],
        );
    }

    #[test]
    fn package_read_list_check_and_headers_are_valid() {
        if skipped_without_xmllint() {
            return;
        }
        let package = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Package xmlns=\"{MD}\"><types><members>Custom%3A Sales</members><name>Profile</name></types><version>66.0</version></Package>\n"
        );
        let list = format!(
            r#"<listMetadata xmlns="{MD}"><queries><type>Profile</type></queries><asOfVersion>66.0</asOfVersion></listMetadata>"#
        );
        let check = format!(
            r#"<checkDeployStatus xmlns="{MD}"><asyncProcessId>0Af3D00001NViC1SAL</asyncProcessId><includeDetails>true</includeDetails></checkDeployStatus>"#
        );
        let session = format!(
            r#"<SessionHeader xmlns="{MD}"><sessionId>00Dxx0000001gEH!AQ4AQFpV.not-a-real-token</sessionId></SessionHeader>"#
        );
        // The WSDL makes all three CallOptions children required.
        let call_options = format!(
            r#"<CallOptions xmlns="{MD}"><client>ipguard/0.1</client><perfOption>NONE</perfOption><uiRequestId>ipguard-run-1</uiRequestId></CallOptions>"#
        );
        assert_all_valid(&[
            &package,
            READ_METADATA,
            &list,
            &check,
            &session,
            &call_options,
        ]);
    }

    #[test]
    fn ids_and_required_fields_are_enforced() {
        if skipped_without_xmllint() {
            return;
        }
        // tns:ID is a string of length 18: the 15-character form is refused.
        let short_id = format!(
            r#"<checkDeployStatus xmlns="{MD}"><asyncProcessId>0Af3D00001NViC1</asyncProcessId><includeDetails>true</includeDetails></checkDeployStatus>"#
        );
        let package_without_version = format!(
            r#"<Package xmlns="{MD}"><types><members>Admin</members><name>Profile</name></types></Package>"#
        );
        let read_without_type =
            format!(r#"<readMetadata xmlns="{MD}"><fullNames>Admin</fullNames></readMetadata>"#);
        // Unlike many SOAP clients assume, CallOptions is not `client` alone in the WSDL:
        // perfOption and uiRequestId are required too. Send all three or no CallOptions.
        let call_options_client_only =
            format!(r#"<CallOptions xmlns="{MD}"><client>ipguard/0.1</client></CallOptions>"#);
        let results = validate_each(&[
            &short_id,
            &package_without_version,
            &read_without_type,
            &call_options_client_only,
        ]);
        assert_invalid(
            "15-character asyncProcessId",
            &results[0],
            &["asyncProcessId", "length"],
        );
        assert_invalid("Package without version", &results[1], &["version"]);
        assert_invalid(
            "readMetadata without type",
            &results[2],
            &["fullNames", "type"],
        );
        assert_invalid("CallOptions with client only", &results[3], &["perfOption"]);
    }

    #[test]
    fn soap_envelopes_are_checked_part_by_part() {
        if skipped_without_xmllint() {
            return;
        }
        let default_ns_on_body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP}">
  <soapenv:Header>
    <SessionHeader xmlns="{MD}"><sessionId>00Dxx!token</sessionId></SessionHeader>
  </soapenv:Header>
  <soapenv:Body>
    {READ_METADATA}
  </soapenv:Body>
</soapenv:Envelope>
"#
        );
        let prefix_on_envelope = format!(
            r#"<s:Envelope xmlns:s="{SOAP}" xmlns:md="{MD}"><s:Header><md:SessionHeader><md:sessionId>00Dxx!token</md:sessionId></md:SessionHeader></s:Header><s:Body><md:readMetadata><md:type>Profile</md:type><md:fullNames>Admin</md:fullNames></md:readMetadata></s:Body></s:Envelope>"#
        );
        // The way Salesforce writes its responses: the metadata namespace as the default on
        // the Envelope, carried down to the unprefixed body element.
        let default_ns_on_envelope = format!(
            r#"<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns="{MD}"><soapenv:Body><checkDeployStatus><asyncProcessId>0Af3D00001NViC1SAL</asyncProcessId><includeDetails>false</includeDetails></checkDeployStatus></soapenv:Body></soapenv:Envelope>"#
        );
        let wrong_body_ns = format!(
            r#"<soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body><readMetadata xmlns="urn:partner.soap.sforce.com"><type>Profile</type></readMetadata></soapenv:Body></soapenv:Envelope>"#
        );
        let bad_header = format!(
            r#"<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns:md="{MD}"><soapenv:Header><md:SessionHeader/></soapenv:Header><soapenv:Body>{READ_METADATA}</soapenv:Body></soapenv:Envelope>"#
        );
        let two_body_children = format!(
            r#"<soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body>{READ_METADATA}{READ_METADATA}</soapenv:Body></soapenv:Envelope>"#
        );
        let empty_body = format!(
            r#"<soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body/></soapenv:Envelope>"#
        );
        let soap12 = format!(
            r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>{READ_METADATA}</env:Body></env:Envelope>"#
        );
        let text_in_body = format!(
            r#"<soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body>oops{READ_METADATA}</soapenv:Body></soapenv:Envelope>"#
        );

        let results = validate_each(&[
            &default_ns_on_body,
            &prefix_on_envelope,
            &default_ns_on_envelope,
            &wrong_body_ns,
            &bad_header,
            &two_body_children,
            &empty_body,
            &soap12,
            &text_in_body,
        ]);
        assert_ok(
            "envelope, metadata namespace default on the body",
            &results[0],
        );
        assert_ok(
            "envelope, metadata prefix declared on Envelope",
            &results[1],
        );
        assert_ok(
            "envelope, metadata namespace default on Envelope",
            &results[2],
        );
        assert_invalid(
            "body element in the partner namespace",
            &results[3],
            &[
                "urn:partner.soap.sforce.com",
                "No matching global declaration",
            ],
        );
        assert_invalid(
            "SessionHeader without sessionId",
            &results[4],
            &["header1-SessionHeader", "sessionId"],
        );
        assert_invalid(
            "two body children",
            &results[5],
            &["exactly one element", "found 2"],
        );
        assert_invalid("empty body", &results[6], &["Body is empty"]);
        assert_invalid("SOAP 1.2 envelope", &results[7], &["SOAP 1.1"]);
        assert_invalid("text in Body", &results[8], &["directly inside Body"]);
    }

    #[test]
    fn assert_valid_and_assert_all_valid_panic_with_xmllint_output_and_document() {
        if skipped_without_xmllint() {
            return;
        }
        // A big zip so that the document has to be truncated in the message.
        let big_zip = "QUFB".repeat(25_000);
        let bad = deploy(
            &big_zip,
            &options_with("rollbackOnError", ("runAllTests", "false")),
        );
        let message = |payload: Box<dyn std::any::Any + Send>| {
            payload
                .downcast::<String>()
                .map(|s| *s)
                .expect("the panic message is a formatted String")
        };

        let single = message(
            std::panic::catch_unwind(|| assert_valid(&bad))
                .expect_err("assert_valid must panic on a deploy with runAllTests"),
        );
        for needle in [
            "Schemas validity error",
            "runAllTests",
            "<deploy xmlns=",
            "bytes elided",
        ] {
            assert!(single.contains(needle), "missing {needle:?} in:\n{single}");
        }
        assert!(
            single.len() < 3 * EXCERPT_BYTES,
            "message not truncated: {} bytes",
            single.len()
        );

        let good = deploy(EMPTY_ZIP_B64, &OPTIONS);
        let many = message(
            std::panic::catch_unwind(|| assert_all_valid(&[&good, READ_METADATA, &bad]))
                .expect_err("assert_all_valid must panic when one document is invalid"),
        );
        assert!(many.contains("1 of 3 documents"), "{many}");
        assert!(many.contains("=== document #2 ==="), "{many}");
        assert!(!many.contains("=== document #0 ==="), "{many}");
    }

    #[test]
    fn schema_build_refuses_a_wsdl_where_the_test_level_patch_does_not_apply() {
        let wsdl = std::fs::read_to_string(WSDL_PATH).expect("read the WSDL fixture");
        let original = r#"<xsd:element name="testLevel" type="tns:TestLevel"/>"#;
        assert_eq!(
            wsdl.matches(original).count(),
            1,
            "fixture has one testLevel element"
        );

        let already_optional = wsdl.replace(
            original,
            r#"<xsd:element name="testLevel" minOccurs="0" type="tns:TestLevel"/>"#,
        );
        let removed = wsdl.replace(original, "");
        for (case, changed) in [("already optional", already_optional), ("removed", removed)] {
            let result = std::panic::catch_unwind(|| build_schema(&changed));
            assert!(
                result.is_err(),
                "build_schema must panic when testLevel is {case}"
            );
        }

        let built = build_schema(&wsdl);
        assert!(
            built.contains(r#"<xsd:element minOccurs="0" name="testLevel" type="tns:TestLevel"/>"#)
        );
        assert!(built.contains(r#"<xsd:element name="Profile" type="tns:Profile"/>"#));
        assert!(built.contains(r#"<xsd:element name="Package" type="tns:Package"/>"#));
        // Only the prefixes the schema uses are copied: not the WSDL default namespace, not soap.
        assert!(built.contains(&format!(
            r#"<xsd:schema xmlns:xsd="{XSD_NS}" xmlns:tns="{MD}" elementFormDefault="qualified""#
        )));
        assert!(built.trim_end().ends_with("</xsd:schema>"));
    }
}
