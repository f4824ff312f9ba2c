//! The Salesforce wire pieces ipguard and its simulated org (crates/ipguard-sim) share: the one
//! hardened XML reader, login IP ranges under Salesforce's rules, profile names and files, the
//! deploy zip, SOQL literals and the key pair of the JWT bearer flow. Both sides reading and
//! writing with the same code is the point: the sim refuses what ipguard would send wrong.
//!
//! The service re-exports these at their old paths (`ipguard::xml`, `ipguard::salesforce::profile`, …).

pub mod keygen;
pub mod package;
pub mod profile;
pub mod ranges;
pub mod soql;
pub mod xml;
