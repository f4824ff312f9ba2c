//! Parsers for single configuration values (URLs, the database URL, IPs, PEM keys): each
//! returns the typed value or the problem in words, for the start-up report.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use reqwest::Url;
use secrecy::SecretString;

use crate::salesforce::auth::SigningKey;

use super::{
    DatabaseUrl, HTTPS_ONLY, LOGIN_AUDIENCE, MIN_TOKEN_CHARS, RSA_KEY_EXPECTED, TEST_AUDIENCE,
};

/// Heroku config vars are single-line in many UIs, so people paste PEM with literal `\n`.
pub(super) fn unescape_newlines(text: &str) -> String {
    text.replace("\\r\\n", "\n").replace("\\n", "\n")
}

pub(super) fn constant_url(url: &'static str) -> Url {
    Url::parse(url).expect("built-in default URL parses")
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// An https URL (http on loopback, for the simulated org and tests). Messages never
/// contain the value, because some of these URLs are secrets.
pub(super) fn parse_http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a valid URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(HTTPS_ONLY.to_owned()),
    }
}

/// A service base URL: https (or loopback http), no credentials, query or fragment;
/// with `!allow_path`, nothing after the host but an optional `/`.
pub(super) fn parse_base_url(value: &str, allow_path: bool) -> Result<Url, String> {
    let url = parse_http_url(value)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query string or fragment".to_owned());
    }
    if !allow_path && url.path() != "/" {
        return Err(
            "must be scheme and host only, e.g. https://login.salesforce.com or https://MyDomain.my.salesforce.com"
                .to_owned(),
        );
    }
    Ok(url)
}

pub(super) fn parse_login_url(value: &str) -> Result<Url, String> {
    parse_base_url(value, false)
}

/// Sandboxes (test.salesforce.com or a sandbox My Domain) take the test audience even
/// when the token is requested from My Domain; everything else the login audience.
pub(super) fn default_audience(login_url: &Url) -> &'static str {
    let host = login_url.host_str().unwrap_or_default();
    if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
        TEST_AUDIENCE
    } else {
        LOGIN_AUDIENCE
    }
}

/// `^\d{2,3}\.0$`
pub(super) fn is_api_version(value: &str) -> bool {
    value.strip_suffix(".0").is_some_and(|major| {
        (2..=3).contains(&major.len()) && major.bytes().all(|b| b.is_ascii_digit())
    })
}

pub(super) fn check_token_length(value: &str) -> Result<(), String> {
    if value.chars().count() < MIN_TOKEN_CHARS {
        Err(format!(
            "must be at least {MIN_TOKEN_CHARS} characters; generate one with `openssl rand -hex 32`"
        ))
    } else {
        Ok(())
    }
}

pub(super) fn parse_database_url(value: &str) -> Result<DatabaseUrl, String> {
    // Never echo the value: a Postgres URL carries its password.
    let scheme = value
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("sqlite") => {
            let rest = &value["sqlite:".len()..];
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                Err("the sqlite URL has no file path; use e.g. sqlite://ipguard.db".to_owned())
            } else if path.contains('?') {
                Err("sqlite URL options are not supported; give only the file path, e.g. sqlite://ipguard.db".to_owned())
            } else {
                Ok(DatabaseUrl::Sqlite {
                    path: PathBuf::from(path),
                })
            }
        }
        Some("postgres" | "postgresql") => {
            let url = Url::parse(value).map_err(|e| format!("not a valid Postgres URL ({e})"))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err("the Postgres URL has no host".to_owned());
            }
            // Its options (sslmode, port, …) are the driver's to judge: judged here, a bad one
            // is in the start-up report instead of failing the store afterwards. The driver's
            // message names the option and its value, never the password.
            <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(value)
                .map_err(|e| format!("the Postgres URL's options are not usable: {e}"))?;
            Ok(DatabaseUrl::Postgres {
                url: SecretString::from(value),
            })
        }
        _ => Err(
            "unsupported database URL; use sqlite://PATH, postgres://… or postgresql://…"
                .to_owned(),
        ),
    }
}

pub(super) fn parse_source_ip(entry: &str) -> Result<IpNet, String> {
    if entry.contains('/') {
        let net: IpNet = entry
            .parse()
            .map_err(|_| format!("`{entry}` is not an IP address or CIDR"))?;
        if net.addr() != net.network() {
            return Err(format!(
                "`{entry}` has host bits set; did you mean `{}`?",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        entry
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("`{entry}` is not an IP address or CIDR"))
    }
}

/// Must parse as an RSA private key both for jsonwebtoken (which signs the assertion)
/// and for the `rsa` crate (which checks the key's structure, not just its armour).
/// Messages never include any part of the key.
pub(super) fn parse_rsa_private_key(pem_text: &str) -> Result<SigningKey, String> {
    use rsa::PrivateKey as RsaPrivateKey;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;

    let block =
        pem::parse(pem_text).map_err(|_| format!("not a PEM document; {RSA_KEY_EXPECTED}"))?;
    let structurally_valid = match block.tag() {
        "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_der(block.contents()).is_ok(),
        "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(block.contents()).is_ok(),
        "ENCRYPTED PRIVATE KEY" => {
            return Err(format!(
                "the key is encrypted; decrypt it first (`openssl pkey -in key.pem -out plain.pem`); {RSA_KEY_EXPECTED}"
            ));
        }
        other => return Err(format!("found a `{other}` PEM block; {RSA_KEY_EXPECTED}")),
    };
    let unusable = || format!("the key does not parse as an RSA key; {RSA_KEY_EXPECTED}");
    if !structurally_valid {
        return Err(unusable());
    }
    SigningKey::from_rsa_pem(pem_text).map_err(|_| unusable())
}

/// At least one CERTIFICATE or PUBLIC KEY block, each of which parses; nothing else
/// (a private key pasted here would be a leak waiting to happen).
pub(super) fn validate_public_keys(pem_text: &str) -> Result<(), String> {
    use x509_parser::prelude::FromDer;
    use x509_parser::x509::SubjectPublicKeyInfo;

    const EXPECTED: &str = "expected one or more `BEGIN CERTIFICATE` or `BEGIN PUBLIC KEY` blocks";
    let blocks =
        pem::parse_many(pem_text).map_err(|e| format!("not valid PEM ({e}); {EXPECTED}"))?;
    if blocks.is_empty() {
        return Err(format!("contains no PEM block; {EXPECTED}"));
    }
    for (index, block) in blocks.iter().enumerate() {
        let n = index + 1;
        match block.tag() {
            "CERTIFICATE" => {
                x509_parser::parse_x509_certificate(block.contents())
                    .map_err(|e| format!("certificate {n} does not parse ({e})"))?;
            }
            "PUBLIC KEY" => {
                SubjectPublicKeyInfo::from_der(block.contents())
                    .map_err(|e| format!("public key {n} does not parse ({e})"))?;
            }
            tag if tag.contains("PRIVATE KEY") => {
                return Err(format!(
                    "block {n} is a private key; only certificates or public keys belong here — remove it and treat that key as exposed"
                ));
            }
            other => return Err(format!("block {n} is `{other}`; {EXPECTED}")),
        }
    }
    Ok(())
}
