//! The Salesforce wire pieces ipguard and its simulated org (crates/ipguard-sim) share: the one
//! hardened XML reader, login IP ranges under Salesforce's rules, profile names and files, the
//! deploy zip, SOQL literals and the key pair of the JWT bearer flow. Each rule lives once, so
//! the two sides cannot drift apart; that a shared rule is right is what the conformance suites
//! (docs/sim.md) check with clients neither side wrote.
//!
//! The service re-exports these at their old paths (`ipguard::xml`, `ipguard::salesforce::profile`, …).

pub mod keygen;
pub mod package;
pub mod profile;
pub mod ranges;
pub mod side_doors;
pub mod soql;
pub mod xml;
