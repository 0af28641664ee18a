//! Integration tests of the ledger (one test binary; see util.rs).

mod api;
mod batch_verify;
mod crash;
mod proofs;
mod queue;
mod tamper;
mod timeouts;
mod util;
