//! # custos-dock: the docking-station daemon
//!
//! USB hotplug, firmware profiles, transports, the crash-safe journal,
//! ingest, wipe and slot status. The only crate that touches USB.
//!
//! An officer docks a recorder; the dock identifies it by its firmware
//! profile, unlocks it, reads its clock, and takes every segment on it
//! through the journal's steps (DESIGN.md "Data flow"):
//!
//! ```text
//! discovered -> uploading (probe, then read once: hash + multipart upload)
//!   -> uploaded -> recorded (manifest signed, stored, segment.ingested queued)
//!   -> verified (object read back or checksum-confirmed, segment.verified queued)
//!   -> wiping (after the ledger acknowledged segment.verified) -> wiped
//! ```
//!
//! The map:
//!
//! - [`profile`]: firmware profiles (TOML), refused with file and line;
//! - [`transport`]: how a recorder is reached — a directory, or USB through
//!   [`usb`] (rusb, or the in-process simulation of the same protocol);
//! - [`volume`]: the recorder's files, listed and touched without following
//!   links; [`naming`]: segment ids and object keys from hostile names;
//! - [`journal`]: the crash-safe record of every step (its module
//!   documentation walks the steps and what a crash at each leaves);
//! - [`outbox`]: signed events to the ledger, in order, durable while the
//!   ledger is down, through [`queue`] (the durable queue and the
//!   [`queue::EventSink`] trait a ledger link implements); [`setup`]: a dock
//!   from the configuration file; [`engine`]: the sessions and the
//!   per-segment flow;
//! - [`times`]: recording times and their source; [`status`]: slot status
//!   and its JSON endpoint; [`daemon`]: `custos dock run`.
//!
//! The dock sees the ledger only through its outbox: it depends on
//! custos-client for the HTTP API, never on custos-ledger (a ledger in the
//! same process is wired in by the binary as an [`queue::EventSink`]).
//!
//! ## What this crate must never do
//!
//! Remove a segment from a recorder before its stored object was verified
//! and the ledger acknowledged `segment.verified` (DESIGN.md invariant 1),
//! or read or remove anything outside the recorder's media root.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod daemon;
pub mod engine;
pub mod journal;
pub mod naming;
pub mod outbox;
pub mod profile;
pub mod queue;
pub mod setup;
pub mod status;
pub mod times;
pub mod transport;
pub mod usb;
pub mod volume;

pub use engine::{Dock, DockError, DockSettings, OnceOutcome, OnceVerdict, SessionReport};
pub use outbox::LedgerLink;
pub use profile::{Profile, ProfileError, Profiles};
pub use queue::{EventSink, OfflineQueue};
pub use transport::{DirectoryTransport, RecorderTransport, UsbTransport};
