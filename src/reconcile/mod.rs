//! Reconciling an org: the pure plan and one run.

pub mod attribution;
pub mod controller;
pub mod plan;
pub mod run;
pub mod status;
