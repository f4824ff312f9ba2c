//! Remembered signature verdicts: RSA once per distinct token, claims every time.

use super::*;

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
