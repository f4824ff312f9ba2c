//! In-process wake-ups for `Store::wait_for_hint`: one `Notify` per org.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct HintNotifier {
    orgs: Mutex<HashMap<String, Arc<Notify>>>,
}

impl HintNotifier {
    fn get(&self, org_id: &str) -> Arc<Notify> {
        let mut orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
        orgs.entry(org_id.to_owned()).or_default().clone()
    }

    /// Wakes the org's waiters; with none waiting, the next wait returns at once (so a hint
    /// recorded between a waiter's check and its wait is not missed).
    pub(crate) fn notify(&self, org_id: &str) {
        wake(&self.get(org_id));
    }

    /// Wakes every org's waiters: notifications may have been lost.
    pub(crate) fn notify_all(&self) {
        let orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
        orgs.values().for_each(|n| wake(n));
    }

    pub(crate) async fn wait(&self, org_id: &str, timeout: Duration) {
        let notify = self.get(org_id);
        let _ = tokio::time::timeout(timeout, notify.notified()).await;
    }
}

fn wake(notify: &Notify) {
    // notify_one first: it wakes one waiter, or stores the permit when none waits;
    // notify_waiters then wakes any other current waiter without storing one.
    notify.notify_one();
    notify.notify_waiters();
}

/// One notifier per SQLite file in this process, so two `Store`s opened on the same file wake
/// each other's waiters.
static SQLITE_NOTIFIERS: LazyLock<Mutex<HashMap<PathBuf, Weak<HintNotifier>>>> =
    LazyLock::new(Default::default);

/// `path` must be canonical (the file exists by then).
pub(crate) fn for_sqlite_file(path: &Path) -> Arc<HintNotifier> {
    let mut map = SQLITE_NOTIFIERS.lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, weak| weak.strong_count() > 0);
    if let Some(existing) = map.get(path).and_then(Weak::upgrade) {
        return existing;
    }
    let notifier = Arc::new(HintNotifier::default());
    map.insert(path.to_owned(), Arc::downgrade(&notifier));
    notifier
}
