//! Checks of `salesforce-metadata/`, the SFDX project an admin deploys once, that run without an
//! org:
//!
//! - every `*-meta.xml` file and `manifest/package.xml` validates against the Metadata API
//!   v66.0 schema (`schema/`), with the root element its file suffix and folder call for;
//! - the JSON the Apex callout builds (pinned by `test-fixtures/event-callout.json`, which must
//!   equal `IPGuardEventCalloutTest.EXPECTED_BODY`) is accepted by ipguard's events parser, and a
//!   JWT with the claims the External Credential is configured with passes ipguard's verifier;
//! - the endpoint paths in the metadata are the ones docs/contract.md §3 names and the server routes.
//!
//! **Source format vs. Metadata API format.** An SFDX project stores most types exactly as the
//! Metadata API does (one file, the type as its root element, `-meta.xml` appended to the name).
//! The one decomposition used here is `CustomObject`: `objects/X/X.object-meta.xml` holds the
//! object without its fields and each `objects/X/fields/F.field-meta.xml` holds one field
//! (`<CustomField>` with its `fullName`), where a deploy zip would nest them as
//! `<CustomObject><fields>…</fields></CustomObject>`. `fields` has type `tns:CustomField` in
//! the WSDL, so each field file is validated as a `CustomField` root — the same content model
//! as the nested element — and the object file as a `CustomObject` without fields (all of
//! `CustomObject`'s children are optional). No file is skipped: a file with an unknown suffix,
//! in an unexpected folder or with an unexpected root fails the test.
//!
//! Apex syntax is checked by `salesforce-metadata/scripts/parse-apex.mjs` (Node), not here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ipguard::config::EventsJwtSettings;
use ipguard::ingress::events::parse_events;
use ipguard::ingress::jwt::EventsVerifier;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::schema;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/salesforce-metadata");
const CHANNEL: &str = "/event/IPGuard_Profile_Change__e";
/// docs/contract.md §3: the two endpoints Salesforce calls.
const EVENTS_PATH: &str = "/salesforce/events";
const OUTBOUND_PATH: &str = "/salesforce/outbound-messages";

/// Source-format suffix → (folder the file must be in, Metadata API type of its root element).
const SUFFIXES: &[(&str, &str, &str)] = &[
    (".cls-meta.xml", "classes", "ApexClass"),
    (".trigger-meta.xml", "triggers", "ApexTrigger"),
    (".object-meta.xml", "objects", "CustomObject"),
    (".field-meta.xml", "fields", "CustomField"),
    (".md-meta.xml", "customMetadata", "CustomMetadata"),
    (".permissionset-meta.xml", "permissionsets", "PermissionSet"),
    (
        ".namedCredential-meta.xml",
        "namedCredentials",
        "NamedCredential",
    ),
    (
        ".externalCredential-meta.xml",
        "externalCredentials",
        "ExternalCredential",
    ),
    (
        ".eca-meta.xml",
        "externalClientApps",
        "ExternalClientApplication",
    ),
    (
        ".ecaOauth-meta.xml",
        "extlClntAppOauthSettings",
        "ExtlClntAppOauthSettings",
    ),
    (
        ".ecaGlblOauth-meta.xml",
        "extlClntAppGlobalOauthSets",
        "ExtlClntAppGlobalOauthSettings",
    ),
    (
        ".ecaOauthPlcy-meta.xml",
        "extlClntAppOauthPolicies",
        "ExtlClntAppOauthConfigurablePolicies",
    ),
    (
        ".ecaPlcy-meta.xml",
        "extlClntAppPolicies",
        "ExtlClntAppConfigurablePolicies",
    ),
    (".flow-meta.xml", "flows", "Flow"),
    (".workflow-meta.xml", "workflows", "Workflow"),
    (
        ".platformEventSubscriberConfig-meta.xml",
        "platformEventSubscriberConfigs",
        "PlatformEventSubscriberConfig",
    ),
    (".connectedApp-meta.xml", "connectedApps", "ConnectedApp"),
];

fn path(relative: &str) -> PathBuf {
    Path::new(ROOT).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative))
        .unwrap_or_else(|e| panic!("read salesforce-metadata/{relative}: {e}"))
}

/// Every file under `dir` whose name ends with `suffix`, skipping `node_modules`.
fn files_ending(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {dir:?}: {e}")) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "node_modules") {
                files_ending(&path, suffix, out);
            }
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
}

/// The local name of the root element and its namespace declaration, e.g. `("Flow", ns)`.
fn root_element(xml: &str) -> (String, Option<String>) {
    let mut reader = quick_xml::NsReader::from_str(xml);
    loop {
        match reader.read_resolved_event().expect("well-formed XML") {
            (ns, quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                let ns = match ns {
                    quick_xml::name::ResolveResult::Bound(n) => Some(n.0.to_owned()),
                    _ => None,
                };
                return (e.local_name().as_ref().to_owned(), ns);
            }
            (_, quick_xml::events::Event::Eof) => panic!("no root element"),
            _ => {}
        }
    }
}

#[test]
fn every_metadata_file_validates_against_the_v66_schema_as_its_type() {
    let mut files = Vec::new();
    files_ending(Path::new(ROOT), "-meta.xml", &mut files);
    files.sort();
    let mut docs = vec![(path("manifest/package.xml"), "Package")];
    for file in &files {
        let name = file.to_string_lossy();
        let (_, folder, root) = SUFFIXES
            .iter()
            .find(|(suffix, _, _)| name.ends_with(suffix))
            .unwrap_or_else(|| {
                panic!("{name}: unknown metadata file suffix; add it to SUFFIXES with its type")
            });
        let parent = file
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Object files sit in objects/<Object>/.
        let in_folder = if *folder == "objects" {
            file.ancestors().nth(2).and_then(Path::file_name) == Some("objects".as_ref())
        } else {
            parent == *folder
        };
        assert!(in_folder, "{name}: a {root} file belongs in {folder}/");
        docs.push((file.clone(), *root));
    }
    // Everything the manifest and the docs promise is there.
    let types: BTreeSet<&str> = docs.iter().map(|(_, root)| *root).collect();
    for (_, _, root) in SUFFIXES {
        assert!(
            types.contains(root),
            "no {root} file in salesforce-metadata/"
        );
    }
    assert!(docs.len() >= 30, "only {} metadata files found", docs.len());

    let texts: Vec<String> = docs
        .iter()
        .map(|(file, _)| std::fs::read_to_string(file).expect("read metadata file"))
        .collect();
    for ((file, root), text) in docs.iter().zip(&texts) {
        let (actual, ns) = root_element(text);
        assert_eq!(&actual, root, "{file:?}: root element");
        assert_eq!(
            ns.as_deref(),
            Some("http://soap.sforce.com/2006/04/metadata"),
            "{file:?}: namespace"
        );
    }
    if schema::skipped_without_xmllint() {
        return;
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let results = schema::validate_each(&refs);
    let failures: Vec<String> = docs
        .iter()
        .zip(results)
        .filter_map(|((file, _), r)| r.err().map(|e| format!("{}:\n{e}", file.display())))
        .collect();
    assert!(
        failures.is_empty(),
        "{} metadata file(s) do not validate:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_component_in_the_manifest_has_a_source_file() {
    let manifest = read("manifest/package.xml");
    let expect = |relative: &str| {
        assert!(
            path(relative).is_file(),
            "manifest/package.xml lists a component without salesforce-metadata/{relative}"
        );
    };
    let base = "force-app/main/default";
    for class in [
        "IPGuardAuditMonitor",
        "IPGuardAuditMonitorTest",
        "IPGuardEventCallout",
        "IPGuardEventCalloutTest",
    ] {
        assert!(manifest.contains(&format!("<members>{class}</members>")));
        expect(&format!("{base}/classes/{class}.cls"));
        expect(&format!("{base}/classes/{class}.cls-meta.xml"));
    }
    expect(&format!(
        "{base}/triggers/IPGuardProfileChangeTrigger.trigger"
    ));
    for (member, file) in [
        (
            "IPGuard_Setting.Default",
            "customMetadata/IPGuard_Setting.Default.md-meta.xml",
        ),
        (
            "IPGuard_Profile_Change__e",
            "objects/IPGuard_Profile_Change__e/IPGuard_Profile_Change__e.object-meta.xml",
        ),
        (
            "IPGuard_Setting__mdt",
            "objects/IPGuard_Setting__mdt/IPGuard_Setting__mdt.object-meta.xml",
        ),
        (
            "IPGuard_State__c",
            "objects/IPGuard_State__c/IPGuard_State__c.object-meta.xml",
        ),
        (
            "IPGuard_Integration",
            "permissionsets/IPGuard_Integration.permissionset-meta.xml",
        ),
        (
            "IPGuard_User_Profile_Changed",
            "flows/IPGuard_User_Profile_Changed.flow-meta.xml",
        ),
        (
            "User.IPGuard_User_Profile_Changed",
            "workflows/User.workflow-meta.xml",
        ),
        (
            "IPGuard_glbloauth",
            "extlClntAppGlobalOauthSets/IPGuard_glbloauth.ecaGlblOauth-meta.xml",
        ),
        (
            "IPGuard_oauthPlcy",
            "extlClntAppOauthPolicies/IPGuard_oauthPlcy.ecaOauthPlcy-meta.xml",
        ),
        (
            "IPGuard_oauth",
            "extlClntAppOauthSettings/IPGuard_oauth.ecaOauth-meta.xml",
        ),
        (
            "IPGuard_plcy",
            "extlClntAppPolicies/IPGuard_plcy.ecaPlcy-meta.xml",
        ),
        (
            "IPGuardProfileChangeTriggerConfig",
            "platformEventSubscriberConfigs/IPGuardProfileChangeTriggerConfig.platformEventSubscriberConfig-meta.xml",
        ),
    ] {
        assert!(
            manifest.contains(&format!("<members>{member}</members>")),
            "{member}"
        );
        expect(&format!("{base}/{file}"));
    }
    // The ECA pieces name the app and the pre-authorizing permission set.
    for file in [
        "extlClntAppGlobalOauthSets/IPGuard_glbloauth.ecaGlblOauth-meta.xml",
        "extlClntAppOauthPolicies/IPGuard_oauthPlcy.ecaOauthPlcy-meta.xml",
        "extlClntAppOauthSettings/IPGuard_oauth.ecaOauth-meta.xml",
        "extlClntAppPolicies/IPGuard_plcy.ecaPlcy-meta.xml",
    ] {
        assert!(
            read(&format!("{base}/{file}"))
                .contains("<externalClientApplication>IPGuard</externalClientApplication>"),
            "{file}"
        );
    }
    let policies = read(&format!(
        "{base}/extlClntAppOauthPolicies/IPGuard_oauthPlcy.ecaOauthPlcy-meta.xml"
    ));
    for needle in [
        "<commaSeparatedPermissionSet>IPGuard_Integration</commaSeparatedPermissionSet>",
        "<ipRelaxationPolicyType>Enforce</ipRelaxationPolicyType>",
        "<permittedUsersPolicyType>AdminApprovedPreAuthorized</permittedUsersPolicyType>",
    ] {
        assert!(policies.contains(needle), "ECA policies lack {needle}");
    }
    // The legacy connected app is in its own package directory, not deployed by default.
    let project: Value = serde_json::from_str(&read("sfdx-project.json")).expect("JSON");
    assert_eq!(project["sourceApiVersion"], "66.0");
    assert_eq!(
        project["packageDirectories"],
        json!([{"path": "force-app", "default": true}, {"path": "legacy-connected-app", "default": false}])
    );
}

/// The single-quoted string literals of `EXPECTED_BODY = '…' + '…';` in the Apex test, joined
/// and unescaped.
fn apex_expected_body() -> String {
    let source = read("force-app/main/default/classes/IPGuardEventCalloutTest.cls");
    let start = source
        .find("EXPECTED_BODY =")
        .expect("IPGuardEventCalloutTest declares EXPECTED_BODY");
    let mut out = String::new();
    let mut chars = source[start..].chars();
    let mut in_literal = false;
    while let Some(c) = chars.next() {
        match (in_literal, c) {
            (false, ';') => return out,
            (false, '\'') => in_literal = true,
            (false, c) => assert!(
                c.is_whitespace() || c == '+' || c == '=' || c.is_alphabetic() || c == '_',
                "unexpected {c:?} in EXPECTED_BODY"
            ),
            (true, '\\') => out.push(chars.next().expect("escape")),
            (true, '\'') => in_literal = false,
            (true, c) => out.push(c),
        }
    }
    panic!("EXPECTED_BODY has no terminating `;`")
}

#[test]
fn the_callout_body_fixture_is_what_apex_builds_and_what_ipguard_accepts() {
    let fixture = read("test-fixtures/event-callout.json");
    let pinned: Value = serde_json::from_str(&fixture).expect("fixture is JSON");
    let apex: Value = serde_json::from_str(&apex_expected_body()).expect("EXPECTED_BODY is JSON");
    assert_eq!(
        pinned, apex,
        "test-fixtures/event-callout.json and IPGuardEventCalloutTest.EXPECTED_BODY differ"
    );
    // The Apex source points at the fixture.
    let callout = read("force-app/main/default/classes/IPGuardEventCallout.cls");
    assert!(callout.contains("salesforce-metadata/test-fixtures/event-callout.json"));
    assert!(callout.contains(&format!("'{CHANNEL}'")));

    // The exact bytes Apex sends (compact) and the pretty fixture both parse.
    for body in [fixture.as_bytes(), apex_expected_body().as_bytes()] {
        let hints = parse_events(body).expect("ipguard accepts the callout body");
        let keys: Vec<&str> = hints.iter().map(|h| h.dedupe_key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "uuid:5c9b7a36-6f3e-4c1d-9a8b-2f41d0e7c3a1",
                "replay:/event/IPGuard_Profile_Change__e:42"
            ]
        );
        assert!(hints.iter().all(|h| h.channel == CHANNEL));
    }

    // The payload carries exactly the event's custom fields (plus CreatedDate/CreatedById).
    let mut fields = Vec::new();
    files_ending(
        &path("force-app/main/default/objects/IPGuard_Profile_Change__e/fields"),
        ".field-meta.xml",
        &mut fields,
    );
    let declared: BTreeSet<String> = fields
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            name.trim_end_matches(".field-meta.xml").to_owned()
        })
        .collect();
    for event in pinned.as_array().expect("array") {
        let payload = event["data"]["payload"].as_object().expect("payload");
        let custom: BTreeSet<String> = payload
            .keys()
            .filter(|k| k.ends_with("__c"))
            .cloned()
            .collect();
        assert_eq!(custom, declared, "payload fields vs. the event's fields");
        assert!(payload.contains_key("CreatedDate") && payload.contains_key("CreatedById"));
    }
}

/// The text of `<tag>` inside the `<externalCredentialParameters>` block whose `parameterName`
/// is `name`.
fn credential_parameter(xml: &str, name: &str, tag: &str) -> String {
    let block = xml
        .split("<externalCredentialParameters>")
        .skip(1)
        .find(|b| b.contains(&format!("<parameterName>{name}</parameterName>")))
        .unwrap_or_else(|| panic!("external credential has no parameter {name}"));
    let open = format!("<{tag}>");
    let start = block.find(&open).expect("tag") + open.len();
    let end = start + block[start..].find(&format!("</{tag}>")).expect("end tag");
    block[start..end].to_owned()
}

#[test]
fn a_jwt_with_the_external_credential_claims_passes_ipguards_verifier() {
    let credential =
        read("force-app/main/default/externalCredentials/IPGuard.externalCredential-meta.xml");
    assert!(credential.contains("<authenticationProtocol>Jwt</authenticationProtocol>"));
    let issuer = credential_parameter(&credential, "iss", "parameterValue");
    let audience = credential_parameter(&credential, "aud", "parameterValue");
    let subject = credential_parameter(&credential, "sub", "parameterValue");
    let certificate = credential_parameter(&credential, "SigningCertificate", "certificate");
    assert_eq!(certificate, "IPGuard_Callout");
    for parameter in ["iss", "aud", "sub"] {
        assert_eq!(
            credential_parameter(&credential, parameter, "parameterType"),
            "JwtBodyClaim"
        );
    }
    // The permission set grants the principal the named credential authenticates as.
    let principal = credential_parameter(&credential, "IPGuard_Principal", "parameterType");
    assert_eq!(principal, "NamedPrincipal");
    let permission_set =
        read("force-app/main/default/permissionsets/IPGuard_Integration.permissionset-meta.xml");
    assert!(permission_set.contains(
        "<externalCredentialPrincipal>IPGuard-IPGuard_Principal</externalCredentialPrincipal>"
    ));
    let named = read("force-app/main/default/namedCredentials/IPGuard.namedCredential-meta.xml");
    assert!(named.contains("<externalCredential>IPGuard</externalCredential>"));
    assert!(named.contains("<generateAuthorizationHeader>true</generateAuthorizationHeader>"));

    // Sign as Salesforce does by default: RS256, kid = certificate name, exp = iat + 2 min.
    let material = ipguard::keygen::generate(&certificate, 30).expect("keygen");
    let verifier = EventsVerifier::from_settings(&EventsJwtSettings {
        keys_pem: material.certificate_pem.clone(),
        issuer: issuer.clone(),
        audience: audience.clone(),
    })
    .expect("verifier");
    let now = chrono::Utc::now().timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(certificate);
    let claims = json!({
        "iss": issuer, "aud": audience, "sub": subject,
        "iat": now, "nbf": now, "exp": now + 120, "jti": "b3c1d6f0-0000-4000-8000-000000000001",
    });
    let key = EncodingKey::from_rsa_pem(material.private_key_pem.expose_secret().as_bytes())
        .expect("RSA key");
    let token = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
    verifier
        .verify(&token, now)
        .expect("ipguard accepts the External Credential's JWT");

    // A claim that drifts from EVENTS_JWT_ISSUER is refused, so the two must be kept equal.
    let wrong = json!({"iss": "someone-else", "aud": claims["aud"], "iat": now, "exp": now + 120});
    let token = jsonwebtoken::encode(&header, &wrong, &key).expect("sign");
    assert!(verifier.verify(&token, now).is_err());
}

#[test]
fn endpoint_paths_in_the_metadata_match_spec_and_the_server_routes() {
    let routes = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/server/mod.rs"))
        .expect("read src/server/mod.rs");
    for spec_path in [EVENTS_PATH, OUTBOUND_PATH] {
        assert!(
            routes.contains(&format!("web::resource(\"{spec_path}\")")),
            "the server no longer routes {spec_path}"
        );
    }
    let callout = read("force-app/main/default/classes/IPGuardEventCallout.cls");
    assert!(callout.contains(&format!("'callout:IPGuard{EVENTS_PATH}'")));
    let workflow = read("force-app/main/default/workflows/User.workflow-meta.xml");
    assert!(workflow.contains(&format!(
        "<endpointUrl>https://YOUR-APP.herokuapp.com{OUTBOUND_PATH}</endpointUrl>"
    )));
    assert!(workflow.contains("<includeSessionId>false</includeSessionId>"));
    for field in ["Id", "ProfileId"] {
        assert!(workflow.contains(&format!("<fields>{field}</fields>")));
    }
    // The named credential is the app's origin only; the path comes from the Apex.
    let named = read("force-app/main/default/namedCredentials/IPGuard.namedCredential-meta.xml");
    assert!(named.contains("<parameterValue>https://YOUR-APP.herokuapp.com</parameterValue>"));
    let flow = read("force-app/main/default/flows/IPGuard_User_Profile_Changed.flow-meta.xml");
    assert!(flow.contains("<actionName>User.IPGuard_User_Profile_Changed</actionName>"));
    assert!(flow.contains("<actionType>outboundMessage</actionType>"));
}
