//! Micro-benchmarks of the hot pure paths: outbound-message parsing, JWT verification (valid
//! and each cheap rejection), planning 1/10/200 profiles, building the deploy zip.
//!
//! cargo bench --bench core
//!
//! Shared 2-core machines are noisy: compare ratios within one run.

use std::hint::black_box;

use base64::Engine as _;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ipguard::config::{EventsJwtSettings, Policy};
use ipguard::ingress::jwt::EventsVerifier;
use ipguard::ranges::{LoginIpRange, Source, desired_ranges, parse_source};
use ipguard::reconcile::plan::{Owned, PolicyRules, plan_profile};
use ipguard::salesforce::package::deploy_zip;
use ipguard::salesforce::profile::ProfileName;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;

fn outbound_message(notifications: usize) -> String {
    let body: String = (0..notifications)
        .map(|i| {
            format!(
                "<Notification><Id>04l{i:015}</Id><sObject xsi:type=\"sf:User\" \
                 xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\"><sf:Id>005000000000001AAA</sf:Id>\
                 <sf:ProfileId>00e000000000001AAA</sf:ProfileId></sObject></Notification>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>\
         <notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\"><OrganizationId>00D5g000004FAKEEA4</OrganizationId>\
         <ActionId>04k1I000000bmsHQAQ</ActionId><SessionId xsi:nil=\"true\"/>{body}</notifications>\
         </soapenv:Body></soapenv:Envelope>"
    )
}

fn parse(c: &mut Criterion) {
    for n in [1, 100] {
        let doc = outbound_message(n);
        c.bench_function(
            &format!("outbound message parse, {n} notification(s)"),
            |b| b.iter(|| ipguard::ingress::outbound::parse(black_box(doc.as_bytes())).unwrap()),
        );
    }
}

fn jwt(c: &mut Criterion) {
    let keys = ipguard::keygen::generate("bench", 1).unwrap();
    let settings = EventsJwtSettings {
        keys_pem: keys.certificate_pem.clone(),
        issuer: "https://acme.my.salesforce.com".into(),
        audience: "https://ipguard.example".into(),
    };
    let verifier = EventsVerifier::from_settings(&settings).unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({"iss": "https://acme.my.salesforce.com",
        "aud": "https://ipguard.example", "iat": now, "exp": now + 120});
    let key = EncodingKey::from_rsa_pem(keys.private_key_pem.expose_secret().as_bytes()).unwrap();
    let valid = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    let payload = valid.split('.').nth(1).unwrap().to_owned();
    let signature = valid.split('.').nth(2).unwrap().to_owned();
    let bad_signature = ipguard::ingress::jwt::testing::forged(&valid);
    let b64 = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(keys.certificate_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let jku = format!(
        "{}.{payload}.{signature}",
        b64(r#"{"alg":"RS256","jku":"https://attacker.example/keys"}"#)
    );
    let expired_claims = serde_json::json!({"iss": "https://acme.my.salesforce.com",
        "aud": "https://ipguard.example", "iat": now - 900, "exp": now - 600});
    let expired =
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &expired_claims, &key).unwrap();
    let cases = [
        ("valid RS256", valid.clone()),
        ("bad signature", bad_signature),
        ("expired (claims judged after the signature)", expired),
        ("alg none", format!("eyJhbGciOiJub25lIn0.{payload}.")),
        ("HS256 keyed with the certificate", hs256),
        ("foreign key header (jku)", jku),
        ("malformed", "not-a-jwt".to_owned()),
    ];
    for (name, token) in cases {
        // The verifier remembers each token's signature verdict: a token seen before skips
        // RSA. Cases that reach the signature are timed both ways.
        c.bench_function(&format!("jwt verify: {name}"), |b| {
            b.iter(|| {
                let _ = black_box(verifier.verify(black_box(&token), now));
            })
        });
        if reaches_signature(name) {
            c.bench_function(&format!("jwt verify: {name}, first sight"), |b| {
                b.iter_batched_ref(
                    || EventsVerifier::from_settings(&settings).unwrap(),
                    |fresh| {
                        let _ = black_box(fresh.verify(black_box(&token), now));
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
}

/// The cases whose cost includes an RSA verification the first time.
fn reaches_signature(case: &str) -> bool {
    ["valid RS256", "bad signature", "expired"]
        .iter()
        .any(|c| case.starts_with(c))
}

fn profiles(count: usize) -> Vec<(ProfileName, Vec<LoginIpRange>)> {
    (0..count)
        .map(|i| {
            let name = ProfileName::parse(&format!("Custom%3A Team {i:03}")).unwrap();
            let ranges = (0..5)
                .map(|j| {
                    let ip = format!("198.51.{}.{}", i % 250, j);
                    LoginIpRange::parse_existing(&ip, &ip, Some("office")).unwrap()
                })
                .collect();
            (name, ranges)
        })
        .collect()
}

fn plan_and_zip(c: &mut Criterion) {
    let sources: Vec<Source> = ["203.0.113.10", "203.0.113.11", "52.1.2.3", "10.0.0.0/28"]
        .iter()
        .map(|s| Source {
            net: parse_source(s).unwrap(),
            label: "space".into(),
        })
        .collect();
    let desired = desired_ranges(&sources);
    for count in [1, 10, 200] {
        let actual = profiles(count);
        c.bench_function(&format!("plan {count} profile(s)"), |b| {
            b.iter(|| {
                for (name, ranges) in &actual {
                    black_box(plan_profile(
                        name.clone(),
                        ranges,
                        &desired,
                        &PolicyRules::uniform(Policy::Merge),
                        &Owned::ByDescription,
                    ));
                }
            })
        });
    }
    let files = profiles(10);
    c.bench_function("deploy zip, 10 profiles", |b| {
        b.iter(|| deploy_zip(black_box(&files), "66.0").unwrap())
    });
}

criterion_group!(benches, parse, jwt, plan_and_zip);
criterion_main!(benches);
