//! How the dock reaches a recorder in a slot: a [`RecorderTransport`]
//! identifies it, unlocks it, reads its clock and hands over its volume.
//!
//! - [`DirectoryTransport`]: the recorder's files are already in a
//!   directory (mounted by the operating system, or a test fixture); the
//!   profile is named or chosen by the file names, the recorder id comes
//!   from the caller (`--recorder-id`) or from a profile that identifies
//!   the device (a `[names]` pattern with a `device` group that every
//!   footage name agrees on) — never from the directory's path, its name
//!   or what an earlier docking at that path was — and there is no clock
//!   to read.
//! - [`UsbTransport`]: a recorder on USB, spoken to through a
//!   [`ControlChannel`] (rusb, or the in-process simulation) and found on
//!   disk through a [`VolumeLocator`].
//!
//! Everything after `attach` — the journal, the ingest, the wipe — is the
//! same for every transport. The methods block (USB transfers, mounting):
//! async callers run them on a blocking thread.
//!
//! A transport must never hand over a volume before the recorder was
//! identified and unlocked, and never guess a recorder id it cannot back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use time::OffsetDateTime;

use crate::profile::{ClockSet, IdSource, Profile, ProfileError, Profiles};
use crate::usb::locate::{LocateError, VolumeLocator};
use crate::usb::protocol::{self, ControlChannel, ProtocolError};
use crate::volume::{Volume, VolumeError};

/// Who a recorder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderIdentity {
    /// The recorder id used in object keys, segment ids and manifests.
    pub id: String,
    /// Its model.
    pub model: String,
    /// Its USB serial number, if any.
    pub serial: Option<String>,
    /// The officer it is assigned to, if it says.
    pub officer_id: Option<String>,
    /// Its firmware version, if it says.
    pub firmware: Option<String>,
}

/// The recorder's clock and the dock's, read at the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    /// The recorder's clock.
    pub recorder: OffsetDateTime,
    /// The dock's clock.
    pub dock: OffsetDateTime,
}

impl ClockReading {
    /// Recorder minus dock, milliseconds (positive: the recorder is ahead).
    pub fn offset_ms(&self) -> i64 {
        let d = self.recorder - self.dock;
        i64::try_from(d.whole_milliseconds()).unwrap_or(if d.is_positive() {
            i64::MAX
        } else {
            i64::MIN
        })
    }
}

/// Whether the very medium a transport attached is still the one the dock
/// reaches: the same recorder, not unplugged (and not plugged back in as a
/// new device) since. A wipe counts only if this holds after the removal
/// was synced (see `Dock`'s wipe step).
pub trait MediumCheck: Send + Sync + std::fmt::Debug {
    /// `Ok` if the medium attached is still there; else why not, in words.
    fn still_attached(&self) -> Result<(), String>;
}

/// A shared [`MediumCheck`], as [`Attached`] carries it.
pub type Medium = Arc<dyn MediumCheck>;

/// A directory's medium: the directory is still there and is still the
/// same one (device and inode), so whatever was mounted on it is still
/// mounted.
#[derive(Debug)]
pub struct DirectoryMedium {
    root: PathBuf,
    dev_ino: Option<(u64, u64)>,
}

impl DirectoryMedium {
    /// The directory `root` as it is now.
    pub fn new(root: &Path) -> DirectoryMedium {
        use std::os::unix::fs::MetadataExt as _;
        DirectoryMedium {
            root: root.to_owned(),
            dev_ino: std::fs::symlink_metadata(root)
                .ok()
                .map(|m| (m.dev(), m.ino())),
        }
    }
}

impl MediumCheck for DirectoryMedium {
    fn still_attached(&self) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt as _;
        match std::fs::symlink_metadata(&self.root) {
            Ok(m) if m.is_dir() && Some((m.dev(), m.ino())) == self.dev_ino => Ok(()),
            Ok(_) => Err(format!(
                "{} is no longer the directory that was docked",
                self.root.display()
            )),
            Err(e) => Err(format!("{}: {e}", self.root.display())),
        }
    }
}

/// A recorder ready to be read.
#[derive(Debug, Clone)]
pub struct Attached {
    /// Its profile.
    pub profile: Arc<Profile>,
    /// Who it is.
    pub identity: RecorderIdentity,
    /// Its clock, when it can be read.
    pub clock: Option<ClockReading>,
    /// Its files.
    pub volume: Volume,
    /// `directory`, `usb` or `simulated`.
    pub transport: &'static str,
    /// Which volume this is ([`volume_identity`] for a directory; the
    /// recorder itself for USB): journal records whose file is not listed
    /// are resumed only on the volume they were discovered on.
    pub volume_id: String,
    /// Whether this very medium is still attached.
    pub medium: Medium,
}

/// Why a recorder could not be attached or handled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The source directory is missing or not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A profile problem (unknown name).
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The vendor protocol failed.
    #[error("recorder protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// The volume did not appear.
    #[error("recorder volume: {0}")]
    Locate(#[from] LocateError),
    /// The volume could not be read.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// No recorder id could be established.
    #[error("cannot tell the recorder's id: {0}")]
    NoId(String),
}

/// A way to reach one recorder.
pub trait RecorderTransport: Send {
    /// Identify, unlock, read the clock and find the volume.
    fn attach(&mut self) -> Result<Attached, TransportError>;
    /// Set the recorder's clock to `now` as its profile says; returns the
    /// method used, or `None` when the profile sets no clock.
    fn set_clock(
        &mut self,
        attached: &Attached,
        now: OffsetDateTime,
    ) -> Result<Option<&'static str>, TransportError>;
    /// Whether the recorder is still there.
    fn present(&mut self) -> bool;
    /// Let go of it (unmount what was mounted).
    fn detach(&mut self);
}

/// Write the profile's clock file, if it has one.
fn set_clock_file(
    attached: &Attached,
    now: OffsetDateTime,
) -> Result<Option<&'static str>, TransportError> {
    if let ClockSet::File { path, format } = &attached.profile.clock.set {
        let text = now
            .to_offset(attached.profile.clock.time_zone)
            .format(format)
            .map_err(|e| TransportError::NoId(format!("cannot format the clock file: {e}")))?;
        attached
            .volume
            .write_root_file(path, format!("{text}\n").as_bytes())?;
        return Ok(Some("file"));
    }
    Ok(None)
}

/// The recorder id the footage names give, per the profile's `[names]`
/// pattern: `Ok(None)` when no name carries a `device` group, an error
/// naming them when the names disagree (never a majority vote: two
/// recorders' files in one volume, or a name a recorder did not write,
/// must not decide whose footage it is).
fn device_from_names(profile: &Profile, volume: &Volume) -> Result<Option<String>, String> {
    let Some(pattern) = profile.names.as_ref() else {
        return Ok(None);
    };
    let listing = volume.list(&profile.storage).map_err(|e| e.to_string())?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for f in &listing.files {
        if let Some(d) = pattern.fields(&f.name, profile.clock.time_zone).device {
            *counts.entry(d).or_default() += 1;
        }
    }
    match counts.len() {
        0 => Ok(None),
        1 => Ok(counts.into_keys().next()),
        _ => Err(format!(
            "the footage names name {} devices ({}); one volume is one recorder",
            counts.len(),
            counts
                .iter()
                .map(|(d, n)| format!("{d:?}: {n} files"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Which volume is at `root`: its file system (the UUID udev lists under
/// `/dev/disk/by-uuid` for its block device — a FAT volume's serial number,
/// the same wherever and whenever it is mounted — else the device number)
/// and the root directory's inode (a directory on the dock's own disk is
/// told from one made later at the same path). Never the path.
pub fn volume_identity(root: &Path) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        return format!("unreadable:{}", root.display());
    };
    let dev = meta.dev();
    let uuid = std::fs::read_dir("/dev/disk/by-uuid").ok().and_then(|d| {
        d.flatten().find_map(|e| {
            use std::os::unix::fs::FileTypeExt as _;
            let m = std::fs::metadata(e.path()).ok()?;
            (m.file_type().is_block_device() && m.rdev() == dev)
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
    });
    let fs = match uuid {
        Some(u) => format!("uuid:{u}"),
        None => format!("dev:{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev)),
    };
    format!("{fs}/ino:{}", meta.ino())
}

/// A recorder whose files are in a directory.
#[derive(Debug)]
pub struct DirectoryTransport {
    root: PathBuf,
    profiles: Arc<Profiles>,
    profile: Option<String>,
    recorder_id: Option<String>,
    officer_id: Option<String>,
}

impl DirectoryTransport {
    /// The recorder at `root`; `profile` names its profile (else the best
    /// fit); `recorder_id` and `officer_id` override what the files say.
    /// Without `recorder_id`, attaching fails unless the profile identifies
    /// the device by its footage names.
    pub fn new(
        root: &Path,
        profiles: Arc<Profiles>,
        profile: Option<String>,
        recorder_id: Option<String>,
        officer_id: Option<String>,
    ) -> DirectoryTransport {
        DirectoryTransport {
            root: root.to_owned(),
            profiles,
            profile,
            recorder_id,
            officer_id,
        }
    }
}

impl RecorderTransport for DirectoryTransport {
    fn attach(&mut self) -> Result<Attached, TransportError> {
        if !std::fs::symlink_metadata(&self.root).is_ok_and(|m| m.is_dir()) {
            return Err(TransportError::NotADirectory {
                path: self.root.clone(),
            });
        }
        let profile = match &self.profile {
            Some(name) => self.profiles.get(name)?.clone(),
            None => self
                .profiles
                .best_fit(|p| {
                    Volume::new(&self.root, &p.storage.media_root)
                        .list(&p.storage)
                        .map(|l| l.files.into_iter().map(|f| f.name).collect())
                        .unwrap_or_default()
                })?
                .clone(),
        };
        let volume = Volume::new(&self.root, &profile.storage.media_root);
        let id = match &self.recorder_id {
            Some(id) => id.clone(),
            None => match device_from_names(&profile, &volume) {
                Ok(Some(id)) => id,
                Ok(None) => {
                    return Err(TransportError::NoId(format!(
                        "no footage name in {} names a device per profile {}; give the recorder's id (--recorder-id)",
                        self.root.display(),
                        profile.name
                    )))
                }
                Err(why) => {
                    return Err(TransportError::NoId(format!(
                        "{why} in {}; give the recorder's id (--recorder-id)",
                        self.root.display()
                    )))
                }
            },
        };
        if id.trim().is_empty() {
            return Err(TransportError::NoId("the recorder id is empty".into()));
        }
        Ok(Attached {
            identity: RecorderIdentity {
                id,
                model: profile.model.clone(),
                serial: None,
                officer_id: self.officer_id.clone(),
                firmware: None,
            },
            profile: Arc::new(profile),
            clock: None,
            medium: Arc::new(DirectoryMedium::new(&self.root)),
            volume_id: volume_identity(&self.root),
            volume,
            transport: "directory",
        })
    }

    fn set_clock(
        &mut self,
        attached: &Attached,
        now: OffsetDateTime,
    ) -> Result<Option<&'static str>, TransportError> {
        set_clock_file(attached, now)
    }

    fn present(&mut self) -> bool {
        self.root.is_dir()
    }

    fn detach(&mut self) {}
}

/// A control channel shared by a [`UsbTransport`] and its [`UsbMedium`].
type SharedChannel = Arc<Mutex<Box<dyn ControlChannel>>>;

fn lock_channel(c: &SharedChannel) -> MutexGuard<'_, Box<dyn ControlChannel>> {
    // A poisoned lock only means a transfer panicked; the channel is as it was.
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// A USB recorder's medium: the link still answers (the profile's identify
/// request, with the same device id; else its clock read), and then the
/// volume's own check ([`VolumeLocator::medium`]: the same USB device
/// number, block device and mount). The link is asked first: the kernel
/// notices an unplug some time after the device stops answering, and a
/// replug in between is caught by the device number checked after it. A
/// request that fails while the kernel still lists the device is tried
/// again (three tries, half a second apart) before the recorder
/// counts as gone: under load a request can miss its timeout.
pub struct UsbMedium {
    volume: Medium,
    channel: SharedChannel,
    profile: Arc<Profile>,
    device_id: Option<String>,
}

impl std::fmt::Debug for UsbMedium {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsbMedium")
            .field("volume", &self.volume)
            .field("profile", &self.profile.name)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl UsbMedium {
    /// One request over the link: `Ok` if the recorder answered as itself.
    fn ask(&self) -> Result<(), String> {
        let Some(usb) = &self.profile.usb else {
            return Ok(());
        };
        let mut channel = lock_channel(&self.channel);
        if usb.identify.is_some() {
            let info = protocol::identify(channel.as_mut(), usb)
                .map_err(|e| format!("the recorder no longer answers: {e}"))?;
            if self.device_id.is_some() && info.device_id != self.device_id {
                return Err("another recorder answers".into());
            }
        } else if usb.clock_read.is_some() {
            protocol::read_clock(channel.as_mut(), usb, self.profile.clock.time_zone)
                .map_err(|e| format!("the recorder no longer answers: {e}"))?;
        }
        Ok(())
    }
}

/// Requests tried before a recorder the kernel still lists counts as gone
/// (a busy recorder, or a loaded dock, can miss a request's timeout).
const LINK_TRIES: u32 = 3;

impl MediumCheck for UsbMedium {
    fn still_attached(&self) -> Result<(), String> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.ask() {
                Ok(()) => return self.volume.still_attached(),
                Err(e) => {
                    // Gone for the kernel too: no point asking again.
                    self.volume.still_attached()?;
                    if tries >= LINK_TRIES {
                        return Err(e);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
            }
        }
    }
}

/// A recorder on USB (or its in-process simulation).
pub struct UsbTransport {
    channel: SharedChannel,
    locator: Box<dyn VolumeLocator>,
    profile: Arc<Profile>,
    serial: Option<String>,
    password: Option<Vec<u8>>,
    kind: &'static str,
}

impl std::fmt::Debug for UsbTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsbTransport")
            .field("profile", &self.profile.name)
            .field("serial", &self.serial)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl UsbTransport {
    /// A recorder matched to `profile`, reached through `channel`, whose
    /// volume `locator` finds. `password` is `[dock] unlock_password`.
    /// `kind` is `usb` or `simulated` (recorded in the docking entry).
    pub fn new(
        channel: Box<dyn ControlChannel>,
        locator: Box<dyn VolumeLocator>,
        profile: Arc<Profile>,
        serial: Option<String>,
        password: Option<Vec<u8>>,
        kind: &'static str,
    ) -> UsbTransport {
        UsbTransport {
            channel: Arc::new(Mutex::new(channel)),
            locator,
            profile,
            serial,
            password,
            kind,
        }
    }
}

impl RecorderTransport for UsbTransport {
    fn attach(&mut self) -> Result<Attached, TransportError> {
        let usb = self.profile.usb.as_ref().ok_or_else(|| {
            TransportError::NoId(format!(
                "profile {} has no [usb] section",
                self.profile.name
            ))
        })?;
        let mut channel = lock_channel(&self.channel);
        let info = match &usb.identify {
            Some(_) => Some(protocol::identify(channel.as_mut(), usb)?),
            None => None,
        };
        protocol::unlock(channel.as_mut(), usb, self.password.as_deref())?;
        let clock = match &usb.clock_read {
            Some(_) => {
                #[expect(
                    clippy::disallowed_methods,
                    reason = "the recorder's clock offset is measured against the dock's wall clock around the reading"
                )]
                let before = OffsetDateTime::now_utc();
                let recorder =
                    protocol::read_clock(channel.as_mut(), usb, self.profile.clock.time_zone)?;
                #[expect(
                    clippy::disallowed_methods,
                    reason = "the recorder's clock offset is measured against the dock's wall clock around the reading"
                )]
                let after = OffsetDateTime::now_utc();
                // The reading was taken somewhere between; take the middle.
                let dock = before + (after - before) / 2;
                Some(ClockReading { recorder, dock })
            }
            None => None,
        };
        drop(channel);
        let root = self.locator.locate(usb.volume_timeout)?;
        let medium: Medium = Arc::new(UsbMedium {
            volume: self.locator.medium(),
            channel: self.channel.clone(),
            profile: self.profile.clone(),
            device_id: info.as_ref().and_then(|i| i.device_id.clone()),
        });
        let volume = Volume::new(&root, &self.profile.storage.media_root);
        let id = match usb.id_from {
            IdSource::Serial => self
                .serial
                .clone()
                .or_else(|| info.as_ref().and_then(|i| i.device_id.clone())),
            IdSource::Identify => info.as_ref().and_then(|i| i.device_id.clone()),
            IdSource::FileName => {
                device_from_names(&self.profile, &volume).map_err(TransportError::NoId)?
            }
        }
        .ok_or_else(|| {
            TransportError::NoId(format!(
                "profile {} takes it from {:?}, which gave none",
                self.profile.name, usb.id_from
            ))
        })?;
        // The recorder answers for its own storage: the volume is the
        // recorder's (its block device and mount change per plug).
        let volume_id = format!("usb:{id}");
        Ok(Attached {
            identity: RecorderIdentity {
                id,
                model: info
                    .as_ref()
                    .and_then(|i| i.model.clone())
                    .unwrap_or_else(|| self.profile.model.clone()),
                serial: self.serial.clone(),
                officer_id: info.as_ref().and_then(|i| i.officer_id.clone()),
                firmware: info.as_ref().and_then(|i| i.firmware.clone()),
            },
            profile: self.profile.clone(),
            clock,
            volume,
            transport: self.kind,
            medium,
            volume_id,
        })
    }

    fn set_clock(
        &mut self,
        attached: &Attached,
        now: OffsetDateTime,
    ) -> Result<Option<&'static str>, TransportError> {
        match (&self.profile.clock.set, &self.profile.usb) {
            (ClockSet::Usb, Some(usb)) => {
                protocol::set_clock(
                    lock_channel(&self.channel).as_mut(),
                    usb,
                    self.profile.clock.time_zone,
                    now,
                )?;
                Ok(Some("usb"))
            }
            _ => set_clock_file(attached, now),
        }
    }

    fn present(&mut self) -> bool {
        self.locator.present()
    }

    fn detach(&mut self) {
        self.locator.release();
    }
}
