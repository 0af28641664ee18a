//! Integration tests of custos-ingest: every size class into the local
//! store, the in-memory store and a real Garage S3 node; failures of the
//! source and of the store; taken keys; verification; the scrub's check
//! of one object; the pool.
//!
//! Tests that need S3 start their own Garage node and fail (never skip)
//! when the `garage` binary is missing.

// The custody rules of clippy.toml are for production code: a test store forwards deletes to the store it wraps.
#![allow(clippy::disallowed_methods)]

mod util;

mod check;
mod failures;
mod pool;
mod s3_outage;
mod sizes;
mod taken_keys;
mod verify;
