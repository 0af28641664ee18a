//! The command line's integration tests (one test binary): the real
//! `custos` binary against real ledgers, Garage and Chromium. The
//! end-to-end scenarios are the separate `e2e` target (tests/e2e/).

// The custody rules of clippy.toml are for production code: tests delete footage behind the ledger's back and date footage from the real clock.
#![allow(clippy::disallowed_methods)]

#[path = "../../../custos-core/tests/it/bundle_support/mod.rs"]
mod bundle_support;
mod garage_fixture;
mod util;
mod webdriver;

mod audit_scrub;
mod backup_restore;
mod cli_basics;
mod demo;
mod dock_screen;
mod export_cli;
mod in_process;
mod interop;
mod retention_sweep;
mod sm2_suite;
mod tls;
mod verify_bundle;
mod verify_large;
mod verify_log;
mod verify_tiles;
mod web_audit;
mod web_console;
mod web_coverage;
mod web_supervision;
mod witness;
