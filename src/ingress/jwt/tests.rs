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

#[test]
fn valid_rs256_token_passes() {
    let token = sign(&header("RS256"), &claims(), key_a());
    assert_eq!(
        verifier_a().verify(&token, NOW + 5),
        Ok(VerifiedToken {
            jti: Some("jti-1".to_owned()),
            exp: NOW + 120,
            iat: Some(NOW),
            sub: Some("integration@example.com".to_owned()),
        })
    );
}

#[test]
fn valid_rs512_token_passes() {
    let token = sign(&header("RS512"), &claims(), key_a());
    let verified = verifier_a().verify(&token, NOW).expect("RS512 accepted");
    assert_eq!(verified.exp, NOW + 120);
    assert_eq!(verified.replay_window_end(), NOW + 120 + LEEWAY_SECS);
}

#[test]
fn minimal_token_passes_and_aud_may_be_an_array() {
    let token = sign(
        &header("RS256"),
        &json!({"iss": ISS, "aud": ["other", AUD], "exp": NOW + 60}),
        key_a(),
    );
    assert_eq!(
        verifier_a().verify(&token, NOW),
        Ok(VerifiedToken {
            jti: None,
            exp: NOW + 60,
            iat: None,
            sub: None
        })
    );
}

#[test]
fn alg_none_unsigned_is_refused() {
    let verifier = verifier_a();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = format!(
            "{}.{}.",
            b64(header(alg).to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        rejected(
            verifier.verify(&token, NOW),
            RejectReason::AlgorithmNotAllowed,
            &token,
        );
    }
}

#[test]
fn other_algorithms_are_refused_even_with_a_valid_rs256_signature() {
    let verifier = verifier_a();
    let valid = sign(&header("RS256"), &claims(), key_a());
    let signature = valid.rsplit('.').next().expect("three parts");
    for alg in [
        "HS256", "HS512", "ES256", "PS256", "PS512", "RS384", "EdDSA", "rs256", "",
    ] {
        let token = format!(
            "{}.{}.{signature}",
            b64(header(alg).to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        rejected(
            verifier.verify(&token, NOW),
            RejectReason::AlgorithmNotAllowed,
            &token,
        );
    }
}

#[test]
fn hs256_signed_with_the_public_key_bytes_is_refused() {
    let cert_pem = key_a().certificate_pem.clone();
    let public_pem = public_key_pem(key_a());
    let cert_der = pem::parse(&cert_pem).expect("PEM").into_contents();
    let spki = spki_der(key_a());
    let (_, info) = SubjectPublicKeyInfo::from_der(&spki).expect("SPKI");
    let pkcs1 = info.subject_public_key.data.to_vec();
    for (verifier, secret) in [
        (verifier_a(), cert_pem.as_bytes().to_vec()),
        (verifier_a(), cert_der),
        (verifier(public_pem.clone()), public_pem.as_bytes().to_vec()),
        (verifier(public_pem.clone()), spki.clone()),
        (verifier(public_pem), pkcs1),
    ] {
        let token = sign_raw(
            &header("HS256").to_string(),
            &claims().to_string(),
            &EncodingKey::from_secret(&secret).expect("HMAC key"),
            Algorithm::HS256,
        );
        rejected(
            verifier.verify(&token, NOW),
            RejectReason::AlgorithmNotAllowed,
            &token,
        );
    }
}

#[test]
fn rs256_by_a_foreign_key_is_refused() {
    let token = sign(&header("RS256"), &claims(), attacker());
    rejected(
        verifier_a().verify(&token, NOW),
        RejectReason::BadSignature,
        &token,
    );
    // Claiming a pinned kid does not help.
    let token = sign(
        &json!({"alg": "RS256", "kid": "key-a"}),
        &claims(),
        attacker(),
    );
    rejected(
        verifier_rotation().verify(&token, NOW),
        RejectReason::BadSignature,
        &token,
    );
}

#[test]
fn tampered_claims_are_refused() {
    let token = sign(&header("RS256"), &claims(), key_a());
    let mut forged = claims();
    forged["sub"] = json!("evil@example.com");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = b64(forged.to_string().as_bytes());
    let token = parts.join(".");
    rejected(
        verifier_a().verify(&token, NOW),
        RejectReason::BadSignature,
        &token,
    );
}

#[test]
fn claims_are_judged_only_after_the_signature() {
    let mut bad = claims();
    bad["iss"] = json!("evil");
    bad["exp"] = json!(NOW - 3600);
    let token = sign(&header("RS256"), &bad, attacker());
    rejected(
        verifier_a().verify(&token, NOW),
        RejectReason::BadSignature,
        &token,
    );
}

#[test]
fn expiry_honours_the_leeway() {
    let verifier = verifier_a();
    let mut claims = claims();
    claims["iat"] = json!(NOW - 300);
    claims["nbf"] = json!(NOW - 300);
    claims["exp"] = json!(NOW - LEEWAY_SECS - 1);
    let token = sign(&header("RS256"), &claims, key_a());
    rejected(verifier.verify(&token, NOW), RejectReason::Expired, &token);

    claims["exp"] = json!(NOW - LEEWAY_SECS + 1);
    let token = sign(&header("RS256"), &claims, key_a());
    assert!(verifier.verify(&token, NOW).is_ok(), "within leeway");
}

#[test]
fn nbf_in_the_future_is_refused() {
    let verifier = verifier_a();
    let mut claims = claims();
    claims["nbf"] = json!(NOW + LEEWAY_SECS + 1);
    let token = sign(&header("RS256"), &claims, key_a());
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::NotYetValid,
        &token,
    );

    claims["nbf"] = json!(NOW + LEEWAY_SECS);
    let token = sign(&header("RS256"), &claims, key_a());
    assert!(verifier.verify(&token, NOW).is_ok(), "within leeway");
}

#[test]
fn iat_in_the_future_is_refused() {
    let verifier = verifier_a();
    let mut claims = claims();
    claims["iat"] = json!(NOW + LEEWAY_SECS + 1);
    claims["nbf"] = json!(NOW);
    claims["exp"] = json!(NOW + LEEWAY_SECS + 100);
    let token = sign(&header("RS256"), &claims, key_a());
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::IssuedInFuture,
        &token,
    );

    claims["iat"] = json!(NOW + LEEWAY_SECS);
    let token = sign(&header("RS256"), &claims, key_a());
    assert!(verifier.verify(&token, NOW).is_ok(), "within leeway");
}

#[test]
fn one_hour_lifetime_is_refused() {
    let verifier = verifier_a();
    let mut claims = claims();
    claims["exp"] = json!(NOW + 3600);
    let token = sign(&header("RS256"), &claims, key_a());
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::LifetimeTooLong,
        &token,
    );

    claims["exp"] = json!(NOW + MAX_LIFETIME_SECS + 1);
    let token = sign(&header("RS256"), &claims, key_a());
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::LifetimeTooLong,
        &token,
    );

    claims["exp"] = json!(NOW + MAX_LIFETIME_SECS);
    let token = sign(&header("RS256"), &claims, key_a());
    assert!(verifier.verify(&token, NOW).is_ok(), "exactly 10 minutes");
}

#[test]
fn lifetime_without_iat_is_measured_from_now() {
    let verifier = verifier_a();
    let claims = |exp: i64| json!({"iss": ISS, "aud": AUD, "exp": exp});
    let token = sign(&header("RS256"), &claims(NOW + 3600), key_a());
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::LifetimeTooLong,
        &token,
    );
    let token = sign(
        &header("RS256"),
        &claims(NOW + MAX_LIFETIME_SECS + LEEWAY_SECS),
        key_a(),
    );
    assert!(verifier.verify(&token, NOW).is_ok(), "10 minutes plus skew");
}

#[test]
fn wrong_issuer_is_refused() {
    let verifier = verifier_a();
    for iss in [json!("evil"), json!(format!("{ISS} ")), json!(&ISS[..15])] {
        let mut claims = claims();
        claims["iss"] = iss;
        let token = sign(&header("RS256"), &claims, key_a());
        rejected(
            verifier.verify(&token, NOW),
            RejectReason::WrongIssuer,
            &token,
        );
    }
    let mut claims = claims();
    claims.as_object_mut().expect("object").remove("iss");
    let token = sign(&header("RS256"), &claims, key_a());
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::WrongIssuer,
        &token,
    );
}

#[test]
fn wrong_audience_is_refused() {
    let verifier = verifier_a();
    for aud in [
        json!("https://evil.example.com"),
        json!(format!("{AUD}/")),
        json!(["https://evil.example.com"]),
        json!([format!("{AUD}.evil.example")]),
        json!([]),
    ] {
        let mut claims = claims();
        claims["aud"] = aud;
        let token = sign(&header("RS256"), &claims, key_a());
        rejected(
            verifier.verify(&token, NOW),
            RejectReason::WrongAudience,
            &token,
        );
    }
    let mut claims = claims();
    claims.as_object_mut().expect("object").remove("aud");
    let token = sign(&header("RS256"), &claims, key_a());
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::WrongAudience,
        &token,
    );
}

#[test]
fn missing_exp_is_refused() {
    let mut claims = claims();
    claims.as_object_mut().expect("object").remove("exp");
    let token = sign(&header("RS256"), &claims, key_a());
    rejected(
        verifier_a().verify(&token, NOW),
        RejectReason::MissingExp,
        &token,
    );
}

#[test]
fn key_carrying_headers_are_refused_not_ignored() {
    let verifier = verifier_a();
    let cert_der = pem::parse(&attacker().certificate_pem)
        .expect("PEM")
        .into_contents();
    let x5c = base64::engine::general_purpose::STANDARD.encode(cert_der);
    for (name, value) in [
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("jwk", json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})),
        ("x5c", json!([x5c])),
    ] {
        // Signed by the legitimate key: the header alone is reason to refuse.
        let mut header = header("RS256");
        header[name] = value;
        let token = sign(&header, &claims(), key_a());
        rejected(
            verifier.verify(&token, NOW),
            RejectReason::ForeignKeyHeader,
            &token,
        );
    }
}

#[test]
fn embedded_attacker_jwk_is_refused() {
    let spki = spki_der(attacker());
    let (_, info) = SubjectPublicKeyInfo::from_der(&spki).expect("SPKI");
    let key = RsaPublicKey::from_pkcs1_der(&info.subject_public_key.data).expect("RSA");
    let header = json!({
        "alg": "RS256",
        "jwk": {"kty": "RSA", "n": b64(&key.n_bytes()), "e": b64(&key.e_bytes())},
    });
    let token = sign(&header, &claims(), attacker());
    rejected(
        verifier_a().verify(&token, NOW),
        RejectReason::ForeignKeyHeader,
        &token,
    );
}

#[test]
fn crit_header_is_malformed() {
    let mut header = header("RS256");
    header["crit"] = json!(["b64"]);
    header["b64"] = json!(false);
    let token = sign(&header, &claims(), key_a());
    rejected(
        verifier_a().verify(&token, NOW),
        RejectReason::Malformed,
        &token,
    );
}

#[test]
fn malformed_tokens_are_refused() {
    let verifier = verifier_a();
    let valid = sign(&header("RS256"), &claims(), key_a());
    let parts: Vec<&str> = valid.split('.').collect();
    let h = b64(header("RS256").to_string().as_bytes());
    let c = b64(claims().to_string().as_bytes());
    let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
    let cases = [
        String::new(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{valid}.extra"),
        format!("!!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}.***", parts[0], parts[1]),
        format!("{}.{}.{}", parts[0], "%%%", parts[2]),
        padded,
        format!("{}.{c}.{}", b64(b"{\"alg\":\"RS256\""), parts[2]),
        format!("{}.{c}.{}", b64(b"[\"RS256\"]"), parts[2]),
        format!("{h}.{}.{}", b64(b"not json"), parts[2]),
        format!("{h}.{}.{}", b64(b"\"a string\""), parts[2]),
        format!("{}.{c}.{}", b64(b"{\"typ\":\"JWT\"}"), parts[2]),
        format!("{}.{c}.{}", b64(b"{\"alg\":256}"), parts[2]),
    ];
    for token in &cases {
        rejected(verifier.verify(token, NOW), RejectReason::Malformed, token);
    }
}

#[test]
fn oversized_token_is_refused_before_decoding() {
    let mut claims = claims();
    claims["padding"] = json!("x".repeat(9 * 1024));
    let token = sign(&header("RS256"), &claims, key_a());
    assert!(token.len() > MAX_TOKEN_BYTES);
    rejected(
        verifier_a().verify(&token, NOW),
        RejectReason::Malformed,
        &token,
    );
    // Not even a well-formed prefix is looked at.
    let junk = "a".repeat(9 * 1024);
    rejected(
        verifier_a().verify(&junk, NOW),
        RejectReason::Malformed,
        &junk,
    );
}

#[test]
fn wrongly_typed_or_duplicated_claims_are_malformed() {
    let verifier = verifier_a();
    for (name, value) in [
        ("exp", json!((NOW + 120).to_string())),
        ("exp", json!(NOW as f64 + 120.5)),
        ("exp", Value::Null),
        ("nbf", json!(NOW.to_string())),
        ("iat", json!([NOW])),
        ("iss", json!([ISS])),
        ("aud", json!([AUD, 1])),
        ("aud", json!({"aud": AUD})),
        ("jti", json!(1)),
        ("sub", json!(false)),
    ] {
        let mut claims = claims();
        claims[name] = value;
        let token = sign(&header("RS256"), &claims, key_a());
        rejected(
            verifier.verify(&token, NOW),
            RejectReason::Malformed,
            &token,
        );
    }
    let duplicated = format!(
        "{{\"iss\":\"evil\",\"iss\":\"{ISS}\",\"aud\":\"{AUD}\",\"exp\":{}}}",
        NOW + 60
    );
    let token = sign_raw(
        &header("RS256").to_string(),
        &duplicated,
        &rsa_key(key_a()),
        Algorithm::RS256,
    );
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::Malformed,
        &token,
    );
    let duplicated_alg = "{\"alg\":\"none\",\"alg\":\"RS256\"}";
    let token = sign_raw(
        duplicated_alg,
        &claims().to_string(),
        &rsa_key(key_a()),
        Algorithm::RS256,
    );
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::Malformed,
        &token,
    );
}

#[test]
fn pinned_kid_selects_only_that_key() {
    let verifier = verifier_rotation();
    let kid = |kid: &str| json!({"alg": "RS256", "kid": kid});

    let token = sign(&kid("key-b"), &claims(), key_b());
    assert!(verifier.verify(&token, NOW).is_ok(), "B via its kid");
    let token = sign(&kid("key-a"), &claims(), key_a());
    assert!(verifier.verify(&token, NOW).is_ok(), "A via its kid");

    let token = sign(&kid("key-b"), &claims(), key_a());
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::BadSignature,
        &token,
    );
    let token = sign(&kid("key-a"), &claims(), key_b());
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::BadSignature,
        &token,
    );
}

#[test]
fn unknown_or_absent_kid_tries_every_key() {
    let verifier = verifier_rotation();
    for key in [key_a(), key_b()] {
        let token = sign(
            &json!({"alg": "RS256", "kid": "salesforce-chose-this"}),
            &claims(),
            key,
        );
        assert!(verifier.verify(&token, NOW).is_ok(), "unknown kid");
        let token = sign(&header("RS512"), &claims(), key);
        assert!(verifier.verify(&token, NOW).is_ok(), "no kid");
    }
    let token = sign(&json!({"alg": "RS256", "kid": 7}), &claims(), key_a());
    rejected(
        verifier.verify(&token, NOW),
        RejectReason::Malformed,
        &token,
    );
}

#[test]
fn certificate_and_public_key_configurations_both_work() {
    let from_cert = verifier(key_a().certificate_pem.clone());
    let from_public_key = verifier(public_key_pem(key_a()));
    // Without kids, CRLF line endings and labels between blocks.
    let mixed = verifier(format!(
        "A (certificate)\r\n{}\r\nB (public key)\r\n{}",
        key_a().certificate_pem.replace('\n', "\r\n"),
        public_key_pem(key_b())
    ));
    let token_a = sign(&header("RS256"), &claims(), key_a());
    let token_b = sign(&header("RS256"), &claims(), key_b());
    assert!(from_cert.verify(&token_a, NOW).is_ok());
    assert!(from_public_key.verify(&token_a, NOW).is_ok());
    rejected(
        from_public_key.verify(&token_b, NOW),
        RejectReason::BadSignature,
        &token_b,
    );
    assert!(mixed.verify(&token_a, NOW).is_ok());
    assert!(mixed.verify(&token_b, NOW).is_ok());
}

fn load(keys_pem: &str) -> Result<EventsVerifier, KeyError> {
    EventsVerifier::from_settings(&EventsJwtSettings {
        keys_pem: keys_pem.to_owned(),
        issuer: ISS.to_owned(),
        audience: AUD.to_owned(),
    })
}

#[test]
fn non_rsa_and_non_key_blocks_are_refused() {
    let ec = rcgen::KeyPair::generate().expect("EC key");
    let err = load(&ec.public_key_pem()).expect_err("EC key refused");
    assert!(err.to_string().contains("not an RSA key"), "{err}");

    let private = key_a().private_key_pem.expose_secret().to_owned();
    assert!(matches!(
        load(&private),
        Err(KeyError::Block { block: 1, .. })
    ));
    assert_eq!(load("").err(), Some(KeyError::NoKeys));
    assert_eq!(load("just text\n").err(), Some(KeyError::NoKeys));
}

#[test]
fn short_rsa_keys_are_refused() {
    let err = load(&public_key_with_modulus_bits(1024, 65537)).expect_err("1024-bit key refused");
    assert!(err.to_string().contains("1024 bits"), "{err}");
}

/// A public key with an odd `bits`-bit modulus: enough for the loader's checks, which never
/// need the private half.
fn public_key_with_modulus_bits(bits: u32, exponent: u64) -> String {
    use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
    let mut modulus = vec![0xA5u8; bits.div_ceil(8) as usize];
    modulus[0] = 0x80 >> ((8 - bits % 8) % 8);
    *modulus.last_mut().unwrap() |= 1;
    let n = rsa::BoxedUint::from_be_slice(&modulus, bits).expect("modulus");
    rsa::PublicKey::new_unchecked(n, rsa::BoxedUint::from(exponent))
        .to_public_key_pem(LineEnding::LF)
        .expect("PEM")
}

#[test]
fn long_rsa_keys_are_refused() {
    // The rsa crate alone parses moduli up to 8192 bits; a forger's oversized key must not
    // make every verification expensive.
    let err = load(&public_key_with_modulus_bits(4104, 65537)).expect_err("4104-bit key refused");
    assert!(err.to_string().contains("4104 bits"), "{err}");
    load(&public_key_with_modulus_bits(4096, 65537)).expect("4096 bits is the largest accepted");
}

#[test]
fn keys_ring_could_not_verify_with_are_refused_at_load() {
    let err = load(&public_key_with_modulus_bits(2048, 65536)).expect_err("even exponent refused");
    assert!(err.to_string().contains("not usable"), "{err}");
}

#[test]
fn kid_lines_are_checked() {
    let cert = &key_a().certificate_pem;
    let public = public_key_pem(key_b());
    let ok = load(&format!("KID:  spaced-kid \n{cert}")).expect("loads");
    assert_eq!(ok.keys[0].kid.as_deref(), Some("spaced-kid"));

    let trailing_line = cert.lines().count() + 1;
    for (text, line) in [
        (format!("kid: a\n\n{cert}"), 1),
        (format!("{cert}kid: a\n"), trailing_line),
        (format!("kid: a\nkid: b\n{cert}"), 1),
        (format!("kid:\n{cert}"), 1),
    ] {
        match load(&text) {
            Err(KeyError::Kid { line: got, .. }) => assert_eq!(got, line, "{text}"),
            other => panic!("expected a kid error for {text:?}, got {other:?}"),
        }
    }
    assert!(matches!(
        load(&format!("kid: same\n{cert}kid: same\n{public}")),
        Err(KeyError::Block { block: 2, .. })
    ));
    assert!(matches!(
        load(&format!("label {}", cert)),
        Err(KeyError::Layout(_))
    ));
}

#[test]
fn debug_does_not_print_key_material() {
    let verifier = verifier_rotation();
    let debug = format!("{verifier:?}");
    assert!(
        debug.contains("key-a") && debug.contains("rsa_bits: 2048"),
        "{debug}"
    );
    let spki = b64(&spki_der(key_a()));
    let std_b64 = base64::engine::general_purpose::STANDARD.encode(spki_der(key_a()));
    for needle in [&spki[40..80], &std_b64[40..80], "BEGIN", "BigUint", "65537"] {
        assert!(!debug.contains(needle), "{needle} in {debug}");
    }
}

#[test]
fn reason_labels_are_distinct_snake_case() {
    let labels: HashSet<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(labels.len(), RejectReason::ALL.len());
    for label in labels {
        assert!(
            label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{label}"
        );
    }
    assert_eq!(Rejection::replayed().reason.as_str(), "replayed");
}

#[test]
fn a_token_seen_again_skips_rsa_but_every_claim_rule_still_applies() {
    let verifier = verifier_a();
    let token = sign(&header("RS256"), &claims(), key_a());
    assert!(verifier.verify(&token, NOW + 5).is_ok());
    assert!(verifier.verify(&token, NOW + 6).is_ok());
    assert_eq!(verifier.rsa_checks(), 1, "the second time is remembered");
    // Remembered, and expired all the same: the verdict covers the signature only.
    rejected(
        verifier.verify(&token, NOW + 120 + LEEWAY_SECS),
        RejectReason::Expired,
        &token,
    );
    rejected(
        verifier.verify(&token, NOW - 2 * LEEWAY_SECS),
        RejectReason::NotYetValid,
        &token,
    );
    assert_eq!(verifier.rsa_checks(), 1);
}

#[test]
fn a_forgery_seen_again_fails_without_rsa_and_a_new_one_pays_in_full() {
    let verifier = verifier_a();
    let token = sign(&header("RS256"), &claims(), key_a());
    let forged = testing::forged(&token);
    for _ in 0..3 {
        rejected(
            verifier.verify(&forged, NOW + 5),
            RejectReason::BadSignature,
            &forged,
        );
    }
    assert_eq!(verifier.rsa_checks(), 1);
    // The genuine token differs by one character: its own verdict, not the forgery's.
    assert!(verifier.verify(&token, NOW + 5).is_ok());
    let other = sign(&header("RS256"), &claims(), attacker());
    rejected(
        verifier.verify(&other, NOW + 5),
        RejectReason::BadSignature,
        &other,
    );
    assert_eq!(verifier.rsa_checks(), 3);
}

#[test]
fn a_remembered_verdict_belongs_to_its_verifier_and_keys() {
    // The same token against a verifier without key A: verified there from scratch.
    let token = sign(&header("RS256"), &claims(), key_a());
    let a = verifier_a();
    assert!(a.verify(&token, NOW + 5).is_ok());
    let b = verifier(key_b().certificate_pem.clone());
    rejected(
        b.verify(&token, NOW + 5),
        RejectReason::BadSignature,
        &token,
    );
    assert_eq!(b.rsa_checks(), 1);
}
