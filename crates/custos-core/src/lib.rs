//! # custos-core: the evidence formats and the verifiable log's mathematics
//!
//! Everything an auditor must be able to re-derive lives here, written so that
//! it can be read against the public specifications it follows:
//!
//! - [`digest`]: SHA-256 (and SM3 behind the `sm3` feature), the
//!   `sha256:<hex>` text form, and the streaming hasher the ingest pipeline
//!   and `custos hash` share;
//! - [`keys`]: Ed25519 signing keys (32-byte seed files) and C2SP verifier-key
//!   strings `name+hash+base64(0x01 || pubkey)`;
//! - [`dsse`]: DSSE envelopes (pre-authentication encoding, sign, verify);
//! - [`canonical`]: RFC 8785 canonical JSON;
//! - [`manifest`] and [`entry`]: the signed segment manifest and the custody
//!   ledger entry, with the field names of DESIGN.md;
//! - [`merkle`]: RFC 6962 / RFC 9162 §2.1 tree hashing, inclusion and
//!   consistency proofs, and a compact range for O(log n) appends;
//! - [`note`] and [`checkpoint`]: C2SP signed notes and tlog-checkpoints;
//! - [`cosignature`], [`witness`], [`tlog_proof`] and [`policy`]: witnesses'
//!   C2SP cosignatures, the tlog-witness `add-checkpoint` request and the
//!   witness's decision, offline tlog-proofs, and the auditor's trust policy;
//! - [`config`]: the configuration file and its environment overrides;
//! - [`bundle`]: the export bundle (tar) writer and its offline verifier;
//! - [`log`]: the auditor's check of a whole log against its checkpoint
//!   (`custos verify log` without the fetching);
//! - [`wire`]: the JSON shapes of the ledger's HTTP API (server and client).
//!
//! ## What this crate must never do
//!
//! It does no I/O beyond what a caller hands it as bytes, runs no async code,
//! reads no clock and draws no randomness of its own: time and random number
//! generators are parameters. That keeps every function here deterministic,
//! testable exhaustively (proptest) and fuzzable (`fuzz/`). Key *files* are
//! the one exception: [`keys`] reads and writes seed files, because the
//! permission check on them must be the same everywhere.
//!
//! Input from outside (a bundle, a note, an envelope, a manifest) is parsed
//! into typed values at the edge; parse errors name what is wrong.
#![deny(missing_docs)]

pub mod bundle;
pub mod canonical;
pub mod checkpoint;
pub mod config;
pub mod cosignature;
pub mod coverage;
pub mod digest;
pub mod dsse;
pub mod entry;
pub mod keys;
pub mod log;
pub mod manifest;
pub mod merkle;
pub mod note;
pub mod policy;
pub mod tiles;
pub mod tlog_proof;
pub mod wire;
pub mod witness;
