//! # custos-cli: the `custos` command's glue
//!
//! The binary (`src/main.rs` and `cmd/`) wires the Custos crates together;
//! this library holds the one piece of that wiring other crates' tests also
//! need: [`in_process`], a dock whose ledger runs in the same process (the
//! embedded default).
//!
//! ## What this crate must never do
//!
//! Hold rules of its own: what is a valid event, segment or bundle is
//! decided in the library crates; this crate only connects them.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod in_process;
