//! What the controller last saw, for `/status` and `/metrics`: shared, cheap to read.

use std::sync::RwLock;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ranges::LoginIpRange;

#[derive(Debug, Clone, Serialize)]
pub struct ProfileStatus {
    pub name: String,
    /// The ranges read from the org at `checked_at`.
    pub ranges: Vec<LoginIpRange>,
    pub in_sync: bool,
    pub checked_at: DateTime<Utc>,
    /// The policy applied to this profile and the variable that chose it.
    pub policy: Option<crate::config::Policy>,
    pub policy_from: Option<crate::reconcile::plan::PolicyFrom>,
    /// Why each range is added, removed or kept.
    pub why: Vec<crate::reconcile::plan::RangeWhy>,
    /// Why an app-granted profile is guarded (`app IPGuard, through permission set Api`);
    /// empty for a profile `IPGUARD_PROFILES` names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub granted: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusSnapshot {
    /// Whether this instance holds the org's lease (only the holder reconciles).
    pub leader: bool,
    pub sources: Vec<String>,
    pub desired: Vec<LoginIpRange>,
    pub profiles: Vec<ProfileStatus>,
    /// The guarded side doors (`IPGUARD_SIDE_DOORS`) as last read.
    pub doors: Vec<crate::reconcile::doors::DoorPlan>,
    pub locked_out: bool,
    pub last_error: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub struct StatusBoard(RwLock<StatusSnapshot>);

impl StatusBoard {
    pub fn snapshot(&self) -> StatusSnapshot {
        self.0.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn update(&self, change: impl FnOnce(&mut StatusSnapshot)) {
        if let Ok(mut s) = self.0.write() {
            change(&mut s);
            s.updated_at = Some(Utc::now());
        }
    }
}
