//! `check`'s profile lines: the guarded profiles exist (with the listed name a mistyped one
//! meant), they read, the integration user's own admits the desired ranges, no broad range
//! hides in them.

use super::*;

pub(super) fn profiles_check(names: &[ProfileName], listed: &[String]) -> CheckLine {
    let unknown: Vec<&ProfileName> = names
        .iter()
        .filter(|n| !listed.iter().any(|l| l == n.as_str()))
        .collect();
    if unknown.is_empty() {
        return CheckLine::ok(
            "profiles",
            format!(
                "all {} managed profile(s) exist among the org's {} profiles",
                names.len(),
                listed.len()
            ),
        );
    }
    let detail = unknown
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let fixes: Vec<String> = unknown
        .iter()
        .map(|n| match closest(n.as_str(), listed) {
            Some(best) => format!("for `{n}` use `{best}`"),
            None => format!("`{n}` matches no profile"),
        })
        .collect();
    let mut examples: Vec<&str> = listed.iter().take(6).map(String::as_str).collect();
    if listed.len() > examples.len() {
        examples.push("…");
    }
    CheckLine::fail(
        "profiles",
        format!("IPGUARD_PROFILES names no such profile: {detail}"),
        format!(
            "{} — IPGUARD_PROFILES takes full names exactly as listMetadata returns them \
             (the org has: {})",
            fixes.join("; "),
            examples.join(", ")
        ),
    )
}

/// The listed full name closest to `wanted`: equal once percent-decoded, case- and
/// space-folded (`Custom: Support` → `Custom%3A Support`), or within a few typos.
pub(super) fn closest<'a>(wanted: &str, listed: &'a [String]) -> Option<&'a str> {
    let fold = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let wanted = fold(wanted);
    let budget = (wanted.chars().count() / 4).max(2);
    listed
        .iter()
        .map(|l| (levenshtein(&wanted, &fold(l)), l))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, l)| l.as_str())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// Reads the managed profiles that exist; `None` when nothing could be read.
pub(super) async fn read_check(
    client: &MetadataClient,
    existing: &[ProfileName],
    desired: Option<&[LoginIpRange]>,
    report: &mut Report,
) -> Option<Vec<ProfileRecord>> {
    if existing.is_empty() {
        report.emit(CheckLine::skipped(
            "profile read",
            "none of the managed profiles exists (see profiles)",
        ));
        return None;
    }
    let records = match client.read_profiles(existing).await {
        Ok(records) => records,
        Err(e) => {
            report.emit(CheckLine::fail(
                "profile read",
                format!("readMetadata(Profile) failed: {e}"),
                permission_fix(&e),
            ));
            return None;
        }
    };
    let unread: Vec<&str> = existing
        .iter()
        .filter(|n| !records.iter().any(|r| r.full_name == n.as_str()))
        .map(ProfileName::as_str)
        .collect();
    if !unread.is_empty() {
        report.emit(CheckLine::fail(
            "profile read",
            format!("readMetadata returned nothing for {}", unread.join(", ")),
            "give the integration user read access to profiles (View Setup and Configuration)",
        ));
        return Some(records);
    }
    let detail = match desired {
        None => format!("read {} profile(s)", records.len()),
        Some(desired) => {
            let (holding, missing): (Vec<&ProfileRecord>, Vec<&ProfileRecord>) = records
                .iter()
                .partition(|r| covers_exactly(&r.ranges, desired));
            let names = |list: &[&ProfileRecord]| {
                if list.is_empty() {
                    "none".to_owned()
                } else {
                    list.iter()
                        .map(|r| r.full_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            let mut detail = format!(
                "read {} profile(s); holding the desired ranges: {}",
                records.len(),
                names(&holding)
            );
            if !missing.is_empty() {
                detail.push_str(&format!(
                    "; not yet (ipguard's next run adds them): {}",
                    names(&missing)
                ));
            }
            detail
        }
    };
    report.emit(CheckLine::ok("profile read", detail));
    Some(records)
}

/// Every desired range is on the profile as such (what a run would leave there).
fn covers_exactly(ranges: &[LoginIpRange], desired: &[LoginIpRange]) -> bool {
    desired
        .iter()
        .all(|d| ranges.iter().any(|r| r.key() == d.key()))
}

/// Every desired address is allowed (a profile without ranges allows every address).
fn allows(ranges: &[LoginIpRange], desired: &LoginIpRange) -> bool {
    ranges.is_empty()
        || ranges
            .iter()
            .any(|r| r.contains(desired.start()) && r.contains(desired.end()))
}

/// The parts of `desired` the profile does not allow: address by address for small ranges
/// (a space's few NAT IPs), the whole range otherwise.
fn not_allowed(ranges: &[LoginIpRange], desired: &LoginIpRange) -> Vec<String> {
    if allows(ranges, desired) {
        return Vec::new();
    }
    let (std::net::IpAddr::V4(start), std::net::IpAddr::V4(end)) = (desired.start(), desired.end())
    else {
        return vec![range_text(desired)];
    };
    if desired.size() > 256 {
        return vec![range_text(desired)];
    }
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for ip in u32::from(start)..=u32::from(end) {
        if ranges
            .iter()
            .any(|r| r.contains(std::net::Ipv4Addr::from(ip).into()))
        {
            continue;
        }
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == ip => *last = ip,
            _ => runs.push((ip, ip)),
        }
    }
    runs.into_iter()
        .map(|(a, b)| {
            let (a, b) = (std::net::Ipv4Addr::from(a), std::net::Ipv4Addr::from(b));
            if a == b {
                a.to_string()
            } else {
                format!("{a}–{b}")
            }
        })
        .collect()
}

pub(super) fn integration_check(records: &[ProfileRecord], desired: &[LoginIpRange]) -> CheckLine {
    let name = "integration user's profile";
    let blocking: Vec<String> = records
        .iter()
        .filter_map(|r| {
            let missing: Vec<String> = desired
                .iter()
                .flat_map(|d| not_allowed(&r.ranges, d))
                .collect();
            (!missing.is_empty()).then(|| format!("{} (lacks {})", r.full_name, missing.join(", ")))
        })
        .collect();
    if blocking.is_empty() {
        return CheckLine::ok(
            name,
            "every managed profile already allows the space's IPs, so whichever is the \
             integration user's profile, its next token request is accepted",
        );
    }
    CheckLine::warn(
        name,
        format!(
            "managed profile(s) whose login IP ranges exclude the space's IPs: {}. If one of \
             them is the integration user's profile, its next token request from the space \
             will be refused (`ip restricted`) and ipguard cannot repair that itself",
            blocking.join("; ")
        ),
        "find the integration user's profile (Setup › Users › the integration user) and, if \
         it is listed here, add the Private Space's outbound IPs to it by hand now: Setup › \
         Profiles › that profile › Login IP Ranges",
    )
}

pub(super) fn broad_check(records: &[ProfileRecord], policy: Policy) -> CheckLine {
    let name = "broad ranges";
    let broad: Vec<String> = records
        .iter()
        .flat_map(|r| {
            r.ranges
                .iter()
                .filter(|range| !range.within_size_limit())
                .map(|range| format!("{}: {}", r.full_name, range_text(range)))
        })
        .collect();
    if broad.is_empty() {
        return CheckLine::ok(
            name,
            "no managed profile allows more than a /8 (IPv4) or /32 (IPv6)",
        );
    }
    let detail = format!(
        "ranges wider than a /8 (IPv4) or /32 (IPv6) let almost anyone log in: {}",
        broad.join("; ")
    );
    match policy {
        Policy::Merge => CheckLine::fail(
            name,
            detail,
            "set IPGUARD_POLICY=exact so ipguard replaces each list with exactly the desired \
             ranges, or delete the range in Setup › Profiles › the profile › Login IP Ranges",
        ),
        Policy::Exact => CheckLine::warn(
            name,
            detail,
            "none needed: policy `exact` removes them at the next run",
        ),
    }
}
