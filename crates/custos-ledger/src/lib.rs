//! # custos-ledger: the custody ledger service and its client
//!
//! An append-only, verifiable log of custody entries on sled, served over an
//! axum HTTP API, with the catalogue, roles and tokens, checkpoints and
//! proofs; plus the typed HTTP client that docks and the command line use.
//!
//! ## What this crate must never do
//!
//! Change, drop or reassign an entry once its index was handed out
//! (DESIGN.md invariant 3), or store a bearer token in clear.
#![deny(missing_docs)]
