//! The validator's own tests: what the v66.0 schema accepts and refuses, and how failures read.

use super::wsdl::build_schema;
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
    let empty_body =
        format!(r#"<soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body/></soapenv:Envelope>"#);
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
