//! The HTTP side of `ipguard serve`: routes, shared state, limits.

pub mod admin;
mod body;
pub mod middleware;
pub mod responses;
pub mod session;
pub mod status_page;
pub mod webhooks;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use secrecy::SecretString;

use crate::ids::OrgId;
use crate::ingress::jwt::EventsVerifier;
use crate::metrics::Metrics;
use crate::reconcile::status::StatusBoard;
use crate::store::Store;

/// Webhook bodies above this are refused with 413 while streaming (docs/contract.md §3).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Everything a handler may need; built once at start-up.
pub struct AppState {
    pub store: Store,
    /// The guarded orgs: outbound messages from any other org are refused.
    pub orgs: Vec<OrgRoute>,
    pub outbound_token: Option<SecretString>,
    pub admin_token: Option<SecretString>,
    pub verifier: Option<EventsVerifier>,
    pub metrics: Arc<Metrics>,
}

/// Where a webhook or an operator's request for one org goes (docs/contract.md §8).
#[derive(Clone)]
pub struct OrgRoute {
    /// Its key in `IPGUARD_ORGS`, or `default`.
    pub name: String,
    /// Named in `IPGUARD_ORGS` (deliveries are then deduplicated under its key).
    pub keyed: bool,
    pub org_id: Option<OrgId>,
    /// The key its hints, runs and leases are filed under (the org id, or a legacy key).
    pub store_key: String,
    /// What this instance's controller of the org saw (whether it leads, above all).
    pub status: Arc<StatusBoard>,
}

impl AppState {
    /// The org an outbound message names, compared in constant time with each configured id.
    pub fn org_with_id(&self, sent: &str) -> Option<&OrgRoute> {
        // Every id is compared, so the time taken does not say which org matched.
        self.orgs.iter().fold(None, |found, org| {
            let matches = org.org_id.as_ref().is_some_and(|id| id.matches(sent));
            if matches { Some(org) } else { found }
        })
    }

    /// The org named `name`.
    pub fn org_named(&self, name: &str) -> Option<&OrgRoute> {
        self.orgs.iter().find(|o| o.name == name)
    }

    /// The org of a request that names none: the only one.
    pub fn only_org(&self) -> Option<&OrgRoute> {
        match self.orgs.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }
}

impl OrgRoute {
    /// A delivery's dedupe key: the sender's own id, under the org's key when there are many.
    pub fn delivery_key(&self, id: &str) -> String {
        if self.keyed {
            format!("{}:{id}", self.name)
        } else {
            id.to_owned()
        }
    }
}

/// Routes with their limits; used by `serve` and by tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let payload = web::PayloadConfig::new(MAX_BODY_BYTES);
    cfg.app_data(payload)
        .service(
            web::resource("/salesforce/outbound-messages")
                .route(web::post().to(webhooks::outbound_plain))
                .default_service(web::to(responses::method_not_allowed)),
        )
        .service(
            web::resource("/salesforce/outbound-messages/{token}")
                .route(web::post().to(webhooks::outbound_with_token))
                .default_service(web::to(responses::method_not_allowed)),
        )
        .service(
            web::resource("/salesforce/events")
                .route(web::post().to(webhooks::platform_events_plain))
                .default_service(web::to(responses::method_not_allowed)),
        )
        .service(
            web::resource("/salesforce/events/{org}")
                .route(web::post().to(webhooks::platform_events_for_org))
                .default_service(web::to(responses::method_not_allowed)),
        )
        .service(
            web::resource("/reconcile")
                .route(web::post().to(admin::reconcile))
                .default_service(web::to(responses::method_not_allowed)),
        )
        .service(
            web::resource("/status")
                .route(web::get().to(admin::status))
                .default_service(web::to(responses::method_not_allowed)),
        )
        .service(
            web::resource("/signin")
                .route(web::get().to(session::signin_page))
                .route(web::post().to(session::signin))
                .default_service(web::to(responses::method_not_allowed)),
        )
        .service(
            web::resource("/signout")
                .route(web::post().to(session::signout))
                .default_service(web::to(responses::method_not_allowed)),
        )
        .service(
            web::resource("/metrics")
                .route(web::get().to(admin::metrics))
                .default_service(web::to(responses::method_not_allowed)),
        )
        .service(
            web::resource("/healthz")
                .route(web::get().to(admin::healthz))
                .default_service(web::to(responses::method_not_allowed)),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(admin::readyz))
                .default_service(web::to(responses::method_not_allowed)),
        );
}

/// Binds the listener and returns the running server (not yet awaited) and its port.
pub fn start(listener: TcpListener, state: Arc<AppState>) -> std::io::Result<(Server, u16)> {
    let port = listener.local_addr()?.port();
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(
                middleware::request_id_and_log,
            ))
            .app_data(data.clone())
            .configure(configure)
            .default_service(web::to(responses::not_found))
    })
    // Heroku sends SIGTERM and allows 30 s before SIGKILL: open requests get 20 s while the
    // reconciler stops beside them (`Service::wait` handles the signals, not actix).
    .shutdown_timeout(20)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((server, port))
}
