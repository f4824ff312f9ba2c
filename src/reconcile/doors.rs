//! The side doors (docs/contract.md §9): settings that make login IP ranges matter, read and
//! planned with the profiles and fixed in the same deploy. `every-request` keeps Session
//! Settings' "Enforce login IP ranges on every request" on (`SessionSettings.
//! enforceIpRangesEveryRequest`); `app-relaxation` keeps the app's IP relaxation at "Enforce
//! IP restrictions" (External Client App OAuth policies, else a legacy connected app's OAuth
//! policy).

use serde::{Deserialize, Serialize};

use crate::salesforce::client::{MetadataClient, SalesforceError};
use crate::salesforce::package::Component;
use crate::salesforce::side_doors::{
    self, CONNECTED_APP_ENFORCE, ECA_ENFORCE, NoOauthPolicy, eca_policies_name,
};

/// One side door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Door {
    EveryRequest,
    AppRelaxation,
}

impl Door {
    pub const ALL: [Door; 2] = [Door::EveryRequest, Door::AppRelaxation];

    pub fn as_str(self) -> &'static str {
        match self {
            Door::EveryRequest => "every-request",
            Door::AppRelaxation => "app-relaxation",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        Door::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                format!(
                    "`{}` is not a side door: use `every-request` and/or `app-relaxation`",
                    crate::xml::reader::echo(text.trim())
                )
            })
    }
}

impl std::fmt::Display for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `IPGUARD_SIDE_DOORS` and the app (`IPGUARD_APP`) `app-relaxation` is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideDoors {
    pub guarded: Vec<Door>,
    pub app: String,
}

impl SideDoors {
    pub fn guards(&self, door: Door) -> bool {
        self.guarded.contains(&door)
    }
}

/// One door as read, and what ipguard holds it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorPlan {
    pub door: Door,
    /// Where it lives: `Session Settings`, `External Client App IPGuard`, `connected app IPGuard`.
    pub subject: String,
    /// As read (`on`/`off`, or the relaxation value).
    pub actual: String,
    /// What ipguard holds it to.
    pub wanted: String,
    pub in_sync: bool,
    /// The file that puts it back (only when it drifted).
    #[serde(skip)]
    pub fix: Option<Component>,
}

#[derive(Debug, thiserror::Error)]
pub enum DoorError {
    #[error("cannot read {what}: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: SalesforceError,
    },
    #[error("readMetadata(SecuritySettings, Security) returned no record")]
    NoSecuritySettings,
    #[error(
        "no External Client App nor connected app `{0}` in the org: set IPGUARD_APP to the app's API name"
    )]
    NoApp(String),
    #[error(transparent)]
    NoOauthPolicy(#[from] NoOauthPolicy),
}

impl DoorError {
    pub fn salesforce(&self) -> Option<&SalesforceError> {
        match self {
            DoorError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads every guarded door and plans it.
pub async fn read_and_plan(
    client: &MetadataClient,
    doors: &SideDoors,
) -> Result<Vec<DoorPlan>, DoorError> {
    let mut plans = Vec::new();
    for door in &doors.guarded {
        plans.push(match door {
            Door::EveryRequest => every_request(client).await?,
            Door::AppRelaxation => app_relaxation(client, &doors.app).await?,
        });
    }
    Ok(plans)
}

async fn every_request(client: &MetadataClient) -> Result<DoorPlan, DoorError> {
    let settings = client
        .read_session_settings()
        .await
        .map_err(|source| DoorError::Read {
            what: "the Session Settings",
            source,
        })?
        .ok_or(DoorError::NoSecuritySettings)?;
    let on = settings.enforce_ip_ranges_every_request;
    Ok(DoorPlan {
        door: Door::EveryRequest,
        subject: "Session Settings".into(),
        actual: if on { "on" } else { "off" }.into(),
        wanted: "on".into(),
        in_sync: on,
        fix: (!on).then(|| side_doors::security_settings(true)),
    })
}

async fn app_relaxation(client: &MetadataClient, app: &str) -> Result<DoorPlan, DoorError> {
    let read = |source| DoorError::Read {
        what: "the app's IP relaxation",
        source,
    };
    let eca = match client
        .read_eca_oauth_policies(&eca_policies_name(app))
        .await
    {
        Ok(found) => found,
        // An org or API version without External Client Apps.
        Err(SalesforceError::Fault(f)) if f.code == "INVALID_TYPE" => None,
        Err(e) => return Err(read(e)),
    };
    if let Some(policies) = eca {
        // Unset is Salesforce's default, which enforces.
        let actual = policies
            .ip_relaxation_policy_type
            .clone()
            .unwrap_or_else(|| ECA_ENFORCE.to_owned());
        let in_sync = actual.eq_ignore_ascii_case(ECA_ENFORCE);
        return Ok(DoorPlan {
            door: Door::AppRelaxation,
            subject: format!("External Client App {app}"),
            actual,
            wanted: ECA_ENFORCE.into(),
            in_sync,
            fix: (!in_sync).then(|| side_doors::eca_oauth_policies(app, &policies.record)),
        });
    }
    let Some(connected) = client.read_connected_app(app).await.map_err(read)? else {
        return Err(DoorError::NoApp(app.to_owned()));
    };
    let actual = connected
        .ip_relaxation
        .clone()
        .unwrap_or_else(|| CONNECTED_APP_ENFORCE.to_owned());
    let in_sync = actual.eq_ignore_ascii_case(CONNECTED_APP_ENFORCE);
    let fix = if in_sync {
        None
    } else {
        Some(side_doors::connected_app(app, &connected.record)?)
    };
    Ok(DoorPlan {
        door: Door::AppRelaxation,
        subject: format!("connected app {app}"),
        actual,
        wanted: CONNECTED_APP_ENFORCE.into(),
        in_sync,
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doors_parse_by_name() {
        assert_eq!(Door::parse(" every-request "), Ok(Door::EveryRequest));
        assert_eq!(Door::parse("APP-RELAXATION"), Ok(Door::AppRelaxation));
        assert!(Door::parse("every_request").is_err());
    }
}
