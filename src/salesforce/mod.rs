//! Talking to Salesforce: OAuth JWT bearer, the Metadata SOAP API and its documents.

pub mod app_access;
pub mod auth;
pub mod client;
pub mod deploy_poll;
pub mod metadata;
pub mod soap;

// The wire pieces the simulated org shares (crates/ipguard-wire), kept at their old paths.
pub use ipguard_wire::{package, profile, side_doors, soql};
