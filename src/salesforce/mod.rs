//! Talking to Salesforce: OAuth JWT bearer, the Metadata SOAP API and its documents.

pub mod auth;
pub mod client;
pub mod deploy_poll;
pub mod metadata;
pub mod package;
pub mod profile;
pub mod soap;
pub mod soql;
