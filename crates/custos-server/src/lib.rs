//! # custos-server: the ledger's HTTP API and web console
//!
//! What stands between the network and a [`custos_ledger::Ledger`]: the
//! axum router of DESIGN.md's API ([`api`], with [`api::app`], its one
//! error shape, extractors, role checks and OpenAPI document), the web
//! console under `/ui/` ([`ui`]: sessions, pages, message catalogues),
//! [`serve`] (binding, hyper's connection loop with a header-read timeout,
//! signals, shutdown, the scheduled retention sweep), [`tls`] (the
//! service's certificate, reloaded on SIGHUP, and the binding of dock
//! tokens to station certificates), [`offline`] (token administration with
//! the service stopped) and [`witness`] (`custos witness serve`: a C2SP
//! tlog-witness that cosigns other ledgers' checkpoints) and [`cosign`]
//! (the ledger submitting its checkpoints to its witnesses). The `custos-ledger-bench`
//! binary is the append bench's load generator and a server the crash tests
//! can kill.
//!
//! ## What this crate must never do
//!
//! Decide a custody rule: it uses only the ledger's public API, and every
//! route and console page asks the ledger (or its `governance` gate) what
//! is allowed, so that the API and the console cannot disagree. It never
//! logs a bearer token or a console session value.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod cosign;
pub mod offline;
pub mod serve;
pub mod tls;
pub mod ui;
pub mod witness;

pub use api::{app, ApiConfig, AppState};
