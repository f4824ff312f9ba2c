//! Which profiles a run guards (docs/contract.md §9): the full names `IPGUARD_PROFILES` lists,
//! every profile an `@app:<API name>` entry grants the app to (directly, or through a
//! permission set or permission set group one of its active users holds), minus the `!<full
//! name>` exclusions. App entries are expanded at every run, so a grant made today is guarded
//! from the next run on.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::salesforce::app_access::{self, AppAccessError, Via, same_id};
use crate::salesforce::client::{MetadataClient, SalesforceError};
use crate::salesforce::profile::{ProfileName, ProfileNameError};

/// The `@app:` prefix of an `IPGUARD_PROFILES` entry.
pub const APP_PREFIX: &str = "@app:";

/// `IPGUARD_PROFILES` as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileSelection {
    /// Full names, in the order listed.
    pub named: Vec<ProfileName>,
    /// API names of the apps whose users' profiles are guarded.
    pub apps: Vec<String>,
    /// Never guarded, however they came in.
    pub excluded: Vec<ProfileName>,
    /// `apply --profile`: only these of the expansion (empty: all).
    pub only: Vec<String>,
}

/// One `IPGUARD_PROFILES` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Profile(ProfileName),
    App(String),
    Exclude(ProfileName),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error(transparent)]
    Name(#[from] ProfileNameError),
    #[error("`{0}` names no app: write `@app:<API name>`, e.g. `@app:IPGuard`")]
    NoApp(String),
}

/// An app's API name as `@app:` and `IPGUARD_APP` take it: letters, digits, `_` and `.`
/// (a namespaced name), nothing that needs quoting anywhere it is sent.
pub fn is_app_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

impl Entry {
    pub fn parse(text: &str) -> Result<Self, EntryError> {
        let text = text.trim();
        if let Some(app) = text.strip_prefix(APP_PREFIX) {
            let app = app.trim();
            return if is_app_name(app) {
                Ok(Entry::App(app.to_owned()))
            } else {
                Err(EntryError::NoApp(text.to_owned()))
            };
        }
        if let Some(name) = text.strip_prefix('!') {
            return Ok(Entry::Exclude(ProfileName::parse(name.trim())?));
        }
        Ok(Entry::Profile(ProfileName::parse(text)?))
    }
}

impl ProfileSelection {
    /// Exactly these profiles (no apps, no exclusions).
    pub fn named(named: Vec<ProfileName>) -> Self {
        Self {
            named,
            ..Self::default()
        }
    }

    /// Nothing could ever be guarded.
    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.apps.is_empty()
    }

    /// The entries as configured (what a run's record lists as its profiles).
    pub fn entries(&self) -> Vec<String> {
        let named = self.named.iter().map(ToString::to_string);
        let apps = self.apps.iter().map(|a| format!("{APP_PREFIX}{a}"));
        let excluded = self.excluded.iter().map(|p| format!("!{p}"));
        named.chain(apps).chain(excluded).collect()
    }

    /// Only the profiles in `only` (`apply --profile`; empty: all), applied after the apps
    /// are expanded so an app-granted profile can be named too.
    pub fn narrowed(&self, only: &[String]) -> Self {
        Self {
            only: only.to_vec(),
            ..self.clone()
        }
    }

    /// Expands the apps (when there are any) and applies the exclusions and `only`.
    pub async fn resolve(&self, client: &MetadataClient) -> Result<Guarded, GuardError> {
        let mut grants = Vec::new();
        if !self.apps.is_empty() {
            // Grants name profiles by record id; listMetadata gives each profile's id and its
            // full name, whatever the language of the integration user.
            let listed = client.list_profiles().await.map_err(GuardError::List)?;
            for app in &self.apps {
                for access in app_access::profiles_of_app(client, app).await? {
                    let Some(listed) = listed.iter().find(|l| same_id(&l.id, &access.profile_id))
                    else {
                        tracing::warn!(app, profile_id = %access.profile_id, "an app grant names a profile listMetadata does not list");
                        continue;
                    };
                    let Ok(profile) = ProfileName::parse(&listed.full_name) else {
                        continue;
                    };
                    grants.push(Grant {
                        profile,
                        app: app.clone(),
                        via: access.via,
                    });
                }
            }
        }
        grants.retain(|g| !self.excluded.contains(&g.profile) && self.admits(&g.profile));
        grants.sort();
        grants.dedup();
        let mut profiles: Vec<ProfileName> = self
            .named
            .iter()
            .filter(|p| !self.excluded.contains(p) && self.admits(p))
            .cloned()
            .collect();
        let granted: BTreeSet<&ProfileName> = grants.iter().map(|g| &g.profile).collect();
        for profile in granted {
            if !profiles.contains(profile) {
                profiles.push(profile.clone());
            }
        }
        Ok(Guarded { profiles, grants })
    }

    fn admits(&self, profile: &ProfileName) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| profile == o.as_str())
    }
}

/// What changed in the app-granted profiles since the last run that knew them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardChange {
    /// Newly guarded: the first way its users came to an app.
    Added(Grant),
    /// No longer granted (and not named): ipguard stops touching it.
    Removed(ProfileName),
}

impl std::fmt::Display for GuardChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardChange::Added(g) => write!(
                f,
                "now guarding {}: it was granted access to app {} ({})",
                g.profile, g.app, g.via
            ),
            GuardChange::Removed(p) => write!(
                f,
                "no longer guarding {p}: no app in IPGUARD_PROFILES is granted to its users any more"
            ),
        }
    }
}

/// The changes from `before` (the grants of the last run that expanded the apps) to `now`.
/// Named profiles never count: they are guarded either way.
pub fn changes(before: &[Grant], now: &Guarded, named: &[ProfileName]) -> Vec<GuardChange> {
    let profiles = |grants: &[Grant]| -> BTreeSet<ProfileName> {
        grants
            .iter()
            .map(|g| g.profile.clone())
            .filter(|p| !named.contains(p))
            .collect()
    };
    let (old, new) = (profiles(before), profiles(&now.grants));
    let mut out: Vec<GuardChange> = new
        .difference(&old)
        .filter_map(|p| now.grants.iter().find(|g| &g.profile == p))
        .map(|g| GuardChange::Added(g.clone()))
        .collect();
    out.extend(
        old.difference(&new)
            .filter(|p| !now.profiles.contains(p))
            .map(|p| GuardChange::Removed(p.clone())),
    );
    out
}

/// A profile guarded because an app is granted to its users.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub profile: ProfileName,
    pub app: String,
    pub via: Via,
}

/// What a selection expanded to at one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guarded {
    /// Named first (in order), then app-granted ones in name order; exclusions removed.
    pub profiles: Vec<ProfileName>,
    /// Why each app-granted profile is guarded (one row per way in).
    pub grants: Vec<Grant>,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(transparent)]
    Access(#[from] AppAccessError),
    #[error("cannot list the org's profiles to name the app's: {0}")]
    List(SalesforceError),
}

impl GuardError {
    /// The Salesforce error underneath, when there is one (a lock-out shows here first).
    pub fn salesforce(&self) -> Option<&SalesforceError> {
        match self {
            GuardError::Access(AppAccessError::Query { source, .. }) | GuardError::List(source) => {
                Some(source)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> ProfileName {
        ProfileName::parse(n).unwrap()
    }

    fn grant(profile: &str, via: Via) -> Grant {
        Grant {
            profile: name(profile),
            app: "IPGuard".into(),
            via,
        }
    }

    #[test]
    fn entries_parse() {
        assert_eq!(
            Entry::parse(" @app:IPGuard ").unwrap(),
            Entry::App("IPGuard".into())
        );
        assert_eq!(
            Entry::parse("!Custom%3A Sales").unwrap(),
            Entry::Exclude(name("Custom%3A Sales"))
        );
        assert_eq!(
            Entry::parse("Admin").unwrap(),
            Entry::Profile(name("Admin"))
        );
        assert!(matches!(Entry::parse("@app:"), Err(EntryError::NoApp(_))));
        assert!(matches!(
            Entry::parse("@app:a b"),
            Err(EntryError::NoApp(_))
        ));
        assert!(Entry::parse("!").is_err());
    }

    #[test]
    fn changes_name_new_and_gone_profiles_once() {
        let before = vec![
            grant("Custom%3A Old", Via::Profile),
            grant("Admin", Via::Profile),
        ];
        let now = Guarded {
            profiles: vec![name("Admin"), name("Custom%3A New")],
            grants: vec![
                grant("Admin", Via::Profile),
                grant("Custom%3A New", Via::PermissionSetGroup("Ops".into())),
                grant("Custom%3A New", Via::PermissionSet("Api".into())),
            ],
        };
        let changes = changes(&before, &now, &[name("Admin")]);
        assert_eq!(
            changes,
            [
                GuardChange::Added(grant(
                    "Custom%3A New",
                    Via::PermissionSetGroup("Ops".into())
                )),
                GuardChange::Removed(name("Custom%3A Old")),
            ]
        );
        assert_eq!(
            changes[0].to_string(),
            "now guarding Custom%3A New: it was granted access to app IPGuard (through permission set group Ops)"
        );
        // A profile still named is not "no longer guarded" when its grant goes.
        let named_now = Guarded {
            profiles: vec![name("Custom%3A Old")],
            grants: vec![],
        };
        assert!(changes_of(&before, &named_now).is_empty());
    }

    fn changes_of(before: &[Grant], now: &Guarded) -> Vec<GuardChange> {
        changes(before, now, &[name("Admin"), name("Custom%3A Old")])
    }
}
