//! ipguard library.
