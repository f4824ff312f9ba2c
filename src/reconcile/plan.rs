//! The pure diff: actual ranges + desired ranges + policy → per-profile target.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::Policy;
use crate::ranges::LoginIpRange;
use crate::salesforce::profile::ProfileName;

/// What one profile needs. Sets compare by (start, end); descriptions are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfilePlan {
    pub name: ProfileName,
    pub in_sync: bool,
    pub add: Vec<LoginIpRange>,
    pub remove: Vec<LoginIpRange>,
    pub keep: Vec<LoginIpRange>,
    /// The complete list to deploy (a present list replaces the profile's whole list).
    #[serde(skip)]
    pub target: Vec<LoginIpRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub drift: bool,
    pub policy: Policy,
    pub profiles: Vec<ProfilePlan>,
}

impl Plan {
    pub fn new(policy: Policy, profiles: Vec<ProfilePlan>) -> Self {
        Self {
            drift: profiles.iter().any(|p| !p.in_sync),
            policy,
            profiles,
        }
    }

    pub fn drifted(&self) -> impl Iterator<Item = &ProfilePlan> {
        self.profiles.iter().filter(|p| !p.in_sync)
    }
}

/// merge: target = actual ∪ desired (ranges already there keep their description);
/// exact: target = desired.
pub fn plan_profile(
    name: ProfileName,
    actual: &[LoginIpRange],
    desired: &[LoginIpRange],
    policy: Policy,
) -> ProfilePlan {
    let actual_set: BTreeSet<&LoginIpRange> = actual.iter().collect();
    let desired_set: BTreeSet<&LoginIpRange> = desired.iter().collect();
    let target: BTreeSet<&LoginIpRange> = match policy {
        // `actual` first so a kept range carries the description the org has.
        Policy::Merge => actual_set.iter().chain(&desired_set).copied().collect(),
        Policy::Exact => desired_set.clone(),
    };
    let add: Vec<LoginIpRange> = target
        .difference(&actual_set)
        .map(|r| (*r).clone())
        .collect();
    let remove: Vec<LoginIpRange> = actual_set
        .difference(&target)
        .map(|r| (*r).clone())
        .collect();
    let keep: Vec<LoginIpRange> = actual_set
        .intersection(&target)
        .map(|r| (*r).clone())
        .collect();
    ProfilePlan {
        in_sync: add.is_empty() && remove.is_empty(),
        name,
        add,
        remove,
        target: target.into_iter().cloned().collect(),
        keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: &str, end: &str, d: Option<&str>) -> LoginIpRange {
        LoginIpRange::parse_existing(start, end, d).unwrap()
    }

    fn name() -> ProfileName {
        ProfileName::parse("Custom%3A Integration").unwrap()
    }

    #[test]
    fn merge_adds_missing_and_keeps_others() {
        let actual = [r("1.1.1.1", "1.1.1.1", Some("office"))];
        let desired = [r("52.0.0.1", "52.0.0.1", Some("ipguard: space"))];
        let p = plan_profile(name(), &actual, &desired, Policy::Merge);
        assert!(!p.in_sync);
        assert_eq!(p.add, desired);
        assert!(p.remove.is_empty());
        assert_eq!(p.keep, actual);
        assert_eq!(p.target.len(), 2);
        assert_eq!(p.target[0].description(), Some("office"));
    }

    #[test]
    fn exact_removes_everything_else() {
        let actual = [
            r("1.1.1.1", "1.1.1.1", None),
            r("52.0.0.1", "52.0.0.1", Some("old label")),
        ];
        let desired = [r("52.0.0.1", "52.0.0.1", Some("ipguard: space"))];
        let p = plan_profile(name(), &actual, &desired, Policy::Exact);
        assert_eq!(p.remove, [actual[0].clone()]);
        assert!(p.add.is_empty());
        assert_eq!(p.keep.len(), 1);
        assert_eq!(p.target, desired);
    }

    #[test]
    fn descriptions_do_not_make_drift() {
        let actual = [r("52.0.0.1", "52.0.0.1", Some("typed by hand"))];
        let desired = [r("52.0.0.1", "52.0.0.1", Some("ipguard: space"))];
        for policy in [Policy::Merge, Policy::Exact] {
            assert!(plan_profile(name(), &actual, &desired, policy).in_sync);
        }
    }

    #[test]
    fn broken_range_is_drift_under_both_policies() {
        // someone widened the range: the exact desired key is gone
        let actual = [r("52.0.0.0", "52.0.0.255", None)];
        let desired = [r("52.0.0.1", "52.0.0.1", None)];
        let merge = plan_profile(name(), &actual, &desired, Policy::Merge);
        assert_eq!((merge.add.len(), merge.remove.len()), (1, 0));
        let exact = plan_profile(name(), &actual, &desired, Policy::Exact);
        assert_eq!((exact.add.len(), exact.remove.len()), (1, 1));
    }

    #[test]
    fn plan_json_shape() {
        let desired = [r("52.0.0.1", "52.0.0.1", Some("ipguard: s"))];
        let plan = Plan::new(
            Policy::Merge,
            vec![plan_profile(name(), &[], &desired, Policy::Merge)],
        );
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "drift": true, "policy": "merge",
                "profiles": [{"name": "Custom%3A Integration", "in_sync": false,
                    "add": [{"start": "52.0.0.1", "end": "52.0.0.1", "description": "ipguard: s"}],
                    "remove": [], "keep": []}]
            })
        );
    }
}
