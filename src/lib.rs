//! ipguard library.

pub mod ids;
pub mod keygen;
