//! The org `ipguard demo` runs against: a simulated org with a freshly generated key pair, and
//! the config vars (docs/contract.md §2) an operator would set to guard it. Here rather than
//! in the binary so that tests/it can check the demo's very configuration ends in sync.

use std::collections::HashMap;
use std::io;

use ipguard_wire::keygen::{self, KeygenError};
use secrecy::ExposeSecret;

use crate::{SimConfig, SimOrg};

const DEMO_CN: &str = "ipguard-demo";
/// `EVENTS_JWT_ISSUER`: the `iss` of the org's event callouts.
pub const EVENTS_ISSUER: &str = "https://acme.my.salesforce.com";
/// `EVENTS_JWT_AUDIENCE`: the `aud` of the org's event callouts.
pub const EVENTS_AUDIENCE: &str = "https://ipguard.acme.example";
/// `IPGUARD_KEEP_WITHIN`, the head office's block: under `merge`, someone else's range
/// survives only inside it.
pub const KEEP_WITHIN: &str = "198.51.100.0/24";

/// A running demo org and the configuration that guards it.
pub struct DemoOrg {
    pub sim: SimOrg,
    /// Config var → value, as an operator would set them.
    pub vars: HashMap<&'static str, String>,
    /// Holds the demo's SQLite file (`DATABASE_URL` points into it); removed on drop.
    pub dir: tempfile::TempDir,
    /// The certificate of the key pair the configuration signs in with.
    certificate_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Keygen(#[from] KeygenError),
    #[error("cannot start the simulated org: {0}")]
    Start(io::Error),
    #[error("cannot create a temp dir: {0}")]
    TempDir(io::Error),
}

impl DemoOrg {
    /// Starts the org with a freshly generated key pair. The configuration: the default policy
    /// `merge`, narrowed with `IPGUARD_KEEP_WITHIN` to the head office's block (any other
    /// loosening is reverted), event callouts verified with the org's signing certificate, a
    /// throw-away SQLite store.
    pub async fn start() -> Result<Self, DemoError> {
        let keys = keygen::generate(DEMO_CN, 1)?;
        let sim_config = SimConfig::new(keys.certificate_pem.clone());
        let profiles: Vec<String> = sim_config.profiles.iter().map(|(n, _)| n.clone()).collect();
        let (client_id, username) = (sim_config.client_id.clone(), sim_config.username.clone());
        let (space, token) = (
            sim_config.heroku.space.clone(),
            sim_config.heroku.api_token.clone(),
        );
        let sim = SimOrg::start(sim_config, 0)
            .await
            .map_err(DemoError::Start)?;
        let dir = tempfile::Builder::new()
            .prefix("ipguard-demo-")
            .tempdir()
            .map_err(DemoError::TempDir)?;
        let base = sim.base_url();
        let vars = HashMap::from([
            ("SALESFORCE_LOGIN_URL", base.clone()),
            ("SALESFORCE_CLIENT_ID", client_id),
            ("SALESFORCE_USERNAME", username),
            (
                "SALESFORCE_PRIVATE_KEY",
                keys.private_key_pem.expose_secret().to_owned(),
            ),
            ("SALESFORCE_ORG_ID", sim.org_id()),
            ("IPGUARD_PROFILES", profiles.join(",")),
            ("HEROKU_SPACE", space),
            ("HEROKU_API_TOKEN", token),
            ("HEROKU_API_URL", base),
            ("IPGUARD_KEEP_WITHIN", KEEP_WITHIN.into()),
            // The org starts with "Enforce login IP ranges on every request" off (its
            // default): the demo shows ipguard turning it on in its first deploy.
            ("IPGUARD_SIDE_DOORS", "every-request".into()),
            ("IPGUARD_DEPLOY_TIMEOUT", "30s".into()),
            ("IPGUARD_DEBOUNCE", "300ms".into()),
            ("IPGUARD_RESYNC_INTERVAL", "1h".into()),
            ("EVENTS_JWT_CERTS", sim.event_signing_certificate()),
            ("EVENTS_JWT_ISSUER", EVENTS_ISSUER.into()),
            ("EVENTS_JWT_AUDIENCE", EVENTS_AUDIENCE.into()),
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("demo.db").display()),
            ),
        ]);
        Ok(Self {
            sim,
            vars,
            dir,
            certificate_pem: keys.certificate_pem,
        })
    }

    /// One config var, for `Config::from_lookup`.
    pub fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    /// The many-orgs scene (docs/contract.md §8): this org as `prod` plus a simulated sandbox
    /// for each further key — its own org id, login URL and integration username (production's
    /// with `.<key>` appended, as a sandbox copy has it); the same External Client App and key
    /// pair — guarded by one configuration (`IPGUARD_ORGS`).
    /// Returns the sandboxes, in `keys` order after `prod`.
    pub async fn with_sandboxes(&mut self, keys: &[&str]) -> Result<Vec<SimOrg>, DemoError> {
        let certificate = self.certificate_pem.clone();
        let mut sandboxes = Vec::new();
        let mut certs = vec![self.sim.event_signing_certificate()];
        let prod_id = self.vars.remove("SALESFORCE_ORG_ID").unwrap_or_default();
        self.vars
            .insert("IPGUARD_ORG_PROD_SALESFORCE_ORG_ID", prod_id);
        let username = self.vars["SALESFORCE_USERNAME"].clone();
        for key in keys {
            let mut config = SimConfig::new(certificate.clone());
            config.org_id = crate::ids::mint("00D");
            // A sandbox copies production's users with the sandbox name appended.
            config.username = format!("{username}.{key}");
            let sandbox = SimOrg::start(config, 0).await.map_err(DemoError::Start)?;
            let prefix = format!(
                "IPGUARD_ORG_{}_",
                key.to_ascii_uppercase().replace('-', "_")
            );
            let var = |name: &str| -> &'static str { format!("{prefix}{name}").leak() };
            self.vars.insert(var("SALESFORCE_ORG_ID"), sandbox.org_id());
            self.vars
                .insert(var("SALESFORCE_LOGIN_URL"), sandbox.base_url());
            self.vars
                .insert(var("SALESFORCE_USERNAME"), format!("{username}.{key}"));
            // A sandbox holds exactly the space's IPs; production keeps the head office.
            self.vars.insert(var("IPGUARD_POLICY"), "exact".into());
            certs.push(sandbox.event_signing_certificate());
            sandboxes.push(sandbox);
        }
        let listed: Vec<&str> = std::iter::once("prod")
            .chain(keys.iter().copied())
            .collect();
        self.vars.insert("IPGUARD_ORGS", listed.join(","));
        self.vars.insert("EVENTS_JWT_CERTS", certs.join("\n"));
        Ok(sandboxes)
    }
}
