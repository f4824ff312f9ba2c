//! Reading deploy zips and judging them against the org.

use std::io::{Cursor, Write};

use ipguard_wire::xml::METADATA_NS;

use zip::write::SimpleFileOptions;

use super::package::*;
use super::*;

fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in entries {
        zip.start_file(*name, SimpleFileOptions::default()).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn package_xml(members: &[&str]) -> String {
    let members: String = members
        .iter()
        .map(|m| format!("<members>{m}</members>"))
        .collect();
    format!(
        "<Package xmlns=\"{METADATA_NS}\"><types>{members}<name>Profile</name></types><version>66.0</version></Package>"
    )
}

fn options() -> DeployOptions {
    DeployOptions {
        check_only: false,
        ignore_warnings: false,
        rollback_on_error: true,
        single_package: true,
        test_level: None,
    }
}

fn range(start: &str, end: &str) -> LoginIpRange {
    LoginIpRange::parse_existing(start, end, None).unwrap()
}

/// An org of profiles only.
struct Profiles(Vec<(&'static str, Vec<LoginIpRange>)>);

impl Org for Profiles {
    fn profile_ranges(&self, full_name: &str) -> Option<Vec<LoginIpRange>> {
        self.0
            .iter()
            .find(|(n, _)| *n == full_name)
            .map(|(_, r)| r.clone())
    }
    fn session_setting(&self, _: &str) -> Option<String> {
        None
    }
    fn eca_policies(&self, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn connected_app(&self, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
}

#[test]
fn size_limit_problem_names_the_range_and_the_limit() {
    let error = LoginIpRange::new(
        "10.0.0.0".parse().unwrap(),
        "11.255.255.255".parse().unwrap(),
        None,
    )
    .unwrap_err();
    assert_eq!(
        range_problem(&error),
        "Invalid IP address range 10.0.0.0 - 11.255.255.255: a login IP range can contain at most 16,777,216 addresses"
    );
    assert_eq!(thousands(7), "7");
    assert_eq!(thousands(1000), "1,000");
}

#[test]
fn unsafe_paths_fail_the_deploy() {
    for bad in ["../evil", "profiles/../../x", "/abs", "a\\b", "./x"] {
        let package = read_package(&zip_of(&[("package.xml", &package_xml(&[])), (bad, "x")]));
        assert_eq!(package.problems.len(), 1, "{bad}");
        let problem = package.problems[0].problem.as_deref().unwrap();
        assert!(problem.starts_with("Invalid file path"), "{problem}");
    }
}

#[test]
fn not_a_zip_and_missing_package_xml_are_failures() {
    let package = read_package(b"not a zip");
    assert!(
        package.problems[0]
            .problem
            .as_deref()
            .unwrap()
            .starts_with("Unable to read the zip file")
    );
    let package = read_package(&zip_of(&[("profiles/Admin.profile", "<x/>")]));
    assert_eq!(
        package.problems[0].problem.as_deref(),
        Some("No package.xml found")
    );
    let evaluation = evaluate(
        &package,
        &options(),
        &Profiles(Vec::new()),
        &DeployOutcome::Succeed,
    );
    assert_eq!(evaluation.status, "Failed");
    assert_eq!(evaluation.component_errors, 0);
}

#[test]
fn partial_deploy_applies_what_succeeded_without_rollback() {
    let profile = format!(
        "<Profile xmlns=\"{METADATA_NS}\"><loginIpRanges><endAddress>10.0.0.1</endAddress><startAddress>10.0.0.1</startAddress></loginIpRanges></Profile>"
    );
    let package = read_package(&zip_of(&[
        ("package.xml", &package_xml(&["Admin", "Ghost"])),
        ("profiles/Admin.profile", &profile),
        ("profiles/Ghost.profile", &profile),
    ]));
    let current = &Profiles(vec![("Admin", vec![range("10.0.0.9", "10.0.0.9")])]);
    let with_rollback = evaluate(&package, &options(), current, &DeployOutcome::Succeed);
    assert_eq!(with_rollback.status, "Failed");
    assert!(with_rollback.apply.is_empty());
    let without = DeployOptions {
        rollback_on_error: false,
        ..options()
    };
    let partial = evaluate(&package, &without, current, &DeployOutcome::Succeed);
    assert_eq!(partial.status, "SucceededPartial");
    assert_eq!(partial.apply.len(), 1);
    assert!(matches!(&partial.apply[0], Change::Ranges(name, _) if name == "Admin"));
    assert_eq!(
        partial.failures[0].problem.as_deref(),
        Some("In field: fullName - no Profile named Ghost found")
    );
}

#[test]
fn wildcard_and_nested_package_are_understood() {
    let profile = format!("<Profile xmlns=\"{METADATA_NS}\"/>");
    let package = read_package(&zip_of(&[
        ("src/package.xml", &package_xml(&["*"])),
        ("src/profiles/Custom%3A Sales.profile", &profile),
    ]));
    assert!(package.problems.is_empty());
    assert_eq!(package.profile_members(), ["Custom%3A Sales"]);
    assert_eq!(
        package.members[0].file_name,
        "src/profiles/Custom%3A Sales.profile"
    );
}

fn profile_content(body: &str) -> Content {
    read_profile(format!("<Profile xmlns=\"{METADATA_NS}\">{body}</Profile>").as_bytes())
}

fn problem(content: Content) -> String {
    match content {
        Content::Invalid(problem) => problem,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const RANGE: &str = "<loginIpRanges><endAddress>10.0.0.9</endAddress>\
                     <startAddress>10.0.0.1</startAddress></loginIpRanges>";

#[test]
fn profile_elements_must_follow_the_xsd_sequence() {
    // In order: accepted.
    assert!(matches!(
        profile_content(&format!(
            "<custom>true</custom>{RANGE}<userLicense>Salesforce</userLicense>"
        )),
        Content::Ranges(Some(_))
    ));
    // custom belongs before loginIpRanges.
    assert_eq!(
        problem(profile_content(&format!("{RANGE}<custom>true</custom>"))),
        "Error parsing file: Element custom invalid at this location in type Profile"
    );
    // A block of loginIpRanges split by another element (help article 000383335's case).
    assert_eq!(
        problem(profile_content(&format!(
            "{RANGE}<objectPermissions/>{RANGE}"
        ))),
        "Error parsing file: Element loginIpRanges is duplicated at this location in type Profile"
    );
    // startAddress before endAddress inside a range.
    assert_eq!(
        problem(profile_content(
            "<loginIpRanges><startAddress>10.0.0.1</startAddress>\
             <endAddress>10.0.0.9</endAddress></loginIpRanges>"
        )),
        "Error parsing file: Element endAddress invalid at this location in type ProfileLoginIpRange"
    );
    // An element the type does not have.
    assert_eq!(
        problem(profile_content("<loginIpRange/>")),
        "Error parsing file: Element loginIpRange invalid at this location in type Profile"
    );
}
