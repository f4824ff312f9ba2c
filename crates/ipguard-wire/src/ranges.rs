//! IPs and CIDRs → Salesforce login IP ranges, under Salesforce's rules.
//!
//! Rules (docs/salesforce.md §3.3):
//! - start ≤ end, both addresses of one family;
//! - IPv4 addresses live in the IPv4-mapped IPv6 block `::ffff:0:0/96`; a range may not mix
//!   addresses inside and outside that block;
//! - since Winter '26 a range holds at most 16,777,216 IPv4 addresses or 2^96 IPv6 addresses.
//!
//! IPv4-mapped IPv6 addresses are normalised to plain IPv4 so `::ffff:1.2.3.4` and `1.2.3.4`
//! compare equal, as Salesforce treats them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest IPv4 range Salesforce accepts on a profile (since Winter '26).
pub const MAX_IPV4_RANGE_SIZE: u128 = 1 << 24;
/// Largest IPv6 range Salesforce accepts.
pub const MAX_IPV6_RANGE_SIZE: u128 = 1 << 96;

const MAPPED_START: u128 = 0xffff_u128 << 32;
const MAPPED_END: u128 = MAPPED_START | 0xffff_ffff;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("`{0}` is not an IP address")]
    BadAddress(String),
    #[error("`{0}` is not an IP address or CIDR block")]
    BadSource(String),
    #[error("range {start}–{end} mixes IPv4 and IPv6")]
    MixedFamilies { start: String, end: String },
    #[error("range {start}–{end} starts after it ends")]
    Reversed { start: String, end: String },
    #[error(
        "range {start}–{end} mixes addresses inside and outside the IPv4-mapped block ::ffff:0:0/96"
    )]
    CrossesMappedBlock { start: String, end: String },
    #[error("range {start}–{end} holds {size} addresses; Salesforce allows at most {max}")]
    TooLarge {
        start: String,
        end: String,
        size: u128,
        max: u128,
    },
}

/// One Salesforce profile login IP range; only constructible when Salesforce would accept it
/// (or, for [`LoginIpRange::existing`], when it is at least a well-formed range).
#[derive(Debug, Clone)]
pub struct LoginIpRange {
    start: IpAddr,
    end: IpAddr,
    description: Option<String>,
}

impl LoginIpRange {
    /// A range ipguard will send: every Salesforce rule, size limits included.
    pub fn new(
        start: IpAddr,
        end: IpAddr,
        description: Option<String>,
    ) -> Result<Self, RangeError> {
        let range = Self::existing(start, end, description)?;
        let (size, max) = (range.size(), range.max_size());
        if size > max {
            return Err(RangeError::TooLarge {
                start: range.start.to_string(),
                end: range.end.to_string(),
                size,
                max,
            });
        }
        Ok(range)
    }

    /// A range as found on a profile: well-formed, but size limits are not applied because
    /// Salesforce kept ranges created before Winter '26 (e.g. 0.0.0.0–255.255.255.255).
    pub fn existing(
        start: IpAddr,
        end: IpAddr,
        description: Option<String>,
    ) -> Result<Self, RangeError> {
        let (start, end) = (normalise(start), normalise(end));
        let texts = || (start.to_string(), end.to_string());
        match (start, end) {
            (IpAddr::V4(_), IpAddr::V4(_)) => {}
            (IpAddr::V6(_), IpAddr::V6(_)) => {
                // Both are outside the mapped block (normalise moved mapped ones to IPv4), so the
                // range crosses the block exactly when it starts below and ends above it.
                if to_u128(start) < MAPPED_START && to_u128(end) > MAPPED_END {
                    let (start, end) = texts();
                    return Err(RangeError::CrossesMappedBlock { start, end });
                }
            }
            _ => {
                let (s, e) = texts();
                // An IPv4 start with an IPv6 end is exactly the "255.255.255.255 to ::1:0:0:0"
                // case Salesforce names; report it as a family mix either way.
                return Err(RangeError::MixedFamilies { start: s, end: e });
            }
        }
        if to_u128(start) > to_u128(end) {
            let (start, end) = texts();
            return Err(RangeError::Reversed { start, end });
        }
        let description = description.filter(|d| !d.is_empty());
        Ok(Self {
            start,
            end,
            description,
        })
    }

    /// Parses the textual form found in profile metadata.
    pub fn parse_existing(
        start: &str,
        end: &str,
        description: Option<&str>,
    ) -> Result<Self, RangeError> {
        let start = parse_addr(start)?;
        let end = parse_addr(end)?;
        Self::existing(start, end, description.map(str::to_owned))
    }

    pub fn start(&self) -> IpAddr {
        self.start
    }

    pub fn end(&self) -> IpAddr {
        self.end
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Identity used for comparisons: (start, end); descriptions are ignored (docs/contract.md §5 rule 3).
    pub fn key(&self) -> (IpAddr, IpAddr) {
        (self.start, self.end)
    }

    /// Number of addresses in the range.
    pub fn size(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    /// Whether Salesforce's Winter '26 size limit allows this range for new ranges.
    pub fn within_size_limit(&self) -> bool {
        self.size() <= self.max_size()
    }

    fn max_size(&self) -> u128 {
        match self.start {
            IpAddr::V4(_) => MAX_IPV4_RANGE_SIZE,
            IpAddr::V6(_) => MAX_IPV6_RANGE_SIZE,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalise(ip);
        ip.is_ipv4() == self.start.is_ipv4()
            && to_u128(self.start) <= to_u128(ip)
            && to_u128(ip) <= to_u128(self.end)
    }
}

impl PartialEq for LoginIpRange {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for LoginIpRange {}

impl PartialOrd for LoginIpRange {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LoginIpRange {
    /// IPv4 before IPv6, then by start and end address.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let rank = |r: &Self| (r.start.is_ipv6(), to_u128(r.start), to_u128(r.end));
        rank(self).cmp(&rank(other))
    }
}

impl std::hash::Hash for LoginIpRange {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl fmt::Display for LoginIpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)?;
        } else {
            write!(f, "{} – {}", self.start, self.end)?;
        }
        if let Some(d) = &self.description {
            write!(f, "  ({d})")?;
        }
        Ok(())
    }
}

impl Serialize for LoginIpRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("LoginIpRange", 3)?;
        s.serialize_field("start", &self.start.to_string())?;
        s.serialize_field("end", &self.end.to_string())?;
        s.serialize_field("description", &self.description)?;
        s.end()
    }
}

/// Reads back what [`Serialize`] wrote (a run's record): a range that is not well-formed is
/// refused, as [`LoginIpRange::existing`] refuses it.
impl<'de> Deserialize<'de> for LoginIpRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Written {
            start: IpAddr,
            end: IpAddr,
            description: Option<String>,
        }
        let Written {
            start,
            end,
            description,
        } = Written::deserialize(deserializer)?;
        LoginIpRange::existing(start, end, description).map_err(serde::de::Error::custom)
    }
}

/// One configured source entry with the label that ends up in the range description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub net: IpNet,
    pub label: String,
}

/// Parses one address or CIDR (`52.1.2.3`, `10.0.0.0/28`, `2001:db8::/64`).
pub fn parse_source(text: &str) -> Result<IpNet, RangeError> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| RangeError::BadSource(text.to_owned()))
}

/// The desired login IP ranges for a source set: each maximal contiguous block becomes one
/// range, split where Salesforce's size limit or the IPv4-mapped boundary requires. The
/// description names the labels of the sources inside the range.
pub fn desired_ranges(sources: &[Source]) -> Vec<LoginIpRange> {
    // (is_v6, start, end, label) intervals, IPv4-mapped IPv6 moved to IPv4.
    let mut intervals: Vec<(bool, u128, u128, &str)> = Vec::new();
    for source in sources {
        let (lo, hi) = (
            to_u128(source.net.network()),
            to_u128(source.net.broadcast()),
        );
        match source.net {
            IpNet::V4(_) => intervals.push((false, lo, hi, &source.label)),
            IpNet::V6(_) => {
                // Split a v6 block at the mapped block so each piece is one family.
                if lo < MAPPED_START {
                    intervals.push((true, lo, hi.min(MAPPED_START - 1), &source.label));
                }
                if lo <= MAPPED_END && hi >= MAPPED_START {
                    let (a, b) = (lo.max(MAPPED_START), hi.min(MAPPED_END));
                    intervals.push((false, a - MAPPED_START, b - MAPPED_START, &source.label));
                }
                if hi > MAPPED_END {
                    intervals.push((true, lo.max(MAPPED_END + 1), hi, &source.label));
                }
            }
        }
    }
    intervals.sort_by_key(|&(v6, lo, hi, _)| (v6, lo, hi));

    let mut blocks: Vec<(bool, u128, u128, Vec<&str>)> = Vec::new();
    for (v6, lo, hi, label) in intervals {
        match blocks.last_mut() {
            Some((bv6, _, bhi, labels)) if *bv6 == v6 && lo <= bhi.saturating_add(1) => {
                *bhi = (*bhi).max(hi);
                if !labels.contains(&label) {
                    labels.push(label);
                }
            }
            _ => blocks.push((v6, lo, hi, vec![label])),
        }
    }

    let mut ranges = Vec::new();
    for (v6, lo, hi, labels) in blocks {
        let description = format!("ipguard: {}", labels.join(", "));
        let max = if v6 {
            MAX_IPV6_RANGE_SIZE
        } else {
            MAX_IPV4_RANGE_SIZE
        };
        let mut start = lo;
        loop {
            let end = hi.min(start.saturating_add(max - 1));
            let range = LoginIpRange::new(
                from_u128(v6, start),
                from_u128(v6, end),
                Some(description.clone()),
            )
            .expect("blocks are single-family, ordered and split to the size limit");
            ranges.push(range);
            if end == hi {
                break;
            }
            start = end + 1;
        }
    }
    ranges
}

fn parse_addr(text: &str) -> Result<IpAddr, RangeError> {
    text.trim()
        .parse::<IpAddr>()
        .map_err(|_| RangeError::BadAddress(text.to_owned()))
}

fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(v6: bool, value: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(value))
    } else {
        IpAddr::V4(Ipv4Addr::from(value as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn src(text: &str) -> Source {
        Source {
            net: parse_source(text).unwrap(),
            label: "static".into(),
        }
    }

    fn keys(ranges: &[LoginIpRange]) -> Vec<(String, String)> {
        ranges
            .iter()
            .map(|r| (r.start().to_string(), r.end().to_string()))
            .collect()
    }

    #[test]
    fn single_ip_is_start_equals_end() {
        let r = desired_ranges(&[src("52.1.2.3")]);
        assert_eq!(keys(&r), [("52.1.2.3".into(), "52.1.2.3".into())]);
        assert_eq!(r[0].description(), Some("ipguard: static"));
    }

    #[test]
    fn adjacent_and_overlapping_sources_merge_into_maximal_blocks() {
        let r = desired_ranges(&[
            src("10.0.0.1"),
            src("10.0.0.0"),
            src("10.0.0.2/31"),
            src("10.0.0.8/29"),
            src("10.0.0.9"),
            src("192.168.1.1"),
        ]);
        assert_eq!(
            keys(&r),
            [
                ("10.0.0.0".into(), "10.0.0.3".into()),
                ("10.0.0.8".into(), "10.0.0.15".into()),
                ("192.168.1.1".into(), "192.168.1.1".into()),
            ]
        );
    }

    #[test]
    fn labels_of_merged_sources_are_named() {
        let a = Source {
            net: parse_source("52.1.2.3").unwrap(),
            label: "space acme".into(),
        };
        let b = Source {
            net: parse_source("52.1.2.4").unwrap(),
            label: "IPGUARD_SOURCE_IPS".into(),
        };
        let r = desired_ranges(&[a, b]);
        assert_eq!(
            r[0].description(),
            Some("ipguard: space acme, IPGUARD_SOURCE_IPS")
        );
    }

    #[test]
    fn ipv4_and_ipv6_never_share_a_range() {
        let r = desired_ranges(&[src("255.255.255.255"), src("::")]);
        assert_eq!(r.len(), 2);
        assert!(r[0].start().is_ipv4() && r[1].start().is_ipv6());
    }

    #[test]
    fn ipv4_mapped_sources_become_ipv4() {
        let r = desired_ranges(&[src("::ffff:1.2.3.4"), src("1.2.3.5")]);
        assert_eq!(keys(&r), [("1.2.3.4".into(), "1.2.3.5".into())]);
    }

    #[test]
    fn ipv6_block_spanning_mapped_space_is_split_by_family() {
        let r = desired_ranges(&[src("::/64")]);
        // below the mapped block, the mapped block as IPv4 (256 × /8), above it
        let v4: Vec<_> = r.iter().filter(|r| r.start().is_ipv4()).collect();
        let v6: Vec<_> = r.iter().filter(|r| r.start().is_ipv6()).collect();
        assert_eq!(v4.len(), 256);
        assert_eq!(v4[0].start(), ip("0.0.0.0"));
        assert_eq!(v4[255].end(), ip("255.255.255.255"));
        assert_eq!(
            keys(&v6.into_iter().cloned().collect::<Vec<_>>()),
            [
                ("::".into(), "::fffe:ffff:ffff".into()),
                ("::1:0:0:0".into(), "::ffff:ffff:ffff:ffff".into()),
            ]
        );
    }

    #[test]
    fn large_ipv4_blocks_are_split_at_the_size_limit() {
        let r = desired_ranges(&[src("10.0.0.0/7")]);
        assert_eq!(
            keys(&r),
            [
                ("10.0.0.0".into(), "10.255.255.255".into()),
                ("11.0.0.0".into(), "11.255.255.255".into()),
            ]
        );
        let whole = desired_ranges(&[src("0.0.0.0/0")]);
        assert_eq!(whole.len(), 256);
        assert!(whole.iter().all(|r| r.size() == MAX_IPV4_RANGE_SIZE));
    }

    #[test]
    fn large_ipv6_blocks_are_split_at_the_size_limit() {
        let r = desired_ranges(&[src("2001:db8::/31")]);
        assert_eq!(
            keys(&r),
            [
                (
                    "2001:db8::".into(),
                    "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".into()
                ),
                (
                    "2001:db9::".into(),
                    "2001:db9:ffff:ffff:ffff:ffff:ffff:ffff".into()
                ),
            ]
        );
    }

    #[test]
    fn salesforce_rules_are_enforced() {
        let new = |a: &str, b: &str| LoginIpRange::new(ip(a), ip(b), None);
        assert!(matches!(
            new("1.2.3.4", "::1"),
            Err(RangeError::MixedFamilies { .. })
        ));
        assert!(matches!(
            new("255.255.255.255", "::1:0:0:0"),
            Err(RangeError::MixedFamilies { .. })
        ));
        assert!(matches!(
            new("::", "::1:0:0:0"),
            Err(RangeError::CrossesMappedBlock { .. })
        ));
        assert!(matches!(
            new("1.2.3.5", "1.2.3.4"),
            Err(RangeError::Reversed { .. })
        ));
        assert!(matches!(
            new("0.0.0.0", "255.255.255.255"),
            Err(RangeError::TooLarge { .. })
        ));
        assert!(new("10.0.0.0", "10.255.255.255").is_ok());
        assert!(new("10.0.0.0", "11.0.0.0").is_err());
        assert!(new("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff").is_ok());
        assert!(new("2001:db8::", "2001:db9::").is_err());
    }

    #[test]
    fn existing_ranges_skip_only_the_size_limit() {
        let legacy = LoginIpRange::parse_existing("0.0.0.0", "255.255.255.255", None).unwrap();
        assert!(!legacy.within_size_limit());
        assert!(LoginIpRange::parse_existing("1.2.3.5", "1.2.3.4", None).is_err());
        assert!(matches!(
            LoginIpRange::parse_existing("1.2.3.x", "1.2.3.4", None),
            Err(RangeError::BadAddress(a)) if a == "1.2.3.x"
        ));
    }

    #[test]
    fn comparison_ignores_description_and_mapped_form() {
        let a = LoginIpRange::parse_existing("1.2.3.4", "1.2.3.4", Some("a")).unwrap();
        let b =
            LoginIpRange::parse_existing("::ffff:1.2.3.4", "::ffff:1.2.3.4", Some("b")).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_sources_are_named() {
        assert_eq!(
            parse_source("52.1.2"),
            Err(RangeError::BadSource("52.1.2".into()))
        );
        assert_eq!(
            parse_source("10.0.0.0/33").unwrap_err().to_string(),
            "`10.0.0.0/33` is not an IP address or CIDR block"
        );
    }

    #[test]
    fn json_shape_is_start_end_description() {
        let r = desired_ranges(&[src("52.1.2.3")]);
        assert_eq!(
            serde_json::to_value(&r[0]).unwrap(),
            serde_json::json!({"start": "52.1.2.3", "end": "52.1.2.3", "description": "ipguard: static"})
        );
    }

    // Property: the ranges cover exactly the union of the inputs, are disjoint, each obeys
    // Salesforce's rules, and are maximal (no two touch). A small IPv4 window keeps the
    // membership check exhaustive.
    proptest! {
        #[test]
        fn ranges_cover_exactly_the_input(nets in proptest::collection::vec((0u32..1024, 22u8..=32), 0..12)) {
            let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
            let sources: Vec<Source> = nets.iter().map(|&(offset, prefix)| {
                let net = ipnet::Ipv4Net::new(Ipv4Addr::from(base + offset), prefix).unwrap().trunc();
                Source { net: IpNet::V4(net), label: "p".into() }
            }).collect();
            let ranges = desired_ranges(&sources);
            for addr in (base..base + 2048).map(Ipv4Addr::from) {
                let expected = sources.iter().any(|s| s.net.contains(&IpAddr::V4(addr)));
                let covering = ranges.iter().filter(|r| r.contains(IpAddr::V4(addr))).count();
                prop_assert_eq!(covering, usize::from(expected), "address {}", addr);
            }
            for pair in ranges.windows(2) {
                prop_assert!(to_u128(pair[0].end()) + 1 < to_u128(pair[1].start()), "not maximal: {:?}", pair);
            }
            for r in &ranges {
                prop_assert!(LoginIpRange::new(r.start(), r.end(), None).is_ok());
            }
        }

        #[test]
        fn ipv6_ranges_cover_exactly_the_input(nets in proptest::collection::vec((0u128..4096, 116u8..=128), 0..10)) {
            let base = u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap());
            let sources: Vec<Source> = nets.iter().map(|&(offset, prefix)| {
                let net = ipnet::Ipv6Net::new(Ipv6Addr::from(base + offset), prefix).unwrap().trunc();
                Source { net: IpNet::V6(net), label: "p".into() }
            }).collect();
            let ranges = desired_ranges(&sources);
            for addr in (base..base + 8192).map(Ipv6Addr::from) {
                let expected = sources.iter().any(|s| s.net.contains(&IpAddr::V6(addr)));
                let covering = ranges.iter().filter(|r| r.contains(IpAddr::V6(addr))).count();
                prop_assert_eq!(covering, usize::from(expected));
            }
        }
    }
}
