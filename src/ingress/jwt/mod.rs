//! Verifier for the JWTs Salesforce signs on Platform Event callouts (`POST /salesforce/events`).
//!
//! The token comes from a Named/External Credential with protocol "JWT": `RS256` (default) or
//! `RS512`, `kid` set automatically, `exp` two minutes ahead unless configured, plus `iat`,
//! `nbf`, `iss`, `aud` and `sub`. Anyone on the internet can reach the endpoint, so every token
//! is treated as hostile until the signature by a pinned key and every rule below has passed
//! (RFC 8725; docs/contract.md §3).
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
//! values, so operators often cannot pin them) — every configured key is tried (docs/contract.md §3). A
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
//! already carries: about 8× faster than the pure-Rust `rsa` crate (see BENCHMARKS.md). `ring`
//! compares the whole encoded message rather than parsing it.
//!
//! **Each distinct token is RSA-verified once.** The verdict is remembered under the token's
//! SHA-256 (`verdicts`): a token seen again skips step 7 only — every claim rule runs on every
//! request — and a token that failed step 7 before fails again at once, before decoding. A
//! flood of distinct forgeries still costs one RSA verification each.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA512, RsaParameters};
use rsa::PublicKey as RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use self::verdicts::Verdicts;
use crate::config::EventsJwtSettings;

/// Tokens longer than this are rejected before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// Longest accepted token lifetime (`exp − iat`), in seconds.
pub const MAX_LIFETIME_SECS: i64 = 600;
/// Smallest accepted RSA modulus (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest accepted RSA modulus: bounds the verify cost a forged token can ask for.
pub const MAX_RSA_BITS: usize = 4096;

/// Header parameters that point at or carry a key; honouring any of them would let the token
/// choose its own verification key (RFC 8725 §3.10).
const FOREIGN_KEY_HEADERS: [&str; 4] = ["jku", "x5u", "jwk", "x5c"];

/// Checks Salesforce event-callout JWTs against pinned RSA keys and the configured `iss`/`aud`.
#[derive(Debug)]
pub struct EventsVerifier {
    keys: Vec<TrustedKey>,
    issuer: String,
    audience: String,
    verdicts: Verdicts,
    /// RSA verifications run (tests read it to see the verdicts remembered).
    rsa_checks: AtomicU64,
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
            verdicts: Verdicts::new(),
            rsa_checks: AtomicU64::new(0),
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
        // A token whose signature failed before fails again: its structure passed then.
        let digest = Verdicts::digest(token);
        let known = self.verdicts.get(&digest);
        if known == Some(false) {
            return Err(bad_signature());
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
        if known.is_none() {
            self.rsa_checks.fetch_add(1, Ordering::Relaxed);
            let verified = self.signature_verifies(alg, kid, signing_input, &signature);
            self.verdicts.remember(digest, verified);
            if !verified {
                return Err(bad_signature());
            }
        }

        self.check_claims(&claims, now)
    }

    /// How many RSA verifications ran.
    #[cfg(test)]
    pub(crate) fn rsa_checks(&self) -> u64 {
        self.rsa_checks.load(Ordering::Relaxed)
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

fn bad_signature() -> Rejection {
    Rejection::new(
        RejectReason::BadSignature,
        "token signature does not verify with any configured key",
    )
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
    // (odd n and e, 2 < e < 2^33) plus the size bounds here are stricter than `ring`'s at verify
    // time, so a key accepted here never turns into a silent "bad signature" on every token.
    let key = RsaPublicKey::from_pkcs1_der(&spki.subject_public_key.data)
        .map_err(|e| format!("RSA public key is not usable ({e})"))?;
    let bits = key.n().bit_width() as usize;
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!(
            "RSA key has {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted"
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
mod tests;
mod verdicts;

/// For tests and benches: forged tokens that reach the signature check.
pub mod testing {
    /// `token` with the 21st character of its signature changed: every cheap check still
    /// passes and only the RSA verification fails. (The last character carries base64
    /// padding bits: changing it can make the signature non-canonical, a cheap `malformed`.)
    pub fn forged(token: &str) -> String {
        let at = token.rfind('.').expect("a compact JWS") + 21;
        let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
        format!("{}{swapped}{}", &token[..at], &token[at + 1..])
    }
}
