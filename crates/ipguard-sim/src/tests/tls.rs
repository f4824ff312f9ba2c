//! `ipguard sim --tls`: HTTPS with a certificate its generated CA vouches for.

use super::*;

#[tokio::test]
async fn tls_serves_https_with_a_certificate_its_ca_vouches_for() {
    crate::tls::install_crypto_provider();
    let tls = TlsMaterial::generate().unwrap();
    let ca = reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap();
    let sim = SimOrg::start_tls(config(), 0, tls).await.unwrap();
    assert!(
        sim.base_url().starts_with("https://127.0.0.1:"),
        "{}",
        sim.base_url()
    );
    let trusting = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let response = trusting
        .post(format!("{}/services/oauth2/token", sim.base_url()))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", sign(key(), &good_claims()).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["instance_url"], sim.base_url());
    // A client that does not trust the CA is refused by its own verification.
    let stranger = client()
        .get(format!("{}/services/data/v66.0/query", sim.base_url()))
        .send()
        .await;
    assert!(
        stranger.is_err(),
        "an untrusted certificate must not verify"
    );
    sim.stop().await;
}
