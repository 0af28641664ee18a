//! End-to-end tests: the real `custos` binaries as processes — the ledger
//! service and the dock — against a real Garage S3 node and FFmpeg-made
//! footage, checked by tools that share no code with Custos: boto3 for the
//! bucket, Python's `cryptography` for every signature, a few lines of
//! Python for the RFC 6962 tree and the hash chain, and ffprobe for the
//! media (the scripts in `checkers/`).
//!
//! `ingest.rs` docks recorders and runs every check; `invariants.rs` breaks
//! things the way the field does (kill -9 of the dock mid-ingest, the ledger
//! gone mid-run, a tampered object, a second file on a key already taken)
//! and shows that each DESIGN.md invariant still holds, or that its
//! violation is reported. `adversary.rs` is DESIGN.md's trust model as
//! tests: every role, no token and a stolen dock credential against every
//! route and every event kind they must not use. `coverage.rs` docks
//! recorders with a deleted file and a clock jump and follows the ledger's
//! `coverage.gap` findings to a supervisor's explanation. `tls.rs` runs the
//! site over TLS with a private CA and station certificates. `cluster.rs`
//! stores into a three-node Garage cluster and loses a node mid-ingest.
//! `site.rs` runs all of it at once, as an agency's site: TLS with station
//! certificates, two docks, the cluster, a ledger key rotation, a node
//! lost, a backup and a restore, and every bundle still verifying.
//!
//! Run them with `cargo nextest run -p custos-cli --test e2e` (Garage and
//! the Python checkers from `scripts/install-deps`).

// The custody rules of clippy.toml are for production code: the scenarios read the real clock, as an operator does.
#![allow(clippy::disallowed_methods)]

mod adversary;
mod cluster;
mod coverage;
mod harness;
mod ingest;
mod invariants;
mod site;
mod tls;
