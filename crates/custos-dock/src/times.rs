//! When a segment was recorded, from the best source there is: the media's
//! own creation time, else the time in the file name, else the file's
//! modification time — each read on the recorder's clock and corrected by
//! the clock offset measured at docking (DESIGN.md, manifest `recorded`).
//!
//! A source is believed only if, corrected, it falls on or after the
//! profile's `[clock] earliest_plausible` (default 2015-01-01: a recorder
//! whose clock was reset or never set says 2000 or 1970) and not after the
//! dock's own "now" plus a day. The file time is the last resort; when it
//! is not plausible either, it is still what the manifest says, but
//! flagged: `recorded.source` is `file_time+implausible`
//! ([`TimeSource::FileTimeImplausible`]), so that no one — the ledger's
//! retention least of all — takes a reset clock for a recording date.
//! This module is pure: the caller passes every reading and the dock's
//! clock.

use custos_core::manifest::{Recorded, TimeSource, Timestamp};
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::profile::{ClockSpec, MediaTime, NameFields};

/// How far after the dock's own clock a recorder time may lie and still be
/// believed (clock drift, time zones mislabelled by a few hours).
pub const FUTURE_SLACK: Duration = Duration::days(1);

/// What is known about one segment's times, all on the recorder's clock.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    /// The container's creation time.
    pub media_start: Option<custos_media::CreationTime>,
    /// The duration the container declares.
    pub duration_ms: Option<u64>,
    /// What the file name says.
    pub name: NameFields,
    /// The file's modification time, ns since the epoch.
    pub mtime_ns: i128,
}

/// The recording's start and end in UTC on the dock's clock, and their source.
pub fn recorded(
    readings: &Readings,
    clock: &ClockSpec,
    offset_ms: i64,
    now: OffsetDateTime,
) -> Recorded {
    let offset = Duration::milliseconds(offset_ms);
    let duration = readings
        .duration_ms
        .and_then(|ms| i64::try_from(ms).ok())
        .map(Duration::milliseconds)
        .unwrap_or(Duration::ZERO);
    let plausible = |t: OffsetDateTime| t >= clock.earliest_plausible && t <= now + FUTURE_SLACK;
    let media = readings.media_start.as_ref().map(|c| {
        match clock.media_time {
            // Labelled UTC but really the wall clock: read it as local time.
            MediaTime::Local => c.local.assume_offset(clock.time_zone),
            MediaTime::Utc => c.instant(UtcOffset::UTC),
        }
    });
    let mtime = OffsetDateTime::from_unix_timestamp_nanos(readings.mtime_ns).ok();

    let (start, end, source) = if let Some(s) = media.map(|t| t - offset).filter(|t| plausible(*t))
    {
        (s, s + duration, TimeSource::Media)
    } else if let Some(s) = readings
        .name
        .start
        .map(|t| t - offset)
        .filter(|t| plausible(*t))
    {
        (s, s + duration, TimeSource::FileName)
    } else {
        // The file was last written when the recording ended.
        let end = mtime.map(|t| t - offset);
        let source = match end {
            Some(t) if plausible(t) => TimeSource::FileTime,
            _ => TimeSource::FileTimeImplausible,
        };
        let end = end.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        (end - duration, end, source)
    };
    let ts = |t: OffsetDateTime| {
        Timestamp::from_offset_datetime(t).unwrap_or_else(|_| {
            // Outside years 0-9999 only through a hostile file time.
            Timestamp::from_unix_seconds(0).unwrap_or_else(|_| unreachable_epoch())
        })
    };
    let (start, end) = (ts(start), ts(end));
    Recorded {
        start: start.min(end),
        end,
        source,
    }
}

fn unreachable_epoch() -> Timestamp {
    // INVARIANT: the epoch is within years 0-9999.
    Timestamp::from_unix_seconds(0).expect("INVARIANT: the epoch is representable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ClockSet;
    use time::macros::{datetime, offset};

    fn clock(media_time: MediaTime) -> ClockSpec {
        ClockSpec {
            time_zone: offset!(+08:00),
            media_time,
            set: ClockSet::None,
            tolerance: std::time::Duration::from_secs(2),
            earliest_plausible: crate::profile::DEFAULT_EARLIEST_PLAUSIBLE,
        }
    }

    fn creation(text: &str) -> custos_media::CreationTime {
        let t =
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
        custos_media::CreationTime {
            raw: text.into(),
            local: time::PrimitiveDateTime::new(t.date(), t.time()),
            offset: Some(t.offset()),
        }
    }

    const NOW: OffsetDateTime = datetime!(2024-05-02 00:00 UTC);

    #[test]
    fn media_first_corrected_by_the_offset() {
        let r = Readings {
            media_start: Some(creation("2024-05-01T08:30:10Z")),
            duration_ms: Some(60_000),
            name: NameFields {
                start: Some(datetime!(2024-05-01 08:00 UTC)),
                ..NameFields::default()
            },
            mtime_ns: 0,
        };
        // The recorder runs 10 s ahead.
        let rec = recorded(&r, &clock(MediaTime::Utc), 10_000, NOW);
        assert_eq!(rec.source, TimeSource::Media);
        assert_eq!(rec.start.to_string(), "2024-05-01T08:30:00Z");
        assert_eq!(rec.end.to_string(), "2024-05-01T08:31:00Z");
        // Wall clock labelled UTC: 16:30 in +08:00 is 08:30 UTC.
        let r = Readings {
            media_start: Some(creation("2024-05-01T16:30:00Z")),
            ..r
        };
        let rec = recorded(&r, &clock(MediaTime::Local), 0, NOW);
        assert_eq!(rec.start.to_string(), "2024-05-01T08:30:00Z");
    }

    #[test]
    fn unset_clocks_fall_through_to_the_name_then_the_file_time() {
        let mut r = Readings {
            media_start: Some(creation("2000-01-01T00:00:00Z")),
            duration_ms: Some(5_000),
            name: NameFields {
                start: Some(datetime!(2024-05-01 08:00 UTC)),
                ..NameFields::default()
            },
            mtime_ns: datetime!(2024-05-01 09:00 UTC).unix_timestamp_nanos(),
        };
        let rec = recorded(&r, &clock(MediaTime::Utc), 0, NOW);
        assert_eq!(rec.source, TimeSource::FileName);
        assert_eq!(rec.end.to_string(), "2024-05-01T08:00:05Z");
        r.name.start = Some(datetime!(2030-01-01 00:00 UTC));
        let rec = recorded(&r, &clock(MediaTime::Utc), 0, NOW);
        assert_eq!(rec.source, TimeSource::FileTime);
        assert_eq!(rec.start.to_string(), "2024-05-01T08:59:55Z");
        assert_eq!(rec.end.to_string(), "2024-05-01T09:00:00Z");
    }

    #[test]
    fn implausible_file_times_are_kept_but_flagged() {
        let mut r = Readings {
            media_start: None,
            duration_ms: Some(5_000),
            name: NameFields::default(),
            mtime_ns: datetime!(2000-01-01 00:00 UTC).unix_timestamp_nanos(),
        };
        let rec = recorded(&r, &clock(MediaTime::Utc), 0, NOW);
        assert_eq!(rec.source, TimeSource::FileTimeImplausible);
        assert_eq!(rec.end.to_string(), "2000-01-01T00:00:00Z");
        // Before the profile's own minimum, though after 2005.
        r.mtime_ns = datetime!(2012-06-01 00:00 UTC).unix_timestamp_nanos();
        let rec = recorded(&r, &clock(MediaTime::Utc), 0, NOW);
        assert_eq!(rec.source, TimeSource::FileTimeImplausible);
        let mut early = clock(MediaTime::Utc);
        early.earliest_plausible = datetime!(2010-01-01 00:00 UTC);
        assert_eq!(recorded(&r, &early, 0, NOW).source, TimeSource::FileTime);
        // More than a day after the dock's clock.
        r.mtime_ns = (NOW + Duration::hours(25)).unix_timestamp_nanos();
        let rec = recorded(&r, &clock(MediaTime::Utc), 0, NOW);
        assert_eq!(rec.source, TimeSource::FileTimeImplausible);
        r.mtime_ns = (NOW + Duration::hours(23)).unix_timestamp_nanos();
        assert_eq!(
            recorded(&r, &clock(MediaTime::Utc), 0, NOW).source,
            TimeSource::FileTime
        );
    }
}
