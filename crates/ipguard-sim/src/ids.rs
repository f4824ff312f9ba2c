//! Salesforce record ids: 15 case-sensitive characters plus the 3-character suffix that makes
//! the 18-character form case-insensitive. The sim mints every id with a valid suffix so
//! clients that normalise 15/18-character ids see the same thing as with a real org.

use rand::Rng;

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 18-character form of a 15-character id (`None` if it is not 15 ASCII alphanumerics).
pub fn to_18(id15: &str) -> Option<String> {
    if id15.len() != 15 || !id15.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let mut out = String::with_capacity(18);
    out.push_str(id15);
    for chunk in id15.as_bytes().chunks(5) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        out.push(char::from(SUFFIX_ALPHABET[bits]));
    }
    Some(out)
}

/// True for a well-formed 18-character id whose suffix matches its first 15 characters.
pub fn is_valid_18(id: &str) -> bool {
    id.len() == 18 && id.is_char_boundary(15) && to_18(&id[..15]).as_deref() == Some(id)
}

/// A fresh 18-character id with this 3-character key prefix (`0Af` deploy, `00e` profile…),
/// the pod-ish `5g0000` middle real ids carry, and random trailing characters.
pub fn mint(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut id15 = String::from(prefix);
    id15.push_str("5g0000");
    while id15.len() < 15 {
        id15.push(char::from(BASE62[rng.random_range(0..BASE62.len())]));
    }
    to_18(&id15).unwrap_or(id15)
}

/// Random session-token material in the alphabet real access tokens use.
pub fn token_secret(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_matches_known_ids() {
        // Ids from Salesforce's own documentation and real payloads.
        assert_eq!(
            to_18("00Dxx0000001gPL").as_deref(),
            Some("00Dxx0000001gPLEAY")
        );
        assert_eq!(
            to_18("04l1I000000fztE").as_deref(),
            Some("04l1I000000fztEQAQ")
        );
        assert_eq!(
            to_18("0Af3D00001NVD0T").as_deref(),
            Some("0Af3D00001NVD0TSAX")
        );
        assert!(is_valid_18("00D5g000004FAKEEA4"));
        assert!(!is_valid_18("00D5g000004FAKEEAA"));
        assert_eq!(to_18("short"), None);
    }

    #[test]
    fn minted_ids_are_valid() {
        for prefix in ["0Af", "00e", "005"] {
            let id = mint(prefix);
            assert!(id.starts_with(prefix));
            assert!(is_valid_18(&id), "{id}");
        }
    }
}
