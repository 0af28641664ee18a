//! Firmware profiles: one TOML file per recorder model, saying how to find,
//! identify, unlock and read it (the schema is documented, with examples, in
//! `firmware-profiles/README.md`).
//!
//! A profile is parsed into a [`Profile`] once, at start-up, and checked
//! completely there: USB ids, control transfers, the media root, the globs,
//! the file-name pattern and its time format, the time zone. A profile with
//! an error is refused with its file, the line and the reason
//! ([`ProfileError::Invalid`]), so a typo is found by the operator who made
//! it, not by an officer at shift end.
//!
//! This module never touches a device or a recorder's files: it describes
//! them. The vendor control transfers it describes are run by
//! [`crate::usb::protocol`].

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::bytes::Regex;
use serde::Deserialize;
use time::format_description::OwnedFormatItem;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use toml::Spanned;

/// The profile used when none is named and none fits better.
pub const GENERIC_PROFILE: &str = "generic-mass-storage";

/// Longest control-transfer payload a profile may ask for (USB 2.0 control
/// transfers carry at most 4 KiB in practice).
pub const MAX_TRANSFER_LEN: u16 = 4096;

/// Why a profile (or the profile directory) was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file or directory could not be read.
    #[error("cannot read firmware profile {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The profile is not valid: bad TOML, a missing or unknown key, a bad
    /// value. `line` is 1-based.
    #[error("{}{}: {reason}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The profile file.
        file: PathBuf,
        /// The line of the offending key or value, when known.
        line: Option<usize>,
        /// What is wrong, and what was expected.
        reason: String,
    },
    /// Two files declare the same profile name.
    #[error("firmware profile {name:?} is declared twice: {} and {}", first.display(), second.display())]
    Duplicate {
        /// The name.
        name: String,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
    /// A profile asked for by name does not exist.
    #[error("no firmware profile named {name:?} in {} (available: {})", dir.display(), available.join(", "))]
    NotFound {
        /// The name asked for.
        name: String,
        /// The profile directory.
        dir: PathBuf,
        /// The names that exist.
        available: Vec<String>,
    },
}

/// How the recorder's storage appears to the dock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageKind {
    /// A USB mass-storage volume, mounted under the dock's mount root.
    UsbMassStorage,
    /// A directory the recorder's files are already in (a recorder mounted
    /// by the operating system, a network share, a test fixture).
    Directory,
}

/// Where the recorder's id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdSource {
    /// The USB serial number string.
    Serial,
    /// `device_id` of the vendor identify response.
    Identify,
    /// The `device` group of the file names.
    FileName,
}

/// A USB control transfer's type field (USB 2.0 §9.3.1, bits 6..5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestType {
    /// Standard requests.
    Standard,
    /// Class requests.
    Class,
    /// Vendor requests (the usual kind for recorder protocols).
    Vendor,
}

/// A USB control transfer's recipient (USB 2.0 §9.3.1, bits 4..0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recipient {
    /// The device.
    Device,
    /// An interface (`index` names it).
    Interface,
    /// An endpoint (`index` names it).
    Endpoint,
    /// Other.
    Other,
}

/// What an OUT transfer sends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Payload {
    /// Fixed bytes.
    Bytes(Vec<u8>),
    /// The unlock password from the dock's configuration (`{password}`).
    Password,
    /// The dock's current time in the profile's clock encoding (`{clock}`).
    Clock,
}

/// Which way a control transfer goes, with its data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// Device to host: read up to `length` bytes; if `expect` is set, the
    /// answer must start with those bytes.
    In {
        /// Bytes to ask for.
        length: u16,
        /// The answer that means success.
        expect: Option<Vec<u8>>,
    },
    /// Host to device: send the payload.
    Out(Payload),
}

/// One vendor control transfer of a recorder protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlTransfer {
    /// The type field.
    pub request_type: RequestType,
    /// The recipient field.
    pub recipient: Recipient,
    /// `bRequest`.
    pub request: u8,
    /// `wValue`.
    pub value: u16,
    /// `wIndex`.
    pub index: u16,
    /// Direction and data.
    pub direction: Direction,
    /// How long the device may take to answer.
    pub timeout: Duration,
}

/// How a clock reading is encoded in a control transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClockEncoding {
    /// Seconds since 1970-01-01T00:00:00Z, 4 bytes little-endian.
    UnixLeU32,
    /// Seconds since 1970-01-01T00:00:00Z, 8 bytes little-endian.
    UnixLeU64,
    /// Seconds since 1970-01-01T00:00:00Z, 4 bytes big-endian.
    UnixBeU32,
    /// ASCII text of the recorder's wall clock in the profile's time zone,
    /// in the given `time` format (e.g. `[year][month][day][hour][minute][second]`).
    Text(OwnedFormatItem),
}

/// The USB side of a profile.
#[derive(Debug, Clone)]
pub struct UsbSpec {
    /// `idVendor`.
    pub vendor_id: u16,
    /// Accepted `idProduct` values.
    pub product_ids: Vec<u16>,
    /// Where the recorder id comes from.
    pub id_from: IdSource,
    /// The identify request, answered with `key=value` pairs
    /// (`device_id`, `officer_id`, `firmware`, `model`), `;`- or
    /// newline-separated.
    pub identify: Option<ControlTransfer>,
    /// The unlock sequence, run in order before the storage appears.
    pub unlock: Vec<ControlTransfer>,
    /// The clock read request and its encoding.
    pub clock_read: Option<(ControlTransfer, ClockEncoding)>,
    /// The clock set request and its encoding.
    pub clock_set: Option<(ControlTransfer, ClockEncoding)>,
    /// How long to wait for the mass-storage volume after the unlock.
    pub volume_timeout: Duration,
}

impl UsbSpec {
    /// Whether a device with these ids is this profile's.
    pub fn matches(&self, vendor_id: u16, product_id: u16) -> bool {
        self.vendor_id == vendor_id && self.product_ids.contains(&product_id)
    }

    /// Whether the unlock sequence sends the password.
    pub fn needs_password(&self) -> bool {
        self.unlock
            .iter()
            .any(|t| t.direction == Direction::Out(Payload::Password))
    }
}

/// The storage side of a profile.
#[derive(Debug, Clone)]
pub struct StorageSpec {
    /// How the storage appears.
    pub kind: StorageKind,
    /// The directory of the footage, relative to the volume root (`.` for
    /// the root itself). Never absolute, never with `..`.
    pub media_root: PathBuf,
    /// The globs as written (for display).
    pub globs: Vec<String>,
    /// The compiled globs, matched case-insensitively against the path
    /// relative to the media root.
    pub glob_set: GlobSet,
}

impl StorageSpec {
    /// Whether a file at `relative` (to the media root) is footage.
    pub fn is_footage(&self, relative: &Path) -> bool {
        self.glob_set.is_match(relative)
    }
}

/// What a file name says, per the profile's pattern.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameFields {
    /// The recording start, in the recorder's time zone, converted to UTC
    /// (still on the recorder's clock: the dock's offset is not applied).
    pub start: Option<OffsetDateTime>,
    /// The device id.
    pub device: Option<String>,
    /// The officer id.
    pub officer: Option<String>,
}

/// The file-name pattern of a profile.
#[derive(Debug, Clone)]
pub struct NamePattern {
    /// The pattern as written.
    pub text: String,
    regex: Regex,
    start_format: Option<OwnedFormatItem>,
}

impl NamePattern {
    /// Read the fields out of `name` (the file name's raw bytes; no path).
    /// A name that does not match, or a group that is not a valid time,
    /// gives empty fields, never an error: names are outside input.
    pub fn fields(&self, name: &[u8], zone: UtcOffset) -> NameFields {
        let Some(caps) = self.regex.captures(name) else {
            return NameFields::default();
        };
        let text = |group: &str| {
            caps.name(group)
                .and_then(|m| std::str::from_utf8(m.as_bytes()).ok())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let start = match (&self.start_format, text("start")) {
            (Some(format), Some(s)) => PrimitiveDateTime::parse(&s, format)
                .ok()
                .map(|t| t.assume_offset(zone).to_offset(UtcOffset::UTC)),
            _ => None,
        };
        NameFields {
            start,
            device: text("device"),
            officer: text("officer"),
        }
    }

    /// Whether `name` matches at all.
    pub fn is_match(&self, name: &[u8]) -> bool {
        self.regex.is_match(name)
    }
}

/// How the recorder writes the MP4 `creation_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MediaTime {
    /// As the format says: UTC.
    #[default]
    Utc,
    /// The recorder's wall clock labelled as UTC (common in cheap firmware):
    /// the profile's time zone is applied.
    Local,
}

/// How the dock sets the recorder's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClockSet {
    /// It does not.
    None,
    /// Through the profile's USB `clock_set` transfer.
    Usb,
    /// By writing a text file at the volume root, which the recorder reads
    /// when it next starts (many mass-storage-only recorders do this).
    File {
        /// The file, relative to the volume root.
        path: PathBuf,
        /// Its content's `time` format, local time in the profile's zone.
        format: OwnedFormatItem,
    },
}

/// The clock side of a profile.
#[derive(Debug, Clone)]
pub struct ClockSpec {
    /// The recorder's time zone, a fixed offset (China: `+08:00`).
    pub time_zone: UtcOffset,
    /// How the container's creation time is written.
    pub media_time: MediaTime,
    /// How the clock is set.
    pub set: ClockSet,
    /// The clock is set only when it is off by more than this.
    pub tolerance: Duration,
    /// Recording times before this are a reset or never-set clock, not a
    /// recording time (`[clock] earliest_plausible`, default
    /// [`DEFAULT_EARLIEST_PLAUSIBLE`]): not believed, and flagged when
    /// nothing better is known (see [`crate::times`]).
    pub earliest_plausible: OffsetDateTime,
}

/// The default of `[clock] earliest_plausible`: no body-worn recorder in
/// service has footage from before 2015; recorders whose clock was reset
/// say 2000-01-01 or 1970-01-01.
pub const DEFAULT_EARLIEST_PLAUSIBLE: OffsetDateTime =
    time::macros::datetime!(2015-01-01 00:00 UTC);

/// A validated firmware profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile's name (the file's stem).
    pub name: String,
    /// The recorder model it describes (goes into manifests).
    pub model: String,
    /// Free text for operators.
    pub description: String,
    /// How it appears on USB; `None` for directory-only profiles.
    pub usb: Option<UsbSpec>,
    /// Where its footage is.
    pub storage: StorageSpec,
    /// What its file names say.
    pub names: Option<NamePattern>,
    /// Its clock.
    pub clock: ClockSpec,
    /// The file it was read from.
    pub file: PathBuf,
}

impl Profile {
    /// Parse and check `text`, read from `file` (named in errors).
    pub fn parse(text: &str, file: &Path) -> Result<Profile, ProfileError> {
        let invalid = |span: Option<Range<usize>>, reason: String| ProfileError::Invalid {
            file: file.to_owned(),
            // An empty span at 0 is a default value's: no line to point at.
            line: span.filter(|s| s.end > 0).map(|s| line_of(text, s.start)),
            reason,
        };
        let raw: RawProfile =
            toml::from_str(text).map_err(|e| invalid(e.span(), one_line(e.message())))?;
        raw.check(file, &|span, reason| invalid(Some(span), reason))
    }

    /// Read and parse the profile in `file`.
    pub fn load(file: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(file).map_err(|source| ProfileError::Io {
            path: file.to_owned(),
            source,
        })?;
        Profile::parse(&text, file)
    }

    /// How well this profile fits a volume whose footage file names are
    /// `names`: the number that match its pattern (0 without a pattern).
    pub fn fit(&self, names: &[Vec<u8>]) -> usize {
        match &self.names {
            Some(p) => names.iter().filter(|n| p.is_match(n)).count(),
            None => 0,
        }
    }
}

/// Every profile of a directory, by name.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    by_name: BTreeMap<String, Profile>,
    dir: PathBuf,
}

impl Profiles {
    /// Load every `*.toml` in `dir`. Any invalid profile refuses the whole
    /// set: the dock does not start with a profile it cannot trust.
    pub fn load_dir(dir: &Path) -> Result<Profiles, ProfileError> {
        let io = |source| ProfileError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut set = Profiles {
            by_name: BTreeMap::new(),
            dir: dir.to_owned(),
        };
        for file in files {
            set.insert(Profile::load(&file)?)?;
        }
        Ok(set)
    }

    /// A set of the given profiles (tests, embedded use).
    pub fn from_profiles(
        dir: &Path,
        profiles: impl IntoIterator<Item = Profile>,
    ) -> Result<Profiles, ProfileError> {
        let mut set = Profiles {
            by_name: BTreeMap::new(),
            dir: dir.to_owned(),
        };
        for p in profiles {
            set.insert(p)?;
        }
        Ok(set)
    }

    fn insert(&mut self, p: Profile) -> Result<(), ProfileError> {
        if let Some(first) = self.by_name.get(&p.name) {
            return Err(ProfileError::Duplicate {
                name: p.name.clone(),
                first: first.file.clone(),
                second: p.file,
            });
        }
        self.by_name.insert(p.name.clone(), p);
        Ok(())
    }

    /// The profile called `name`.
    pub fn get(&self, name: &str) -> Result<&Profile, ProfileError> {
        self.by_name
            .get(name)
            .ok_or_else(|| ProfileError::NotFound {
                name: name.to_owned(),
                dir: self.dir.clone(),
                available: self.by_name.keys().cloned().collect(),
            })
    }

    /// All profiles, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.by_name.values()
    }

    /// The profile of a USB device with these ids, if any.
    pub fn for_usb(&self, vendor_id: u16, product_id: u16) -> Option<&Profile> {
        self.by_name.values().find(|p| {
            p.usb
                .as_ref()
                .is_some_and(|u| u.matches(vendor_id, product_id))
        })
    }

    /// The profile that fits a volume best, given a listing function that
    /// returns the footage file names under a profile's media root: the one
    /// whose name pattern matches most files (the first by name on a tie),
    /// else the generic profile.
    pub fn best_fit<F>(&self, mut names_under: F) -> Result<&Profile, ProfileError>
    where
        F: FnMut(&Profile) -> Vec<Vec<u8>>,
    {
        let mut best: Option<(&Profile, usize)> = None;
        for p in self.by_name.values().filter(|p| p.names.is_some()) {
            let fit = p.fit(&names_under(p));
            if fit > 0 && best.is_none_or(|(_, b)| fit > b) {
                best = Some((p, fit));
            }
        }
        match best {
            Some((p, _)) => Ok(p),
            None => self.get(GENERIC_PROFILE),
        }
    }
}

/// 1-based line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

// ---------------------------------------------------------------------------
// The TOML shape, with spans for what is checked after parsing.

type Refuse<'a> = dyn Fn(Range<usize>, String) -> ProfileError + 'a;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Spanned<String>,
    model: String,
    #[serde(default)]
    description: String,
    usb: Option<RawUsb>,
    storage: RawStorage,
    names: Option<RawNames>,
    #[serde(default)]
    clock: Option<Spanned<RawClock>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsb {
    vendor_id: u16,
    product_ids: Spanned<Vec<u16>>,
    #[serde(default)]
    id_from: Option<Spanned<String>>,
    identify: Option<Spanned<RawTransfer>>,
    #[serde(default)]
    unlock: Vec<Spanned<RawTransfer>>,
    clock_read: Option<Spanned<RawTransfer>>,
    clock_set: Option<Spanned<RawTransfer>>,
    #[serde(default)]
    clock_encoding: Option<Spanned<String>>,
    #[serde(default)]
    clock_text_format: Option<Spanned<String>>,
    #[serde(default = "default_volume_timeout")]
    volume_timeout_secs: u64,
}

fn default_volume_timeout() -> u64 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransfer {
    #[serde(default = "vendor")]
    request_type: RequestType,
    #[serde(default = "device")]
    recipient: Recipient,
    request: u8,
    #[serde(default)]
    value: u16,
    #[serde(default)]
    index: u16,
    /// IN: bytes to read.
    length: Option<u16>,
    /// IN: expected answer, hex.
    expect: Option<String>,
    /// OUT: `{password}`, `{clock}`, `hex:...` or literal text.
    data: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn vendor() -> RequestType {
    RequestType::Vendor
}
fn device() -> Recipient {
    Recipient::Device
}
fn default_timeout_ms() -> u64 {
    1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    kind: Spanned<String>,
    #[serde(default = "dot")]
    media_root: Spanned<String>,
    globs: Spanned<Vec<String>>,
}

fn dot() -> Spanned<String> {
    Spanned::new(0..0, ".".to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNames {
    pattern: Spanned<String>,
    start_format: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClock {
    #[serde(default = "utc_text")]
    time_zone: Spanned<String>,
    #[serde(default)]
    media_time: MediaTime,
    #[serde(default = "none_text")]
    set: Spanned<String>,
    file: Option<Spanned<String>>,
    file_format: Option<Spanned<String>>,
    #[serde(default = "default_tolerance")]
    tolerance_secs: u64,
    earliest_plausible: Option<Spanned<String>>,
}

fn utc_text() -> Spanned<String> {
    Spanned::new(0..0, "+00:00".to_owned())
}
fn none_text() -> Spanned<String> {
    Spanned::new(0..0, "none".to_owned())
}
fn default_tolerance() -> u64 {
    2
}

impl RawProfile {
    fn check(self, file: &Path, refuse: &Refuse<'_>) -> Result<Profile, ProfileError> {
        let name = self.name.get_ref();
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(refuse(
                self.name.span(),
                format!("name {name:?}: use 1-64 of a-z, 0-9, '-' and '_'"),
            ));
        }
        if !stem.is_empty() && stem != name {
            return Err(refuse(
                self.name.span(),
                format!("name {name:?} differs from the file name {stem:?}.toml; they must agree"),
            ));
        }
        let clock_set_span = self.clock.as_ref().map(|c| c.get_ref().set.span());
        let clock = match self.clock {
            Some(c) => {
                let span = c.span();
                check_clock(c.into_inner(), span, refuse)?
            }
            None => ClockSpec {
                time_zone: UtcOffset::UTC,
                media_time: MediaTime::Utc,
                set: ClockSet::None,
                tolerance: Duration::from_secs(default_tolerance()),
                earliest_plausible: DEFAULT_EARLIEST_PLAUSIBLE,
            },
        };
        let usb = self.usb.map(|u| check_usb(u, refuse)).transpose()?;
        if clock.set == ClockSet::Usb && usb.as_ref().is_none_or(|u| u.clock_set.is_none()) {
            return Err(refuse(
                clock_set_span.unwrap_or(0..0),
                "[clock] set = \"usb\" needs [usb.clock_set]".to_owned(),
            ));
        }
        let kind_span = self.storage.kind.span();
        let storage = check_storage(self.storage, refuse)?;
        if storage.kind == StorageKind::UsbMassStorage && usb.is_none() {
            return Err(refuse(
                kind_span,
                "[storage] kind = \"usb-mass-storage\" needs a [usb] section with the recorder's ids"
                    .to_owned(),
            ));
        }
        let names = self.names.map(|n| check_names(n, refuse)).transpose()?;
        Ok(Profile {
            name: name.clone(),
            model: self.model,
            description: self.description,
            usb,
            storage,
            names,
            clock,
            file: file.to_owned(),
        })
    }
}

fn check_usb(u: RawUsb, refuse: &Refuse<'_>) -> Result<UsbSpec, ProfileError> {
    if u.product_ids.get_ref().is_empty() {
        return Err(refuse(
            u.product_ids.span(),
            "product_ids is empty: list at least one idProduct".into(),
        ));
    }
    let id_from = match u.id_from.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("serial", _)) => IdSource::Serial,
        Some(("identify", span)) => {
            if u.identify.is_none() {
                return Err(refuse(
                    span,
                    "id_from = \"identify\" needs [usb.identify]".into(),
                ));
            }
            IdSource::Identify
        }
        Some(("file-name", _)) => IdSource::FileName,
        Some((other, span)) => {
            return Err(refuse(
                span,
                format!("id_from {other:?}: expected \"serial\", \"identify\" or \"file-name\""),
            ))
        }
    };
    let identify_span = u.identify.as_ref().map(|t| t.span()).unwrap_or(0..0);
    let identify = u
        .identify
        .map(|t| check_transfer(t, false, refuse))
        .transpose()?;
    if let Some(Direction::Out(_)) = identify.as_ref().map(|t| &t.direction) {
        return Err(refuse(
            identify_span,
            "[usb.identify] must be an IN transfer (give `length`)".into(),
        ));
    }
    let unlock = u
        .unlock
        .into_iter()
        .map(|t| check_transfer(t, false, refuse))
        .collect::<Result<Vec<_>, _>>()?;
    let encoding = match &u.clock_encoding {
        None => None,
        Some(e) => Some(check_encoding(e, u.clock_text_format.as_ref(), refuse)?),
    };
    let need_encoding = |span: Range<usize>| {
        refuse(
            span,
            "a clock transfer needs clock_encoding (\"unix-le-u32\", \"unix-le-u64\", \"unix-be-u32\" or \"text\")"
                .into(),
        )
    };
    let clock_read = match u.clock_read {
        None => None,
        Some(t) => {
            let span = t.span();
            let t = check_transfer(t, false, refuse)?;
            if !matches!(t.direction, Direction::In { .. }) {
                return Err(refuse(
                    span,
                    "clock_read must be an IN transfer (give `length`)".into(),
                ));
            }
            Some((t, encoding.clone().ok_or_else(|| need_encoding(span))?))
        }
    };
    let clock_set = match u.clock_set {
        None => None,
        Some(t) => {
            let span = t.span();
            let t = check_transfer(t, true, refuse)?;
            if !matches!(t.direction, Direction::Out(_)) {
                return Err(refuse(
                    span,
                    "clock_set must be an OUT transfer (give `data`)".into(),
                ));
            }
            Some((t, encoding.clone().ok_or_else(|| need_encoding(span))?))
        }
    };
    Ok(UsbSpec {
        vendor_id: u.vendor_id,
        product_ids: u.product_ids.into_inner(),
        id_from,
        identify,
        unlock,
        clock_read,
        clock_set,
        volume_timeout: Duration::from_secs(u.volume_timeout_secs),
    })
}

fn check_encoding(
    e: &Spanned<String>,
    text_format: Option<&Spanned<String>>,
    refuse: &Refuse<'_>,
) -> Result<ClockEncoding, ProfileError> {
    Ok(match e.get_ref().as_str() {
        "unix-le-u32" => ClockEncoding::UnixLeU32,
        "unix-le-u64" => ClockEncoding::UnixLeU64,
        "unix-be-u32" => ClockEncoding::UnixBeU32,
        "text" => {
            let Some(f) = text_format else {
                return Err(refuse(
                    e.span(),
                    "clock_encoding = \"text\" needs clock_text_format".into(),
                ));
            };
            ClockEncoding::Text(check_time_format(f, refuse)?)
        }
        other => {
            return Err(refuse(
                e.span(),
                format!("clock_encoding {other:?}: expected \"unix-le-u32\", \"unix-le-u64\", \"unix-be-u32\" or \"text\""),
            ))
        }
    })
}

fn check_transfer(
    t: Spanned<RawTransfer>,
    clock_allowed: bool,
    refuse: &Refuse<'_>,
) -> Result<ControlTransfer, ProfileError> {
    let span = t.span();
    let t = t.into_inner();
    let direction = match (t.length, &t.data) {
        (Some(_), Some(_)) => {
            return Err(refuse(
                span,
                "a transfer has either `length` (IN) or `data` (OUT), not both".into(),
            ))
        }
        (Some(length), None) => {
            if length == 0 || length > MAX_TRANSFER_LEN {
                return Err(refuse(
                    span,
                    format!("length {length}: expected 1 to {MAX_TRANSFER_LEN}"),
                ));
            }
            let expect = t
                .expect
                .as_deref()
                .map(|h| {
                    hex::decode(h.trim())
                        .map_err(|_| refuse(span.clone(), format!("expect {h:?} is not hex bytes")))
                })
                .transpose()?;
            Direction::In { length, expect }
        }
        (None, data) => {
            if t.expect.is_some() {
                return Err(refuse(
                    span,
                    "`expect` needs an IN transfer (`length`)".into(),
                ));
            }
            let data = data.as_deref().unwrap_or("");
            let payload = match data {
                "{password}" => Payload::Password,
                "{clock}" if clock_allowed => Payload::Clock,
                "{clock}" => {
                    return Err(refuse(
                        span,
                        "{clock} is only meaningful in clock_set".into(),
                    ))
                }
                d if d.starts_with("hex:") => {
                    Payload::Bytes(hex::decode(&d[4..]).map_err(|_| {
                        refuse(span.clone(), format!("data {d:?} is not hex after 'hex:'"))
                    })?)
                }
                d if d.contains('{') => {
                    return Err(refuse(
                        span,
                        format!(
                            "data {d:?}: the placeholders are {{password}} and {{clock}}, alone"
                        ),
                    ))
                }
                d => Payload::Bytes(d.as_bytes().to_vec()),
            };
            if let Payload::Bytes(b) = &payload {
                if b.len() > usize::from(MAX_TRANSFER_LEN) {
                    return Err(refuse(
                        span,
                        format!("data is longer than {MAX_TRANSFER_LEN} bytes"),
                    ));
                }
            }
            Direction::Out(payload)
        }
    };
    if t.timeout_ms == 0 || t.timeout_ms > 60_000 {
        return Err(refuse(
            span,
            format!("timeout_ms {}: expected 1 to 60000", t.timeout_ms),
        ));
    }
    Ok(ControlTransfer {
        request_type: t.request_type,
        recipient: t.recipient,
        request: t.request,
        value: t.value,
        index: t.index,
        direction,
        timeout: Duration::from_millis(t.timeout_ms),
    })
}

fn check_storage(s: RawStorage, refuse: &Refuse<'_>) -> Result<StorageSpec, ProfileError> {
    let kind = match s.kind.get_ref().as_str() {
        "usb-mass-storage" => StorageKind::UsbMassStorage,
        "directory" => StorageKind::Directory,
        other => {
            return Err(refuse(
                s.kind.span(),
                format!("storage kind {other:?}: expected \"usb-mass-storage\" or \"directory\""),
            ))
        }
    };
    let root = PathBuf::from(s.media_root.get_ref());
    let safe = root
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !safe || s.media_root.get_ref().is_empty() {
        return Err(refuse(
            s.media_root.span(),
            format!(
                "media_root {:?} must be a relative path inside the volume (no '/', no '..')",
                s.media_root.get_ref()
            ),
        ));
    }
    if s.globs.get_ref().is_empty() {
        return Err(refuse(
            s.globs.span(),
            "globs is empty: list the footage files, e.g. \"**/*.MP4\"".into(),
        ));
    }
    let mut builder = GlobSetBuilder::new();
    for g in s.globs.get_ref() {
        let glob = GlobBuilder::new(g)
            .case_insensitive(true)
            .literal_separator(true)
            .build()
            .map_err(|e| refuse(s.globs.span(), format!("glob {g:?}: {e}")))?;
        builder.add(glob);
    }
    let glob_set = builder
        .build()
        .map_err(|e| refuse(s.globs.span(), format!("globs: {e}")))?;
    Ok(StorageSpec {
        kind,
        media_root: root,
        globs: s.globs.into_inner(),
        glob_set,
    })
}

fn check_names(n: RawNames, refuse: &Refuse<'_>) -> Result<NamePattern, ProfileError> {
    let regex = Regex::new(n.pattern.get_ref()).map_err(|e| {
        refuse(
            n.pattern.span(),
            format!("pattern is not a valid regex: {}", one_line(&e.to_string())),
        )
    })?;
    let groups: Vec<&str> = regex.capture_names().flatten().collect();
    for g in &groups {
        if !["start", "device", "officer"].contains(g) {
            return Err(refuse(
                n.pattern.span(),
                format!("pattern group {g:?}: the groups are start, device and officer"),
            ));
        }
    }
    let start_format = match (&n.start_format, groups.contains(&"start")) {
        (Some(f), true) => Some(check_time_format(f, refuse)?),
        (None, true) => {
            return Err(refuse(
                n.pattern.span(),
                "the pattern has a `start` group but [names] has no start_format".into(),
            ))
        }
        (Some(f), false) => {
            return Err(refuse(
                f.span(),
                "start_format is set but the pattern has no `start` group".into(),
            ))
        }
        (None, false) => None,
    };
    Ok(NamePattern {
        text: n.pattern.into_inner(),
        regex,
        start_format,
    })
}

fn check_time_format(
    f: &Spanned<String>,
    refuse: &Refuse<'_>,
) -> Result<OwnedFormatItem, ProfileError> {
    let format = time::format_description::parse_owned::<2>(f.get_ref()).map_err(|e| {
        refuse(
            f.span(),
            format!(
                "time format {:?}: {e} (write e.g. \"[year][month][day][hour][minute][second]\")",
                f.get_ref()
            ),
        )
    })?;
    // The format must give a whole date and time: try it on a known instant.
    let probe = time::macros::datetime!(2024-05-01 08:30:00);
    let text = probe.format(&format).map_err(|e| {
        refuse(
            f.span(),
            format!("time format {:?} cannot be written: {e}", f.get_ref()),
        )
    })?;
    match PrimitiveDateTime::parse(&text, &format) {
        Ok(back) if back == probe => Ok(format),
        _ => Err(refuse(
            f.span(),
            format!(
                "time format {:?} does not give a whole date and time to the second",
                f.get_ref()
            ),
        )),
    }
}

fn check_clock(
    c: RawClock,
    span: Range<usize>,
    refuse: &Refuse<'_>,
) -> Result<ClockSpec, ProfileError> {
    let tz_fmt = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    let time_zone = UtcOffset::parse(c.time_zone.get_ref(), &tz_fmt).map_err(|_| {
        refuse(
            c.time_zone.span(),
            format!(
                "time_zone {:?}: expected a fixed offset such as \"+08:00\"",
                c.time_zone.get_ref()
            ),
        )
    })?;
    let set = match c.set.get_ref().as_str() {
        "none" => ClockSet::None,
        "usb" => ClockSet::Usb,
        "file" => {
            let (Some(file), Some(format)) = (&c.file, &c.file_format) else {
                return Err(refuse(
                    c.set.span(),
                    "set = \"file\" needs `file` and `file_format`".into(),
                ));
            };
            let path = PathBuf::from(file.get_ref());
            let safe = path.components().count() == 1
                && matches!(path.components().next(), Some(Component::Normal(_)));
            if !safe {
                return Err(refuse(
                    file.span(),
                    format!(
                        "clock file {:?} must be a plain file name at the volume root",
                        file.get_ref()
                    ),
                ));
            }
            ClockSet::File {
                path,
                format: check_time_format(format, refuse)?,
            }
        }
        other => {
            return Err(refuse(
                if c.set.span().is_empty() {
                    span
                } else {
                    c.set.span()
                },
                format!("set {other:?}: expected \"none\", \"usb\" or \"file\""),
            ))
        }
    };
    let earliest_plausible = match &c.earliest_plausible {
        None => DEFAULT_EARLIEST_PLAUSIBLE,
        Some(text) => {
            let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(text.get_ref(), &date_fmt)
                .ok()
                .filter(|d| (1970..=9999).contains(&d.year()))
                .map(|d| d.midnight().assume_utc())
                .ok_or_else(|| {
                    refuse(
                        text.span(),
                        format!(
                            "earliest_plausible {:?}: expected a date such as \"2015-01-01\" (UTC), from 1970 on",
                            text.get_ref()
                        ),
                    )
                })?
        }
    };
    Ok(ClockSpec {
        time_zone,
        media_time: c.media_time,
        set,
        tolerance: Duration::from_secs(c.tolerance_secs),
        earliest_plausible,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageKind::UsbMassStorage => "usb-mass-storage",
            StorageKind::Directory => "directory",
        })
    }
}
