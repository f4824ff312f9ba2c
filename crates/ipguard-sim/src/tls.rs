//! `ipguard sim --tls`: HTTPS in front of the simulated org, for clients that insist on
//! `https://` (simple-salesforce builds every URL as `https://{instance}`).
//!
//! A throwaway certificate authority is generated per start and signs a leaf certificate
//! for `127.0.0.1` and `localhost` (ECDSA P-256). Clients trust the CA's PEM (written to a
//! file and printed), e.g. `NODE_EXTRA_CA_CERTS` for Node, `REQUESTS_CA_BUNDLE` for Python
//! requests: certificate verification stays on. TLS is terminated here and the plain bytes
//! are relayed to the org's HTTP listener on another loopback port.

use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Installs rustls' ring provider once per process: reqwest is built without a default one,
/// and ring is the one the service installs too.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The generated CA (what clients trust) and the server configuration it vouches for.
pub struct TlsMaterial {
    /// PEM of the certificate authority that signed the server's certificate.
    pub ca_pem: String,
    server_config: Arc<rustls::ServerConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate the simulated org's certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsMaterial {
    /// A fresh CA and a leaf certificate for `127.0.0.1` and `localhost`, valid for a day.
    pub fn generate() -> Result<Self, TlsError> {
        let now = time::OffsetDateTime::now_utc();
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ipguard simulated org CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = now - time::Duration::hours(1);
        ca_params.not_after = now + time::Duration::days(1);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut leaf_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.use_authority_key_identifier_extension = true;
        leaf_params.not_before = now - time::Duration::hours(1);
        leaf_params.not_after = now + time::Duration::days(1);
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca)?;

        let chain = vec![leaf.der().clone(), CertificateDer::from(ca.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        Ok(Self {
            ca_pem: ca.pem(),
            server_config: Arc::new(server_config),
        })
    }
}

/// Accepts TLS on `listener` and relays each connection to `backend` (the plain listener)
/// until the task is aborted. A failed handshake drops that connection only.
pub(crate) async fn serve(listener: TcpListener, backend: std::net::SocketAddr, tls: &TlsMaterial) {
    let acceptor = TlsAcceptor::from(tls.server_config.clone());
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "sim tls: accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Err(e) = relay(acceptor, socket, backend).await {
                tracing::debug!(error = %e, "sim tls: connection ended with an error");
            }
        });
    }
}

async fn relay(
    acceptor: TlsAcceptor,
    socket: TcpStream,
    backend: std::net::SocketAddr,
) -> io::Result<()> {
    let mut tls = acceptor.accept(socket).await?;
    let mut plain = TcpStream::connect(backend).await?;
    tokio::io::copy_bidirectional(&mut tls, &mut plain).await?;
    Ok(())
}
