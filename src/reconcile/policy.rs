//! What the controller does after a run: the pure error policy `(outcome, streak) → next
//! action` (docs/contract.md §5 rule 7), kept free of clocks and randomness so it is tested as a table.

use std::time::Duration;

use crate::outcome::Outcome;

/// The pauses the policy chooses between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// First pause after a failed run; doubles per consecutive failure up to `max`.
    pub min: Duration,
    pub max: Duration,
    /// Pause after `locked_out`: only a human can fix it, so retry slowly.
    pub locked_out: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(5),
            max: Duration::from_secs(300),
            locked_out: Duration::from_secs(300),
        }
    }
}

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAction {
    /// All well: wait for a hint or the resync timer.
    AwaitHints,
    /// Run again after this pause even when no hint arrives (the pause doubles as the retry).
    /// Hints arriving meanwhile wait for it too, except an operator's, which runs at once.
    RetryAfter(Duration),
    /// Run again now: the last run closed a deploy that could not tell its end, and a fresh
    /// read is the only way to know the org's state.
    ReconcileNow,
}

/// Consecutive failed runs, which set the backoff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streak(pub u32);

impl Backoff {
    /// The next action after a run ended `outcome` (`deploy_closed`: it closed its deploy),
    /// and the failure streak that follows it.
    pub fn next(
        &self,
        outcome: Outcome,
        deploy_closed: bool,
        streak: Streak,
    ) -> (NextAction, Streak) {
        match outcome {
            Outcome::InSync | Outcome::Remediated | Outcome::Planned => {
                (NextAction::AwaitHints, Streak(0))
            }
            Outcome::LockedOut => (NextAction::RetryAfter(self.locked_out), streak),
            Outcome::Unknown if deploy_closed => (NextAction::ReconcileNow, streak),
            Outcome::Failed | Outcome::Unknown => {
                let failures = streak.0.saturating_add(1);
                let doubling = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
                let pause = self.min.saturating_mul(doubling).min(self.max);
                (NextAction::RetryAfter(pause), Streak(failures))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            min: Duration::from_secs(5),
            max: Duration::from_secs(60),
            locked_out: Duration::from_secs(300),
        }
    }

    #[test]
    fn success_clears_the_streak() {
        for outcome in [Outcome::InSync, Outcome::Remediated, Outcome::Planned] {
            assert_eq!(
                backoff().next(outcome, false, Streak(7)),
                (NextAction::AwaitHints, Streak(0)),
                "{outcome}"
            );
        }
    }

    #[test]
    fn failures_double_the_pause_up_to_the_cap() {
        let b = backoff();
        let mut streak = Streak(0);
        let mut pauses = Vec::new();
        for _ in 0..6 {
            let (action, next) = b.next(Outcome::Failed, false, streak);
            let NextAction::RetryAfter(pause) = action else {
                panic!("a failure retries: {action:?}");
            };
            pauses.push(pause.as_secs());
            streak = next;
        }
        assert_eq!(pauses, [5, 10, 20, 40, 60, 60]);
        assert_eq!(streak, Streak(6));
        // a long streak never overflows
        assert_eq!(
            b.next(Outcome::Unknown, false, Streak(u32::MAX)).0,
            NextAction::RetryAfter(Duration::from_secs(60))
        );
    }

    #[test]
    fn a_lock_out_retries_slowly_and_keeps_the_streak() {
        assert_eq!(
            backoff().next(Outcome::LockedOut, false, Streak(2)),
            (NextAction::RetryAfter(Duration::from_secs(300)), Streak(2))
        );
    }

    #[test]
    fn a_closed_deploy_is_followed_by_a_fresh_run_at_once() {
        assert_eq!(
            backoff().next(Outcome::Unknown, true, Streak(1)),
            (NextAction::ReconcileNow, Streak(1))
        );
        // an `unknown` whose deploy stays open backs off like a failure
        assert_eq!(
            backoff().next(Outcome::Unknown, false, Streak(0)),
            (NextAction::RetryAfter(Duration::from_secs(5)), Streak(1))
        );
    }
}
