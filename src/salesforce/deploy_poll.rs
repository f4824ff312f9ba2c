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

/// Polls `checkDeployStatus` after each of `delays` (then every `max_delay`) until the
/// deploy is done, telling `progress` each answer. Transient failures keep polling until
/// `deadline`.
pub async fn until_done(
    client: &MetadataClient,
    id: &DeployId,
    mut delays: impl Iterator<Item = Duration>,
    max_delay: Duration,
    deadline: Instant,
    mut progress: impl FnMut(&DeployResult),
) -> Result<DeployResult, PollStop> {
    let mut last = None;
    loop {
        let delay = delays.next().unwrap_or(max_delay);
        tokio::time::sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
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
