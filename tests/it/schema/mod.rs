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

use envelope::{Part, split_document};
use namespaces::*;
use wsdl::schema_path;

mod envelope;
mod namespaces;
#[cfg(test)]
mod tests;
mod wsdl;

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
    "SecuritySettings",
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
