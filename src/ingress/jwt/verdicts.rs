//! Signature verdicts of tokens already verified, so that a token seen again costs a SHA-256
//! and a lookup instead of an RSA verification.
//!
//! Why this pays in the field: Salesforce's JWT credentials sign with RS256 (or RS512), whose
//! PKCS #1 v1.5 signatures are deterministic (RFC 8017 §8.2), and their default claims carry
//! no `jti` (docs/salesforce.md): callouts made within one second carry the same bytes. A
//! flood that repeats one forged token is turned away at the same cost.
//!
//! Why it is safe: a verdict is a pure function of the token's bytes and the pinned keys, and
//! the keys are fixed for the verifier's life (this cache lives inside it). Only the signature
//! is remembered: every claim rule (expiry above all) and the caller's `jti` check still run
//! on every request. Keys are SHA-256 digests of the whole token, so no token is kept and no
//! forged token can share a valid one's entry. The capacity bounds memory whatever is sent.

use quick_cache::sync::Cache;
use ring::digest::{SHA256, digest};

/// Distinct tokens remembered (~100 bytes each): callouts in flight within a few minutes,
/// plus the forgeries of a flood, evicted first when they are seen once.
const CAPACITY: usize = 4096;

pub(super) type Digest = [u8; 32];

pub(super) struct Verdicts {
    verified: Cache<Digest, bool>,
}

impl Verdicts {
    pub(super) fn new() -> Self {
        Self {
            verified: Cache::new(CAPACITY),
        }
    }

    pub(super) fn digest(token: &str) -> Digest {
        let mut out = [0; 32];
        out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        out
    }

    /// Whether the token's signature verified, if it was checked before.
    pub(super) fn get(&self, token: &Digest) -> Option<bool> {
        self.verified.get(token)
    }

    pub(super) fn remember(&self, token: Digest, verified: bool) {
        self.verified.insert(token, verified);
    }
}

impl std::fmt::Debug for Verdicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verdicts")
            .field("remembered", &self.verified.len())
            .finish()
    }
}
