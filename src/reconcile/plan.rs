//! The pure diff: actual ranges + desired ranges + owned ranges + policy → per-profile target
//! (docs/contract.md §1 Policy, Owned ranges; §5 rule 3).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::attribution::AttributionResult;
use super::doors::DoorPlan;
use super::guarded::Grant;
use crate::config::Policy;
use crate::ranges::LoginIpRange;
use crate::salesforce::profile::ProfileName;

/// Descriptions ipguard gives its ranges start with this; on a store without history for a
/// profile, such a range counts as ipguard's own.
pub const OWNED_PREFIX: &str = "ipguard:";

/// Which policy applies to which profile, and what `merge` keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRules {
    /// `IPGUARD_POLICY`.
    pub default: Policy,
    /// `IPGUARD_EXACT_PROFILES`: always `exact`.
    pub exact_profiles: Vec<ProfileName>,
    /// `IPGUARD_KEEP_WITHIN`: under `merge`, a foreign range survives only inside one of
    /// these. `None` keeps every foreign range.
    pub keep_within: Option<Vec<IpNet>>,
}

impl PolicyRules {
    pub fn uniform(policy: Policy) -> Self {
        Self {
            default: policy,
            ..Self::default()
        }
    }

    /// The policy for `profile` and the variable that chose it.
    pub fn for_profile(&self, profile: &ProfileName) -> (Policy, PolicyFrom) {
        if self.exact_profiles.contains(profile) {
            (Policy::Exact, PolicyFrom::ExactProfiles)
        } else {
            (self.default, PolicyFrom::Policy)
        }
    }
}

/// The variable a profile's policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum PolicyFrom {
    #[serde(rename = "IPGUARD_POLICY")]
    Policy,
    #[serde(rename = "IPGUARD_EXACT_PROFILES")]
    ExactProfiles,
}

impl PolicyFrom {
    pub fn variable(self) -> &'static str {
        match self {
            PolicyFrom::Policy => "IPGUARD_POLICY",
            PolicyFrom::ExactProfiles => "IPGUARD_EXACT_PROFILES",
        }
    }
}

/// What ipguard knows it asserted on one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    /// The store recorded these (start, end) pairs: the record wins over any description.
    Recorded(BTreeSet<(IpAddr, IpAddr)>),
    /// The store has no history for this profile: ranges described `ipguard: …` are ours.
    ByDescription,
}

impl Owned {
    fn owns(&self, range: &LoginIpRange) -> bool {
        match self {
            Owned::Recorded(keys) => keys.contains(&range.key()),
            Owned::ByDescription => range
                .description()
                .is_some_and(|d| d.trim_start().starts_with(OWNED_PREFIX)),
        }
    }
}

/// Owned ranges of every profile, as the store knows them; a profile missing from the map has
/// no history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership(pub HashMap<String, BTreeSet<(IpAddr, IpAddr)>>);

impl Ownership {
    pub fn of(&self, profile: &ProfileName) -> Owned {
        match self.0.get(profile.as_str()) {
            Some(keys) if !keys.is_empty() => Owned::Recorded(keys.clone()),
            _ => Owned::ByDescription,
        }
    }
}

/// Why a range is added, kept or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// In the source set.
    Desired,
    /// ipguard wrote it (store record, or its description on a store without history) and the
    /// sources no longer hold it.
    OwnedNoLongerDesired,
    /// `exact`: only the desired ranges.
    Exact,
    /// `merge` with `IPGUARD_KEEP_WITHIN`: someone else's range outside every CIDR.
    OutsideKeepWithin,
    /// `merge` with `IPGUARD_KEEP_WITHIN`: someone else's range inside one of them.
    InsideKeepWithin,
    /// `merge` without `IPGUARD_KEEP_WITHIN`: someone else's range is kept.
    Foreign,
}

impl Reason {
    pub fn text(self) -> &'static str {
        match self {
            Reason::Desired => "one of the space's / configured ranges",
            Reason::OwnedNoLongerDesired => "ipguard wrote it and the sources no longer hold it",
            Reason::Exact => "policy exact: only the desired ranges",
            Reason::OutsideKeepWithin => "someone else's range outside IPGUARD_KEEP_WITHIN",
            Reason::InsideKeepWithin => "someone else's range inside IPGUARD_KEEP_WITHIN",
            Reason::Foreign => "someone else's range; merge keeps it (IPGUARD_KEEP_WITHIN unset)",
        }
    }
}

/// One range's fate and its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RangeWhy {
    pub start: String,
    pub end: String,
    /// `add`, `remove` or `keep`.
    pub action: String,
    pub reason: Reason,
}

/// What one profile needs. Sets compare by (start, end); descriptions are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfilePlan {
    pub name: ProfileName,
    /// The policy applied to this profile …
    pub policy: Policy,
    /// … and the variable that chose it.
    pub policy_from: PolicyFrom,
    pub in_sync: bool,
    pub add: Vec<LoginIpRange>,
    pub remove: Vec<LoginIpRange>,
    pub keep: Vec<LoginIpRange>,
    /// Why each range is added, removed or kept.
    pub why: Vec<RangeWhy>,
    /// The complete list to deploy (a present list replaces the profile's whole list).
    #[serde(skip)]
    pub target: Vec<LoginIpRange>,
}

impl ProfilePlan {
    pub fn reason_for(&self, range: &LoginIpRange) -> Option<Reason> {
        let (start, end) = (range.start().to_string(), range.end().to_string());
        self.why
            .iter()
            .find(|w| w.start == start && w.end == end)
            .map(|w| w.reason)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub drift: bool,
    /// `IPGUARD_POLICY`; each profile says which policy it got.
    pub policy: Policy,
    pub profiles: Vec<ProfilePlan>,
    /// The guarded side doors (`IPGUARD_SIDE_DOORS`), as read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub doors: Vec<DoorPlan>,
}

impl Plan {
    pub fn new(policy: Policy, profiles: Vec<ProfilePlan>) -> Self {
        Self {
            drift: profiles.iter().any(|p| !p.in_sync),
            policy,
            profiles,
            doors: Vec::new(),
        }
    }

    /// This plan with the side doors as read; a drifted door is drift.
    pub fn with_doors(mut self, doors: Vec<DoorPlan>) -> Self {
        self.drift |= doors.iter().any(|d| !d.in_sync);
        self.doors = doors;
        self
    }

    pub fn drifted_doors(&self) -> impl Iterator<Item = &DoorPlan> {
        self.doors.iter().filter(|d| !d.in_sync)
    }

    pub fn drifted(&self) -> impl Iterator<Item = &ProfilePlan> {
        self.profiles.iter().filter(|p| !p.in_sync)
    }
}

/// A run's plan as the run's record keeps it (docs/contract.md §5 rules 3 and 9): each
/// profile's diff and why, and who changed what drifted. `/status` shows it as a run's `plan`
/// (`history --json` its `attribution`). A record to show, never to deploy from: the target
/// lists are not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredPlan")]
pub struct PlanRecord {
    pub drift: bool,
    pub policy: Policy,
    /// Each profile's plan with an empty `target` (never serialised, never kept).
    pub profiles: Vec<ProfilePlan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub doors: Vec<DoorPlan>,
    /// Why each app-granted profile was guarded (`@app:` entries), so the next process knows
    /// which grants are news.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<AttributionResult>,
}

/// A plan record as any version stored it. Records written before profiles had a policy of
/// their own (and its reasons) have none: the plan's one policy, from `IPGUARD_POLICY`,
/// applied to every profile then.
#[derive(Deserialize)]
struct StoredPlan {
    drift: bool,
    policy: Policy,
    profiles: Vec<StoredProfile>,
    #[serde(default)]
    doors: Vec<DoorPlan>,
    #[serde(default)]
    grants: Vec<Grant>,
    #[serde(default)]
    attribution: Option<AttributionResult>,
}

#[derive(Deserialize)]
struct StoredProfile {
    name: ProfileName,
    #[serde(default)]
    policy: Option<Policy>,
    #[serde(default)]
    policy_from: Option<PolicyFrom>,
    in_sync: bool,
    add: Vec<LoginIpRange>,
    remove: Vec<LoginIpRange>,
    keep: Vec<LoginIpRange>,
    #[serde(default)]
    why: Vec<RangeWhy>,
}

impl From<StoredPlan> for PlanRecord {
    fn from(stored: StoredPlan) -> Self {
        let profiles = stored
            .profiles
            .into_iter()
            .map(|p| ProfilePlan {
                name: p.name,
                policy: p.policy.unwrap_or(stored.policy),
                policy_from: p.policy_from.unwrap_or(PolicyFrom::Policy),
                in_sync: p.in_sync,
                add: p.add,
                remove: p.remove,
                keep: p.keep,
                why: p.why,
                target: Vec::new(),
            })
            .collect();
        Self {
            drift: stored.drift,
            policy: stored.policy,
            profiles,
            doors: stored.doors,
            grants: stored.grants,
            attribution: stored.attribution,
        }
    }
}

impl PlanRecord {
    pub fn new(
        plan: &Plan,
        grants: Vec<Grant>,
        attribution: Option<AttributionResult>,
    ) -> PlanRecord {
        let profiles = plan
            .profiles
            .iter()
            .map(|p| ProfilePlan {
                target: Vec::new(),
                ..p.clone()
            })
            .collect();
        PlanRecord {
            drift: plan.drift,
            policy: plan.policy,
            profiles,
            doors: plan.doors.clone(),
            grants,
            attribution,
        }
    }
}

fn inside_any(range: &LoginIpRange, nets: &[IpNet]) -> bool {
    nets.iter()
        .any(|net| net.contains(&range.start()) && net.contains(&range.end()))
}

/// The target of one profile:
/// - `exact`: desired only;
/// - `merge`: desired ∪ the actual ranges that are neither owned-and-no-longer-desired nor (with
///   `IPGUARD_KEEP_WITHIN`) outside every keep-within CIDR. Ranges already there keep their
///   description.
pub fn plan_profile(
    name: ProfileName,
    actual: &[LoginIpRange],
    desired: &[LoginIpRange],
    rules: &PolicyRules,
    owned: &Owned,
) -> ProfilePlan {
    let (policy, policy_from) = rules.for_profile(&name);
    let desired_set: BTreeSet<&LoginIpRange> = desired.iter().collect();
    let mut why = Vec::new();
    let mut target: BTreeSet<&LoginIpRange> = BTreeSet::new();
    let mut keep = Vec::new();
    let mut remove = Vec::new();
    let mut seen: BTreeSet<&LoginIpRange> = BTreeSet::new();
    for range in actual {
        if !seen.insert(range) {
            continue;
        }
        let reason = if desired_set.contains(range) {
            Reason::Desired
        } else if policy == Policy::Exact {
            Reason::Exact
        } else if owned.owns(range) {
            Reason::OwnedNoLongerDesired
        } else {
            match &rules.keep_within {
                None => Reason::Foreign,
                Some(nets) if inside_any(range, nets) => Reason::InsideKeepWithin,
                Some(_) => Reason::OutsideKeepWithin,
            }
        };
        let kept = matches!(
            reason,
            Reason::Desired | Reason::Foreign | Reason::InsideKeepWithin
        );
        why.push(RangeWhy {
            start: range.start().to_string(),
            end: range.end().to_string(),
            action: if kept { "keep" } else { "remove" }.to_owned(),
            reason,
        });
        if kept {
            // The org's copy first, so a kept range carries the description the org has.
            target.insert(range);
            keep.push(range.clone());
        } else {
            remove.push(range.clone());
        }
    }
    let mut add = Vec::new();
    for range in desired {
        if target.insert(range) {
            add.push(range.clone());
            why.push(RangeWhy {
                start: range.start().to_string(),
                end: range.end().to_string(),
                action: "add".to_owned(),
                reason: Reason::Desired,
            });
        }
    }
    keep.sort();
    remove.sort();
    ProfilePlan {
        in_sync: add.is_empty() && remove.is_empty(),
        name,
        policy,
        policy_from,
        add,
        remove,
        keep,
        why,
        target: target.into_iter().cloned().collect(),
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

    fn merge() -> PolicyRules {
        PolicyRules::uniform(Policy::Merge)
    }

    fn recorded(ranges: &[&LoginIpRange]) -> Owned {
        Owned::Recorded(ranges.iter().map(|r| r.key()).collect())
    }

    /// The record's JSON is what runs recorded before it was typed: the plan's own, with the
    /// attribution beside its fields (what `/status` shows); and it reads back as written.
    #[test]
    fn a_plan_record_is_the_plan_and_its_attribution_in_one_document() {
        let actual = [r("1.1.1.1", "1.1.1.1", Some("office"))];
        let desired = [r("52.0.0.1", "52.0.0.1", Some("ipguard: space"))];
        let drifted = plan_profile(name(), &actual, &desired, &merge(), &Owned::ByDescription);
        let settled = plan_profile(
            ProfileName::parse("Admin").unwrap(),
            &desired,
            &desired,
            &merge(),
            &Owned::ByDescription,
        );
        let plan = Plan::new(Policy::Merge, vec![drifted, settled]);
        let attribution = AttributionResult {
            attributions: vec![],
            unattributed: vec![name()],
            notes: vec!["SetupAuditTrail: nothing in the window".to_owned()],
            doors: vec![],
        };

        let spliced = |attribution: Option<&AttributionResult>| {
            let mut value = serde_json::to_value(&plan).unwrap();
            if let Some(a) = attribution {
                value["attribution"] = serde_json::to_value(a).unwrap();
            }
            value
        };
        for attribution in [None, Some(attribution)] {
            let record = PlanRecord::new(&plan, Vec::new(), attribution.clone());
            let written = serde_json::to_value(&record).unwrap();
            assert_eq!(written, spliced(attribution.as_ref()));
            let read: PlanRecord = serde_json::from_value(written.clone()).unwrap();
            assert_eq!(serde_json::to_value(&read).unwrap(), written);
        }
    }

    /// Runs recorded before profiles had a policy of their own still read back (else `/status`
    /// would fail while one is among the latest runs): the plan's policy, from
    /// `IPGUARD_POLICY`, was every profile's then.
    #[test]
    fn a_plan_recorded_before_per_profile_policies_reads_back() {
        let old = serde_json::json!({
            "drift": true,
            "policy": "exact",
            "profiles": [{
                "name": "Custom%3A Support",
                "in_sync": false,
                "add": [{ "start": "52.0.0.1", "end": "52.0.0.1", "description": "ipguard: space" }],
                "remove": [],
                "keep": []
            }],
            "attribution": { "attributions": [], "unattributed": ["Custom%3A Support"], "notes": [] }
        });
        let read: PlanRecord = serde_json::from_value(old).unwrap();
        let profile = &read.profiles[0];
        assert_eq!(profile.policy, Policy::Exact);
        assert_eq!(profile.policy_from, PolicyFrom::Policy);
        assert!(profile.why.is_empty());
        assert_eq!(profile.add.len(), 1);
        assert!(read.attribution.is_some());
    }

    #[test]
    fn merge_adds_missing_and_keeps_others() {
        let actual = [r("1.1.1.1", "1.1.1.1", Some("office"))];
        let desired = [r("52.0.0.1", "52.0.0.1", Some("ipguard: space"))];
        let p = plan_profile(name(), &actual, &desired, &merge(), &Owned::ByDescription);
        assert!(!p.in_sync);
        assert_eq!(p.add, desired);
        assert!(p.remove.is_empty());
        assert_eq!(p.keep, actual);
        assert_eq!(p.target.len(), 2);
        assert_eq!(p.target[0].description(), Some("office"));
        assert_eq!(p.reason_for(&actual[0]), Some(Reason::Foreign));
    }

    #[test]
    fn exact_removes_everything_else() {
        let actual = [
            r("1.1.1.1", "1.1.1.1", None),
            r("52.0.0.1", "52.0.0.1", Some("old label")),
        ];
        let desired = [r("52.0.0.1", "52.0.0.1", Some("ipguard: space"))];
        let rules = PolicyRules::uniform(Policy::Exact);
        let p = plan_profile(name(), &actual, &desired, &rules, &Owned::ByDescription);
        assert_eq!(p.remove, [actual[0].clone()]);
        assert!(p.add.is_empty());
        assert_eq!(p.keep.len(), 1);
        assert_eq!(p.target, desired);
        assert_eq!(p.reason_for(&actual[0]), Some(Reason::Exact));
    }

    #[test]
    fn descriptions_do_not_make_drift() {
        let actual = [r("52.0.0.1", "52.0.0.1", Some("typed by hand"))];
        let desired = [r("52.0.0.1", "52.0.0.1", Some("ipguard: space"))];
        for policy in [Policy::Merge, Policy::Exact] {
            let rules = PolicyRules::uniform(policy);
            assert!(plan_profile(name(), &actual, &desired, &rules, &Owned::ByDescription).in_sync);
        }
    }

    #[test]
    fn broken_range_is_drift_under_both_policies() {
        // someone widened the range: the exact desired key is gone
        let actual = [r("52.0.0.0", "52.0.0.255", None)];
        let desired = [r("52.0.0.1", "52.0.0.1", None)];
        let merge = plan_profile(name(), &actual, &desired, &merge(), &Owned::ByDescription);
        assert_eq!((merge.add.len(), merge.remove.len()), (1, 0));
        let exact = plan_profile(
            name(),
            &actual,
            &desired,
            &PolicyRules::uniform(Policy::Exact),
            &Owned::ByDescription,
        );
        assert_eq!((exact.add.len(), exact.remove.len()), (1, 1));
    }

    #[test]
    fn owned_ranges_no_longer_desired_are_removed_under_merge() {
        let old = r("52.0.0.1", "52.0.0.1", Some("ipguard: space old"));
        let office = r("1.1.1.1", "1.1.1.1", Some("office"));
        let desired = [r("54.0.0.9", "54.0.0.9", Some("ipguard: space new"))];
        let actual = [old.clone(), office.clone()];
        // fresh store: the description says it is ours
        let p = plan_profile(name(), &actual, &desired, &merge(), &Owned::ByDescription);
        assert_eq!(p.remove, std::slice::from_ref(&old));
        assert_eq!(p.keep, std::slice::from_ref(&office));
        assert_eq!(p.reason_for(&old), Some(Reason::OwnedNoLongerDesired));
        // a store that recorded it: the same
        let p = plan_profile(name(), &actual, &desired, &merge(), &recorded(&[&old]));
        assert_eq!(p.remove, std::slice::from_ref(&old));
    }

    #[test]
    fn the_record_wins_over_the_text_once_there_is_history() {
        // an attacker labels a range `ipguard: …` on a store that recorded something else
        let ours = r("54.0.0.9", "54.0.0.9", Some("ipguard: space"));
        let forged = r("0.0.0.0", "255.255.255.255", Some("ipguard: space"));
        let actual = [ours.clone(), forged.clone()];
        let desired = [ours.clone()];
        let p = plan_profile(name(), &actual, &desired, &merge(), &recorded(&[&ours]));
        assert!(p.in_sync, "not owned: merge keeps a foreign range");
        assert_eq!(p.reason_for(&forged), Some(Reason::Foreign));
        // … and an admin's range the store did record as ours is ours whatever its text
        let relabelled = r("52.0.0.1", "52.0.0.1", Some("typed by an admin"));
        let p = plan_profile(
            name(),
            &[ours.clone(), relabelled.clone()],
            &desired,
            &merge(),
            &recorded(&[&ours, &relabelled]),
        );
        assert_eq!(p.remove, [relabelled]);
    }

    #[test]
    fn keep_within_narrows_merge() {
        let open = r("0.0.0.0", "255.255.255.255", Some("anyone"));
        let office = r("10.1.2.3", "10.1.2.9", Some("office"));
        let desired = [r("54.0.0.9", "54.0.0.9", None)];
        let rules = PolicyRules {
            keep_within: Some(vec!["10.0.0.0/8".parse().unwrap()]),
            ..merge()
        };
        let actual = [open.clone(), office.clone(), desired[0].clone()];
        let p = plan_profile(name(), &actual, &desired, &rules, &Owned::ByDescription);
        assert_eq!(p.remove, std::slice::from_ref(&open));
        assert_eq!(p.reason_for(&open), Some(Reason::OutsideKeepWithin));
        assert_eq!(p.reason_for(&office), Some(Reason::InsideKeepWithin));
        assert_eq!(p.target.len(), 2);
    }

    #[test]
    fn exact_profiles_override_the_default() {
        let office = r("1.1.1.1", "1.1.1.1", Some("office"));
        let desired = [r("54.0.0.9", "54.0.0.9", None)];
        let rules = PolicyRules {
            exact_profiles: vec![ProfileName::parse("Custom%3A Integration").unwrap()],
            ..merge()
        };
        let p = plan_profile(
            name(),
            &[office.clone(), desired[0].clone()],
            &desired,
            &rules,
            &Owned::ByDescription,
        );
        assert_eq!(
            (p.policy, p.policy_from),
            (Policy::Exact, PolicyFrom::ExactProfiles)
        );
        assert_eq!(p.remove, [office]);
        let other = ProfileName::parse("Admin").unwrap();
        assert_eq!(
            rules.for_profile(&other),
            (Policy::Merge, PolicyFrom::Policy)
        );
    }

    #[test]
    fn plan_json_shape() {
        let desired = [r("52.0.0.1", "52.0.0.1", Some("ipguard: s"))];
        let plan = Plan::new(
            Policy::Merge,
            vec![plan_profile(
                name(),
                &[],
                &desired,
                &merge(),
                &Owned::ByDescription,
            )],
        );
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "drift": true, "policy": "merge",
                "profiles": [{"name": "Custom%3A Integration", "in_sync": false,
                    "policy": "merge", "policy_from": "IPGUARD_POLICY",
                    "add": [{"start": "52.0.0.1", "end": "52.0.0.1", "description": "ipguard: s"}],
                    "remove": [], "keep": [],
                    "why": [{"start": "52.0.0.1", "end": "52.0.0.1", "action": "add", "reason": "desired"}]}]
            })
        );
    }
}
