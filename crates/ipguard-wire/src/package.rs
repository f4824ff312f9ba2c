//! The deploy zip: `package.xml` at the root (singlePackage) plus one file per component: a
//! `profiles/<fullName>.profile` per drifted profile, each carrying its full target list, and
//! the side doors' files (`side_doors`).

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;

use crate::profile::{ProfileName, profile_file};
use crate::ranges::LoginIpRange;
use crate::xml::{self, METADATA_NS};

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("cannot build the deploy zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("cannot build the deploy zip: {0}")]
    Io(#[from] std::io::Error),
    #[error("a deploy needs at least one component")]
    Empty,
}

/// One file of a deploy: its metadata type and member name as `package.xml` lists them, its
/// path inside the zip and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub type_name: &'static str,
    pub member: String,
    pub path: String,
    pub content: String,
}

impl Component {
    /// A profile file carrying the profile's full target list of login IP ranges.
    pub fn profile(name: &ProfileName, ranges: &[LoginIpRange]) -> Self {
        Self {
            type_name: "Profile",
            member: name.as_str().to_owned(),
            path: name.file_path(),
            content: profile_file(ranges),
        }
    }
}

/// `package.xml` listing every component by its verbatim member name, one `types` block per
/// metadata type (types in name order, members in the order given).
pub fn package_xml(components: &[Component], api_version: &str) -> String {
    let mut types: Vec<&'static str> = components.iter().map(|c| c.type_name).collect();
    types.sort_unstable();
    types.dedup();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!("<Package xmlns=\"{METADATA_NS}\">\n"));
    for type_name in types {
        out.push_str("    <types>\n");
        for component in components.iter().filter(|c| c.type_name == type_name) {
            out.push_str(&format!(
                "        <members>{}</members>\n",
                xml::escape(&component.member)
            ));
        }
        out.push_str(&format!("        <name>{type_name}</name>\n    </types>\n"));
    }
    out.push_str(&format!(
        "    <version>{}</version>\n</Package>\n",
        xml::escape(api_version)
    ));
    out
}

/// Builds the zip bytes for one deploy of these components.
pub fn package_zip(components: &[Component], api_version: &str) -> Result<Vec<u8>, PackageError> {
    if components.is_empty() {
        return Err(PackageError::Empty);
    }
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("package.xml", options)?;
    zip.write_all(package_xml(components, api_version).as_bytes())?;
    for component in components {
        zip.start_file(component.path.as_str(), options)?;
        zip.write_all(component.content.as_bytes())?;
    }
    Ok(zip.finish()?.into_inner())
}

/// Builds the zip bytes for one deploy of profiles only.
pub fn deploy_zip(
    profiles: &[(ProfileName, Vec<LoginIpRange>)],
    api_version: &str,
) -> Result<Vec<u8>, PackageError> {
    let components: Vec<Component> = profiles
        .iter()
        .map(|(name, ranges)| Component::profile(name, ranges))
        .collect();
    package_zip(&components, api_version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn zip_holds_package_and_one_file_per_profile() {
        let name = ProfileName::parse("Custom%3A Integration").unwrap();
        let range = LoginIpRange::parse_existing("52.1.2.3", "52.1.2.3", None).unwrap();
        let bytes = deploy_zip(&[(name, vec![range])], "66.0").unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().into_owned())
            .collect();
        assert_eq!(
            names,
            ["package.xml", "profiles/Custom%3A Integration.profile"]
        );
        let mut package = String::new();
        archive
            .by_name("package.xml")
            .unwrap()
            .read_to_string(&mut package)
            .unwrap();
        assert!(package.contains("<members>Custom%3A Integration</members>"));
        assert!(package.contains("<version>66.0</version>"));
    }

    #[test]
    fn empty_deploy_is_refused() {
        assert!(matches!(deploy_zip(&[], "66.0"), Err(PackageError::Empty)));
    }
}
