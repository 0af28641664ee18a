//! The simulated recorder's device side: the vendor protocol of
//! `firmware-profiles/simulated.toml`, answered in process.
//!
//! It is the reference for the protocol the USB gadget of `tests/usb/`
//! speaks, and it lets the whole USB path above the wire (identify, unlock,
//! clock, waiting for the volume, ingest) run in tests on machines with no
//! USB stack. The protocol (all vendor requests to the device):
//!
//! | bRequest | direction | data |
//! | --- | --- | --- |
//! | `0x01` identify | IN, up to 256 bytes | `device_id=…;officer_id=…;firmware=…;model=…` |
//! | `0x02` unlock | OUT | the password bytes |
//! | `0x03` unlock status | IN, 1 byte | `01` unlocked, `00` refused |
//! | `0x04` clock read | IN, 8 bytes | Unix seconds, little-endian u64 |
//! | `0x05` clock set | OUT, 8 bytes | Unix seconds, little-endian u64 |
//!
//! Any other request stalls, as a real device's would. The storage stays
//! hidden ([`SimulatedRecorder::locator`] finds nothing) until an unlock
//! with the right password.
//!
//! This module must never be used by the daemon for a real slot: it is
//! reached only from tests and the benches.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::locate::{LocateError, VolumeLocator};
use super::protocol::{ChannelError, ControlChannel, Setup};
use crate::profile::RequestType;
use crate::transport::{Medium, MediumCheck};

/// `bRequest` of identify.
pub const REQ_IDENTIFY: u8 = 0x01;
/// `bRequest` of unlock.
pub const REQ_UNLOCK: u8 = 0x02;
/// `bRequest` of the unlock status.
pub const REQ_UNLOCK_STATUS: u8 = 0x03;
/// `bRequest` of clock read.
pub const REQ_CLOCK_READ: u8 = 0x04;
/// `bRequest` of clock set.
pub const REQ_CLOCK_SET: u8 = 0x05;

#[derive(Debug)]
struct State {
    device_id: String,
    officer_id: String,
    password: Vec<u8>,
    unlocked: bool,
    last_unlock_ok: bool,
    /// Recorder clock minus real time, seconds.
    clock_skew: i64,
    volume: PathBuf,
    plugged: bool,
    /// Plugged in anew this many times (a replugged recorder is a new
    /// device to the host).
    plugs: u64,
    /// Unplug once this many footage files are gone from the volume.
    unplug_after_removals: Option<(usize, usize)>,
    /// Every request seen, for tests: (bRequest, IN?).
    log: Vec<(u8, bool)>,
}

/// A simulated recorder: its control channel and its volume.
#[derive(Debug, Clone)]
pub struct SimulatedRecorder {
    state: Arc<Mutex<State>>,
}

impl SimulatedRecorder {
    /// A recorder with these ids and password, whose storage is the
    /// directory `volume`, and whose clock runs `clock_skew_secs` ahead.
    pub fn new(
        device_id: &str,
        officer_id: &str,
        password: &[u8],
        volume: PathBuf,
        clock_skew_secs: i64,
    ) -> Self {
        SimulatedRecorder {
            state: Arc::new(Mutex::new(State {
                device_id: device_id.to_owned(),
                officer_id: officer_id.to_owned(),
                password: password.to_vec(),
                unlocked: false,
                last_unlock_ok: false,
                clock_skew: clock_skew_secs,
                volume,
                plugged: true,
                plugs: 0,
                unplug_after_removals: None,
                log: Vec::new(),
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means a test panicked while holding it.
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    /// The control channel (what rusb would carry).
    pub fn channel(&self) -> SimulatedChannel {
        SimulatedChannel { rec: self.clone() }
    }

    /// The volume locator (what the kernel's mass-storage driver would show).
    pub fn locator(&self) -> SimulatedLocator {
        SimulatedLocator { rec: self.clone() }
    }

    /// Unplug (every later request fails with "no device") or plug back.
    pub fn set_plugged(&self, plugged: bool) {
        self.with(|s| {
            if plugged && !s.plugged {
                s.plugs += 1;
            }
            s.plugged = plugged;
            if !plugged {
                s.unlocked = false;
            }
        });
    }

    /// Pull the recorder out right after the dock removed the `n`-th file
    /// from its volume, before anything else reaches it: the next look at
    /// the recorder (the dock's check that its medium is still attached)
    /// finds it unplugged. Models an unplug between a wipe's removal and
    /// the dock noticing.
    pub fn unplug_after_removals(&self, n: usize) {
        self.with(|s| s.unplug_after_removals = Some((count_files(&s.volume), n)));
    }

    fn look(&self) {
        self.with(|s| {
            if let Some((before, n)) = s.unplug_after_removals {
                if s.plugged && before.saturating_sub(count_files(&s.volume)) >= n {
                    s.unplug_after_removals = None;
                    s.plugged = false;
                    s.unlocked = false;
                }
            }
        });
    }

    /// The recorder's clock skew now, seconds.
    pub fn clock_skew(&self) -> i64 {
        self.with(|s| s.clock_skew)
    }

    /// Whether the storage is unlocked.
    pub fn is_unlocked(&self) -> bool {
        self.with(|s| s.unlocked)
    }

    /// The requests seen so far: (bRequest, device-to-host).
    pub fn requests(&self) -> Vec<(u8, bool)> {
        self.with(|s| s.log.clone())
    }
}

/// The simulated recorder's control channel.
#[derive(Debug)]
pub struct SimulatedChannel {
    rec: SimulatedRecorder,
}

impl ControlChannel for SimulatedChannel {
    fn control_in(
        &mut self,
        setup: Setup,
        length: u16,
        _timeout: Duration,
    ) -> Result<Vec<u8>, ChannelError> {
        self.rec.with(|s| {
            if !s.plugged {
                return Err(ChannelError::NoDevice);
            }
            s.log.push((setup.request, true));
            if setup.request_type != RequestType::Vendor {
                return Err(ChannelError::Stall);
            }
            let mut answer = match setup.request {
                REQ_IDENTIFY => format!(
                    "device_id={};officer_id={};firmware=sim-1.0;model=Custos simulated recorder",
                    s.device_id, s.officer_id
                )
                .into_bytes(),
                REQ_UNLOCK_STATUS => vec![u8::from(s.last_unlock_ok)],
                REQ_CLOCK_READ => {
                    #[expect(
                        clippy::disallowed_methods,
                        reason = "a simulated recorder's clock is the wall clock plus its skew"
                    )]
                    let now = OffsetDateTime::now_utc().unix_timestamp() + s.clock_skew;
                    (now.max(0) as u64).to_le_bytes().to_vec()
                }
                _ => return Err(ChannelError::Stall),
            };
            answer.truncate(usize::from(length));
            Ok(answer)
        })
    }

    fn control_out(
        &mut self,
        setup: Setup,
        data: &[u8],
        _timeout: Duration,
    ) -> Result<(), ChannelError> {
        self.rec.with(|s| {
            if !s.plugged {
                return Err(ChannelError::NoDevice);
            }
            s.log.push((setup.request, false));
            if setup.request_type != RequestType::Vendor {
                return Err(ChannelError::Stall);
            }
            match setup.request {
                REQ_UNLOCK => {
                    s.last_unlock_ok = data == s.password.as_slice();
                    s.unlocked |= s.last_unlock_ok;
                    Ok(())
                }
                REQ_CLOCK_SET => {
                    let bytes: [u8; 8] = data.try_into().map_err(|_| ChannelError::Stall)?;
                    let set = i64::try_from(u64::from_le_bytes(bytes))
                        .map_err(|_| ChannelError::Stall)?;
                    #[expect(
                        clippy::disallowed_methods,
                        reason = "a simulated recorder's clock is the wall clock plus its skew"
                    )]
                    {
                        s.clock_skew = set - OffsetDateTime::now_utc().unix_timestamp();
                    }
                    Ok(())
                }
                _ => Err(ChannelError::Stall),
            }
        })
    }
}

/// The simulated recorder's volume: visible once unlocked.
#[derive(Debug)]
pub struct SimulatedLocator {
    rec: SimulatedRecorder,
}

impl VolumeLocator for SimulatedLocator {
    fn locate(&mut self, timeout: Duration) -> Result<PathBuf, LocateError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let found = self.rec.with(|s| {
                if !s.plugged {
                    return Err(LocateError::Gone);
                }
                Ok(s.unlocked.then(|| s.volume.clone()))
            })?;
            if let Some(v) = found {
                return Ok(v);
            }
            if std::time::Instant::now() >= deadline {
                return Err(LocateError::Timeout {
                    waited: timeout,
                    looked: "the simulated recorder's storage (still locked)".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn present(&mut self) -> bool {
        self.rec.with(|s| s.plugged)
    }

    fn medium(&self) -> Medium {
        Arc::new(SimulatedMedium {
            rec: self.rec.clone(),
            plugs: self.rec.with(|s| s.plugs),
        })
    }

    fn release(&mut self) {}
}

/// The simulated recorder's medium as attached: still plugged in, and not
/// replugged since.
#[derive(Debug)]
pub struct SimulatedMedium {
    rec: SimulatedRecorder,
    plugs: u64,
}

impl MediumCheck for SimulatedMedium {
    fn still_attached(&self) -> Result<(), String> {
        self.rec.look();
        self.rec.with(|s| match (s.plugged, s.plugs == self.plugs) {
            (true, true) => Ok(()),
            (false, _) => Err("the simulated recorder was unplugged".into()),
            (true, false) => Err("the simulated recorder was unplugged and plugged back in".into()),
        })
    }
}

/// Regular files under `dir`, recursively.
fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => count_files(&e.path()),
                    Ok(t) if t.is_file() => 1,
                    _ => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
