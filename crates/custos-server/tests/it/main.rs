//! Integration tests of the ledger (one test binary; see util.rs).

// The custody rules of clippy.toml are for production code: tests delete footage behind the ledger's back.
#![allow(clippy::disallowed_methods)]

mod api;
mod batch_verify;
mod binding;
mod bounds;
mod console;
mod coverage;
mod crash;
mod export;
mod governance;
mod key_rotation;
mod proofs;
mod readiness;
mod sm2_keys;
mod tamper;
mod timeouts;
mod tokens;
mod util;
