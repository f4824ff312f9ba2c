//! Every byte ipguard sends to the Metadata API validates against Salesforce's v66.0 WSDL
//! schema (with the one documented deviation: `DeployOptions.testLevel` omitted).

use std::io::{Cursor, Read};

use ipguard::ranges::{LoginIpRange, Source, desired_ranges, parse_source};
use ipguard::salesforce::metadata::{self, DeployId};
use ipguard::salesforce::package::deploy_zip;
use ipguard::salesforce::profile::ProfileName;
use ipguard::salesforce::soap::request_envelope;

use crate::schema;

fn names() -> Vec<ProfileName> {
    [
        "Admin",
        "Custom%3A Integration",
        "Force%2Ecom - Free User",
        "R&D <Ops>",
    ]
    .iter()
    .map(|n| ProfileName::parse(n).unwrap())
    .collect()
}

fn ranges() -> Vec<LoginIpRange> {
    let sources: Vec<Source> = ["52.1.2.3", "52.1.2.4", "10.0.0.0/28", "2001:db8::/64"]
        .iter()
        .map(|s| Source {
            net: parse_source(s).unwrap(),
            label: "space acme & co".into(),
        })
        .collect();
    let mut ranges = desired_ranges(&sources);
    ranges.push(LoginIpRange::parse_existing("0.0.0.0", "255.255.255.255", None).unwrap());
    ranges
}

fn zip_bytes() -> Vec<u8> {
    let files: Vec<(ProfileName, Vec<LoginIpRange>)> =
        names().into_iter().map(|n| (n, ranges())).collect();
    deploy_zip(&files, "66.0").unwrap()
}

#[test]
fn every_request_envelope_validates() {
    let id = DeployId::parse("0Af3B00001CMyfASAT").unwrap();
    let bodies = [
        metadata::list_metadata_body("Profile", "66.0"),
        metadata::read_metadata_body(&names()),
        metadata::deploy_body(&zip_bytes(), false),
        metadata::deploy_body(&zip_bytes(), true),
        metadata::check_deploy_status_body(&id),
        // side doors and `ipguard check`: Session Settings, the app's OAuth policies
        metadata::read_metadata_of_body("SecuritySettings", &["Security"]),
        metadata::read_metadata_of_body("ConnectedApp", &["Legacy_App"]),
        metadata::read_metadata_of_body(
            "ExtlClntAppOauthConfigurablePolicies",
            &["IPGuard_oauthPlcy"],
        ),
    ];
    let envelopes: Vec<String> = bodies
        .iter()
        .map(|b| request_envelope("00Dx0000000BV7z!AR8AQ<&>", b))
        .collect();
    let docs: Vec<&str> = envelopes.iter().map(String::as_str).collect();
    schema::assert_all_valid(&docs);
}

#[test]
fn every_file_in_the_deploy_zip_validates() {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip_bytes())).unwrap();
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        files.push(text);
    }
    assert_eq!(files.len(), 1 + names().len());
    let docs: Vec<&str> = files.iter().map(String::as_str).collect();
    schema::assert_all_valid(&docs);
}

/// The children of a readMetadata record, as the client keeps them for read-modify-write.
fn record(fields: &str) -> Vec<ipguard::xml::Element> {
    ipguard::xml::parse(
        format!("<records xmlns=\"http://soap.sforce.com/2006/04/metadata\">{fields}</records>")
            .as_bytes(),
    )
    .unwrap()
    .children
}

#[test]
fn every_side_door_file_and_its_package_validate() {
    use ipguard::salesforce::package::{Component, package_xml, package_zip};
    use ipguard::salesforce::side_doors::{connected_app, eca_oauth_policies, security_settings};
    let eca = record(
        "<fullName>IPGuard_oauthPlcy</fullName><commaSeparatedPermissionSet>IPGuard_Integration</commaSeparatedPermissionSet>\
         <externalClientApplication>IPGuard</externalClientApplication><ipRelaxationPolicyType>Bypass</ipRelaxationPolicyType>\
         <isClientCredentialsFlowEnabled>false</isClientCredentialsFlowEnabled><label>IPGuard OAuth policies</label>\
         <permittedUsersPolicyType>AdminApprovedPreAuthorized</permittedUsersPolicyType>\
         <refreshTokenPolicyType>Infinite</refreshTokenPolicyType><sessionTimeoutInMinutes>30</sessionTimeoutInMinutes>",
    );
    // Unset relaxation: inserted where the sequence puts it.
    let eca_unset = record(
        "<fullName>IPGuard_oauthPlcy</fullName><externalClientApplication>IPGuard</externalClientApplication>\
         <label>IPGuard OAuth policies</label>",
    );
    let legacy = record(
        "<fullName>Legacy_App</fullName><contactEmail>admin@acme.example</contactEmail><label>Legacy &amp; Co</label>\
         <oauthConfig><callbackUrl>https://login.salesforce.com/services/oauth2/success</callbackUrl>\
         <consumerKey>3MVG9abc</consumerKey><isAdminApproved>true</isAdminApproved><scopes>Api</scopes></oauthConfig>\
         <oauthPolicy><ipRelaxation>BYPASS</ipRelaxation><refreshTokenPolicy>infinite</refreshTokenPolicy></oauthPolicy>",
    );
    let mut components = vec![
        Component::profile(&names()[1], &ranges()),
        security_settings(true),
        eca_oauth_policies("IPGuard", &eca),
        connected_app("Legacy_App", &legacy).unwrap(),
    ];
    let unset = eca_oauth_policies("IPGuard", &eca_unset);
    let mut docs: Vec<String> = components.iter().map(|c| c.content.clone()).collect();
    docs.push(unset.content.clone());
    docs.push(package_xml(&components, "66.0"));
    let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
    schema::assert_all_valid(&docs);
    // The zip holds exactly these files under their documented paths.
    components.push(Component::profile(&names()[0], &ranges()));
    let zip = package_zip(&components, "66.0").unwrap();
    let archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    let mut paths: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "connectedApps/Legacy_App.connectedApp",
            "extlClntAppOauthPolicies/IPGuard_oauthPlcy.ecaOauthPlcy",
            "package.xml",
            "profiles/Admin.profile",
            "profiles/Custom%3A Integration.profile",
            "settings/Security.settings",
        ]
    );
}

#[test]
fn the_validator_would_catch_a_policies_file_without_its_app() {
    if schema::skipped_without_xmllint() {
        return;
    }
    let bad = "<ExtlClntAppOauthConfigurablePolicies xmlns=\"http://soap.sforce.com/2006/04/metadata\">\
               <ipRelaxationPolicyType>Enforce</ipRelaxationPolicyType></ExtlClntAppOauthConfigurablePolicies>";
    assert!(schema::validate(bad).is_err());
}

#[test]
fn the_validator_would_catch_a_wrong_order() {
    // guards the tests above: a profile file with startAddress first must be refused
    if schema::skipped_without_xmllint() {
        return;
    }
    let bad = "<Profile xmlns=\"http://soap.sforce.com/2006/04/metadata\"><loginIpRanges>\
               <startAddress>1.1.1.1</startAddress><endAddress>1.1.1.1</endAddress>\
               </loginIpRanges></Profile>";
    assert!(schema::validate(bad).is_err());
}
