//! ipguard assembled: [`Application::build`] is the one start-up of `ipguard serve` — store,
//! HTTP server and reconcile controller, started and stopped together — and tests start the
//! same application through [`Application::build_with`] and its [`Overrides`].

pub mod parts;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::ingress::jwt::EventsVerifier;
use crate::metrics::{ApiCallLabels, Metrics};
use crate::reconcile::controller::{Controller, ControllerTiming};
use crate::reconcile::share::Share;
use crate::reconcile::status::StatusBoard;
use crate::salesforce::client::RetryPolicy;
use crate::server::{self, AppState, OrgRoute};
use crate::store::{Store, StoreError};

pub use parts::{LEGACY_ORG_KEY, Parts, PartsError, lease_holder, org_key};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Parts(#[from] PartsError),
    #[error("EVENTS_JWT_CERTS: {0}")]
    EventKeys(String),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// What a test (or the demo) changes about the application `serve` builds; everything else
/// comes from the configuration, exactly as in production.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Where to listen (port 0: any free one); default `0.0.0.0:PORT`.
    pub bind: Option<SocketAddr>,
    /// The loop's timing; default from `IPGUARD_DEBOUNCE` and `IPGUARD_RESYNC_INTERVAL`.
    pub timing: Option<ControllerTiming>,
    /// Retries of Salesforce calls; default [`RetryPolicy::default`].
    pub retry: Option<RetryPolicy>,
}

/// A running service.
pub struct Application {
    pub port: u16,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// What this instance's controller of the first org saw (`statuses` has every org's).
    pub status: Arc<StatusBoard>,
    /// Per guarded org, in `IPGUARD_ORGS` order.
    pub statuses: Vec<Arc<StatusBoard>>,
    server: actix_web::dev::ServerHandle,
    server_task: JoinHandle<std::io::Result<()>>,
    /// One controller per org, each with its own lease, hints and runs.
    controller_task: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

impl Application {
    /// `ipguard serve`'s application, on `PORT`.
    pub async fn build(config: &Config) -> Result<Self, ServeError> {
        Self::build_with(config, Overrides::default()).await
    }

    /// Connects the store (running migrations), checks the keys and builds the run's parts,
    /// then binds, serves and reconciles. Nothing is bound when anything before fails.
    pub async fn build_with(config: &Config, overrides: Overrides) -> Result<Self, ServeError> {
        let store = Store::connect(&config.database).await?;
        let metrics = Arc::new(Metrics::new());
        let verifier = config
            .events_jwt
            .as_ref()
            .map(EventsVerifier::from_settings)
            .transpose()
            .map_err(|e| ServeError::EventKeys(e.to_string()))?;
        let retry = overrides.retry.unwrap_or_default();
        let http = parts::http_client()?;
        let mut built = Vec::with_capacity(config.orgs.len());
        for org in &config.orgs {
            let parts = Parts::build_on(http.clone(), config, org, &[], retry.clone())?;
            built.push((org, parts));
        }
        let statuses: Vec<Arc<StatusBoard>> = built
            .iter()
            .map(|_| Arc::new(StatusBoard::default()))
            .collect();
        let routes = built
            .iter()
            .zip(&statuses)
            .map(|((org, parts), status)| OrgRoute {
                name: org.name().to_owned(),
                keyed: org.key.is_some(),
                org_id: org.salesforce.org_id.clone(),
                store_key: parts.org_key.clone(),
                status: status.clone(),
            })
            .collect();
        let state = Arc::new(AppState {
            store: store.clone(),
            orgs: routes,
            outbound_token: config.outbound_message_token.clone(),
            admin_token: config.admin_token.clone(),
            verifier,
            metrics: metrics.clone(),
        });
        let bind = overrides
            .bind
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], config.port)));
        let (server, port) = server::start(TcpListener::bind(bind)?, state)?;
        let handle = server.handle();
        let server_task = tokio::spawn(server);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let alerts = crate::alerts::Alerter::start_counted(
            http,
            config.alert_webhook_url.clone(),
            crate::alerts::AlertRetry::default(),
            crate::alerts::DEFAULT_QUEUE,
            metrics.alerts.clone(),
        );
        let holder = lease_holder("serve");
        let timing = overrides
            .timing
            .unwrap_or_else(|| ControllerTiming::new(config.debounce, config.resync_interval));
        let mut controllers = tokio::task::JoinSet::new();
        let share = Arc::new(Share::new(
            holder.clone(),
            config.orgs.len(),
            timing.lease_ttl,
        ));
        {
            let (share, store) = (share.clone(), store.clone());
            let shutdown = shutdown_rx.clone();
            controllers.spawn(async move { share.keep_announcing(&store, shutdown).await });
        }
        for ((org, parts), status) in built.into_iter().zip(&statuses) {
            let call_metrics = metrics.clone();
            let org_name = org.name().to_owned();
            let call_org = org_name.clone();
            let client = parts
                .client
                .with_call_observer(Arc::new(move |operation, outcome| {
                    call_metrics
                        .salesforce_api_calls
                        .get_or_create(&ApiCallLabels {
                            org: call_org.clone(),
                            operation,
                            outcome: outcome.to_owned(),
                        })
                        .inc();
                }));
            let alert_name = match &org.key {
                Some(key) => format!("{key} ({})", parts.org_key),
                None => parts.org_key.clone(),
            };
            let controller = Controller {
                store: store.clone(),
                org_name,
                alert_name,
                adopt_legacy_key: parts::adopts_legacy_key(&parts.org_key),
                org_key: parts.org_key,
                holder: holder.clone(),
                client,
                sources: parts.sources,
                settings: parts.settings,
                profiles: parts.profiles,
                doors: parts.doors,
                last_grants: std::sync::Mutex::new(None),
                timing: timing.clone(),
                metrics: metrics.clone(),
                status: status.clone(),
                alerts: alerts.clone(),
                share: share.clone(),
            };
            controllers.spawn(controller.run(shutdown_rx.clone()));
        }
        let controller_task =
            tokio::spawn(async move { while controllers.join_next().await.is_some() {} });
        Ok(Self {
            port,
            store,
            metrics,
            status: statuses[0].clone(),
            statuses,
            server: handle,
            server_task,
            controller_task,
            shutdown,
        })
    }

    /// Serves until SIGTERM/SIGINT. On the signal the reconciler is told to stop at once (no
    /// Salesforce write starts after it) while open requests finish; the whole stop fits in
    /// Heroku's 30 s.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
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
const CONTROLLER_STOP: Duration = Duration::from_secs(10);

/// Waits for the told-to-stop controller, at most [`CONTROLLER_STOP`].
async fn join_controller(task: &mut JoinHandle<()>) {
    if tokio::time::timeout(CONTROLLER_STOP, task).await.is_err() {
        tracing::warn!("the reconciler did not stop in time; its lease expires by itself");
    }
}
