use std::sync::OnceLock;

use jsonwebtoken::{Algorithm, EncodingKey};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::*;
use crate::keygen::{self, KeyMaterial};

const ISS: &str = "00D000000000001EAA";
const AUD: &str = "https://ipguard.example.com";
const NOW: i64 = 1_750_000_000;

fn key_a() -> &'static KeyMaterial {
    static KEY: OnceLock<KeyMaterial> = OnceLock::new();
    KEY.get_or_init(|| keygen::generate("ipguard-events-a", 30).expect("keygen"))
}

fn key_b() -> &'static KeyMaterial {
    static KEY: OnceLock<KeyMaterial> = OnceLock::new();
    KEY.get_or_init(|| keygen::generate("ipguard-events-b", 30).expect("keygen"))
}

fn attacker() -> &'static KeyMaterial {
    static KEY: OnceLock<KeyMaterial> = OnceLock::new();
    KEY.get_or_init(|| keygen::generate("attacker", 30).expect("keygen"))
}

/// SubjectPublicKeyInfo DER of a key's certificate.
fn spki_der(key: &KeyMaterial) -> Vec<u8> {
    let cert = pem::parse(&key.certificate_pem).expect("cert PEM");
    let (_, cert) = x509_parser::parse_x509_certificate(cert.contents()).expect("cert DER");
    cert.public_key().raw.to_vec()
}

fn public_key_pem(key: &KeyMaterial) -> String {
    pem::encode(&pem::Pem::new("PUBLIC KEY", spki_der(key)))
}

fn verifier(keys_pem: String) -> EventsVerifier {
    EventsVerifier::from_settings(&EventsJwtSettings {
        keys_pem,
        issuer: ISS.to_owned(),
        audience: AUD.to_owned(),
    })
    .expect("keys load")
}

/// Key A as a certificate, no kid.
fn verifier_a() -> EventsVerifier {
    verifier(key_a().certificate_pem.clone())
}

/// Rotation: key A pinned to `key-a` (certificate), key B pinned to `key-b` (PUBLIC KEY).
fn verifier_rotation() -> EventsVerifier {
    verifier(format!(
        "kid: key-a\n{}kid: key-b\n{}",
        key_a().certificate_pem,
        public_key_pem(key_b())
    ))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn header(alg: &str) -> Value {
    json!({"alg": alg, "typ": "JWT"})
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "integration@example.com",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 120,
        "jti": "jti-1",
    })
}

/// Signs raw header/claims JSON with an independent implementation (jsonwebtoken).
fn sign_raw(header: &str, claims: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("signs");
    format!("{input}.{signature}")
}

fn rsa_key(key: &KeyMaterial) -> EncodingKey {
    EncodingKey::from_rsa_pem(key.private_key_pem.expose_secret().as_bytes()).expect("RSA key")
}

fn sign(header: &Value, claims: &Value, key: &KeyMaterial) -> String {
    let alg = match header["alg"].as_str() {
        Some("RS512") => Algorithm::RS512,
        _ => Algorithm::RS256,
    };
    sign_raw(&header.to_string(), &claims.to_string(), &rsa_key(key), alg)
}

/// Asserts the reason, and that the description is RFC 6750-safe and echoes nothing.
#[track_caller]
fn rejected(result: Result<VerifiedToken, Rejection>, reason: RejectReason, token: &str) {
    let rejection = match result {
        Ok(verified) => panic!("expected {reason:?}, token was accepted: {verified:?}"),
        Err(rejection) => rejection,
    };
    assert_eq!(rejection.reason, reason, "{}", rejection.description);
    let description = &rejection.description;
    assert!(
        description
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
        "not a valid RFC 6750 error_description: {description}"
    );
    for part in token.split('.').filter(|part| part.len() >= 8) {
        assert!(
            !description.contains(part),
            "echoes the token: {description}"
        );
    }
    for value in ["jti-1", "integration@example.com", "attacker", "evil"] {
        assert!(
            !description.contains(value),
            "echoes a claim: {description}"
        );
    }
}

// What the verifier accepts and refuses, rule by rule (the module doc's table).
mod rules;
// Which keys it loads, selects and never prints.
mod keys;
// Signature verdicts remembered per token (`verdicts.rs`).
mod verdicts;
