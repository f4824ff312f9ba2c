//! The deploy zip: `package.xml` at the root (singlePackage) plus one
//! `profiles/<fullName>.profile` per drifted profile, each carrying its full target list.

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
    #[error("a deploy needs at least one profile")]
    Empty,
}

/// `package.xml` listing the profiles by their verbatim full names.
pub fn package_xml<'a>(
    profiles: impl IntoIterator<Item = &'a ProfileName>,
    api_version: &str,
) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!("<Package xmlns=\"{METADATA_NS}\">\n    <types>\n"));
    for name in profiles {
        out.push_str(&format!(
            "        <members>{}</members>\n",
            xml::escape(name.as_str())
        ));
    }
    out.push_str("        <name>Profile</name>\n    </types>\n");
    out.push_str(&format!(
        "    <version>{}</version>\n</Package>\n",
        xml::escape(api_version)
    ));
    out
}

/// Builds the zip bytes for one deploy of all drifted profiles.
pub fn deploy_zip(
    profiles: &[(ProfileName, Vec<LoginIpRange>)],
    api_version: &str,
) -> Result<Vec<u8>, PackageError> {
    if profiles.is_empty() {
        return Err(PackageError::Empty);
    }
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("package.xml", options)?;
    zip.write_all(package_xml(profiles.iter().map(|(n, _)| n), api_version).as_bytes())?;
    for (name, ranges) in profiles {
        zip.start_file(name.file_path(), options)?;
        zip.write_all(profile_file(ranges).as_bytes())?;
    }
    Ok(zip.finish()?.into_inner())
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
