//! Talking to Salesforce: OAuth JWT bearer, the Metadata SOAP API and its documents.

pub mod package;
pub mod profile;
