//! Reconciling an org: the pure plan and one run.

pub mod plan;
pub mod run;
