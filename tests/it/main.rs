//! The single integration-test binary of ipguard.
//!
//! Every integration test lives in a module of this crate (one binary links and starts much
//! faster than one per file); add new suites as `mod name;` here.

mod attacks;
mod attribution;
mod check;
mod cli;
mod controller;
mod corpus;
mod faults;
mod instances;
mod operator;
mod orgs;
mod outgoing;
mod policy;
mod reconcile;
mod runtime;
mod salesforce_metadata;
mod schema;
mod service;
mod side_doors;
mod status_page;
