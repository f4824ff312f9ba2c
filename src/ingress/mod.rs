//! What Salesforce sends to ipguard, checked before anything acts on it.
//!
//! - [`events`] parses the callout body (CometD-shaped platform events) into dedupe keys. Events
//!   are hints only; nothing in them chooses which IPs are asserted.

pub mod events;
