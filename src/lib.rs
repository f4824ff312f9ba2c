//! ipguard keeps Salesforce profiles locked to the static outbound IPs of a Heroku Private
//! Space: it computes the desired login IP ranges, reads the profiles, deploys the difference
//! through the Metadata API and reads it back to prove it.

pub mod alerts;
pub mod app;
pub mod cli;
pub mod config;
pub mod heroku;
pub mod ids;
pub mod ingress;
pub mod metrics;
pub mod outcome;
pub mod reconcile;
pub mod salesforce;
pub mod server;
pub mod store;
pub mod trigger;

// The wire pieces the simulated org shares (crates/ipguard-wire), kept at their old paths.
pub use ipguard_wire::{keygen, ranges, xml};
