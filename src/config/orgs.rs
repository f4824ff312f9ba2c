//! Many orgs from one deployment (docs/contract.md §8): `IPGUARD_ORGS`, each org's settings
//! under `IPGUARD_ORG_<KEY>_…` with the unprefixed variables as defaults for every org.

use std::fmt;

use ipnet::IpNet;

use super::vars::*;
use super::{InvalidChoice, Loader, Mode, Needs, Policy, SalesforceSettings};
use crate::reconcile::doors::SideDoors;
use crate::reconcile::guarded::ProfileSelection;
use crate::reconcile::plan::PolicyRules;
use crate::salesforce::profile::ProfileName;

/// The variables an org of `IPGUARD_ORGS` may set for itself; the rest are shared.
const PER_ORG: &[&str] = &[
    SALESFORCE_LOGIN_URL,
    SALESFORCE_AUDIENCE,
    SALESFORCE_CLIENT_ID,
    SALESFORCE_USERNAME,
    SALESFORCE_PRIVATE_KEY,
    SALESFORCE_PRIVATE_KEY_FILE,
    SALESFORCE_ORG_ID,
    SALESFORCE_API_VERSION,
    IPGUARD_PROFILES,
    IPGUARD_APP,
    IPGUARD_SIDE_DOORS,
    IPGUARD_POLICY,
    IPGUARD_EXACT_PROFILES,
    IPGUARD_KEEP_WITHIN,
    IPGUARD_MODE,
    IPGUARD_SOURCE_IPS,
];

/// Per-org variables with no shared default: every org has its own id, and an org's own
/// sources are added to the shared ones (read at the top level), not instead of them.
const OWN_ONLY: &[&str] = &[SALESFORCE_ORG_ID, IPGUARD_SOURCE_IPS];

/// An org's key in `IPGUARD_ORGS`: `[a-z0-9-]{1,32}` (`prod`, `uat`, `dev1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgKey(String);

impl OrgKey {
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid = (1..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "`{}` is not an org key: 1–32 of a–z, 0–9 and `-` (e.g. `prod`, `uat`, `dev1`)",
                crate::xml::reader::echo(text)
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `IPGUARD_ORG_<KEY>_`: upper-cased, `-` as `_`.
    pub fn prefix(&self) -> String {
        format!(
            "IPGUARD_ORG_{}_",
            self.0.to_ascii_uppercase().replace('-', "_")
        )
    }
}

impl fmt::Display for OrgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One guarded org's settings.
#[derive(Debug, Clone)]
pub struct OrgSettings {
    /// Its key in `IPGUARD_ORGS`; `None` for the one org of a deployment without it.
    pub key: Option<OrgKey>,
    pub salesforce: SalesforceSettings,
    /// `IPGUARD_PROFILES`: full names exactly as `listMetadata` returns them (still
    /// percent-encoded), apps whose users' profiles are guarded, exclusions.
    pub profiles: ProfileSelection,
    /// `IPGUARD_SIDE_DOORS` and `IPGUARD_APP`.
    pub side_doors: SideDoors,
    pub policy: Policy,
    /// Profiles that always use `exact`, whatever `policy` says.
    pub exact_profiles: Vec<ProfileName>,
    /// Under `merge`, foreign ranges survive only inside these; `None` keeps them all.
    pub keep_within: Option<Vec<IpNet>>,
    pub mode: Mode,
    /// Its own sources, added to the shared ones.
    pub source_ips: Vec<IpNet>,
}

impl OrgSettings {
    /// Which policy applies to which profile (docs/contract.md §1 Policy).
    pub fn policy_rules(&self) -> PolicyRules {
        PolicyRules {
            default: self.policy,
            exact_profiles: self.exact_profiles.clone(),
            keep_within: self.keep_within.clone(),
        }
    }

    /// The key, or `default` for the one org of a deployment without `IPGUARD_ORGS`.
    pub fn name(&self) -> &str {
        self.key.as_ref().map_or("default", OrgKey::as_str)
    }
}

/// The org an `--org` flag (or its absence) picks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgChoiceError {
    #[error("more than one org is configured ({0}): say which with --org KEY")]
    Ambiguous(String),
    #[error("no org `{wanted}` is configured; IPGUARD_ORGS lists {known}")]
    Unknown { wanted: String, known: String },
}

impl super::Config {
    /// The org `wanted` names, or the only one when it is `None`.
    pub fn org(&self, wanted: Option<&str>) -> Result<&OrgSettings, OrgChoiceError> {
        let known = || {
            self.orgs
                .iter()
                .map(OrgSettings::name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match wanted {
            None if self.orgs.len() == 1 => Ok(&self.orgs[0]),
            None => Err(OrgChoiceError::Ambiguous(known())),
            Some(key) => {
                self.orgs
                    .iter()
                    .find(|o| o.name() == key)
                    .ok_or_else(|| OrgChoiceError::Unknown {
                        wanted: crate::xml::reader::echo(key),
                        known: known(),
                    })
            }
        }
    }

    /// The orgs `wanted` names (`None`: every one).
    pub fn orgs_named(&self, wanted: Option<&str>) -> Result<Vec<&OrgSettings>, OrgChoiceError> {
        match wanted {
            None => Ok(self.orgs.iter().collect()),
            Some(_) => self.org(wanted).map(|o| vec![o]),
        }
    }
}

/// One org of `IPGUARD_ORGS` being read.
pub(super) struct Scope {
    prefix: String,
}

impl Scope {
    /// Where `variable` is read from inside this org: its own name, and whether the shared
    /// variable is the default. `None` for a shared-only variable.
    pub(super) fn lookup_order(&self, variable: &str) -> Option<(String, bool)> {
        PER_ORG.contains(&variable).then(|| {
            (
                format!("{}{variable}", self.prefix),
                !OWN_ONLY.contains(&variable),
            )
        })
    }
}

impl Loader<'_> {
    /// The name a problem is reported under: inside an org, its own variable — unless the
    /// value came from the shared default, which is then named.
    pub(super) fn reported_name(&self, variable: &str) -> String {
        match self.scope.as_ref().and_then(|s| s.lookup_order(variable)) {
            Some((own, shared_default)) => {
                if shared_default && self.raw(&own).is_none() && self.raw(variable).is_some() {
                    variable.to_owned()
                } else {
                    own
                }
            }
            None => variable.to_owned(),
        }
    }

    /// Every guarded org: the orgs of `IPGUARD_ORGS`, or the one org of the unprefixed
    /// variables. `shared_sources` says whether the shared static list or the space is set.
    pub(super) fn load_orgs(&mut self, needs: Needs, shared_sources: bool) -> Vec<OrgSettings> {
        let Some(raw) = self.get(IPGUARD_ORGS) else {
            return vec![self.load_org(None, needs, shared_sources)];
        };
        let mut keys: Vec<OrgKey> = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match OrgKey::parse(entry) {
                Ok(key) if keys.contains(&key) => {
                    self.problem(IPGUARD_ORGS, format!("`{key}` is listed more than once"));
                }
                Ok(key) => keys.push(key),
                Err(message) => self.problem(IPGUARD_ORGS, message),
            }
        }
        if keys.is_empty() {
            self.problem(IPGUARD_ORGS, "lists no org key");
        }
        // It would be every org's id, which no two orgs share: say where it belongs.
        if self.raw(SALESFORCE_ORG_ID).is_some() {
            self.problem(
                SALESFORCE_ORG_ID,
                "is not read when IPGUARD_ORGS is set: set IPGUARD_ORG_<KEY>_SALESFORCE_ORG_ID for each org instead",
            );
        }
        let mut orgs: Vec<OrgSettings> = Vec::new();
        for key in keys {
            self.scope = Some(Scope {
                prefix: key.prefix(),
            });
            let org = self.load_org(Some(key), needs, shared_sources);
            if needs.salesforce && org.salesforce.org_id.is_none() {
                self.require(
                    SALESFORCE_ORG_ID,
                    false,
                    "for every org of IPGUARD_ORGS: outbound messages are routed by it (Setup → Company Information)",
                );
            }
            if let Some(id) = &org.salesforce.org_id
                && let Some(twin) = orgs
                    .iter()
                    .find(|o| o.salesforce.org_id.as_ref() == Some(id))
            {
                let message = format!(
                    "is the id of org `{}` too; each org has its own",
                    twin.name()
                );
                self.problem(SALESFORCE_ORG_ID, message);
            }
            self.scope = None;
            orgs.push(org);
        }
        orgs
    }

    fn load_org(&mut self, key: Option<OrgKey>, needs: Needs, shared_sources: bool) -> OrgSettings {
        let salesforce = self.load_salesforce(needs);
        let profiles = self.load_profiles(needs);
        let (source_ips, own_sources) = if key.is_some() {
            self.load_source_ips()
        } else {
            // Without IPGUARD_ORGS the shared list is the org's: nothing more to read.
            (Vec::new(), false)
        };
        if needs.sources && !shared_sources && !own_sources {
            self.problem(
                IPGUARD_SOURCE_IPS,
                "no IP source configured: set IPGUARD_SOURCE_IPS (comma-separated IPs/CIDRs) \
                 and/or HEROKU_SPACE with HEROKU_API_TOKEN to read the Private Space's outbound IPs",
            );
        }
        let policy = self
            .parse_with(IPGUARD_POLICY, |v| {
                v.parse().map_err(|e: InvalidChoice| e.to_string())
            })
            .unwrap_or_default();
        let exact_profiles = self.load_exact_profiles(&profiles);
        let side_doors = self.load_side_doors();
        let keep_within = self.load_keep_within();
        let mode = self
            .parse_with(IPGUARD_MODE, |v| {
                v.parse().map_err(|e: InvalidChoice| e.to_string())
            })
            .unwrap_or_default();
        OrgSettings {
            key,
            salesforce,
            profiles,
            side_doors,
            policy,
            exact_profiles,
            keep_within,
            mode,
            source_ips,
        }
    }
}
