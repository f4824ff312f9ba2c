//! Requests Salesforce sends to ipguard: parsed and checked here, handled by the HTTP layer.

pub mod events;
pub mod jwt;
pub mod outbound;
