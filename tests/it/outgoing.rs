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
        // `ipguard check`: Session Settings and the External Client App's OAuth policies
        metadata::read_metadata_of_body("SecuritySettings", &["Security"]),
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
