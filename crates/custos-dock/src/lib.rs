//! # custos-dock: the docking-station daemon
//!
//! USB hotplug, firmware profiles, transports, the crash-safe journal,
//! ingest, wipe and slot status. The only crate that touches USB.
//!
//! ## What this crate must never do
//!
//! Remove a segment from a recorder before its stored object was verified
//! and the ledger acknowledged `segment.verified` (DESIGN.md invariant 1),
//! or read or remove anything outside the recorder's media root.
#![deny(missing_docs)]
