//! Salesforce record ids, parsed once and kept in their canonical 18-character form.
//!
//! Salesforce hands out ids in two shapes: a case-sensitive 15-character id and an
//! 18-character id whose last three characters encode the case of the first fifteen, so
//! that case-insensitive systems can tell ids apart. Outbound messages carry the
//! 18-character form, people paste either; comparing canonical 18-character forms makes
//! both work.

use std::fmt;
use std::str::FromStr;

use subtle::ConstantTimeEq;

/// Alphabet of the checksum suffix: the 5-bit case mask of each chunk indexes into it.
const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Key prefix of the Organization object.
const ORG_PREFIX: &str = "00D";

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("a Salesforce id has 15 or 18 characters, this one has {0}")]
    Length(usize),
    #[error(
        "character {position} of the id is not a letter or digit; Salesforce ids are [A-Za-z0-9]"
    )]
    Character { position: usize },
    #[error(
        "an organization id starts with `00D` (Setup → Company Information → Salesforce.com Organization ID), this id starts with `{0}`"
    )]
    NotAnOrgId(String),
    #[error(
        "the last 3 characters `{found}` do not match the first 15 (expected `{expected}`); check the id was copied completely and with its case intact"
    )]
    Checksum { found: String, expected: String },
}

/// An organization id (`00D…`) in its canonical 18-character form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OrgId(String);

impl OrgId {
    /// Accepts the 15-character (case-sensitive) or 18-character form.
    pub fn parse(input: &str) -> Result<OrgId, IdError> {
        let canonical = canonical_id(input)?;
        if !canonical.starts_with(ORG_PREFIX) {
            return Err(IdError::NotAnOrgId(canonical[..3].to_owned()));
        }
        Ok(OrgId(canonical))
    }

    /// The canonical 18-character id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` (15 or 18 characters) names this org. The comparison runs in
    /// constant time because the org id is what authenticates outbound messages.
    pub fn matches(&self, other: &str) -> bool {
        match canonical_id(other) {
            Ok(candidate) => bool::from(self.0.as_bytes().ct_eq(candidate.as_bytes())),
            Err(_) => false,
        }
    }
}

impl FromStr for OrgId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrgId::parse(s)
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgId({})", self.0)
    }
}

/// Validates any Salesforce id and returns its canonical 18-character form (the first 15
/// characters as given, then the suffix in upper case).
fn canonical_id(input: &str) -> Result<String, IdError> {
    // Count characters, not bytes, so a multi-byte character reports a sensible length.
    let len = input.chars().count();
    if len != 15 && len != 18 {
        return Err(IdError::Length(len));
    }
    if let Some(position) = input.chars().position(|c| !c.is_ascii_alphanumeric()) {
        return Err(IdError::Character {
            position: position + 1,
        });
    }
    // All ASCII from here on, so byte slicing is safe.
    let (body, given_suffix) = input.split_at(15);
    let expected = checksum_suffix(body.as_bytes());
    if !given_suffix.is_empty() {
        // Salesforce treats the suffix case-insensitively.
        let found = given_suffix.to_ascii_uppercase();
        if found.as_bytes() != expected {
            return Err(IdError::Checksum {
                found: given_suffix.to_owned(),
                expected: String::from_utf8_lossy(&expected).into_owned(),
            });
        }
    }
    let mut canonical = String::with_capacity(18);
    canonical.push_str(body);
    canonical.extend(expected.iter().map(|&b| char::from(b)));
    Ok(canonical)
}

/// Salesforce's documented suffix: for each 5-character chunk, bit i is set when character
/// i is an upper-case letter; the 5-bit value indexes `SUFFIX_ALPHABET`.
fn checksum_suffix(body: &[u8]) -> [u8; 3] {
    let mut suffix = [0u8; 3];
    for (slot, chunk) in suffix.iter_mut().zip(body.chunks(5)) {
        let mask = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        *slot = SUFFIX_ALPHABET[mask];
    }
    suffix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_char_id_gets_documented_suffix() {
        // Chunks "00D00" (D at bit 2 → 4 → E), "00000" (→ A), "00062" (→ A).
        let id = OrgId::parse("00D000000000062").expect("valid org id");
        assert_eq!(id.as_str(), "00D000000000062EAA");
    }

    #[test]
    fn mixed_case_id_suffix_computed_by_hand() {
        // Worked by hand: "00Dx0" → only D (index 2) is upper → 0b00100 = 4 → 'E';
        // "00000" → 0 → 'A'; "0BV7z" → B (index 1) and V (index 2) upper, z is lower →
        // 0b00110 = 6 → 'G'. So the 18-character id is 00Dx0000000BV7zEAG.
        let id = OrgId::parse("00Dx0000000BV7z").expect("valid org id");
        assert_eq!(id.as_str(), "00Dx0000000BV7zEAG");
    }

    #[test]
    fn every_mask_bit_and_the_digit_end_of_the_alphabet() {
        // "00DAB": A (3), B (4), D (2) → 0b11100 = 28 → '2'; "CDEFG" → 31 → '5';
        // "abcde" → 0 → 'A'.
        assert_eq!(checksum_suffix(b"00DABCDEFGabcde"), *b"25A");
        assert_eq!(
            OrgId::parse("00DABCDEFGabcde").map(|id| id.to_string()),
            Ok("00DABCDEFGabcde25A".to_owned())
        );
    }

    #[test]
    fn eighteen_char_id_is_accepted_and_canonicalised() {
        let upper = OrgId::parse("00Dx0000000BV7zEAG").expect("valid");
        let lower = OrgId::parse("00Dx0000000BV7zeag").expect("suffix case ignored");
        assert_eq!(upper, lower);
        assert_eq!(lower.as_str(), "00Dx0000000BV7zEAG");
        assert_eq!(upper, OrgId::parse("00Dx0000000BV7z").expect("valid"));
    }

    #[test]
    fn display_debug_and_from_str() {
        let id: OrgId = "00D000000000062".parse().expect("valid");
        assert_eq!(id.to_string(), "00D000000000062EAA");
        assert_eq!(format!("{id:?}"), "OrgId(00D000000000062EAA)");
    }

    #[test]
    fn matches_either_form_and_nothing_else() {
        let id = OrgId::parse("00Dx0000000BV7z").expect("valid");
        assert!(id.matches("00Dx0000000BV7z"));
        assert!(id.matches("00Dx0000000BV7zEAG"));
        assert!(id.matches("00Dx0000000BV7zeag"));
        // Same letters, different case: a different org in the 15-character world.
        assert!(!id.matches("00DX0000000BV7z"));
        assert!(!id.matches("00Dx0000000BV7y"));
        assert!(!id.matches("00Dx0000000BV7zEAA"));
        assert!(!id.matches(""));
        assert!(!id.matches("not an id"));
    }

    #[test]
    fn bad_lengths_are_rejected() {
        assert_eq!(OrgId::parse(""), Err(IdError::Length(0)));
        assert_eq!(OrgId::parse("00D00000000006"), Err(IdError::Length(14)));
        assert_eq!(OrgId::parse("00D000000000062EA"), Err(IdError::Length(17)));
        assert_eq!(
            OrgId::parse("00D000000000062EAAA"),
            Err(IdError::Length(19))
        );
    }

    #[test]
    fn bad_characters_are_rejected() {
        assert_eq!(
            OrgId::parse("00D00000000006-"),
            Err(IdError::Character { position: 15 })
        );
        assert_eq!(
            OrgId::parse("00D 00000000062"),
            Err(IdError::Character { position: 4 })
        );
        // Non-ASCII letters are not id characters even though they are alphanumeric.
        assert_eq!(
            OrgId::parse("00D00000000006é"),
            Err(IdError::Character { position: 15 })
        );
    }

    #[test]
    fn other_object_ids_are_not_org_ids() {
        // 005 is a User id: a valid Salesforce id, but not an org.
        let err = OrgId::parse("005000000000062").expect_err("user id");
        assert_eq!(err, IdError::NotAnOrgId("005".to_owned()));
        assert!(err.to_string().contains("starts with `00D`"));
        // The prefix is case-sensitive like the rest of a 15-character id.
        assert!(matches!(
            OrgId::parse("00d000000000062"),
            Err(IdError::NotAnOrgId(_))
        ));
    }

    #[test]
    fn wrong_checksum_is_rejected() {
        let err = OrgId::parse("00D000000000062EAB").expect_err("bad suffix");
        assert_eq!(
            err,
            IdError::Checksum {
                found: "EAB".to_owned(),
                expected: "EAA".to_owned()
            }
        );
        // A case change in the body shows up as a checksum mismatch.
        assert!(matches!(
            OrgId::parse("00DX0000000BV7zEAG"),
            Err(IdError::Checksum { .. })
        ));
    }
}
