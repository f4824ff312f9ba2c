//! Human-readable output: plans like `terraform plan`, ranges as a list.

use std::fmt::Write;

use crate::ranges::LoginIpRange;
use crate::reconcile::plan::{Plan, ProfilePlan};

pub fn range_line(range: &LoginIpRange) -> String {
    let mut line = if range.start() == range.end() {
        range.start().to_string()
    } else {
        format!("{} – {}", range.start(), range.end())
    };
    if let Some(d) = range.description() {
        let _ = write!(line, "  ({d})");
    }
    line
}

/// `policy exact (IPGUARD_EXACT_PROFILES)`: which policy a profile got and from where.
pub fn policy_note(p: &ProfilePlan) -> String {
    format!("policy {} ({})", p.policy, p.policy_from.variable())
}

fn with_reason(p: &ProfilePlan, range: &LoginIpRange) -> String {
    match p.reason_for(range) {
        Some(reason) => format!("{}  — {}", range_line(range), reason.text()),
        None => range_line(range),
    }
}

pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    for p in &plan.profiles {
        if p.in_sync {
            let _ = writeln!(
                out,
                "  profile {}: in sync ({} range{}, {})",
                p.name,
                p.keep.len(),
                if p.keep.len() == 1 { "" } else { "s" },
                policy_note(p)
            );
            continue;
        }
        let _ = writeln!(out, "  profile {}: drift ({})", p.name, policy_note(p));
        for r in &p.add {
            let _ = writeln!(out, "      + {}", range_line(r));
        }
        for r in &p.remove {
            let _ = writeln!(out, "      - {}", with_reason(p, r));
        }
        for r in &p.keep {
            let _ = writeln!(out, "        {}", with_reason(p, r));
        }
    }
    for d in &plan.doors {
        if d.in_sync {
            let _ = writeln!(out, "  side door {} ({}): {}", d.door, d.subject, d.actual);
        } else {
            let _ = writeln!(
                out,
                "  side door {} ({}): drift\n      ~ {} → {}",
                d.door, d.subject, d.actual, d.wanted
            );
        }
    }
    let doors = plan.drifted_doors().count();
    let door_note = if doors == 0 {
        String::new()
    } else {
        format!(", {doors} side door(s) to shut")
    };
    let drifted = plan.drifted().count();
    let adds: usize = plan.profiles.iter().map(|p| p.add.len()).sum();
    let removes: usize = plan.profiles.iter().map(|p| p.remove.len()).sum();
    if drifted == 0 && doors == 0 {
        let _ = writeln!(
            out,
            "No drift: all {} profile(s) hold the desired ranges (policy {}).",
            plan.profiles.len(),
            plan.policy.as_str()
        );
    } else {
        let _ = writeln!(
            out,
            "Plan: {drifted} of {} profile(s) drifted — {adds} range(s) to add, {removes} to remove{door_note} (policy {}).",
            plan.profiles.len(),
            plan.policy.as_str()
        );
    }
    out
}
