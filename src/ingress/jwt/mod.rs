//! Verifier for the JWTs Salesforce signs on Platform Event callouts (`POST /salesforce/events`).
//!
//! The token comes from a Named/External Credential with protocol "JWT": `RS256` (default) or
//! `RS512`, `kid` set automatically, `exp` two minutes ahead unless configured, plus `iat`,
//! `nbf`, `iss`, `aud` and `sub`. Anyone on the internet can reach the endpoint, so every token
//! is treated as hostile until the signature by a pinned key and every rule below has passed
//! (RFC 8725; SPEC §3).
//!
//! # Key configuration (`EVENTS_JWT_CERTS` / `EVENTS_JWT_CERTS_FILE`)
//!
//! One or more PEM blocks, each a `CERTIFICATE` (the certificate exported from Setup ›
//! Certificate and Key Management; its SubjectPublicKeyInfo is used) or a `PUBLIC KEY`
//! (SubjectPublicKeyInfo). Only RSA keys (`rsaEncryption`) of 2048 to 4096 bits are accepted;
//! anything else fails [`EventsVerifier::from_settings`] so a bad key is found at start-up, not
//! on the first callout. Two blocks during a certificate rotation is the normal case.
//!
//! A key may be pinned to a `kid` with a line `kid: <value>` *directly* above its `-----BEGIN`
//! line (no blank line between; `kid` is matched case-insensitively, the value exactly):
//!
//! ```text
//! kid: 2024-signing
//! -----BEGIN CERTIFICATE-----
//! MIIC…
//! -----END CERTIFICATE-----
//! -----BEGIN PUBLIC KEY-----
//! MIIB…
//! -----END PUBLIC KEY-----
//! ```
//!
//! Other text between blocks (e.g. `openssl` output labels) is ignored, but a `kid:` line that is
//! not directly above a `-----BEGIN` line, an empty or duplicate kid, and `-----BEGIN`/`-----END`
//! lines that are not on lines of their own are errors: a kid that silently attached to nothing
//! would be worse than a start-up failure.
//!
//! # Rules, in the order they are checked
//!
//! Cheap structural checks come first; the header is trusted only to pick the algorithm (from a
//! fixed allow-list) and, through `kid`, which pinned key(s) to try. Claim rules are evaluated
//! only after the signature verified, so a forger learns nothing about the configured issuer,
//! audience or time policy — they only ever see `bad_signature` or a structural reason.
//!
//! | # | check | reason |
//! |---|---|---|
//! | 1 | token longer than [`MAX_TOKEN_BYTES`] (before any decoding) | `malformed` |
//! | 2 | not exactly three `.`-separated parts; header not base64url (no padding) or not a JSON object (duplicate members rejected) | `malformed` |
//! | 3 | `alg` missing or not a string | `malformed` |
//! | 3 | `alg` not `RS256`/`RS512` (`none`, `HS*`, `ES*`, `PS*`, `RS384`, anything else) | `algorithm_not_allowed` |
//! | 4 | header has `jku`, `x5u`, `jwk` or `x5c` | `foreign_key_header` |
//! | 5 | header has `crit` (no extension is understood); `kid` not a string | `malformed` |
//! | 6 | payload not base64url or not a JSON object (duplicate members rejected); signature not base64url | `malformed` |
//! | 7 | no selected key verifies the signature | `bad_signature` |
//! | 8 | a claim of the wrong JSON type: `exp`/`nbf`/`iat` not an integer (strings, fractions, `null`), `iss`/`sub`/`jti` not a string, `aud` not a string or array of strings | `malformed` |
//! | 9 | `iss` missing or not exactly the configured issuer | `wrong_issuer` |
//! | 10 | `aud` missing, or neither equal to nor an array containing the configured audience | `wrong_audience` |
//! | 11 | no `exp` | `missing_exp` |
//! | 12 | `now ≥ exp + 60` | `expired` |
//! | 13 | `nbf > now + 60` | `not_yet_valid` |
//! | 14 | `iat > now + 60` | `issued_in_future` |
//! | 15 | `exp − iat > 600`, or without `iat`, `exp − now > 600 + 60` | `lifetime_too_long` |
//!
//! `replayed` is never returned here: the caller keeps each `jti` until
//! [`VerifiedToken::replay_window_end`] and builds the rejection with [`Rejection::replayed`].
//!
//! **Key selection.** If the token's `kid` equals a kid pinned with a `kid:` line, only that key
//! is tried. Otherwise — no `kid`, or one that is not pinned (Salesforce picks its own `kid`
//! values, so operators often cannot pin them) — every configured key is tried (SPEC §3). A
//! failure is always `bad_signature`: "signed by a key we don't have" and "tampered with" cannot
//! be told apart, so [`RejectReason::UnknownKey`] is never produced by this verifier; it exists
//! so the label set stays stable if key discovery ever distinguishes them.
//!
//! # Why our own parser and `ring` rather than `jsonwebtoken::decode`
//!
//! The header and claims are parsed once, here, with the rules above; `jsonwebtoken::decode`
//! would parse the same bytes again with its own rules, and two parsers disagreeing about one
//! token is how verification bugs happen. Keys are parsed once at load by the same code that
//! verifies, so a key the verifier cannot use is a start-up [`KeyError`] — `jsonwebtoken::crypto::verify`
//! would turn it into a silent `false` on every request. The algorithm is an enum with exactly
//! two RSA variants, so no header value can route a public key into an HMAC (the RS256→HS256
//! attack): there is no HMAC code on this path at all.
//!
//! Signatures (PKCS #1 v1.5 with SHA-256/SHA-512) are checked with `ring`, which the TLS stack
//! already carries: about 8× faster than the pure-Rust `rsa` crate (see BENCHMARKS.md), and a
//! forged-token flood costs exactly one RSA verification per token. `ring` compares the whole
//! encoded message rather than parsing it.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA512, RsaParameters};
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::config::EventsJwtSettings;

/// Tokens longer than this are rejected before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// Longest accepted token lifetime (`exp − iat`), in seconds.
pub const MAX_LIFETIME_SECS: i64 = 600;
/// Smallest accepted RSA modulus (RFC 7518 §3.3). The largest is the `rsa` crate's 4096.
pub const MIN_RSA_BITS: usize = 2048;

/// Header parameters that point at or carry a key; honouring any of them would let the token
/// choose its own verification key (RFC 8725 §3.10).
const FOREIGN_KEY_HEADERS: [&str; 4] = ["jku", "x5u", "jwk", "x5c"];

/// Checks Salesforce event-callout JWTs against pinned RSA keys and the configured `iss`/`aud`.
#[derive(Debug)]
pub struct EventsVerifier {
    keys: Vec<TrustedKey>,
    issuer: String,
    audience: String,
}

/// One pinned key. `Debug` shows where it came from and its size, never the modulus.
struct TrustedKey {
    kid: Option<String>,
    /// 1-based position of the PEM block in the configuration, for messages.
    block: usize,
    origin: KeyOrigin,
    key: LoadedRsaKey,
}

#[derive(Debug, Clone, Copy)]
enum KeyOrigin {
    Certificate,
    PublicKey,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey")
            .field("block", &self.block)
            .field("kid", &self.kid)
            .field("origin", &self.origin)
            .field("rsa_bits", &self.key.bits)
            .finish()
    }
}

/// What a verified token tells the caller: enough to enforce single-use `jti`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub jti: Option<String>,
    pub exp: i64,
    pub iat: Option<i64>,
    pub sub: Option<String>,
}

impl VerifiedToken {
    /// Until when (seconds since the epoch) the `jti` must be remembered: the verifier accepts
    /// the token up to `exp` plus the leeway, so forgetting it at `exp` would allow a replay.
    pub fn replay_window_end(&self) -> i64 {
        self.exp.saturating_add(LEEWAY_SECS)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    /// Safe to return to the caller as an RFC 6750 `error_description`: printable ASCII without
    /// `"` or `\`, and never containing the token or any claim value.
    pub description: String,
}

impl Rejection {
    fn new(reason: RejectReason, description: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            description: description.into(),
        }
    }

    fn malformed(description: impl Into<String>) -> Rejection {
        Rejection::new(RejectReason::Malformed, description)
    }

    /// The rejection for a token whose `jti` was already used (decided by the store).
    pub fn replayed() -> Rejection {
        Rejection::new(RejectReason::Replayed, "token jti has already been used")
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description, self.reason.as_str())
    }
}

impl std::error::Error for Rejection {}

/// The reason class of a [`Rejection`]; [`RejectReason::as_str`] is the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    Malformed,
    AlgorithmNotAllowed,
    ForeignKeyHeader,
    /// Not produced by [`EventsVerifier`] (see the module doc); kept for a stable label set.
    UnknownKey,
    BadSignature,
    WrongIssuer,
    WrongAudience,
    MissingExp,
    Expired,
    NotYetValid,
    IssuedInFuture,
    LifetimeTooLong,
    Replayed,
}

impl RejectReason {
    /// Every reason, e.g. to pre-register metric label values.
    pub const ALL: [RejectReason; 13] = [
        RejectReason::Malformed,
        RejectReason::AlgorithmNotAllowed,
        RejectReason::ForeignKeyHeader,
        RejectReason::UnknownKey,
        RejectReason::BadSignature,
        RejectReason::WrongIssuer,
        RejectReason::WrongAudience,
        RejectReason::MissingExp,
        RejectReason::Expired,
        RejectReason::NotYetValid,
        RejectReason::IssuedInFuture,
        RejectReason::LifetimeTooLong,
        RejectReason::Replayed,
    ];

    /// snake_case name, used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::AlgorithmNotAllowed => "algorithm_not_allowed",
            RejectReason::ForeignKeyHeader => "foreign_key_header",
            RejectReason::UnknownKey => "unknown_key",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::WrongIssuer => "wrong_issuer",
            RejectReason::WrongAudience => "wrong_audience",
            RejectReason::MissingExp => "missing_exp",
            RejectReason::Expired => "expired",
            RejectReason::NotYetValid => "not_yet_valid",
            RejectReason::IssuedInFuture => "issued_in_future",
            RejectReason::LifetimeTooLong => "lifetime_too_long",
            RejectReason::Replayed => "replayed",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The configured keys cannot be used. Messages name PEM blocks (1-based) or lines, never key
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no `BEGIN CERTIFICATE` or `BEGIN PUBLIC KEY` block found")]
    NoKeys,
    #[error("PEM block {block}: {problem}")]
    Block { block: usize, problem: String },
    #[error("line {line}: {problem}")]
    Kid { line: usize, problem: String },
    #[error("{0}")]
    Layout(String),
}

/// The two algorithms an RSA key may be used with. Nothing else is representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RsaAlg {
    Rs256,
    Rs512,
}

impl RsaAlg {
    fn from_header(alg: &str) -> Option<RsaAlg> {
        match alg {
            "RS256" => Some(RsaAlg::Rs256),
            "RS512" => Some(RsaAlg::Rs512),
            _ => None,
        }
    }

    fn ring_parameters(self) -> &'static RsaParameters {
        match self {
            RsaAlg::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
            RsaAlg::Rs512 => &RSA_PKCS1_2048_8192_SHA512,
        }
    }
}

impl EventsVerifier {
    /// Loads the pinned keys (see the module doc for the format) and the expected `iss`/`aud`.
    pub fn from_settings(settings: &EventsJwtSettings) -> Result<Self, KeyError> {
        let keys = load_keys(&settings.keys_pem)?;
        Ok(EventsVerifier {
            keys,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        })
    }

    /// Verifies `token` (the compact JWS from `Authorization: Bearer`) at time `now` (seconds
    /// since the epoch). On success the caller must still enforce single-use `jti`.
    pub fn verify(&self, token: &str, now: i64) -> Result<VerifiedToken, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::malformed(format!(
                "token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::malformed(
                "token is not a compact JWS of three dot-separated parts",
            ));
        };

        // Header: trusted only for the algorithm (checked against a fixed list) and `kid`.
        let header = decode_object(header_b64, "header")?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => RsaAlg::from_header(alg).ok_or_else(|| {
                Rejection::new(
                    RejectReason::AlgorithmNotAllowed,
                    "token alg is not allowed; only RS256 and RS512 are accepted",
                )
            })?,
            Some(_) => return Err(Rejection::malformed("token header alg is not a string")),
            None => return Err(Rejection::malformed("token header has no alg")),
        };
        if let Some(name) = FOREIGN_KEY_HEADERS
            .iter()
            .find(|name| header.contains_key(**name))
        {
            return Err(Rejection::new(
                RejectReason::ForeignKeyHeader,
                format!(
                    "token header carries {name}; verification keys come only from configuration"
                ),
            ));
        }
        if header.contains_key("crit") {
            return Err(Rejection::malformed(
                "token header has crit; no JWS extensions are supported",
            ));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(Rejection::malformed("token header kid is not a string")),
        };

        let claims = decode_object(payload_b64, "payload")?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| Rejection::malformed("token signature is not base64url"))?;

        // The signing input is the token's own ASCII bytes up to the second dot (RFC 7515 §5.2).
        let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        if !self.signature_verifies(alg, kid, signing_input, &signature) {
            return Err(Rejection::new(
                RejectReason::BadSignature,
                "token signature does not verify with any configured key",
            ));
        }

        self.check_claims(&claims, now)
    }

    /// A kid pinned in configuration selects exactly that key; any other kid, or none, tries
    /// every configured key.
    fn signature_verifies(
        &self,
        alg: RsaAlg,
        kid: Option<&str>,
        signing_input: &[u8],
        signature: &[u8],
    ) -> bool {
        let pinned =
            kid.and_then(|kid| self.keys.iter().find(|key| key.kid.as_deref() == Some(kid)));
        let verifies = |trusted: &TrustedKey| {
            ring::signature::UnparsedPublicKey::new(alg.ring_parameters(), &trusted.key.pkcs1_der)
                .verify(signing_input, signature)
                .is_ok()
        };
        match pinned {
            Some(key) => verifies(key),
            None => self.keys.iter().any(verifies),
        }
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<VerifiedToken, Rejection> {
        // Types first, so a wrongly typed claim is `malformed` whatever else is wrong.
        let iss = string_claim(claims, "iss")?;
        let audience_matches = audience_matches(claims.get("aud"), &self.audience)?;
        let exp = numeric_claim(claims, "exp")?;
        let nbf = numeric_claim(claims, "nbf")?;
        let iat = numeric_claim(claims, "iat")?;
        let jti = string_claim(claims, "jti")?;
        let sub = string_claim(claims, "sub")?;

        if iss != Some(self.issuer.as_str()) {
            return Err(Rejection::new(
                RejectReason::WrongIssuer,
                "token iss does not match the configured issuer",
            ));
        }
        if !audience_matches {
            return Err(Rejection::new(
                RejectReason::WrongAudience,
                "token aud does not name the configured audience",
            ));
        }
        let Some(exp) = exp else {
            return Err(Rejection::new(
                RejectReason::MissingExp,
                "token has no exp claim",
            ));
        };
        if now >= exp.saturating_add(LEEWAY_SECS) {
            return Err(Rejection::new(RejectReason::Expired, "token has expired"));
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS)) {
            return Err(Rejection::new(
                RejectReason::NotYetValid,
                "token is not valid yet (nbf is in the future)",
            ));
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(LEEWAY_SECS)) {
            return Err(Rejection::new(
                RejectReason::IssuedInFuture,
                "token iat is in the future",
            ));
        }
        // Without `iat` the lifetime is measured from our clock, so the skew allowance applies.
        let too_long = match iat {
            Some(iat) => exp.saturating_sub(iat) > MAX_LIFETIME_SECS,
            None => exp.saturating_sub(now) > MAX_LIFETIME_SECS + LEEWAY_SECS,
        };
        if too_long {
            return Err(Rejection::new(
                RejectReason::LifetimeTooLong,
                format!("token lifetime exceeds {MAX_LIFETIME_SECS} seconds"),
            ));
        }

        Ok(VerifiedToken {
            jti: jti.map(str::to_owned),
            exp,
            iat,
            sub: sub.map(str::to_owned),
        })
    }
}

/// base64url (unpadded, canonical) → JSON object with unique member names.
fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, Rejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Rejection::malformed(format!("token {what} is not base64url")))?;
    serde_json::from_slice::<UniqueObject>(&bytes)
        .map(|object| object.0)
        .map_err(|_| Rejection::malformed(format!("token {what} is not a JSON object")))
}

/// A JSON object whose member names are unique. `serde_json::Map` silently keeps the last of
/// two equal names; a verifier and another parser disagreeing on which `iss` counts is a
/// classic confusion, so duplicates are refused (RFC 7515 §4).
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some(name) = access.next_key::<String>()? {
                    if map.contains_key(&name) {
                        return Err(de::Error::custom("duplicate member name"));
                    }
                    let value = access.next_value::<Value>()?;
                    map.insert(name, value);
                }
                Ok(UniqueObject(map))
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(Rejection::malformed(format!(
            "token {name} is not a string"
        ))),
    }
}

/// NumericDate claims must be JSON integers: `"1700000000"`, `1.7e9` and `null` are refused.
fn numeric_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(value)) => value.as_i64().map(Some).ok_or_else(|| {
            Rejection::malformed(format!("token {name} is not an integer number of seconds"))
        }),
        Some(_) => Err(Rejection::malformed(format!(
            "token {name} is not an integer number of seconds"
        ))),
    }
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3); either must name `expected`.
fn audience_matches(aud: Option<&Value>, expected: &str) -> Result<bool, Rejection> {
    const NOT_STRINGS: &str = "token aud is not a string or an array of strings";
    match aud {
        None => Ok(false),
        Some(Value::String(aud)) => Ok(aud == expected),
        Some(Value::Array(items)) => {
            let mut found = false;
            for item in items {
                match item {
                    Value::String(aud) => found |= aud == expected,
                    _ => return Err(Rejection::malformed(NOT_STRINGS)),
                }
            }
            Ok(found)
        }
        Some(_) => Err(Rejection::malformed(NOT_STRINGS)),
    }
}

fn load_keys(keys_pem: &str) -> Result<Vec<TrustedKey>, KeyError> {
    let blocks = split_blocks(keys_pem)?;
    // The configuration was validated with `pem::parse_many`, which also finds blocks that do
    // not start on a line of their own; refuse rather than silently skip such a key.
    let all =
        pem::parse_many(keys_pem).map_err(|e| KeyError::Layout(format!("not valid PEM ({e})")))?;
    if all.len() != blocks.len() {
        return Err(KeyError::Layout(
            "put every -----BEGIN and -----END marker on a line of its own".to_owned(),
        ));
    }
    if blocks.is_empty() {
        return Err(KeyError::NoKeys);
    }

    let mut kids = HashSet::new();
    let mut keys = Vec::with_capacity(blocks.len());
    for (index, raw) in blocks.into_iter().enumerate() {
        let block = index + 1;
        let problem = |problem: String| KeyError::Block { block, problem };
        if let Some(kid) = &raw.kid
            && !kids.insert(kid.clone())
        {
            return Err(problem("its kid is also given to another key".to_owned()));
        }
        let parsed = pem::parse(&raw.text).map_err(|e| problem(format!("not valid PEM ({e})")))?;
        let (origin, key) = match parsed.tag() {
            "CERTIFICATE" => {
                let (rest, cert) = x509_parser::parse_x509_certificate(parsed.contents())
                    .map_err(|e| problem(format!("certificate does not parse ({e})")))?;
                if !rest.is_empty() {
                    return Err(problem("certificate has trailing data".to_owned()));
                }
                (
                    KeyOrigin::Certificate,
                    rsa_key(cert.public_key()).map_err(problem)?,
                )
            }
            "PUBLIC KEY" => {
                let (rest, spki) = SubjectPublicKeyInfo::from_der(parsed.contents())
                    .map_err(|e| problem(format!("public key does not parse ({e})")))?;
                if !rest.is_empty() {
                    return Err(problem("public key has trailing data".to_owned()));
                }
                (KeyOrigin::PublicKey, rsa_key(&spki).map_err(problem)?)
            }
            other => {
                return Err(problem(format!(
                    "is `{other}`; only CERTIFICATE or PUBLIC KEY blocks are accepted"
                )));
            }
        };
        keys.push(TrustedKey {
            kid: raw.kid,
            block,
            origin,
            key,
        });
    }
    Ok(keys)
}

/// A pinned RSA public key, checked at load.
struct LoadedRsaKey {
    /// The PKCS #1 `RSAPublicKey` DER, the form `ring` verifies with.
    pkcs1_der: Vec<u8>,
    bits: usize,
}

/// The RSA public key of a SubjectPublicKeyInfo, checked to be usable for RS256/RS512.
fn rsa_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<LoadedRsaKey, String> {
    match spki.parsed() {
        Ok(PublicKey::RSA(_)) => {}
        Ok(_) => {
            return Err(
                "is not an RSA key; Salesforce signs callouts with RS256/RS512, so only RSA keys are accepted"
                    .to_owned(),
            );
        }
        Err(e) => return Err(format!("public key does not parse ({e})")),
    }
    // For rsaEncryption the BIT STRING holds the PKCS #1 RSAPublicKey. The `rsa` crate's checks
    // (odd e, 2 < e < 2^33, n ≤ 4096 bits) are stricter than `ring`'s at verify time, so a key
    // accepted here never turns into a silent "bad signature" on every token.
    let key = RsaPublicKey::from_pkcs1_der(&spki.subject_public_key.data)
        .map_err(|e| format!("RSA public key is not usable ({e})"))?;
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    Ok(LoadedRsaKey {
        pkcs1_der: spki.subject_public_key.data.to_vec(),
        bits,
    })
}

/// One PEM block's text and the kid from the line directly above it.
struct RawBlock {
    kid: Option<String>,
    text: String,
}

/// Splits `text` into PEM blocks, attaching `kid: <value>` lines to the block that follows.
fn split_blocks(text: &str) -> Result<Vec<RawBlock>, KeyError> {
    let mut blocks = Vec::new();
    let mut pending_kid: Option<(usize, String)> = None;
    let mut current: Option<RawBlock> = None;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim();
        if let Some(block) = current.as_mut() {
            block.text.push_str(trimmed);
            block.text.push('\n');
            if trimmed.starts_with("-----END ") {
                blocks.extend(current.take());
            }
            continue;
        }
        if trimmed.starts_with("-----BEGIN ") {
            current = Some(RawBlock {
                kid: pending_kid.take().map(|(_, kid)| kid),
                text: format!("{trimmed}\n"),
            });
            continue;
        }
        if let Some((kid_line, _)) = &pending_kid {
            return Err(KeyError::Kid {
                line: *kid_line,
                problem: "a kid line must be directly above a -----BEGIN line".to_owned(),
            });
        }
        if let Some(value) = kid_value(trimmed) {
            if value.is_empty() {
                return Err(KeyError::Kid {
                    line: line_no,
                    problem: "kid line has no value".to_owned(),
                });
            }
            pending_kid = Some((line_no, value.to_owned()));
        }
    }
    if let Some((kid_line, _)) = pending_kid {
        return Err(KeyError::Kid {
            line: kid_line,
            problem: "a kid line must be directly above a -----BEGIN line".to_owned(),
        });
    }
    if current.is_some() {
        return Err(KeyError::Layout(
            "the last PEM block has no -----END line".to_owned(),
        ));
    }
    Ok(blocks)
}

/// `kid: value` (name case-insensitive) → `value`, trimmed.
fn kid_value(line: &str) -> Option<&str> {
    let (name, value) = line.split_once(':')?;
    name.trim()
        .eq_ignore_ascii_case("kid")
        .then(|| value.trim())
}

#[cfg(test)]
mod tests {
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
            "jwk": {"kty": "RSA", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())},
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
        use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
        let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).expect("RSA 1024");
        let public_pem = rsa::RsaPublicKey::from(&private)
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM");
        let err = load(&public_pem).expect_err("1024-bit key refused");
        assert!(err.to_string().contains("1024 bits"), "{err}");
    }

    #[test]
    fn keys_ring_could_not_verify_with_are_refused_at_load() {
        use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
        use rsa::traits::PublicKeyParts as _;
        let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA 2048");
        let even =
            rsa::RsaPublicKey::new_unchecked(private.n().clone(), rsa::BigUint::from(65536u32));
        let public_pem = even.to_public_key_pem(LineEnding::LF).expect("PEM");
        let err = load(&public_pem).expect_err("even exponent refused");
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
}
