//! Over-HTTP tests of the simulated org.
