//! Waiting for a deploy's end: the one poll loop, shared by a reconcile's deploy and `check`'s
//! checkOnly deploy.

use std::time::{Duration, Instant};

use super::client::{MetadataClient, SalesforceError};
use super::metadata::{DeployId, DeployResult, DeployStatus};

/// Why polling stopped before the deploy was done.
#[derive(Debug)]
pub enum PollStop {
    /// Salesforce refused the integration user's IP: ipguard is locked out.
    IpRestricted(SalesforceError),
    /// Salesforce answered with a fault another poll will not change (e.g. it no longer
    /// knows the id): nobody can learn how this deploy ends.
    Refused(SalesforceError),
    /// The deadline passed while the deploy was still going; its last status, when one came.
    StillRunning(Option<DeployStatus>),
}

/// When a deploy is polled, as times after polling starts (just after the deploy was
/// submitted): every `fast` during the first `fast_for`, where profile deploys usually end
/// and the read-back is waiting; then at `first_slow`; then at twice the time since the
/// start each time, but never more than `max_gap` after the previous poll.
///
/// The defaults observe a deploy that ends within 2 s at most 250 ms late, and spend ten
/// `checkDeployStatus` calls on a 10 s deploy, as jsforce's `deploy().complete()` (one a
/// second) does (`cargo bench --bench deploy`, BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSchedule {
    pub fast: Duration,
    pub fast_for: Duration,
    pub first_slow: Duration,
    pub max_gap: Duration,
}

impl Default for PollSchedule {
    fn default() -> Self {
        Self {
            fast: Duration::from_millis(250),
            fast_for: Duration::from_secs(2),
            first_slow: Duration::from_secs(5),
            max_gap: Duration::from_secs(30),
        }
    }
}

impl PollSchedule {
    /// The time of the poll after one planned at `last` (`Duration::ZERO` for the first).
    pub fn next(&self, last: Duration) -> Duration {
        // A zero step would poll without pause.
        let step = self.fast.max(Duration::from_millis(1));
        let next = if last + step <= self.fast_for {
            last + step
        } else if last < self.first_slow {
            self.first_slow
        } else {
            last * 2
        };
        next.min(last + self.max_gap.max(step)).max(last + step)
    }
}

/// Polls `checkDeployStatus` at the `schedule`'s times (counted from now) until the deploy is
/// done, telling `progress` each answer. A poll whose time has passed while the previous one
/// was answered goes at once, so the calls never outnumber the schedule's. Transient failures
/// keep polling until `deadline`.
pub async fn until_done(
    client: &MetadataClient,
    id: &DeployId,
    schedule: &PollSchedule,
    deadline: Instant,
    mut progress: impl FnMut(&DeployResult),
) -> Result<DeployResult, PollStop> {
    let started = Instant::now();
    let mut last = None;
    let mut planned = Duration::ZERO;
    loop {
        planned = schedule.next(planned);
        tokio::time::sleep_until((started + planned).min(deadline).into()).await;
        match client.check_deploy_status(id).await {
            Ok(result) => {
                progress(&result);
                if result.done {
                    return Ok(result);
                }
                last = Some(result.status.clone());
            }
            Err(e) if e.is_ip_restricted() => return Err(PollStop::IpRestricted(e)),
            Err(e) if e.is_refusal() => return Err(PollStop::Refused(e)),
            Err(e) => tracing::warn!(deploy_id = %id, error = %e, "checkDeployStatus failed"),
        }
        if Instant::now() >= deadline {
            return Err(PollStop::StillRunning(last));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Every planned poll time, in order (endless), as `until_done` walks them.
    fn times(schedule: PollSchedule) -> impl Iterator<Item = Duration> {
        std::iter::successors(Some(schedule.next(Duration::ZERO)), move |last| {
            Some(schedule.next(*last))
        })
    }

    fn planned_until(schedule: PollSchedule, end: Duration) -> Vec<Duration> {
        times(schedule).take_while(|t| *t <= end).collect()
    }

    #[test]
    fn a_deploy_ending_within_two_seconds_is_seen_at_most_250_ms_late() {
        let times = planned_until(PollSchedule::default(), Duration::from_secs(2));
        assert_eq!(times.first(), Some(&ms(250)));
        assert_eq!(times.last(), Some(&Duration::from_secs(2)));
        assert!(
            times.windows(2).all(|w| w[1] - w[0] <= ms(250)),
            "{times:?}"
        );
    }

    #[test]
    fn a_ten_second_deploy_costs_ten_calls_as_with_jsforce() {
        // jsforce's complete() polls once a second: ten calls to see a 10 s deploy end.
        let times = planned_until(PollSchedule::default(), Duration::from_secs(10));
        assert_eq!(times.len(), 10, "{times:?}");
        assert_eq!(times.last(), Some(&Duration::from_secs(10)));
    }

    #[test]
    fn after_the_fast_phase_the_gaps_grow_to_the_maximum() {
        let times: Vec<Duration> = times(PollSchedule::default()).take(16).collect();
        let secs: Vec<f64> = times[7..].iter().map(Duration::as_secs_f64).collect();
        assert_eq!(
            secs,
            [2.0, 5.0, 10.0, 20.0, 40.0, 70.0, 100.0, 130.0, 160.0]
        );
    }

    #[test]
    fn a_zero_step_still_moves_forward_and_a_small_maximum_caps_every_gap() {
        let schedule = PollSchedule {
            fast: Duration::ZERO,
            fast_for: ms(5),
            first_slow: Duration::from_secs(5),
            max_gap: ms(200),
        };
        let times: Vec<Duration> = times(schedule).take(40).collect();
        assert!(
            times
                .windows(2)
                .all(|w| w[1] > w[0] && w[1] - w[0] <= ms(200))
        );
        assert_eq!(times[0], ms(1));
    }
}
