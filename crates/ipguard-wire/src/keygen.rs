//! `ipguard keygen`: the RSA key that signs the JWT bearer assertion and the self-signed
//! certificate an admin uploads to the External Client App.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_RSA_SHA256};
use rsa::PrivateKey as RsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

/// File name of the private key inside the output directory.
pub const KEY_FILE: &str = "ipguard.key";
/// File name of the certificate inside the output directory.
pub const CERT_FILE: &str = "ipguard.crt";

const RSA_BITS: usize = 2048;
const MAX_DAYS: u32 = 3650;
/// X.520 upper bound for a common name; longer names make invalid certificates.
const MAX_COMMON_NAME: usize = 64;

/// A freshly generated key and its certificate, both PEM.
#[derive(Debug, Clone)]
pub struct KeyMaterial {
    /// PKCS#8 (`BEGIN PRIVATE KEY`).
    pub private_key_pem: SecretString,
    pub certificate_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("--days must be between 1 and {MAX_DAYS}, got {0}")]
    Days(u32),
    #[error("--common-name must not be empty")]
    EmptyCommonName,
    #[error("--common-name must be at most {MAX_COMMON_NAME} characters, got {0}")]
    CommonNameTooLong(usize),
    #[error("generating the RSA key failed: {0}")]
    Rsa(#[from] rsa::Error),
    #[error("encoding the private key as PKCS#8 failed: {0}")]
    Pkcs8(#[from] rsa::pkcs8::Error),
    #[error("building the certificate failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("{} already exists; move it away or choose another --out directory (keygen never overwrites)", .0.display())]
    Exists(PathBuf),
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Generates an RSA 2048 key and a self-signed SHA-256 certificate for `common_name`.
///
/// The certificate is valid from one day ago (so a client whose clock runs behind still
/// accepts it) until `days` days from now.
pub fn generate(common_name: &str, days: u32) -> Result<KeyMaterial, KeygenError> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(KeygenError::Days(days));
    }
    let common_name = common_name.trim();
    if common_name.is_empty() {
        return Err(KeygenError::EmptyCommonName);
    }
    let cn_len = common_name.chars().count();
    if cn_len > MAX_COMMON_NAME {
        return Err(KeygenError::CommonNameTooLong(cn_len));
    }

    let key = RsaPrivateKey::new(&mut getrandom::SysRng, RSA_BITS)?;
    let pkcs8 = key.to_pkcs8_pem(LineEnding::LF)?;
    let private_key_pem = SecretString::from(pkcs8.as_str());

    let signing_key =
        KeyPair::from_pem_and_sign_algo(private_key_pem.expose_secret(), &PKCS_RSA_SHA256)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(i64::from(days));
    let certificate = params.self_signed(&signing_key)?;

    Ok(KeyMaterial {
        private_key_pem,
        certificate_pem: certificate.pem(),
    })
}

/// Writes `dir/ipguard.key` (0600) and `dir/ipguard.crt` (0644), creating `dir` if needed.
/// Refuses when either file exists; nothing is written in that case.
pub fn write(dir: &Path, material: &KeyMaterial) -> Result<(PathBuf, PathBuf), KeygenError> {
    let key_path = dir.join(KEY_FILE);
    let cert_path = dir.join(CERT_FILE);
    // Check both first so a refusal never leaves half a pair behind.
    for path in [&key_path, &cert_path] {
        // symlink_metadata: a dangling symlink also counts as "exists".
        if path.symlink_metadata().is_ok() {
            return Err(KeygenError::Exists(path.clone()));
        }
    }
    fs::create_dir_all(dir).map_err(|source| KeygenError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    write_pair(&key_path, &cert_path, material)?;
    Ok((key_path, cert_path))
}

fn write_pair(
    key_path: &Path,
    cert_path: &Path,
    material: &KeyMaterial,
) -> Result<(), KeygenError> {
    // The key is created with its final mode; a chmod afterwards would leave a window in
    // which the key is readable by others.
    write_new(key_path, 0o600, material.private_key_pem.expose_secret())?;
    if let Err(err) = write_new(cert_path, 0o644, &material.certificate_pem) {
        // Don't leave a key without its certificate: the admin would have to clean up
        // before a retry could succeed.
        if let Err(remove_err) = fs::remove_file(key_path) {
            tracing::warn!(path = %key_path.display(), error = %remove_err, "could not remove key after failed certificate write");
        }
        return Err(err);
    }
    Ok(())
}

fn write_new(path: &Path, mode: u32, contents: &str) -> Result<(), KeygenError> {
    let mut file = OpenOptions::new()
        .write(true)
        // create_new: fails if the file appeared since the check (no overwrite race).
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                KeygenError::Exists(path.to_path_buf())
            } else {
                KeygenError::Write {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| KeygenError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// One key for the whole test binary: RSA generation is slow in debug builds.
#[cfg(test)]
pub(crate) fn test_material() -> &'static KeyMaterial {
    static MATERIAL: std::sync::OnceLock<KeyMaterial> = std::sync::OnceLock::new();
    MATERIAL.get_or_init(|| generate("ipguard-test", 30).expect("test key generation"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::pem::parse_x509_pem;
    use x509_parser::public_key::PublicKey;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Claims {
        sub: String,
        exp: u64,
    }

    #[test]
    fn private_key_is_pkcs8_and_loads_for_jwt() {
        let material = test_material();
        let pem = material.private_key_pem.expose_secret();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(EncodingKey::from_rsa_pem(pem.as_bytes()).is_ok());
    }

    #[test]
    fn certificate_has_common_name_and_validity_window() {
        let material = test_material();
        let (_, pem) = parse_x509_pem(material.certificate_pem.as_bytes()).expect("pem");
        assert_eq!(pem.label, "CERTIFICATE");
        let cert = pem.parse_x509().expect("x509");
        let cns: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|cn| cn.as_str().expect("utf8 cn"))
            .collect();
        assert_eq!(cns, ["ipguard-test"]);
        assert_eq!(cert.subject(), cert.issuer(), "self-signed");
        assert_eq!(
            cert.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA
        );

        let now = OffsetDateTime::now_utc().unix_timestamp();
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        let day = 86_400;
        // Generated moments ago in this test run: allow a few minutes of slack.
        assert!(
            (now - day - not_before).abs() < 300,
            "not_before ≈ now − 1 day"
        );
        assert!(
            (now + 30 * day - not_after).abs() < 300,
            "not_after ≈ now + 30 days"
        );
        match cert.public_key().parsed().expect("spki") {
            PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 2048),
            other => panic!("expected an RSA key, got {other:?}"),
        }
    }

    #[test]
    fn jwt_signed_with_key_verifies_with_certificate() {
        let material = test_material();
        let key = EncodingKey::from_rsa_pem(material.private_key_pem.expose_secret().as_bytes())
            .expect("key");
        let claims = Claims {
            sub: "integration@example.com".to_owned(),
            exp: 4_102_444_800, // 2100-01-01
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).expect("sign");

        let (_, pem) = parse_x509_pem(material.certificate_pem.as_bytes()).expect("pem");
        let cert = pem.parse_x509().expect("x509");
        // The SPKI bit string holds the PKCS#1 RSAPublicKey that from_rsa_der expects.
        let public = DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
        let decoded =
            jsonwebtoken::decode::<Claims>(&token, &public, &Validation::new(Algorithm::RS256))
                .expect("verifies");
        assert_eq!(decoded.claims, claims);

        // And a tampered token does not.
        let mut parts: Vec<&str> = token.split('.').collect();
        let other_payload = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &Claims {
                sub: "someone-else".to_owned(),
                exp: claims.exp,
            },
            &key,
        )
        .expect("sign");
        parts[1] = other_payload.split('.').nth(1).expect("payload");
        let tampered = parts.join(".");
        assert!(
            jsonwebtoken::decode::<Claims>(&tampered, &public, &Validation::new(Algorithm::RS256))
                .is_err()
        );
    }

    #[test]
    fn bad_arguments_are_refused_before_generating() {
        assert!(matches!(generate("x", 0), Err(KeygenError::Days(0))));
        assert!(matches!(generate("x", 3651), Err(KeygenError::Days(3651))));
        assert!(matches!(
            generate("  ", 1),
            Err(KeygenError::EmptyCommonName)
        ));
        assert!(matches!(
            generate(&"a".repeat(65), 1),
            Err(KeygenError::CommonNameTooLong(65))
        ));
    }

    #[test]
    fn write_creates_dir_and_sets_modes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("nested").join("keys");
        let material = test_material();
        let (key_path, cert_path) = write(&out, material).expect("write");
        assert_eq!(key_path, out.join("ipguard.key"));
        assert_eq!(cert_path, out.join("ipguard.crt"));

        let key_mode = fs::metadata(&key_path).expect("key").permissions().mode() & 0o777;
        assert_eq!(key_mode, 0o600);
        let cert_mode = fs::metadata(&cert_path).expect("cert").permissions().mode() & 0o777;
        // The process umask may only remove bits; group/other must never gain write.
        assert_eq!(cert_mode & !0o644, 0, "cert mode {cert_mode:o}");
        assert_eq!(cert_mode & 0o600, 0o600);

        assert_eq!(
            fs::read_to_string(&key_path).expect("read"),
            material.private_key_pem.expose_secret()
        );
        assert_eq!(
            fs::read_to_string(&cert_path).expect("read"),
            material.certificate_pem
        );
    }

    #[test]
    fn write_refuses_to_overwrite_and_leaves_files_untouched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let first = test_material();
        write(tmp.path(), first).expect("first write");

        // Different content, so an overwrite would be visible.
        let second = KeyMaterial {
            private_key_pem: SecretString::from("not the first key"),
            certificate_pem: "not the first cert".to_owned(),
        };
        let err = write(tmp.path(), &second).expect_err("refuses");
        assert!(matches!(&err, KeygenError::Exists(p) if p == &tmp.path().join(KEY_FILE)));
        assert!(err.to_string().contains("ipguard.key already exists"));
        assert_eq!(
            fs::read_to_string(tmp.path().join(KEY_FILE)).expect("read"),
            first.private_key_pem.expose_secret()
        );
        assert_eq!(
            fs::read_to_string(tmp.path().join(CERT_FILE)).expect("read"),
            first.certificate_pem
        );
    }

    #[test]
    fn failed_certificate_write_removes_the_key() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let key_path = tmp.path().join(KEY_FILE);
        // A parent directory that does not exist makes the certificate write fail.
        let cert_path = tmp.path().join("missing").join(CERT_FILE);
        let err = write_pair(&key_path, &cert_path, test_material()).expect_err("fails");
        assert!(matches!(&err, KeygenError::Write { path, .. } if path == &cert_path));
        assert!(!key_path.exists(), "no orphaned key");
    }

    #[test]
    fn debug_output_redacts_the_key() {
        let material = test_material();
        let debug = format!("{material:?}");
        let body = material
            .private_key_pem
            .expose_secret()
            .lines()
            .nth(1)
            .expect("key body");
        assert!(!debug.contains(body));
        assert!(debug.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn existing_certificate_alone_blocks_the_key_too() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join(CERT_FILE), "old cert").expect("seed");
        let err = write(tmp.path(), test_material()).expect_err("refuses");
        assert!(matches!(&err, KeygenError::Exists(p) if p == &tmp.path().join(CERT_FILE)));
        assert!(
            !tmp.path().join(KEY_FILE).exists(),
            "no key written when the cert exists"
        );
        assert_eq!(
            fs::read_to_string(tmp.path().join(CERT_FILE)).expect("read"),
            "old cert"
        );
    }
}
