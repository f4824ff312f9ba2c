//! Reconciling an org: the pure plan and one run.

pub mod attribution;
pub mod controller;
pub mod doors;
pub mod drive;
pub mod guarded;
pub mod interlock;
pub mod plan;
pub mod policy;
pub mod run;
pub mod share;
pub mod status;
