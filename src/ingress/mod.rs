//! What Salesforce sends to ipguard, checked before anything acts on it.
//!
//! - [`jwt`] verifies the `Authorization: Bearer` JWT on Platform Event callouts
//!   (`POST /salesforce/events`, SPEC §3): pinned RSA keys, fixed algorithms, exact `iss`/`aud`,
//!   short lifetimes. Pure: no I/O, the clock is passed in.
//! - [`events`] parses the callout body (CometD-shaped platform events) into dedupe keys. Events
//!   are hints only; nothing in them chooses which IPs are asserted.

pub mod events;
pub mod jwt;
