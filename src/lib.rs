//! ipguard library.

pub mod ids;
