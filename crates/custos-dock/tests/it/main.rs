//! The dock's integration tests, one binary: hostile recorder contents,
//! the simulated USB recorder and an unplug during the wipe in process;
//! recorder identity, unlisted and reappearing files, a reset clock; a
//! real ledger process refusing events (wrong token, proxy limits, a bad
//! signature); `kill -9` at random instants, an
//! S3 outage and a ledger outage against a real Garage node, a real ledger
//! process and the real `custos` binary.

// The custody rules of clippy.toml are for production code: tests read the real clock.
#![allow(clippy::disallowed_methods)]

mod clock_reset;
mod crash;
mod hostile;
mod identity;
mod outage;
mod profiles;
mod queue;
mod refusals;
mod usb_sim;
mod util;
mod wipe_unplug;
