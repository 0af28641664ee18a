//! Everything USB: the recorder protocol a profile describes
//! ([`protocol`]), the channel that carries it over rusb ([`rusb_link`]) or
//! in process ([`simulated`]), and finding the mass-storage volume
//! ([`locate`]).
//!
//! The device-facing code sits behind two traits,
//! [`protocol::ControlChannel`] and [`locate::VolumeLocator`], so that the
//! same session code runs over a real recorder, the simulated one, and (in
//! `tests/usb/`) a USB gadget inside a virtual machine.
//!
//! This module must never touch a device that no profile matched.

pub mod locate;
pub mod protocol;
pub mod rusb_link;
pub mod simulated;
