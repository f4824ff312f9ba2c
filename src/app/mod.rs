//! `ipguard serve` assembled: store, HTTP server and reconcile controller, started and stopped
//! together.

use std::net::TcpListener;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::ingress::jwt::EventsVerifier;
use crate::metrics::{ApiCallLabels, Metrics};
use crate::reconcile::controller::{Controller, ControllerTiming};
use crate::reconcile::status::StatusBoard;
use crate::salesforce::client::RetryPolicy;
use crate::server::{self, AppState};
use crate::store::{Store, StoreError};
use crate::wiring::{self, WiringError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Wiring(#[from] WiringError),
    #[error("EVENTS_JWT_CERTS: {0}")]
    EventKeys(String),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// A running service.
pub struct Service {
    pub port: u16,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub status: Arc<StatusBoard>,
    server: actix_web::dev::ServerHandle,
    server_task: JoinHandle<std::io::Result<()>>,
    controller_task: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

/// The key runs, hints, leases and status were filed under before keys named the org. A
/// store shared by two deployments without `SALESFORCE_ORG_ID` mixed both orgs under it.
pub const LEGACY_ORG_KEY: &str = "default";

/// The key an org's runs, hints, lease and status are filed under, so deployments that share
/// one database never share a lease: the org id when configured; otherwise the integration
/// username within its instance type — Salesforce keeps usernames unique across every
/// production org, and separately across every sandbox, case-insensitively (docs/contract.md
/// § Org keys) — and the audience (`login`/`test`) says which. Without either (no Salesforce
/// settings at all) nothing is guarded and the legacy key stays.
pub fn org_key(config: &Config) -> String {
    let sf = &config.salesforce;
    if let Some(org_id) = &sf.org_id {
        return org_id.as_str().to_owned();
    }
    match &sf.username {
        Some(username) => {
            let instance = sf
                .audience
                .trim_start_matches("https://")
                .trim_end_matches('/');
            format!("user:{instance}/{}", username.to_lowercase())
        }
        None => LEGACY_ORG_KEY.to_owned(),
    }
}

/// Connects the store (running migrations) and checks the keys, then binds `bind` (port 0 =
/// any), serves and reconciles. Nothing is bound when anything before fails.
pub async fn start(
    config: &Config,
    bind: std::net::SocketAddr,
    timing: Option<ControllerTiming>,
    retry: RetryPolicy,
) -> Result<Service, ServeError> {
    let store = Store::connect(&config.database).await?;
    let metrics = Arc::new(Metrics::new());
    let status = Arc::new(StatusBoard::default());
    let verifier = config
        .events_jwt
        .as_ref()
        .map(EventsVerifier::from_settings)
        .transpose()
        .map_err(|e| ServeError::EventKeys(e.to_string()))?;
    let http = wiring::http_client()?;
    let call_metrics = metrics.clone();
    let client = wiring::metadata_client(config, &http, retry)?.with_call_observer(Arc::new(
        move |operation, outcome| {
            call_metrics
                .salesforce_api_calls
                .get_or_create(&ApiCallLabels {
                    operation,
                    outcome: outcome.to_owned(),
                })
                .inc();
        },
    ));
    let org_key = org_key(config);
    let state = Arc::new(AppState {
        store: store.clone(),
        org_id: config.salesforce.org_id.clone(),
        org_key: org_key.clone(),
        outbound_token: config.outbound_message_token.clone(),
        admin_token: config.admin_token.clone(),
        verifier,
        metrics: metrics.clone(),
        status: status.clone(),
    });
    let listener = TcpListener::bind(bind)?;
    let (server, port) = server::start(listener, state)?;
    let handle = server.handle();
    let server_task = tokio::spawn(server);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let controller = Controller {
        store: store.clone(),
        org_key,
        holder: lease_holder("serve"),
        client,
        sources: wiring::sources(config, &http),
        settings: wiring::run_settings(config, false),
        profiles: wiring::profile_names(config, &[])?,
        timing: timing
            .unwrap_or_else(|| ControllerTiming::new(config.debounce, config.resync_interval)),
        metrics: metrics.clone(),
        status: status.clone(),
        alerts: crate::alerts::Alerter::start_counted(
            http.clone(),
            config.alert_webhook_url.clone(),
            crate::alerts::AlertRetry::default(),
            crate::alerts::DEFAULT_QUEUE,
            metrics.alerts.clone(),
        ),
    };
    let controller_task = tokio::spawn(controller.run(shutdown_rx));
    Ok(Service {
        port,
        store,
        metrics,
        status,
        server: handle,
        server_task,
        controller_task,
        shutdown,
    })
}

/// A lease holder name that tells an operator which process holds an org: the command, the
/// dyno (Heroku sets DYNO: `web.1`, `run.1234`) or pid, and a unique suffix.
pub fn lease_holder(command: &str) -> String {
    let place = std::env::var("DYNO").unwrap_or_else(|_| format!("pid{}", std::process::id()));
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("{command}@{place}-{}", &unique[..8])
}

/// Resolves on SIGTERM (Heroku's stop) or SIGINT (Ctrl-C).
async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot listen for SIGTERM/SIGINT; stop the process with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The reconciler's share of Heroku's 30 s between SIGTERM and SIGKILL; it runs beside the
/// HTTP server's 20 s for open requests.
const CONTROLLER_STOP: std::time::Duration = std::time::Duration::from_secs(10);

impl Service {
    /// Serves until SIGTERM/SIGINT. On the signal the reconciler is told to stop at once (no
    /// Salesforce write starts after it) while open requests finish; the whole stop fits in
    /// Heroku's 30 s.
    pub async fn wait(mut self) -> std::io::Result<()> {
        let ended = tokio::select! {
            result = &mut self.server_task => Some(result),
            () = termination_signal() => None,
        };
        match ended {
            Some(result) => {
                self.stop_controller().await;
                result.unwrap_or_else(|e| Err(std::io::Error::other(e)))
            }
            None => {
                tracing::info!(
                    "stopping: the reconciler starts no more Salesforce calls; open requests finish"
                );
                self.stop().await;
                Ok(())
            }
        }
    }

    /// Graceful stop: the controller is told first (no Salesforce write starts after this) and
    /// lets go of its lease, while no new connections are taken and open requests finish. A
    /// submitted deploy stays recorded for the next process.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        let server = self.server.clone();
        let stop_server = async {
            server.stop(true).await;
            let _ = (&mut self.server_task).await;
        };
        tokio::join!(stop_server, join_controller(&mut self.controller_task));
    }

    /// Dies like a killed process (tests): the server stops at once and the controller is
    /// aborted without releasing its lease, which then has to expire.
    pub async fn crash(self) {
        self.controller_task.abort();
        let _ = self.controller_task.await;
        self.server.stop(false).await;
    }

    async fn stop_controller(mut self) {
        let _ = self.shutdown.send(true);
        join_controller(&mut self.controller_task).await;
    }
}

/// Waits for the told-to-stop controller, at most [`CONTROLLER_STOP`].
async fn join_controller(task: &mut JoinHandle<()>) {
    if tokio::time::timeout(CONTROLLER_STOP, task).await.is_err() {
        tracing::warn!("the reconciler did not stop in time; its lease expires by itself");
    }
}
