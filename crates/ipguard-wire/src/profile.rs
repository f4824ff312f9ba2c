//! Profile full names and the `loginIpRanges` part of Profile metadata.

use std::fmt;

use crate::ranges::{LoginIpRange, RangeError};
use crate::xml::{self, Element, METADATA_NS};

/// A profile full name exactly as `listMetadata` returns it (`Admin`, `Custom%3A Sales`).
/// Never decoded or derived: Salesforce percent-encodes special characters in full names and
/// file names, and only its own spelling round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ProfileName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileNameError {
    #[error("profile name is empty")]
    Empty,
    #[error("profile name `{0}` contains `/`, `\\` or a control character")]
    BadCharacter(String),
    #[error("profile name `{0}` is longer than 255 characters")]
    TooLong(String),
}

/// Read back (a run's record) only through [`ProfileName::parse`].
impl<'de> serde::Deserialize<'de> for ProfileName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        ProfileName::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl ProfileName {
    pub fn parse(name: &str) -> Result<Self, ProfileNameError> {
        if name.trim().is_empty() {
            return Err(ProfileNameError::Empty);
        }
        // The name becomes a zip entry path (`profiles/<name>.profile`); a separator or `..`
        // component must never reach it.
        if name.contains(['/', '\\']) || name.chars().any(char::is_control) || name == ".." {
            return Err(ProfileNameError::BadCharacter(name.to_owned()));
        }
        if name.chars().count() > 255 {
            return Err(ProfileNameError::TooLong(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name percent-decoded once (`Custom%3A Support` → `Custom: Support`): what Setup
    /// usually shows as the label of a custom profile. Only for matching human-facing text —
    /// never to address the profile in an API call.
    pub fn decoded(&self) -> String {
        percent_encoding::percent_decode_str(&self.0)
            .decode_utf8_lossy()
            .into_owned()
    }

    /// Path of this profile's file inside a deploy zip.
    pub fn file_path(&self) -> String {
        format!("profiles/{}.profile", self.0)
    }
}

impl PartialEq<str> for ProfileName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ProfileName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The label Setup shows for a standard profile whose API full name differs from it (the
/// well-known ones only; others are matched by their decoded name).
pub fn standard_label(full_name: &str) -> Option<&'static str> {
    Some(match full_name {
        "Admin" => "System Administrator",
        "Standard" => "Standard User",
        "ReadOnly" => "Read Only",
        "ContractManager" => "Contract Manager",
        "SolutionManager" => "Solution Manager",
        "MarketingProfile" => "Marketing User",
        _ => return None,
    })
}

/// A profile file holding only `loginIpRanges` (the full target list: a present list
/// replaces the profile's whole list). Children in XSD order: description, endAddress,
/// startAddress.
pub fn profile_file(ranges: &[LoginIpRange]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!("<Profile xmlns=\"{METADATA_NS}\">\n"));
    for range in ranges {
        out.push_str("    <loginIpRanges>\n");
        if let Some(description) = range.description() {
            out.push_str(&format!(
                "        <description>{}</description>\n",
                xml::escape(description)
            ));
        }
        out.push_str(&format!(
            "        <endAddress>{}</endAddress>\n",
            range.end()
        ));
        out.push_str(&format!(
            "        <startAddress>{}</startAddress>\n",
            range.start()
        ));
        out.push_str("    </loginIpRanges>\n");
    }
    out.push_str("</Profile>\n");
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileParseError {
    #[error("loginIpRanges entry without {0}")]
    MissingAddress(&'static str),
    #[error(transparent)]
    Range(#[from] RangeError),
}

/// Reads the `loginIpRanges` children of a Profile element (a `readMetadata` record or the
/// root of a `.profile` file). Returns `None` when the element has no `loginIpRanges` at all,
/// which in a deploy means "leave the list alone".
pub fn login_ip_ranges(profile: &Element) -> Result<Option<Vec<LoginIpRange>>, ProfileParseError> {
    let mut found = false;
    let mut ranges = Vec::new();
    for entry in profile.children_named(METADATA_NS, "loginIpRanges") {
        found = true;
        let start = entry
            .child_text(METADATA_NS, "startAddress")
            .ok_or(ProfileParseError::MissingAddress("startAddress"))?;
        let end = entry
            .child_text(METADATA_NS, "endAddress")
            .ok_or(ProfileParseError::MissingAddress("endAddress"))?;
        let description = entry.child_text(METADATA_NS, "description");
        ranges.push(LoginIpRange::parse_existing(start, end, description)?);
    }
    Ok(found.then_some(ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_verbatim_and_paths_are_safe() {
        let name = ProfileName::parse("Custom%3A Sales Profile").unwrap();
        assert_eq!(name.file_path(), "profiles/Custom%3A Sales Profile.profile");
        assert!(ProfileName::parse("../x").is_err());
        assert!(ProfileName::parse("a\\b").is_err());
        assert!(ProfileName::parse(" ").is_err());
        assert!(ProfileName::parse("a\nb").is_err());
    }

    #[test]
    fn profile_file_round_trips() {
        let ranges = vec![
            LoginIpRange::parse_existing("10.0.0.0", "10.0.0.3", Some("ipguard: a & b")).unwrap(),
            LoginIpRange::parse_existing("2001:db8::", "2001:db8::1", None).unwrap(),
        ];
        let text = profile_file(&ranges);
        assert!(text.contains("<description>ipguard: a &amp; b</description>"));
        let root = crate::xml::parse(text.as_bytes()).unwrap();
        assert!(root.is(METADATA_NS, "Profile"));
        let parsed = login_ip_ranges(&root).unwrap().unwrap();
        assert_eq!(parsed, ranges);
        assert_eq!(parsed[0].description(), Some("ipguard: a & b"));
    }

    #[test]
    fn absent_list_differs_from_empty_list() {
        let root =
            crate::xml::parse(format!("<Profile xmlns=\"{METADATA_NS}\"/>").as_bytes()).unwrap();
        assert_eq!(login_ip_ranges(&root).unwrap(), None);
    }

    #[test]
    fn entry_without_an_address_is_an_error() {
        let doc = format!(
            "<Profile xmlns=\"{METADATA_NS}\"><loginIpRanges><startAddress>1.1.1.1</startAddress></loginIpRanges></Profile>"
        );
        let root = crate::xml::parse(doc.as_bytes()).unwrap();
        assert_eq!(
            login_ip_ranges(&root),
            Err(ProfileParseError::MissingAddress("endAddress"))
        );
    }
}
