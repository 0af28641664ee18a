//! # custos-ledger: the custody log and its domain rules
//!
//! An append-only, verifiable log of custody entries on sled, with the
//! catalogue, roles and tokens, cases, access, holds and retention (checked
//! by the writer inside its batch), checkpoints and proofs. It serves no
//! HTTP: custos-server puts the API and the web console in front of
//! [`Ledger`]'s public API; custos-client is the API's client.
//!
//! The ledger is built like a transparency log (Certificate Transparency,
//! Trillian, tessera): every entry is a leaf of an RFC 6962 Merkle tree,
//! each entry also carries the leaf hash of the one before it, and the
//! tree head is published as a C2SP checkpoint signed with the ledger's
//! key. Anyone can check it with the public specifications and no code of
//! ours: `/v1/entries` serves the exact leaf bytes, `/v1/proof/*` the RFC
//! 9162 proofs.
//!
//! ## Map
//!
//! - [`Ledger`] ([`ledger`]): the handle: open (with the start-up check of
//!   [`check`]), append, read, prove;
//! - [`append`]: the single writer thread: sequence → integrate → publish,
//!   in durable batches;
//! - `verify`: dock event signatures of concurrent requests verified
//!   together in one batch equation;
//! - [`store`] and [`layout`]: what lives where in sled;
//! - [`tiles`]: the log published as C2SP tlog-tiles in an object store
//!   (derived state, written from sled);
//! - [`catalogue`]: the segment index fed by `segment.ingested` manifests;
//! - [`governance`]: cases, access, holds, retention and its sweeper;
//!   [`audit`]: what the audit scrub checks and how it is recorded;
//! - [`auth`]: roles, tokens, registered dock keys, the role matrix;
//! - [`backup`]: a backup's stream at a fixed size, and the restore that
//!   re-derives the tree and catalogue from it;
//! - [`wire`]: the JSON shapes shared by server and client (custos-core's).
//!
//! ## Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use custos_core::entry::details::{CaseCreated, Details};
//! use custos_core::entry::{Actor, ActorKind};
//! use custos_core::keys::SigningKey;
//! use custos_ledger::{append::Append, Ledger, LedgerOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let key = SigningKey::from_seed("ledger", &[7; 32])?;
//! let ledger = Ledger::open(LedgerOptions::new(dir.path(), "example.org/ledger"), key)?;
//! let actor = Actor { kind: ActorKind::Supervisor, id: "sup-1".into() };
//! let details = Details::CaseCreated(CaseCreated { title: "Night patrol".into(), category: None });
//! let receipt = ledger.append(Append::new(actor, "case-42", details)?).await?;
//! assert_eq!(receipt.seq, 0);
//! let proof = ledger.inclusion_proof(0, ledger.published().size)?;
//! assert!(proof.hashes.is_empty()); // a tree of one leaf
//! ledger.close().await;
//! # Ok(()) }
//! ```
//!
//! ## What this crate must never do
//!
//! Change, drop or reassign an entry once its index was handed out
//! (DESIGN.md invariant 3), acknowledge an append before it is durable,
//! serve an entry or checkpoint it found not to match its stored tree, or
//! store a bearer token in clear.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod append;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod catalogue;
pub mod check;
pub mod clock;
pub mod error;
pub mod export;
pub mod governance;
pub mod layout;
pub mod ledger;
pub mod metrics;
pub mod report;
pub mod store;
pub mod tiles;
mod verify;
/// The JSON shapes of the API (they live in custos-core, shared with the
/// client).
pub use custos_core::wire;

pub use append::{Append, Guard, Rejection, RejectionKind, StateTx};
pub use auth::{Caller, Role};
pub use error::{AppendError, OpenError, ReadError, StoreError, TamperError};
pub use ledger::{EventError, Ledger, LedgerOptions, Published, TokenError};
pub use wire::{ConsistencyProof, Custody, EntryLine, InclusionProof, Receipt};
