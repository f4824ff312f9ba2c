//! ipguard library.

pub mod config;
pub mod ids;
pub mod keygen;
