//! The signed segment manifest: what a dock attests about one recording.
//!
//! For every segment it takes off a recorder, the dock writes a [`Manifest`]
//! (who recorded it, where it came from, how big it is, its digests, when it
//! was recorded and ingested, what the media looked like, where it is
//! stored), serialises it as RFC 8785 canonical JSON and signs that as a
//! DSSE envelope with payload type [`MANIFEST_PAYLOAD_TYPE`]. The field names
//! are fixed by DESIGN.md ("Formats") so that any tool can read them.
//!
//! Reading is strict where it matters and lenient where it must be:
//!
//! - the payload must be canonical JSON ([`crate::canonical`]), so a signed
//!   manifest has exactly one spelling;
//! - optional fields are either present with a value or absent, never
//!   `null` (except `media.damaged` and `media.duration_ms`, which are
//!   always present and `null` when there is nothing to say);
//! - unknown fields are *ignored*, so that a verifier built today can still
//!   open the signed manifests of a later version that adds fields (the
//!   signature covers the payload bytes, which are kept in the envelope);
//! - [`Manifest::validate`] checks what the fields must agree on.
//!
//! Times are [`Timestamp`]s: UTC instants written in one RFC 3339 form.
//!
//! This module never reads a clock or a file: the dock passes in the times
//! and names it observed.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::canonical::{self, CanonicalError};
use crate::digest::{Algorithm, Digests};
use crate::dsse::{DsseError, Envelope, MANIFEST_PAYLOAD_TYPE};
use crate::keys::{Signers, VerifierKey};

/// A segment ingested more than this long after its recording ended is
/// flagged `late`: the rules require footage to reach the system within 24 h.
pub const LATE_AFTER: Duration = Duration::hours(24);

/// Whether an ingest at `ingested_at` of a recording that ended at
/// `recorded_end` is late: strictly more than [`LATE_AFTER`] after it.
pub fn is_late(recorded_end: Timestamp, ingested_at: Timestamp) -> bool {
    ingested_at.0 - recorded_end.0 > LATE_AFTER
}

// ---------------------------------------------------------------------------
// Timestamp

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The text is not an RFC 3339 date-time.
    #[error("{0:?} is not an RFC 3339 date-time (expected e.g. 2024-05-01T08:30:00Z)")]
    Syntax(String),
    /// The text is RFC 3339 but not in the one form Custos writes: UTC with
    /// `Z`, upper-case `T`, and a fraction without trailing zeros.
    #[error("{given:?} is not in canonical form; write it as {canonical:?} (UTC, 'Z', no trailing zeros)")]
    NotCanonical {
        /// The text given.
        given: String,
        /// The same instant in canonical form.
        canonical: String,
    },
    /// The instant is outside years 0000 to 9999, which RFC 3339 cannot write.
    #[error("instant is outside the years 0000-9999 that RFC 3339 can express")]
    OutOfRange,
}

/// A UTC instant with nanosecond precision, written as RFC 3339 with `Z`
/// (`2024-05-01T08:30:00Z`, `2024-05-01T08:30:00.25Z`).
///
/// Each instant has exactly one text form, and only that form parses, so a
/// timestamp inside canonical JSON cannot be spelt two ways.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(
    // INVARIANT: offset is UTC and the year is within 0..=9999, so
    // formatting as RFC 3339 cannot fail.
    OffsetDateTime,
);

impl Timestamp {
    /// The instant `datetime` denotes, in UTC.
    pub fn from_offset_datetime(datetime: OffsetDateTime) -> Result<Self, TimestampError> {
        let utc = datetime.to_offset(UtcOffset::UTC);
        if !(0..=9999).contains(&utc.year()) {
            return Err(TimestampError::OutOfRange);
        }
        Ok(Timestamp(utc))
    }

    /// The instant `nanos` nanoseconds after 1970-01-01T00:00:00Z.
    pub fn from_unix_nanos(nanos: i128) -> Result<Self, TimestampError> {
        let datetime = OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| TimestampError::OutOfRange)?;
        Self::from_offset_datetime(datetime)
    }

    /// The instant `seconds` seconds after 1970-01-01T00:00:00Z.
    pub fn from_unix_seconds(seconds: i64) -> Result<Self, TimestampError> {
        let datetime =
            OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| TimestampError::OutOfRange)?;
        Self::from_offset_datetime(datetime)
    }

    /// Parse the canonical RFC 3339 form (see the type's documentation).
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let datetime = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| TimestampError::Syntax(text.to_owned()))?;
        let ts = Self::from_offset_datetime(datetime)?;
        let canonical = ts.to_string();
        if canonical != text {
            return Err(TimestampError::NotCanonical {
                given: text.to_owned(),
                canonical,
            });
        }
        Ok(ts)
    }

    /// The instant as a `time` value (UTC offset).
    pub fn to_offset_datetime(self) -> OffsetDateTime {
        self.0
    }

    /// Nanoseconds since 1970-01-01T00:00:00Z.
    pub fn unix_nanos(self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// Whole seconds since 1970-01-01T00:00:00Z (rounded down).
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// `self + duration`, or `None` outside the representable years.
    pub fn checked_add(self, duration: Duration) -> Option<Self> {
        self.0
            .checked_add(duration)
            .and_then(|t| Self::from_offset_datetime(t).ok())
    }

    /// `self - earlier` (negative when `earlier` is later).
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        self.0 - earlier.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // INVARIANT: UTC and year 0..=9999 (see the field), so this succeeds;
        // should it not, the formatter error is passed on, not hidden.
        let text = self.0.format(&Rfc3339).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl TryFrom<OffsetDateTime> for Timestamp {
    type Error = TimestampError;
    fn try_from(datetime: OffsetDateTime) -> Result<Self, Self::Error> {
        Timestamp::from_offset_datetime(datetime)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Original name

/// The segment's file name as the recorder reported it.
///
/// Recorders are outside input: their names may not be UTF-8. A UTF-8 name
/// is written as a JSON string; any other is written as
/// `{"base64": "<standard base64 of the bytes>"}` so that no byte is lost.
/// Use [`OriginalName::from_os_bytes`] to choose the variant; a name read
/// from JSON keeps the form it was written in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OriginalName {
    /// A name that is valid UTF-8.
    Utf8(String),
    /// A name that is not valid UTF-8, as raw bytes.
    Bytes(Vec<u8>),
}

impl OriginalName {
    /// The name from the raw bytes the recorder's file system gave:
    /// [`OriginalName::Utf8`] when they are valid UTF-8, else
    /// [`OriginalName::Bytes`].
    pub fn from_os_bytes(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => OriginalName::Utf8(text.to_owned()),
            Err(_) => OriginalName::Bytes(bytes.to_vec()),
        }
    }

    /// The raw bytes of the name.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            OriginalName::Utf8(text) => text.as_bytes(),
            OriginalName::Bytes(bytes) => bytes,
        }
    }

    /// The name for display: invalid UTF-8 sequences become U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

impl Serialize for OriginalName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OriginalName::Utf8(text) => serializer.serialize_str(text),
            OriginalName::Bytes(bytes) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("base64", &STANDARD.encode(bytes))?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for OriginalName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = OriginalName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a file name string or {\"base64\": \"...\"}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OriginalName, E> {
                Ok(OriginalName::Utf8(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OriginalName, A::Error> {
                let mut encoded: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "base64" {
                        return Err(de::Error::unknown_field(&key, &["base64"]));
                    }
                    if encoded.is_some() {
                        return Err(de::Error::duplicate_field("base64"));
                    }
                    encoded = Some(map.next_value()?);
                }
                let encoded = encoded.ok_or_else(|| de::Error::missing_field("base64"))?;
                let bytes = STANDARD.decode(&encoded).map_err(|_| {
                    de::Error::custom("original_name.base64 is not valid standard base64")
                })?;
                Ok(OriginalName::Bytes(bytes))
            }
        }
        deserializer.deserialize_any(NameVisitor)
    }
}

// ---------------------------------------------------------------------------
// The manifest

/// The recorder a segment came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorder {
    /// The recorder's serial number or device id.
    pub id: String,
    /// Its model, as the firmware profile names it.
    pub model: String,
    /// The firmware profile used to talk to it.
    pub profile: String,
}

/// The docking station that ingested the segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dock {
    /// The station id (`[dock] id`).
    pub id: String,
    /// Recorder clock minus dock clock at docking, in milliseconds
    /// (positive: the recorder runs ahead).
    pub clock_offset_ms: i64,
}

/// Where the recording times in [`Recorded`] came from, best first.
///
/// Written as `<origin>` or `<origin>+implausible` (`media`, `file_name`,
/// `file_time`, `file_time+implausible`). The `+implausible` flag says the
/// times are outside what the recorder's profile accepts as plausible
/// (before its earliest plausible date, or more than a day after the
/// dock's clock): a recorder whose clock was reset or is wrong. Such
/// times are reported as read, never trusted (for retention, for `late`
/// judgements by a person). Only the file time carries the flag: the media
/// and file-name times are used only when plausible, and the file time is
/// the last resort. Manifests written before the flag existed never hold it
/// and read as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// The container's own creation time and duration.
    Media,
    /// A time stamp in the recorder's file name (per the firmware profile).
    FileName,
    /// The file's modification time on the recorder.
    FileTime,
    /// The file's modification time on the recorder, which is not
    /// plausible (see the type's documentation).
    #[serde(rename = "file_time+implausible")]
    FileTimeImplausible,
}

impl TimeSource {
    /// Whether the times are flagged as implausible (`+implausible`).
    pub fn is_implausible(self) -> bool {
        matches!(self, TimeSource::FileTimeImplausible)
    }

    /// Where the times came from, without the flag.
    pub fn origin(self) -> TimeSource {
        match self {
            TimeSource::FileTimeImplausible => TimeSource::FileTime,
            other => other,
        }
    }
}

/// When the segment was recorded, in UTC, corrected by the dock's clock offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Start of the recording.
    pub start: Timestamp,
    /// End of the recording.
    pub end: Timestamp,
    /// Where `start` and `end` came from.
    pub source: TimeSource,
}

/// What kind of data a stream carries (FFmpeg's media types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Video.
    Video,
    /// Audio.
    Audio,
    /// Subtitles.
    Subtitle,
    /// Timed data (GPS, telemetry).
    Data,
    /// An attachment (fonts, cover art).
    Attachment,
    /// Anything FFmpeg could not classify.
    Other,
}

/// One stream of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    /// The stream's index in the container.
    pub index: u32,
    /// What it carries.
    pub kind: StreamKind,
    /// The codec's short name (`h264`, `aac`, ...).
    pub codec: String,
    /// Frame width in pixels (video).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub width: Option<u32>,
    /// Frame height in pixels (video).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub height: Option<u32>,
    /// Samples per second (audio).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub sample_rate: Option<u32>,
    /// Channel count (audio).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub channels: Option<u32>,
}

/// The media probe's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// The container format (FFmpeg's short name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`).
    pub container: String,
    /// Duration in milliseconds; `null` when the probe could not tell.
    #[serde(deserialize_with = "Option::deserialize")]
    pub duration_ms: Option<u64>,
    /// The container's streams.
    pub streams: Vec<Stream>,
    /// `null` for an intact file, else why it is truncated or corrupt.
    /// A damaged segment is still ingested: evidence is never dropped.
    #[serde(deserialize_with = "Option::deserialize")]
    pub damaged: Option<String>,
}

impl Media {
    /// The container's name as people know it (`MP4` for FFmpeg's
    /// `mov,mp4,m4a,3gp,3g2,mj2`), or FFmpeg's own name when it is none of
    /// the formats recorders write.
    pub fn container_label(&self) -> &str {
        let c = self.container.to_ascii_lowercase();
        let split: Vec<&str> = c.split(',').map(str::trim).collect();
        let has = |name: &str| split.contains(&name);
        if has("mp4") {
            "MP4"
        } else if has("mov") {
            "QuickTime MOV"
        } else if has("webm") && has("matroska") {
            "Matroska / WebM"
        } else if has("matroska") {
            "Matroska"
        } else if has("avi") {
            "AVI"
        } else if has("mpegts") {
            "MPEG-TS"
        } else if has("mpeg") {
            "MPEG-PS"
        } else {
            &self.container
        }
    }
}

/// Where the segment's bytes are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The store's URL (`s3://bucket/prefix`, `file:///...`).
    pub url: String,
    /// The object key within the store.
    pub key: String,
}

/// The segment manifest, field for field as DESIGN.md names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The segment's id, unique across the system.
    pub segment_id: String,
    /// The recorder it came from.
    pub recorder: Recorder,
    /// The officer the recorder was assigned to.
    pub officer_id: String,
    /// The dock that ingested it.
    pub dock: Dock,
    /// The file name on the recorder.
    pub original_name: OriginalName,
    /// Size in bytes.
    pub size: u64,
    /// Digests of the bytes (`sha256`, and `sm3` where enabled).
    pub digests: Digests,
    /// When it was recorded.
    pub recorded: Recorded,
    /// The media summary.
    pub media: Media,
    /// When the dock finished reading it (the dock's clock, UTC).
    pub ingested_at: Timestamp,
    /// Where it is stored.
    pub object: ObjectRef,
    /// Whether it was ingested more than 24 h after the recording ended
    /// (see [`is_late`]).
    pub late: bool,
}

/// Why a manifest could not be written, read or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The manifest bytes are not canonical JSON of the manifest's shape,
    /// or the manifest holds a number that cannot be written exactly.
    #[error("manifest: {0}")]
    Canonical(#[from] CanonicalError),
    /// The envelope did not verify, or is not a manifest envelope.
    #[error("signed manifest: {0}")]
    Dsse(#[from] DsseError),
    /// A field that identifies something is empty.
    #[error("manifest field {0} is empty")]
    EmptyField(&'static str),
    /// `recorded.start` is after `recorded.end`.
    #[error("manifest recorded.start {start} is after recorded.end {end}")]
    TimeOrder {
        /// The start.
        start: Timestamp,
        /// The end.
        end: Timestamp,
    },
    /// `late` disagrees with `recorded.end` and `ingested_at`.
    #[error("manifest says late = {late}, but it was ingested {ingest_delay} after the recording ended (late means more than 24 h)")]
    LateMismatch {
        /// The flag as written.
        late: bool,
        /// `ingested_at - recorded.end`.
        ingest_delay: Duration,
    },
    /// A digest is filed under the wrong algorithm (e.g. an SM3 value in `sha256`).
    #[error("manifest field {field} holds a {found} digest")]
    DigestAlgorithm {
        /// The field.
        field: &'static str,
        /// The algorithm of the digest found there.
        found: Algorithm,
    },
}

impl Manifest {
    /// The manifest as RFC 8785 canonical JSON: the DSSE payload.
    pub fn to_canonical(&self) -> Result<Vec<u8>, ManifestError> {
        Ok(canonical::to_canonical_vec(self)?)
    }

    /// Read a manifest from canonical JSON bytes and [`validate`](Self::validate) it.
    /// Unknown fields are ignored (see the module documentation).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = canonical::from_canonical_slice(bytes)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Check what the fields must agree on: identifying fields are not
    /// empty, the recording does not end before it starts, `late` matches
    /// [`is_late`], and each digest is filed under its own algorithm.
    pub fn validate(&self) -> Result<(), ManifestError> {
        for (field, value) in [
            ("segment_id", &self.segment_id),
            ("recorder.id", &self.recorder.id),
            ("dock.id", &self.dock.id),
            ("object.url", &self.object.url),
            ("object.key", &self.object.key),
        ] {
            if value.is_empty() {
                return Err(ManifestError::EmptyField(field));
            }
        }
        if self.recorded.start > self.recorded.end {
            return Err(ManifestError::TimeOrder {
                start: self.recorded.start,
                end: self.recorded.end,
            });
        }
        if self.late != is_late(self.recorded.end, self.ingested_at) {
            return Err(ManifestError::LateMismatch {
                late: self.late,
                ingest_delay: self.ingested_at.duration_since(self.recorded.end),
            });
        }
        if self.digests.sha256.algorithm() != Algorithm::Sha256 {
            return Err(ManifestError::DigestAlgorithm {
                field: "digests.sha256",
                found: self.digests.sha256.algorithm(),
            });
        }
        if let Some(sm3) = self.digests.sm3 {
            if sm3.algorithm() != Algorithm::Sm3 {
                return Err(ManifestError::DigestAlgorithm {
                    field: "digests.sm3",
                    found: sm3.algorithm(),
                });
            }
        }
        Ok(())
    }

    /// Validate, then sign the canonical JSON with `key` as a DSSE envelope
    /// of type [`MANIFEST_PAYLOAD_TYPE`].
    pub fn sign(&self, key: &(impl Signers + ?Sized)) -> Result<Envelope, ManifestError> {
        self.validate()?;
        let payload = self.to_canonical()?;
        Ok(Envelope::sign(
            MANIFEST_PAYLOAD_TYPE,
            payload,
            &key.signing_keys(),
        )?)
    }
}

/// A manifest whose envelope verified under a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    /// The manifest, parsed from the envelope's payload.
    pub manifest: Manifest,
    /// Key ids (`name+hash`) of the trusted keys that signed it.
    pub signers: Vec<String>,
    /// The envelope as received; its payload holds the exact signed bytes.
    pub envelope: Envelope,
}

impl SignedManifest {
    /// Verify `envelope` under the `trusted` keys, check that it is a
    /// manifest envelope, and parse and validate its payload.
    pub fn open(envelope: Envelope, trusted: &[VerifierKey]) -> Result<Self, ManifestError> {
        let signers = envelope.verify_for(MANIFEST_PAYLOAD_TYPE, trusted)?;
        let manifest = Manifest::parse(&envelope.payload)?;
        Ok(SignedManifest {
            manifest,
            signers,
            envelope,
        })
    }
}

/// Deserialise an optional field that, when present, must hold a value
/// (not `null`): absent and `null` would otherwise be two spellings of `None`.
fn some<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn timestamp_has_one_spelling() {
        for good in [
            "2024-05-01T08:30:00Z",
            "2024-05-01T08:30:00.25Z",
            "2024-05-01T08:30:00.123456789Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
        ] {
            assert_eq!(ts(good).to_string(), good);
        }
        for (bad, canonical) in [
            ("2024-05-01T08:30:00+00:00", "2024-05-01T08:30:00Z"),
            ("2024-05-01T10:30:00+02:00", "2024-05-01T08:30:00Z"),
            ("2024-05-01t08:30:00z", "2024-05-01T08:30:00Z"),
            ("2024-05-01T08:30:00.250Z", "2024-05-01T08:30:00.25Z"),
            ("2024-05-01T08:30:00.0Z", "2024-05-01T08:30:00Z"),
            ("2024-05-01 08:30:00Z", "2024-05-01T08:30:00Z"),
        ] {
            match Timestamp::parse(bad) {
                Err(TimestampError::NotCanonical { canonical: c, .. }) => assert_eq!(c, canonical),
                other => panic!("{bad}: {other:?}"),
            }
        }
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T08:30:00",
            "2024-13-01T00:00:00Z",
            "yesterday",
        ] {
            assert!(
                matches!(Timestamp::parse(bad), Err(TimestampError::Syntax(_))),
                "{bad}"
            );
        }
        // A leap second parses in `time` as 23:59:59.999999999, which is not
        // the text given: refused rather than silently moved.
        assert!(Timestamp::parse("2016-12-31T23:59:60Z").is_err());
        assert_eq!(
            Timestamp::from_unix_seconds(253_402_300_800),
            Err(TimestampError::OutOfRange)
        );
    }

    #[test]
    fn time_sources_read_old_and_flagged_forms() {
        for (text, source) in [
            ("\"media\"", TimeSource::Media),
            ("\"file_name\"", TimeSource::FileName),
            ("\"file_time\"", TimeSource::FileTime),
            ("\"file_time+implausible\"", TimeSource::FileTimeImplausible),
        ] {
            assert_eq!(serde_json::from_str::<TimeSource>(text).unwrap(), source);
            assert_eq!(serde_json::to_string(&source).unwrap(), text);
        }
        assert!(TimeSource::FileTimeImplausible.is_implausible());
        assert_eq!(
            TimeSource::FileTimeImplausible.origin(),
            TimeSource::FileTime
        );
        assert!(!TimeSource::Media.is_implausible());
        for bad in ["\"implausible\"", "\"media+implausible\"", "\"file_time+\""] {
            assert!(serde_json::from_str::<TimeSource>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn late_is_strictly_more_than_24_hours() {
        let end = ts("2024-05-01T08:00:00Z");
        assert!(!is_late(end, ts("2024-05-02T08:00:00Z")));
        assert!(is_late(end, ts("2024-05-02T08:00:00.000000001Z")));
        assert!(!is_late(end, ts("2024-04-30T08:00:00Z")));
    }

    #[test]
    fn original_name_forms() {
        let utf8 = OriginalName::from_os_bytes("录像_0001.MP4".as_bytes());
        assert_eq!(serde_json::to_string(&utf8).unwrap(), "\"录像_0001.MP4\"");
        let raw = OriginalName::from_os_bytes(b"CAM\xff\xfe.MP4");
        assert_eq!(raw, OriginalName::Bytes(b"CAM\xff\xfe.MP4".to_vec()));
        let json = serde_json::to_string(&raw).unwrap();
        assert_eq!(json, r#"{"base64":"Q0FN//4uTVA0"}"#);
        assert_eq!(serde_json::from_str::<OriginalName>(&json).unwrap(), raw);
        assert_eq!(raw.to_string_lossy(), "CAM\u{fffd}\u{fffd}.MP4");
        for bad in [
            r#"{"base64":"!!"}"#,
            r#"{"hex":"00"}"#,
            r#"{}"#,
            "3",
            "null",
        ] {
            assert!(serde_json::from_str::<OriginalName>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn containers_have_the_names_people_know() {
        let label = |c: &str| {
            Media {
                container: c.into(),
                duration_ms: None,
                streams: Vec::new(),
                damaged: None,
            }
            .container_label()
            .to_owned()
        };
        assert_eq!(label("mov,mp4,m4a,3gp,3g2,mj2"), "MP4");
        assert_eq!(label("matroska,webm"), "Matroska / WebM");
        assert_eq!(label("mpegts"), "MPEG-TS");
        assert_eq!(label("avi"), "AVI");
        assert_eq!(label("h264"), "h264");
    }
}
