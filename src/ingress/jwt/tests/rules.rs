//! Each token rule of the module doc's table, accepted and refused.

use super::*;

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
