//! `check`'s `app grants` line: the `@app:` entries of IPGUARD_PROFILES expanded, or the
//! permission the expansion lacks.

use super::*;

/// The profiles a run would guard now: `@app:` entries expanded (one line saying what they
/// gave), else the named ones.
pub(super) async fn guarded_profiles(
    client: &MetadataClient,
    selection: &ProfileSelection,
    report: &mut Report,
) -> Vec<ProfileName> {
    let fallback = || {
        selection
            .named
            .iter()
            .filter(|p| !selection.excluded.contains(p))
            .cloned()
            .collect()
    };
    if selection.apps.is_empty() {
        return fallback();
    }
    match selection.resolve(client).await {
        Ok(guarded) => {
            let mut granted: Vec<String> = Vec::new();
            for grant in &guarded.grants {
                granted.push(format!(
                    "{} (app {}, {})",
                    grant.profile, grant.app, grant.via
                ));
            }
            report.emit(CheckLine::ok(
                "app grants",
                if granted.is_empty() {
                    format!(
                        "no profile's users can use {} (nothing guarded from the apps)",
                        selection.apps.join(", ")
                    )
                } else {
                    format!("guarded from the apps: {}", granted.join("; "))
                },
            ));
            guarded.profiles
        }
        Err(e) => {
            report.emit(CheckLine::fail(
                "app grants",
                e.to_string(),
                "give the integration user View Setup and Configuration (SetupEntityAccess, \
                 PermissionSet, PermissionSetAssignment and PermissionSetGroupComponent need it) \
                 and check the `@app:` API names",
            ));
            fallback()
        }
    }
}
