//! How a run ended: the outcomes of docs/contract.md §1, typed from the run to the store.

use serde::Serialize;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    InSync,
    Remediated,
    Planned,
    Failed,
    LockedOut,
    /// The deploy was still running when the poll window closed: never a success.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InSync => "in_sync",
            Self::Remediated => "remediated",
            Self::Planned => "planned",
            Self::Failed => "failed",
            Self::LockedOut => "locked_out",
            Self::Unknown => "unknown",
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::InSync,
            Self::Remediated,
            Self::Planned,
            Self::Failed,
            Self::LockedOut,
            Self::Unknown,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
        .ok_or_else(|| format!("unknown run outcome {s:?}"))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
