//! Why a hint was recorded and why a run started (docs/contract.md §4, `history --json`), typed
//! from the ingress and the controller to the store and back.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Why a hint was recorded (the hint's `trigger`), or the timer that started a run without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// `POST /salesforce/outbound-messages` recorded a new notification.
    OutboundMessage,
    /// `POST /salesforce/events` recorded a new platform event.
    PlatformEvent,
    /// An operator asked: `POST /reconcile`, or the page's "Check now".
    Admin,
    /// `ipguard apply` (docs/contract.md §5 rule 12): its own run, or a hint to the service
    /// that holds the lease.
    Cli,
    /// `ipguard serve` started.
    Startup,
    /// The resync timer (`IPGUARD_RESYNC_INTERVAL`).
    Resync,
    /// The error policy's pause after a failed run ended.
    Retry,
}

impl Trigger {
    pub const ALL: [Trigger; 7] = [
        Trigger::OutboundMessage,
        Trigger::PlatformEvent,
        Trigger::Admin,
        Trigger::Cli,
        Trigger::Startup,
        Trigger::Resync,
        Trigger::Retry,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Trigger::OutboundMessage => "outbound_message",
            Trigger::PlatformEvent => "platform_event",
            Trigger::Admin => "admin",
            Trigger::Cli => "cli",
            Trigger::Startup => "startup",
            Trigger::Resync => "resync",
            Trigger::Retry => "retry",
        }
    }

    /// An operator asked (`POST /reconcile`, `ipguard apply`): the run starts at once, whatever
    /// backoff the last failure set.
    pub fn is_operator(self) -> bool {
        matches!(self, Trigger::Admin | Trigger::Cli)
    }
}

impl FromStr for Trigger {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown trigger {s:?}"))
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for Trigger {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What started a run: the distinct triggers of the hints it took, in first-seen order, or the
/// timer's when it took none. Recorded and shown comma-separated (`admin,outbound_message`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Triggers(Vec<Trigger>);

impl Triggers {
    /// `hints`' triggers as a set in first-seen order; `otherwise` when there are none.
    pub fn of_hints(hints: impl IntoIterator<Item = Trigger>, otherwise: Trigger) -> Triggers {
        let mut seen: Vec<Trigger> = Vec::new();
        for trigger in hints {
            if !seen.contains(&trigger) {
                seen.push(trigger);
            }
        }
        if seen.is_empty() {
            seen.push(otherwise);
        }
        Triggers(seen)
    }

    pub fn contains(&self, trigger: Trigger) -> bool {
        self.0.contains(&trigger)
    }

    pub fn iter(&self) -> impl Iterator<Item = Trigger> + '_ {
        self.0.iter().copied()
    }
}

impl From<Trigger> for Triggers {
    fn from(trigger: Trigger) -> Triggers {
        Triggers(vec![trigger])
    }
}

/// A run started by that trigger alone.
impl PartialEq<Trigger> for Triggers {
    fn eq(&self, other: &Trigger) -> bool {
        self.0 == [*other]
    }
}

impl FromStr for Triggers {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let triggers = s
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<Trigger>, _>>()
            .map_err(|e| format!("{e} in {s:?}"))?;
        let repeated = (1..triggers.len()).any(|i| triggers[..i].contains(&triggers[i]));
        if repeated {
            return Err(format!("a trigger repeats in {s:?}"));
        }
        Ok(Triggers(triggers))
    }
}

impl fmt::Display for Triggers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined: Vec<&str> = self.0.iter().map(|t| t.as_str()).collect();
        f.pad(&joined.join(","))
    }
}

impl Serialize for Triggers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_trigger_reads_back_from_its_text() {
        for trigger in Trigger::ALL {
            assert_eq!(trigger.as_str().parse::<Trigger>(), Ok(trigger));
        }
        assert!("webhook".parse::<Trigger>().is_err());
    }

    #[test]
    fn a_runs_triggers_are_a_set_in_first_seen_order() {
        let hints = [Trigger::Admin, Trigger::OutboundMessage, Trigger::Admin];
        let triggers = Triggers::of_hints(hints, Trigger::Resync);
        assert_eq!(triggers.to_string(), "admin,outbound_message");
        assert_eq!(
            serde_json::to_value(&triggers).unwrap(),
            "admin,outbound_message"
        );
        assert_eq!("admin,outbound_message".parse(), Ok(triggers));
        assert_eq!(Triggers::of_hints([], Trigger::Retry), Trigger::Retry);
        assert_eq!(format!("{:<8}|", Triggers::from(Trigger::Cli)), "cli     |");
    }

    #[test]
    fn unknown_empty_or_repeated_triggers_are_refused() {
        for bad in ["", "admin,", "admin,admin", "admin,webhook", "Admin"] {
            assert!(bad.parse::<Triggers>().is_err(), "{bad:?}");
        }
    }
}
