//! Key configuration: loading, `kid` pinning and selection, rotation, and `Debug`.

use super::*;

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
