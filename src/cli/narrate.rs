//! `apply`'s progress on a terminal: a line per step the run returns.

use std::fmt::Write;

use super::render;
use crate::reconcile::run::{RunReport, Submitted};
use crate::salesforce::metadata::DeployResult;

/// What a run found before deploying: sources, desired ranges, profiles read and the plan.
pub fn found(report: &RunReport) -> String {
    let mut text = String::new();
    if !report.sources.is_empty() {
        let _ = writeln!(text, "• sources: {} IP/CIDR entries", report.sources.len());
        let _ = writeln!(text, "• desired: {} range(s)", report.desired.len());
    }
    if let Some(plan) = &report.plan {
        let _ = writeln!(text, "• read {} profile(s)", plan.profiles.len());
        text.push_str(&render::plan_text(plan));
    }
    text
}

pub fn submitted(submitted: &Submitted) -> String {
    format!(
        "• deploy {} submitted{}",
        submitted.id,
        if submitted.check_only {
            " (checkOnly: validate, change nothing)"
        } else {
            ""
        }
    )
}

pub fn poll(result: &DeployResult) -> String {
    format!(
        "  … {} ({}/{} components)",
        result.status, result.components_deployed, result.components_total
    )
}

/// The read-back after a deploy: verified, or which profiles still differ.
pub fn verified(report: &RunReport) -> String {
    let Some(after) = &report.verified else {
        return String::new();
    };
    let differ: Vec<&str> = after.drifted().map(|p| p.name.as_str()).collect();
    if differ.is_empty() {
        "• read back: profiles verified\n".into()
    } else {
        format!("• read back: {} still differ\n", differ.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::ranges::{LoginIpRange, Source};
    use crate::reconcile::plan::{Owned, Plan, PolicyRules, plan_profile};
    use crate::salesforce::profile::ProfileName;

    fn range(ip: &str) -> LoginIpRange {
        LoginIpRange::parse_existing(ip, ip, None).unwrap()
    }

    fn plan(current: &[LoginIpRange], desired: &[LoginIpRange]) -> Plan {
        let profile = plan_profile(
            ProfileName::parse("Admin").unwrap(),
            current,
            desired,
            &PolicyRules::uniform(Policy::Exact),
            &Owned::ByDescription,
        );
        Plan::new(Policy::Exact, vec![profile])
    }

    #[test]
    fn what_a_run_found_names_each_step() {
        let desired = vec![range("52.1.2.3")];
        let mut report = RunReport::empty();
        report.sources = vec![Source {
            net: "52.1.2.3/32".parse().unwrap(),
            label: "IPGUARD_SOURCE_IPS".into(),
        }];
        report.desired = desired.clone();
        report.plan = Some(plan(&[range("192.0.2.1")], &desired));
        let text = found(&report);
        assert!(text.contains("• sources: 1 IP/CIDR entries"), "{text}");
        assert!(text.contains("• desired: 1 range(s)"), "{text}");
        assert!(text.contains("• read 1 profile(s)"), "{text}");
        assert!(text.contains("Admin"), "{text}");
    }

    #[test]
    fn a_read_back_that_still_differs_says_so() {
        let desired = vec![range("52.1.2.3")];
        let mut report = RunReport::empty();
        report.verified = Some(plan(&desired, &desired));
        assert_eq!(verified(&report), "• read back: profiles verified\n");
        report.verified = Some(plan(&[range("192.0.2.1")], &desired));
        assert_eq!(verified(&report), "• read back: Admin still differ\n");
        assert_eq!(verified(&RunReport::empty()), "");
    }
}
