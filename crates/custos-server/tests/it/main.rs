//! Integration tests of the ledger (one test binary; see util.rs).

mod api;
mod batch_verify;
mod binding;
mod bounds;
mod console;
mod crash;
mod export;
mod governance;
mod proofs;
mod tamper;
mod timeouts;
mod tokens;
mod util;
