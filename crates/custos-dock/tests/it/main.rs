//! The dock's integration tests, one binary: hostile recorder contents,
//! the simulated USB recorder and an unplug during the wipe in process; `kill -9` at random instants, an
//! S3 outage and a ledger outage against a real Garage node, a real ledger
//! process and the real `custos` binary.

mod crash;
mod hostile;
mod outage;
mod usb_sim;
mod util;
mod wipe_unplug;
