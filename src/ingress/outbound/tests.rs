use std::time::{Duration, Instant};

use super::*;
use crate::ids::OrgId;

const TWO_CONTACTS: &[u8] = include_bytes!(
    "../../../tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/request-2-contact-notifications.xml"
);
const THREE_LEADS: &[u8] = include_bytes!(
    "../../../tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/request-3-lead-notifications-anonymised.xml"
);
const EMPTY_NOTIFICATIONS: &[u8] = include_bytes!(
    "../../../tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/request-empty-notifications.xml"
);
const ACK_FIXTURE: &[u8] = include_bytes!(
    "../../../tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/response-ack-true.xml"
);
const FAULT_TEMPLATE: &str = include_str!(
    "../../../tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/response-soap-fault-template.xml"
);

/// The second capture in docs/salesforce.md §1.2, verbatim (its `…` elisions
/// included): an XML declaration with `standalone="no"`, an 18-character org id, and
/// `xmlns:sf` declared on `sObject` before `xsi:type`.
const STANDALONE_NO_CAPTURE: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>ABC90000000gNcmEAE</OrganizationId>
   <ActionId>00190000000PGrlAAG</ActionId>
   <SessionId>ABC90000000gNcm!ARcAQJ.8aOC5VjE5D1VicpNZqe2PZe9Z7Fq0W4wEvF_xbmqyOs3V4QwJtUsPZ84vaw2dpHcHR5aooybd9C3sbet94cJujlCY</SessionId>
   <EnterpriseUrl>https://na1.salesforce.com/services/Soap/c/41.0/ABC90000000gNcm</EnterpriseUrl>
   <PartnerUrl>https://na1.salesforce.com/services/Soap/u/41.0/ABC90000000gNcm</PartnerUrl>
   <Notification>
<Id>04l9000001olR84AAE</Id>
<sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com" xsi:type="sf:Account">
 <sf:Id>0019000001KwyWtAAJ</sf:Id>
 …
 <sf:Name>Salesforce.com Inc.</sf:Name>
</sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#;

const ORG: &str = "00D000000000062EAA";

/// A message in the default-namespace style Salesforce sends, with `notifications`
/// children given verbatim.
fn message(inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">{inner}</notifications>
 </soapenv:Body>
</soapenv:Envelope>"#
    )
}

fn notification(i: usize) -> String {
    format!(
        r#"<Notification><Id>04l{i:015}</Id><sObject xsi:type="sf:User" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>005{i:015}</sf:Id><sf:ProfileId>00e000000000001AAA</sf:ProfileId></sObject></Notification>"#
    )
}

fn with_notifications(count: usize) -> String {
    let notifications: String = (0..count).map(notification).collect();
    message(&format!(
        "<OrganizationId>{ORG}</OrganizationId><SessionId xsi:nil=\"true\"/>{notifications}"
    ))
}

fn parse_str(body: &str) -> Result<OutboundMessage, OutboundError> {
    parse(body.as_bytes())
}

#[test]
fn two_contact_fixture() {
    let parsed = parse(TWO_CONTACTS).expect("fixture parses");
    assert_eq!(parsed.organization_id, "012345678901234");
    assert_eq!(parsed.action_id.as_deref(), Some("04k1I000000bmsHQAQ"));
    assert_eq!(
        parsed.notifications,
        vec![
            Notification {
                id: "04l1I000000fztEQAQ".into(),
                sobject_type: Some("Contact".into()),
                record_id: Some("0031I0000081tbPQAQ".into()),
            },
            Notification {
                id: "04l1I000000fzt9QAA".into(),
                sobject_type: Some("Contact".into()),
                record_id: Some("0031I0000081tb0QAA".into()),
            },
        ]
    );
    // The session id is never kept.
    assert!(!format!("{parsed:?}").contains("AQsAQOjGFnFJzGPA12yhUGL9"));
}

#[test]
fn three_lead_fixture_with_bom() {
    assert!(
        THREE_LEADS.starts_with(b"\xEF\xBB\xBF"),
        "fixture starts with a BOM"
    );
    let parsed = parse(THREE_LEADS).expect("fixture parses");
    assert_eq!(parsed.organization_id, "0123456789ABCDENNN");
    assert_eq!(parsed.action_id.as_deref(), Some("05h370200108OsUAAU"));
    let ids: Vec<_> = parsed.notifications.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "04l37000000L0E5AAK",
            "14l37000123L0E5AAK",
            "24l37123450L0E5AAK"
        ]
    );
    let types: Vec<_> = parsed
        .notifications
        .iter()
        .map(|n| n.sobject_type.as_deref())
        .collect();
    assert_eq!(types, [Some("Lead1"), Some("Lead2"), Some("Lead3")]);
    assert_eq!(
        parsed.notifications[2].record_id.as_deref(),
        Some("2123456789ABCDEEAE")
    );
}

#[test]
fn the_empty_fixture_has_no_organization_id_and_is_refused() {
    // `request-empty-notifications.xml` is an empty `<notifications>` element: no
    // OrganizationId, which docs/contract.md §3 calls malformed.
    assert!(EMPTY_NOTIFICATIONS.starts_with(b"\xEF\xBB\xBF"));
    assert!(!String::from_utf8_lossy(EMPTY_NOTIFICATIONS).contains("OrganizationId"));
    assert_eq!(
        parse(EMPTY_NOTIFICATIONS),
        Err(OutboundError::MissingOrganizationId)
    );
}

#[test]
fn zero_notifications_with_an_organization_id() {
    let body = message(&format!("<OrganizationId>{ORG}</OrganizationId>"));
    let parsed = parse_str(&body).expect("parses");
    assert_eq!(parsed.organization_id, ORG);
    assert_eq!(parsed.action_id, None);
    assert!(parsed.notifications.is_empty());
    // Also as a self-closing element carrying only the id.
    let body = with_notifications(0);
    assert!(parse_str(&body).expect("parses").notifications.is_empty());
}

#[test]
fn standalone_no_capture_with_18_char_org() {
    let parsed = parse_str(STANDALONE_NO_CAPTURE).expect("capture parses");
    assert_eq!(parsed.organization_id, "ABC90000000gNcmEAE");
    assert_eq!(parsed.action_id.as_deref(), Some("00190000000PGrlAAG"));
    assert_eq!(
        parsed.notifications,
        vec![Notification {
            id: "04l9000001olR84AAE".into(),
            sobject_type: Some("Account".into()),
            record_id: Some("0019000001KwyWtAAJ".into()),
        }]
    );
    // Why only the shape is checked here: this (anonymised) id is not a valid org id,
    // and the handler's `OrgId::matches` refuses it as someone else's org.
    assert!(OrgId::parse(&parsed.organization_id).is_err());
    let ours = OrgId::parse(ORG).expect("valid");
    assert!(!ours.matches(&parsed.organization_id));
}

#[test]
fn nil_session_id_and_the_other_optional_elements() {
    let body = message(&format!(
        r#"<OrganizationId>{ORG}</OrganizationId><ActionId xsi:nil="true"/><SessionId xsi:nil="true"/><EnterpriseUrl/>{}"#,
        notification(7)
    ));
    let parsed = parse_str(&body).expect("parses");
    assert_eq!(parsed.action_id, None);
    assert_eq!(parsed.notifications.len(), 1);
    assert_eq!(parsed.notifications[0].id, "04l000000000000007");
}

#[test]
fn prefixes_do_not_matter_only_namespaces() {
    let default_ns = parse(TWO_CONTACTS).expect("parses");
    let original = String::from_utf8_lossy(TWO_CONTACTS);
    // Every namespace under another prefix: s: envelope, o: outbound, x: xsi, t: sObject.
    let renamed = original
        .replace("soapenv:", "s:")
        .replace("xmlns:soapenv", "xmlns:s")
        .replace("xmlns:xsi", "xmlns:x")
        .replace("xsi:type=\"sf:", "x:type=\"t:")
        .replace("xmlns:sf", "xmlns:t")
        .replace("sf:", "t:")
        .replace("<notifications xmlns=", "<o:notifications xmlns:o=")
        .replace("</notifications>", "</o:notifications>");
    let renamed = [
        "OrganizationId",
        "ActionId",
        "SessionId",
        "EnterpriseUrl",
        "PartnerUrl",
        "Notification",
        "Id>",
        "sObject",
    ]
    .iter()
    .fold(renamed, |doc, name| {
        doc.replace(&format!("<{name}"), &format!("<o:{name}"))
            .replace(&format!("</{name}"), &format!("</o:{name}"))
    });
    assert!(renamed.contains("<o:Id>") && renamed.contains("<t:Id>"));
    assert!(!renamed.contains("soapenv") && !renamed.contains("sf:"));
    assert_eq!(parse_str(&renamed), Ok(default_ns.clone()));

    // The envelope in a default namespace and the outbound namespace on a prefix.
    let inverted = format!(
        r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><n:notifications xmlns:n="http://soap.sforce.com/2005/09/outbound" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><n:OrganizationId>{ORG}</n:OrganizationId><n:Notification><n:Id>04l1I000000fztEQAQ</n:Id><n:sObject i:type="q:Contact" xmlns:q="urn:sobject.enterprise.soap.sforce.com"><q:Id>0031I0000081tbPQAQ</q:Id></n:sObject></n:Notification></n:notifications></Body></Envelope>"#
    );
    let parsed = parse_str(&inverted).expect("parses");
    assert_eq!(parsed.notifications[0], default_ns.notifications[0]);
}

#[test]
fn names_in_the_wrong_namespace_do_not_count() {
    // `Id` under a prefix bound elsewhere is not the notification's Id.
    let body = message(&format!(
        r#"<OrganizationId>{ORG}</OrganizationId><Notification><x:Id xmlns:x="urn:other">04l000000000000001</x:Id></Notification>"#
    ));
    assert_eq!(
        parse_str(&body),
        Err(OutboundError::MissingNotificationId(1))
    );
    // A `type` attribute outside the xsi namespace is not the sObject type.
    let body = message(&format!(
        r#"<OrganizationId>{ORG}</OrganizationId><Notification><Id>04l000000000000001</Id><sObject type="sf:User"/></Notification>"#
    ));
    assert_eq!(
        parse_str(&body).expect("parses").notifications[0].sobject_type,
        None
    );
}

#[test]
fn one_hundred_notifications_are_accepted_and_101_refused() {
    let parsed = parse_str(&with_notifications(MAX_NOTIFICATIONS)).expect("100 parse");
    assert_eq!(parsed.notifications.len(), 100);
    assert_eq!(parsed.notifications[99].id, "04l000000000000099");
    assert_eq!(
        parse_str(&with_notifications(MAX_NOTIFICATIONS + 1)),
        Err(OutboundError::TooManyNotifications)
    );
    // Reading stops at the 101st: what follows it is never looked at.
    let hundred: String = (0..100).map(notification).collect();
    let body = format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{ORG}</OrganizationId>{hundred}<Notification>&lol; <broken"#
    );
    assert_eq!(parse_str(&body), Err(OutboundError::TooManyNotifications));
}

#[test]
fn doctype_and_entities_are_refused() {
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&lol2;</soapenv:Body></soapenv:Envelope>"#;
    assert_eq!(parse_str(laughs), Err(OutboundError::Doctype));
    let external = r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&xxe;</soapenv:Body></soapenv:Envelope>"#;
    assert_eq!(parse_str(external), Err(OutboundError::Doctype));
    let bare_doctype = format!("<!DOCTYPE Envelope>{}", with_notifications(1));
    assert_eq!(parse_str(&bare_doctype), Err(OutboundError::Doctype));

    // Undefined entities are refused even without a DOCTYPE, in text and attributes,
    // including inside content that is otherwise skipped.
    let in_session = with_notifications(1).replace(
        "<SessionId xsi:nil=\"true\"/>",
        "<SessionId>&xxe;</SessionId>",
    );
    assert_eq!(
        parse_str(&in_session),
        Err(OutboundError::Entity("xxe".into()))
    );
    let in_attribute =
        with_notifications(1).replace("<sf:ProfileId>", "<sf:ProfileId note=\"&lol;\">");
    assert_eq!(
        parse_str(&in_attribute),
        Err(OutboundError::Entity("lol".into()))
    );
    // The predefined entities and character references are fine.
    let body = message(
        "<OrganizationId>&#48;&#x30;D000000000062EAA</OrganizationId><SessionId>a&amp;b&lt;&gt;&apos;&quot;</SessionId>",
    );
    assert_eq!(parse_str(&body).expect("parses").organization_id, ORG);
}

#[test]
fn deep_nesting_is_refused_quickly() {
    // Inside the Header, which is skipped unread: only the depth limit stops it.
    let deep = format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header>{}{}</soapenv:Header></soapenv:Envelope>"#,
        "<a>".repeat(10_000),
        "</a>".repeat(10_000)
    );
    let started = Instant::now();
    assert_eq!(parse_str(&deep), Err(OutboundError::TooDeep));
    // Deep content inside a skipped sObject field counts too.
    let nested = with_notifications(1).replace(
        "<sf:ProfileId>",
        &format!("<sf:ProfileId>{}", "<sf:x>".repeat(10_000)),
    );
    assert_eq!(parse_str(&nested), Err(OutboundError::TooDeep));
    assert!(started.elapsed() < Duration::from_secs(1));

    // 32 levels are fine: Envelope, Body, notifications, Notification and sObject take
    // five, so 27 more fit inside sObject and the 28th is refused.
    let levels = MAX_DEPTH - 5;
    let fits = with_notifications(1).replace(
        "<sf:ProfileId>00e000000000001AAA</sf:ProfileId>",
        &format!("{}{}", "<sf:x>".repeat(levels), "</sf:x>".repeat(levels)),
    );
    assert!(parse_str(&fits).is_ok());
    let one_more = with_notifications(1).replace(
        "<sf:ProfileId>00e000000000001AAA</sf:ProfileId>",
        &format!(
            "{}{}",
            "<sf:x>".repeat(levels + 1),
            "</sf:x>".repeat(levels + 1)
        ),
    );
    assert_eq!(parse_str(&one_more), Err(OutboundError::TooDeep));
}

#[test]
fn invalid_utf8_and_other_encodings_are_refused() {
    let mut body = with_notifications(1).into_bytes();
    let at = body.len() - 40;
    body[at] = 0xFF;
    assert_eq!(parse(&body), Err(OutboundError::NotUtf8(at)));
    // Invalid bytes in skipped content count too.
    let skipped = with_notifications(1).replace("00e000000000001AAA", "00e\u{e9}");
    let mut latin1 = skipped.into_bytes();
    let e9 = latin1
        .windows(2)
        .position(|w| w == [0xC3, 0xA9])
        .expect("é");
    latin1.splice(e9..e9 + 2, [0xE9]);
    assert!(matches!(parse(&latin1), Err(OutboundError::NotUtf8(_))));
    // UTF-16 with its BOM.
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            with_notifications(1)
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    assert!(matches!(parse(&utf16), Err(OutboundError::NotUtf8(_))));
    let declared = with_notifications(1).replace("UTF-8", "ISO-8859-1");
    assert_eq!(
        parse_str(&declared),
        Err(OutboundError::Encoding("ISO-8859-1".into()))
    );
    let lower_case = with_notifications(1).replace("UTF-8", "utf-8");
    assert!(parse_str(&lower_case).is_ok());
}

#[test]
fn wrong_namespaces_are_refused() {
    let wrong_outbound = with_notifications(1).replace(
        "http://soap.sforce.com/2005/09/outbound",
        "http://soap.sforce.com/2005/09/outbund",
    );
    assert_eq!(
        parse_str(&wrong_outbound),
        Err(OutboundError::UnexpectedElement {
            within: "Body",
            element: "notifications".into()
        })
    );
    let soap12 = with_notifications(1).replace(
        "http://schemas.xmlsoap.org/soap/envelope/",
        "http://www.w3.org/2003/05/soap-envelope",
    );
    assert_eq!(parse_str(&soap12), Err(OutboundError::NotSoapEnvelope));
    let undeclared = with_notifications(1).replace("xmlns:soapenv=", "xmlns:other=");
    assert_eq!(
        parse_str(&undeclared),
        Err(OutboundError::UndeclaredPrefix("soapenv".into()))
    );
    let no_body = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/></soapenv:Envelope>"#;
    assert_eq!(parse_str(no_body), Err(OutboundError::MissingBody));
    let empty_body = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/></soapenv:Envelope>"#;
    assert_eq!(
        parse_str(empty_body),
        Err(OutboundError::MissingNotifications)
    );
}

#[test]
fn header_comments_and_processing_instructions_are_skipped() {
    let body = with_notifications(2)
        .replace(
            "<soapenv:Body>",
            "<!-- c --><soapenv:Header><h:Auth xmlns:h=\"urn:h\" soapenv:mustUnderstand=\"0\">x<h:y/></h:Auth></soapenv:Header><?pi data?><soapenv:Body><!-- c -->",
        )
        .replace("<sf:ProfileId>", "<!-- c --><sf:ProfileId><![CDATA[<not markup>]]>");
    let body = format!("{body}\n<!-- trailing comment -->\n<?pi after?>\n");
    assert_eq!(parse_str(&body).expect("parses").notifications.len(), 2);
}

#[test]
fn organization_id_is_required_once_and_id_shaped() {
    let missing = message(&notification(1));
    assert_eq!(
        parse_str(&missing),
        Err(OutboundError::MissingOrganizationId)
    );
    let empty = message("<OrganizationId> </OrganizationId>");
    assert_eq!(parse_str(&empty), Err(OutboundError::MissingOrganizationId));
    let twice = message(&format!(
        "<OrganizationId>{ORG}</OrganizationId><OrganizationId>{ORG}</OrganizationId>"
    ));
    assert_eq!(
        parse_str(&twice),
        Err(OutboundError::Duplicate("OrganizationId"))
    );
    for bad in [
        "00D00000000006",
        "00D000000000062EA",
        "00D000000000062-AA",
        "00D 00000000062",
    ] {
        let body = message(&format!("<OrganizationId>{bad}</OrganizationId>"));
        assert_eq!(
            parse_str(&body),
            Err(OutboundError::InvalidId {
                field: "OrganizationId",
                value: bad.into()
            }),
            "{bad}"
        );
    }
    let nested = message("<OrganizationId><x/></OrganizationId>");
    assert!(matches!(
        parse_str(&nested),
        Err(OutboundError::UnexpectedElement {
            within: "OrganizationId",
            ..
        })
    ));
    let huge = message(&format!(
        "<OrganizationId>{}</OrganizationId>",
        "0".repeat(100_000)
    ));
    assert_eq!(
        parse_str(&huge),
        Err(OutboundError::TooLong("OrganizationId"))
    );
    // Surrounding whitespace is not part of the id.
    let padded = message(&format!("<OrganizationId>\n {ORG}\n</OrganizationId>"));
    assert_eq!(parse_str(&padded).expect("parses").organization_id, ORG);
}

#[test]
fn every_notification_needs_an_id() {
    let org = format!("<OrganizationId>{ORG}</OrganizationId>");
    let without = message(&format!(
        "{org}{}<Notification><sObject xsi:type=\"sf:User\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\"/></Notification>",
        notification(1)
    ));
    assert_eq!(
        parse_str(&without),
        Err(OutboundError::MissingNotificationId(2))
    );
    let empty = message(&format!("{org}<Notification><Id/></Notification>"));
    assert_eq!(
        parse_str(&empty),
        Err(OutboundError::MissingNotificationId(1))
    );
    let bad = message(&format!(
        "{org}<Notification><Id>04l-not-an-id</Id></Notification>"
    ));
    assert!(matches!(
        parse_str(&bad),
        Err(OutboundError::InvalidId {
            field: "Notification/Id",
            ..
        })
    ));
    let twice = message(&format!(
        "{org}<Notification><Id>04l000000000000001</Id><Id>04l000000000000002</Id></Notification>"
    ));
    assert_eq!(
        parse_str(&twice),
        Err(OutboundError::Duplicate("Notification/Id"))
    );
    // A notification for a deleted record carries no sObject data: still fine.
    let bare = message(&format!(
        "{org}<Notification><Id>04l000000000000001</Id></Notification>"
    ));
    assert_eq!(
        parse_str(&bare).expect("parses").notifications,
        vec![Notification {
            id: "04l000000000000001".into(),
            sobject_type: None,
            record_id: None
        }]
    );
}

#[test]
fn content_outside_the_root_is_refused() {
    let good = with_notifications(1);
    assert_eq!(
        parse_str(&format!("{good}garbage")),
        Err(OutboundError::TrailingContent)
    );
    assert_eq!(
        parse_str(&format!("{good}<again/>")),
        Err(OutboundError::TrailingContent)
    );
    assert_eq!(
        parse_str(&format!("{good}&amp;")),
        Err(OutboundError::TrailingContent)
    );
    let before = good.replacen("<soapenv:Envelope", "text<soapenv:Envelope", 1);
    assert_eq!(parse_str(&before), Err(OutboundError::TextOutsideRoot));
    let in_body = good.replace("<soapenv:Body>", "<soapenv:Body>stray");
    assert_eq!(
        parse_str(&in_body),
        Err(OutboundError::UnexpectedText("Body"))
    );
    let late_decl = format!("{good}<?xml version=\"1.0\"?>");
    assert!(matches!(
        parse_str(&late_decl),
        Err(OutboundError::Malformed { .. })
    ));
    let truncated = &good[..good.len() - 20];
    assert_eq!(parse_str(truncated), Err(OutboundError::Truncated));
    let mismatched = good.replace("</soapenv:Body>", "</soapenv:Bod>");
    assert!(matches!(
        parse_str(&mismatched),
        Err(OutboundError::Malformed { .. })
    ));
}

#[test]
fn empty_bodies_are_refused() {
    assert_eq!(parse(b""), Err(OutboundError::Empty));
    assert_eq!(parse(b" \r\n\t"), Err(OutboundError::Empty));
    assert_eq!(parse(b"\xEF\xBB\xBF"), Err(OutboundError::Empty));
    assert_eq!(
        parse(b"<?xml version=\"1.0\"?><!-- nothing -->"),
        Err(OutboundError::Empty)
    );
}

#[test]
fn error_messages_are_short_and_safe() {
    let long_name = "x".repeat(10_000);
    let body =
        with_notifications(1).replace("<soapenv:Body>", &format!("<soapenv:Body><{long_name}/>"));
    let error = parse_str(&body).expect_err("refused");
    assert!(error.to_string().len() < 200, "{error}");
    let bad = message(&format!(
        "<OrganizationId>{}</OrganizationId>",
        "\u{7}".repeat(200)
    ));
    let error = parse_str(&bad).expect_err("refused");
    let text = error.to_string();
    assert!(text.len() < 400 && !text.contains('\u{7}'), "{text}");
}

#[test]
fn ack_is_the_fixture_byte_for_byte() {
    // The fixture has no BOM; ACK sends none either (see ACK's doc comment).
    assert!(!ACK_FIXTURE.starts_with(b"\xEF\xBB\xBF"));
    assert_eq!(ACK.as_bytes(), ACK_FIXTURE);
    let root = crate::xml::parse(ACK.as_bytes()).expect("ACK is XML");
    assert!(root.is(SOAP_ENV_NS, "Envelope"));
    let ack = root
        .child(SOAP_ENV_NS, "Body")
        .and_then(|body| body.child(OUTBOUND_NS, "notificationsResponse"))
        .and_then(|response| response.child_text(OUTBOUND_NS, "Ack"));
    assert_eq!(ack, Some("true"));
}

#[test]
fn fault_follows_the_template_and_escapes() {
    let message = "bad <Id> & \"more\" >";
    let expected = FAULT_TEMPLATE
        .strip_prefix('\u{feff}')
        .expect("the template starts with a BOM")
        .replace("{0}", "bad &lt;Id&gt; &amp; &quot;more&quot; &gt;");
    assert_eq!(fault(FaultKind::Client, message), expected);

    let server = fault(FaultKind::Server, "store unavailable");
    let root = crate::xml::parse(server.as_bytes()).expect("fault is XML");
    let fault_element = root
        .child(SOAP_ENV_NS, "Body")
        .and_then(|body| body.child(SOAP_ENV_NS, "Fault"))
        .expect("Body/Fault");
    assert_eq!(
        fault_element
            .child_local("faultcode")
            .map(|e| e.text.as_str()),
        Some("soapenv:Server")
    );

    let root = crate::xml::parse(fault(FaultKind::Client, message).as_bytes()).expect("XML");
    let faultstring = root
        .child(SOAP_ENV_NS, "Body")
        .and_then(|body| body.child(SOAP_ENV_NS, "Fault"))
        .and_then(|f| f.child_local("faultstring"))
        .map(|e| e.text.clone());
    assert_eq!(faultstring.as_deref(), Some(message));

    // Characters XML cannot carry are replaced, so the fault still parses.
    let control = fault(FaultKind::Client, "a\u{0}b\u{1b}c");
    assert!(crate::xml::parse(control.as_bytes()).is_ok());
    assert!(control.contains("a\u{FFFD}b\u{FFFD}c"));
}

#[test]
fn parse_errors_make_parseable_client_faults() {
    let error = parse_str(&format!("{}<x/>", with_notifications(1))).expect_err("refused");
    let body = fault(FaultKind::Client, &error.to_string());
    assert!(body.contains("<faultcode>soapenv:Client</faultcode>"));
    assert!(crate::xml::parse(body.as_bytes()).is_ok());
}
