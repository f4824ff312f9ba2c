//! How the instances of one deployment share many orgs (docs/contract.md §8): each serving
//! instance announces itself in the store, and one holding more than its fair share of the
//! orgs' leases — ⌈orgs / live instances⌉ — gives the surplus up between runs, so a second web
//! dyno starts reconciling half the orgs instead of idling. Taking a lease is never held back
//! by the share: an expired lease is taken at once (a dead instance's orgs move within the
//! lease TTL) and the balance is restored afterwards by giving up.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::store::Store;

pub struct Share {
    holder: String,
    orgs: usize,
    /// The lease TTL: presence lasts it, and a take-over holds the share still for it.
    ttl: Duration,
    /// Org leases this instance holds now.
    held: AtomicUsize,
    /// Live instances as last counted, this one included.
    instances: AtomicUsize,
    /// No lease is given up before this: set when a lease is taken while other instances
    /// count as live — it may be a dead instance's, whose presence outlives it by up to a
    /// TTL, and nothing may bounce back to it while it still counts.
    quiet_until: Mutex<Option<Instant>>,
}

impl Share {
    pub fn new(holder: String, orgs: usize, ttl: Duration) -> Self {
        Self {
            holder,
            orgs,
            ttl,
            held: AtomicUsize::new(0),
            instances: AtomicUsize::new(1),
            quiet_until: Mutex::new(None),
        }
    }

    /// ⌈orgs / live instances⌉.
    pub fn fair(&self) -> usize {
        let instances = self.instances.load(Ordering::Acquire).max(1);
        self.orgs.div_ceil(instances)
    }

    /// A lease taken; while others count as live, none is given up for a TTL.
    pub fn took(&self) {
        self.held.fetch_add(1, Ordering::AcqRel);
        if self.instances() > 1
            && let Ok(mut quiet) = self.quiet_until.lock()
        {
            let until = Instant::now() + self.ttl;
            *quiet = Some(quiet.map_or(until, |q| q.max(until)));
        }
    }

    pub fn lost(&self) {
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| h.checked_sub(1));
    }

    /// Whether the caller should give its lease up: true for at most (held − fair) of this
    /// instance's controllers at a time, each then counted as no longer holding.
    pub fn give_up_one(&self) -> bool {
        let quiet = self
            .quiet_until
            .lock()
            .ok()
            .and_then(|q| *q)
            .is_some_and(|until| Instant::now() < until);
        if quiet {
            return false;
        }
        let fair = self.fair();
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                (h > fair).then(|| h - 1)
            })
            .is_ok()
    }

    /// Live instances as last counted (this one included).
    pub fn instances(&self) -> usize {
        self.instances.load(Ordering::Acquire).max(1)
    }

    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Announces this instance every third of `ttl` and counts the live ones, until
    /// `shutdown`; then withdraws, so the others' shares grow at once.
    pub async fn keep_announcing(&self, store: &Store, mut shutdown: watch::Receiver<bool>) {
        let ttl = self.ttl;
        while !*shutdown.borrow() {
            match store.announce(&self.holder, ttl).await {
                Ok(()) => match store.live_instances().await {
                    Ok(live) => {
                        let live = usize::try_from(live).unwrap_or(usize::MAX).max(1);
                        self.instances.store(live, Ordering::Release);
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot count the live instances"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot announce this instance"),
            }
            tokio::select! {
                () = tokio::time::sleep(ttl / 3) => {}
                _ = shutdown.changed() => {}
            }
        }
        if let Err(e) = store.withdraw(&self.holder).await {
            tracing::warn!(error = %e, "could not withdraw this instance; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(orgs: usize, instances: usize, held: usize) -> Share {
        let share = Share::new("serve@test".into(), orgs, Duration::from_secs(30));
        share.instances.store(instances, Ordering::Release);
        share.held.store(held, Ordering::Release);
        share
    }

    #[test]
    fn the_fair_share_rounds_up() {
        assert_eq!(share(6, 2, 0).fair(), 3);
        assert_eq!(share(5, 2, 0).fair(), 3);
        assert_eq!(share(1, 2, 0).fair(), 1);
        assert_eq!(share(6, 0, 0).fair(), 6, "never fewer than this instance");
    }

    #[test]
    fn only_the_surplus_is_given_up() {
        let s = share(6, 2, 6);
        let given: usize = (0..6).filter(|_| s.give_up_one()).count();
        assert_eq!(given, 3);
        assert_eq!(s.held(), 3);
        // one org, two instances: the holder keeps it
        assert!(!share(1, 2, 1).give_up_one());
    }

    #[test]
    fn nothing_is_given_up_right_after_a_take_over() {
        // another instance counted as live when this one took a lease: maybe a dead one's
        let s = share(6, 2, 3);
        s.took();
        assert_eq!(s.held(), 4);
        assert!(
            !s.give_up_one(),
            "the dead instance still counts; nothing bounces back"
        );
        // alone at start-up: no hold
        let alone = share(6, 1, 0);
        alone.took();
        alone.instances.store(2, Ordering::Release);
        alone.held.store(6, Ordering::Release);
        assert!(alone.give_up_one());
    }
}
