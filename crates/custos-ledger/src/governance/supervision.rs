//! The supervisor's view (执法全过程记录 supervision): per officer and
//! recorder over a period, the recording time, files, late and damaged
//! files, and the coverage findings still open or explained; and its CSV
//! form.
//!
//! The counting is pure ([`Period`], [`aggregate`], [`sums`], [`to_csv`]) and apart
//! from the reading ([`supervision`]), which gathers the facts from the
//! catalogue and the coverage table.
//!
//! What counts as "in the period" `[from, to)`:
//!
//! - a file whose recording overlaps it; its time counts only the part
//!   inside (a file that straddles `from` or `to` is cut there). A file
//!   of no length counts when its instant is inside;
//! - a finding whose time overlaps it: the gap's or clock jump's span, or,
//!   for a late ingest (which has none), its files' recording time.
//!
//! Files are found by recording start from [`LONGEST_FILE`] before `from`:
//! a recorder splits long recordings into files of minutes, so a file that
//! began more than a day before the period is not counted in it.
//!
//! Who may read it (the role matrix, [`crate::auth::ROUTES`]): supervisors,
//! whose job it is, and auditors, who check that nothing was lost; not
//! reviewers, who work on cases, not on how officers record (DESIGN.md's
//! trust model gives them metadata to find footage, not a view of each
//! officer's work), nor admins (trusted with tokens and keys: users,
//! tokens, keys and stations, not how each officer records).
//!
//! A period's bounds are RFC 3339 date-times or UTC dates ([`Bound`]); a
//! missing `to` is now, a missing `from` [`DEFAULT_PERIOD_DAYS`] before
//! `to` ([`Period::parse`]).
//!
//! This module never writes to the log and never reads footage.

use std::collections::BTreeMap;

use custos_core::manifest::Timestamp;
use custos_core::wire::{
    CoverageFinding, Supervision, SupervisionCounts, SupervisionQuery, SupervisionRow,
    SupervisionSum,
};
use time::format_description::well_known::Rfc3339;

use super::GovernanceError;
use crate::catalogue::{self, BY_TIME};
use crate::error::ReadError;
use crate::layout::{composite, split_composite, time_key};
use crate::ledger::Ledger;
use crate::store::Store;

/// The longest period asked for at once, in days.
pub const MAX_PERIOD_DAYS: i64 = 366;

/// How long before `from` a file may start and still be counted.
pub const LONGEST_FILE: time::Duration = time::Duration::hours(24);

const NS_PER_MS: i128 = 1_000_000;

/// A period `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Its start (inclusive).
    pub from: Timestamp,
    /// Its end (exclusive).
    pub to: Timestamp,
}

/// Which end of a period a bound is. A date alone (`2026-12-01`, a UTC
/// day) as a [`Bound::Start`] is that day's first instant; as a
/// [`Bound::End`] the next day's, so the day itself is included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `from`: inclusive.
    Start,
    /// `to`: exclusive.
    End,
}

/// The period asked for when none is: the seven days up to `to`.
pub const DEFAULT_PERIOD_DAYS: i64 = 7;

/// A UTC day `YYYY-MM-DD`, if `text` is one.
fn parse_date(text: &str) -> Option<time::Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    time::Date::from_calendar_date(year, month, u8::try_from(num(8..10)?).ok()?).ok()
}

/// A period bound given as `param`: an RFC 3339 date-time (any offset,
/// read as UTC) or a UTC date (see [`Bound`]).
pub fn parse_bound(param: &str, text: &str, bound: Bound) -> Result<Timestamp, GovernanceError> {
    let instant = match parse_date(text) {
        Some(day) => {
            let day = match bound {
                Bound::Start => Some(day),
                Bound::End => day.next_day(),
            };
            day.map(|d| d.midnight().assume_utc())
        }
        None => time::OffsetDateTime::parse(text, &Rfc3339).ok(),
    };
    instant
        .and_then(|t| Timestamp::from_offset_datetime(t).ok())
        .ok_or_else(|| {
            GovernanceError::Invalid(format!(
                "{param}={text:?} is neither an RFC 3339 date-time such as \
                 2026-12-01T00:00:00+08:00 nor a date such as 2026-12-01 (UTC)"
            ))
        })
}

impl Period {
    /// The period of `from` and `to` (see [`parse_bound`]): `to` defaults
    /// to `now`, `from` to [`DEFAULT_PERIOD_DAYS`] before `to`; `from`
    /// must be before `to` and the period at most [`MAX_PERIOD_DAYS`] long.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        now: Timestamp,
    ) -> Result<Period, GovernanceError> {
        let to = match to {
            Some(t) => parse_bound("to", t, Bound::End)?,
            None => now,
        };
        let from = match from {
            Some(f) => parse_bound("from", f, Bound::Start)?,
            None => to
                .checked_add(time::Duration::days(-DEFAULT_PERIOD_DAYS))
                .ok_or_else(|| {
                    GovernanceError::Invalid(format!("to={to} leaves no room for a period"))
                })?,
        };
        let period = Period { from, to };
        if period.to.unix_nanos() <= period.from.unix_nanos() {
            return Err(GovernanceError::Invalid(format!(
                "to ({}) must be after from ({})",
                period.to, period.from
            )));
        }
        if period.to.duration_since(period.from) > time::Duration::days(MAX_PERIOD_DAYS) {
            return Err(GovernanceError::Invalid(format!(
                "the period is longer than {MAX_PERIOD_DAYS} days; ask for less at a time"
            )));
        }
        Ok(period)
    }

    /// The part of `[start, end]` (nanoseconds) inside the period, in
    /// nanoseconds; `None` when it does not meet the period. An instant
    /// (`start == end`) meets it when `from <= start < to`.
    pub fn overlap(&self, start: i128, end: i128) -> Option<i128> {
        overlap_ns(self.from.unix_nanos(), self.to.unix_nanos(), start, end)
    }
}

/// The part of `[start, end]` inside `[from, to)`, in nanoseconds (see
/// [`Period::overlap`]).
pub fn overlap_ns(from: i128, to: i128, start: i128, end: i128) -> Option<i128> {
    let (start, end) = (start.min(end), start.max(end));
    if start == end {
        return (from <= start && start < to).then_some(0);
    }
    let (lo, hi) = (start.max(from), end.min(to));
    (lo < hi).then_some(hi - lo)
}

/// What the view needs of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// Its officer.
    pub officer_id: String,
    /// Its recorder.
    pub recorder_id: String,
    /// Recording start, ns since the epoch.
    pub start: i128,
    /// Recording end, ns since the epoch.
    pub end: i128,
    /// Docked more than 24 h after its recording.
    pub late: bool,
    /// Damaged.
    pub damaged: bool,
}

/// What the view needs of one coverage finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingFacts {
    /// Its officer.
    pub officer_id: String,
    /// Its recorder.
    pub recorder_id: String,
    /// The time it is about (ns since the epoch), if known.
    pub span: Option<(i128, i128)>,
    /// Not yet explained.
    pub open: bool,
}

/// The rows of `period`: one per officer and recorder with a file or a
/// finding in it, by officer then recorder. Officers without findings
/// have rows with zero findings; facts outside the period count nothing.
pub fn aggregate(
    period: &Period,
    files: &[FileFacts],
    findings: &[FindingFacts],
) -> Vec<SupervisionRow> {
    let mut rows: BTreeMap<(&str, &str), SupervisionRow> = BTreeMap::new();
    for f in files {
        let Some(ns) = period.overlap(f.start, f.end) else {
            continue;
        };
        let r = rows
            .entry((f.officer_id.as_str(), f.recorder_id.as_str()))
            .or_insert_with(|| blank(&f.officer_id, &f.recorder_id));
        r.recording_ms += u64::try_from(ns / NS_PER_MS).unwrap_or(u64::MAX);
        r.segments += 1;
        r.late += u64::from(f.late);
        r.damaged += u64::from(f.damaged);
    }
    for f in findings {
        let Some((start, end)) = f.span else { continue };
        if period.overlap(start, end).is_none() {
            continue;
        }
        let r = rows
            .entry((f.officer_id.as_str(), f.recorder_id.as_str()))
            .or_insert_with(|| blank(&f.officer_id, &f.recorder_id));
        if f.open {
            r.findings_open += 1;
        } else {
            r.findings_explained += 1;
        }
    }
    rows.into_values().collect()
}

/// The rows summed per officer, per recorder (each by id) and in all.
/// Each row belongs to exactly one officer and one recorder, so each
/// file and finding is counted once in every sum.
pub fn sums(
    rows: &[SupervisionRow],
) -> (Vec<SupervisionSum>, Vec<SupervisionSum>, SupervisionCounts) {
    let mut officers: BTreeMap<&str, SupervisionCounts> = BTreeMap::new();
    let mut recorders: BTreeMap<&str, SupervisionCounts> = BTreeMap::new();
    let mut total = SupervisionCounts::default();
    for r in rows {
        officers.entry(&r.officer_id).or_default().add(r);
        recorders.entry(&r.recorder_id).or_default().add(r);
        total.add(r);
    }
    let list = |m: BTreeMap<&str, SupervisionCounts>| {
        m.into_iter()
            .map(|(id, counts)| SupervisionSum {
                id: id.to_owned(),
                counts,
            })
            .collect()
    };
    (list(officers), list(recorders), total)
}

/// The view of `period` from its facts: the rows ([`aggregate`]) and their
/// [`sums`].
pub fn view(period: &Period, files: &[FileFacts], findings: &[FindingFacts]) -> Supervision {
    let rows = aggregate(period, files, findings);
    let (by_officer, by_recorder, total) = sums(&rows);
    Supervision {
        from: period.from.to_string(),
        to: period.to.to_string(),
        rows,
        by_officer,
        by_recorder,
        total,
    }
}

fn blank(officer: &str, recorder: &str) -> SupervisionRow {
    SupervisionRow {
        officer_id: officer.to_owned(),
        recorder_id: recorder.to_owned(),
        ..SupervisionRow::default()
    }
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 8] = [
    "officer_id",
    "recorder_id",
    "recording_minutes",
    "segments",
    "late_ingests",
    "damaged",
    "findings_open",
    "findings_explained",
];

/// One CSV cell: a text a spreadsheet would take for a formula (starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`
/// so it stays text; a cell with a comma, quote or line break is quoted
/// (RFC 4180).
pub fn csv_cell(text: &str) -> String {
    let mut cell = String::with_capacity(text.len() + 3);
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        cell.push('\'');
    }
    cell.push_str(text);
    if cell.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

/// The rows as CSV (RFC 4180, CRLF line ends): the header row, then one
/// line per row; recording time in minutes with two decimals.
pub fn to_csv(rows: &[SupervisionRow]) -> String {
    let mut out = CSV_HEADER.join(",");
    out.push_str("\r\n");
    for r in rows {
        let minutes = format!(
            "{}.{:02}",
            r.recording_ms / 60_000,
            (r.recording_ms % 60_000) / 600
        );
        let cells = [
            csv_cell(&r.officer_id),
            csv_cell(&r.recorder_id),
            minutes,
            r.segments.to_string(),
            r.late.to_string(),
            r.damaged.to_string(),
            r.findings_open.to_string(),
            r.findings_explained.to_string(),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The time a finding is about: its gap's or clock jump's span, else its
/// files' recording time (a late ingest), as far as the catalogue knows
/// them.
pub fn finding_span(store: &Store, f: &CoverageFinding) -> Result<Option<(i128, i128)>, ReadError> {
    let parse = |t: &Option<String>| t.as_deref().and_then(|t| Timestamp::parse(t).ok());
    if let (Some(a), Some(b)) = (parse(&f.gap.from), parse(&f.gap.to)) {
        return Ok(Some((a.unix_nanos(), b.unix_nanos())));
    }
    let mut span: Option<(i128, i128)> = None;
    for id in &f.gap.segments {
        if let Some(r) = catalogue::segment(store, id)? {
            let (s, e) = (
                r.manifest.recorded.start.unix_nanos(),
                r.manifest.recorded.end.unix_nanos(),
            );
            span = Some(span.map_or((s, e), |(a, b)| (a.min(s), b.max(e))));
        }
    }
    Ok(span)
}

/// The supervisor's view that `query` asks for; a period not given ends
/// at the ledger's now ([`Period::parse`], which refuses a malformed one).
pub fn supervision(
    ledger: &Ledger,
    query: &SupervisionQuery,
) -> Result<Supervision, GovernanceError> {
    // Whole seconds: a default period reads (and names its CSV) cleanly.
    let now = ledger.now();
    let now = Timestamp::from_unix_seconds(now.unix_seconds()).unwrap_or(now);
    let period = Period::parse(query.from.as_deref(), query.to.as_deref(), now)?;
    let store = ledger.store();
    let wanted = |officer: &str, recorder: &str| {
        query.officer.as_deref().is_none_or(|o| o == officer)
            && query.recorder.as_deref().is_none_or(|r| r == recorder)
    };

    let lo = period.from.unix_nanos() - LONGEST_FILE.whole_nanoseconds();
    let mut files = Vec::new();
    let range = store.table_range(
        BY_TIME,
        &composite(&[&time_key(lo)]),
        &composite(&[&time_key(period.to.unix_nanos())]),
    );
    for row in range {
        let (key, _) = row.map_err(ReadError::from)?;
        let Some(id) = split_composite(&key)
            .and_then(|parts| parts.get(1).copied())
            .and_then(|b| std::str::from_utf8(b).ok())
        else {
            continue;
        };
        let Some(record) = catalogue::segment(store, id).map_err(ReadError::from)? else {
            continue;
        };
        let m = &record.manifest;
        if !wanted(&m.officer_id, &m.recorder.id) {
            continue;
        }
        files.push(FileFacts {
            officer_id: m.officer_id.clone(),
            recorder_id: m.recorder.id.clone(),
            start: m.recorded.start.unix_nanos(),
            end: m.recorded.end.unix_nanos(),
            late: m.late,
            damaged: m.media.damaged.is_some(),
        });
    }

    let mut findings = Vec::new();
    for f in super::coverage::recorded_findings(store) {
        let f = f?;
        if !wanted(&f.gap.officer_id, &f.gap.recorder_id) {
            continue;
        }
        findings.push(FindingFacts {
            span: finding_span(store, &f)?,
            open: f.explanation.is_none(),
            officer_id: f.gap.officer_id,
            recorder_id: f.gap.recorder_id,
        });
    }

    Ok(view(&period, &files, &findings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i128 = 60 * 1_000_000_000;

    fn ts(text: &str) -> i128 {
        Timestamp::parse(text).unwrap().unix_nanos()
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-12-07T12:00:00Z").unwrap()
    }

    fn day() -> Period {
        Period::parse(
            Some("2026-12-01T00:00:00Z"),
            Some("2026-12-02T00:00:00Z"),
            now(),
        )
        .unwrap()
    }

    fn file(officer: &str, recorder: &str, start: i128, minutes: i128) -> FileFacts {
        FileFacts {
            officer_id: officer.into(),
            recorder_id: recorder.into(),
            start,
            end: start + minutes * MIN,
            late: false,
            damaged: false,
        }
    }

    fn finding(officer: &str, recorder: &str, span: (i128, i128), open: bool) -> FindingFacts {
        FindingFacts {
            officer_id: officer.into(),
            recorder_id: recorder.into(),
            span: Some(span),
            open,
        }
    }

    #[test]
    fn a_file_straddling_from_counts_only_its_part_inside() {
        let from = ts("2026-12-01T00:00:00Z");
        // 23:50 to 00:20: ten minutes before, twenty inside.
        let rows = aggregate(&day(), &[file("o1", "r1", from - 10 * MIN, 30)], &[]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].recording_ms, 20 * 60_000);
        assert_eq!(rows[0].segments, 1);
    }

    #[test]
    fn a_file_straddling_to_is_cut_there_and_one_ending_at_from_is_outside() {
        let to = ts("2026-12-02T00:00:00Z");
        let from = ts("2026-12-01T00:00:00Z");
        let files = [
            file("o1", "r1", to - 5 * MIN, 30),
            file("o1", "r1", from - 30 * MIN, 30), // ends exactly at from
            file("o1", "r1", to, 10),              // starts exactly at to
        ];
        let rows = aggregate(&day(), &files, &[]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].recording_ms, 5 * 60_000);
        assert_eq!(rows[0].segments, 1);
    }

    #[test]
    fn an_empty_period_has_no_rows() {
        let before = ts("2026-11-20T00:00:00Z");
        let rows = aggregate(
            &day(),
            &[file("o1", "r1", before, 30)],
            &[finding("o1", "r1", (before, before + MIN), true)],
        );
        assert!(rows.is_empty(), "{rows:?}");
        assert!(aggregate(&day(), &[], &[]).is_empty());
    }

    #[test]
    fn officers_without_findings_have_zero_findings_and_each_pair_its_row() {
        let t = ts("2026-12-01T08:00:00Z");
        let mut late = file("o2", "r2", t + 60 * MIN, 10);
        late.late = true;
        late.damaged = true;
        let files = [
            file("o1", "r1", t, 30),
            file("o1", "r1", t + 30 * MIN, 30),
            late,
        ];
        let findings = [
            finding("o2", "r2", (t, t + MIN), true),
            finding("o2", "r2", (t + 2 * MIN, t + MIN), false), // a clock jump runs backwards
            FindingFacts {
                span: None,
                ..finding("o2", "r2", (0, 0), true)
            },
        ];
        let rows = aggregate(&day(), &files, &findings);
        assert_eq!(rows.len(), 2);
        let o1 = &rows[0];
        assert_eq!(
            (o1.officer_id.as_str(), o1.recording_ms, o1.segments),
            ("o1", 60 * 60_000, 2)
        );
        assert_eq!((o1.findings_open, o1.findings_explained), (0, 0));
        let o2 = &rows[1];
        assert_eq!((o2.late, o2.damaged, o2.segments), (1, 1, 1));
        assert_eq!((o2.findings_open, o2.findings_explained), (1, 1));
    }

    #[test]
    fn an_instant_counts_inside_the_half_open_period_only() {
        let p = day();
        assert_eq!(p.overlap(p.from.unix_nanos(), p.from.unix_nanos()), Some(0));
        assert_eq!(p.overlap(p.to.unix_nanos(), p.to.unix_nanos()), None);
    }

    #[test]
    fn bad_periods_are_refused_with_what_is_wrong() {
        let err =
            |f: Option<&str>, t: Option<&str>| Period::parse(f, t, now()).unwrap_err().to_string();
        assert!(err(Some("yesterday"), Some("2026-12-01T00:00:00Z")).contains("from=\"yesterday\""));
        assert!(err(Some("2026-12-01"), Some("2026-13-01")).contains("to=\"2026-13-01\""));
        assert!(err(Some("2026-12-1"), None).contains("from="));
        assert!(err(Some("2026-12-02T00:00:00Z"), Some("2026-12-01T00:00:00Z")).contains("after"));
        assert!(
            err(Some("2026-12-08"), None).contains("after"),
            "from after now"
        );
        assert!(err(Some("2025-01-01T00:00:00Z"), Some("2026-12-01T00:00:00Z")).contains("366"));
        // Any offset is accepted and read as UTC.
        let p = Period::parse(
            Some("2026-12-01T08:00:00+08:00"),
            Some("2026-12-02T00:00:00Z"),
            now(),
        )
        .unwrap();
        assert_eq!(p.from.to_string(), "2026-12-01T00:00:00Z");
    }

    #[test]
    fn dates_are_utc_days_and_a_missing_bound_has_a_default() {
        let p = |f: Option<&str>, t: Option<&str>| {
            let p = Period::parse(f, t, now()).unwrap();
            (p.from.to_string(), p.to.to_string())
        };
        // A date as `to` includes that day: one day from the same date.
        assert_eq!(
            p(Some("2026-12-01"), Some("2026-12-01")),
            ("2026-12-01T00:00:00Z".into(), "2026-12-02T00:00:00Z".into())
        );
        assert_eq!(
            p(Some("2024-02-29"), Some("2024-12-31")).1,
            "2025-01-01T00:00:00Z"
        );
        // None: the last seven days up to now; only `to`: the seven days before it.
        assert_eq!(
            p(None, None),
            ("2026-11-30T12:00:00Z".into(), "2026-12-07T12:00:00Z".into())
        );
        assert_eq!(
            p(None, Some("2026-06-30")),
            ("2026-06-24T00:00:00Z".into(), "2026-07-01T00:00:00Z".into())
        );
        assert_eq!(
            p(Some("2026-12-06"), None),
            ("2026-12-06T00:00:00Z".into(), "2026-12-07T12:00:00Z".into())
        );
        assert!(Period::parse(Some("2026-02-30"), None, now()).is_err());
    }

    #[test]
    fn sums_per_officer_and_recorder() {
        let t = ts("2026-12-01T08:00:00Z");
        let files = [
            file("o1", "r1", t, 10),
            file("o1", "r2", t, 20),
            file("o2", "r1", t, 30),
        ];
        let v = view(&day(), &files, &[finding("o2", "r1", (t, t + MIN), true)]);
        assert_eq!(v.rows.len(), 3);
        let ids = |s: &[SupervisionSum]| s.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&v.by_officer), ["o1", "o2"]);
        assert_eq!(ids(&v.by_recorder), ["r1", "r2"]);
        assert_eq!(v.by_officer[0].counts.recording_ms, 30 * 60_000);
        assert_eq!(v.by_recorder[0].counts.recording_ms, 40 * 60_000);
        assert_eq!(v.by_recorder[0].counts.findings_open, 1);
        assert_eq!((v.total.segments, v.total.findings_open), (3, 1));
        assert_eq!(v.total.recording_ms, 60 * 60_000);
        let empty = view(&day(), &[], &[]);
        assert!(
            empty.rows.is_empty() && empty.by_officer.is_empty() && empty.by_recorder.is_empty()
        );
        assert_eq!(empty.total, SupervisionCounts::default());
    }

    #[test]
    fn csv_has_a_header_and_neutralises_formulas() {
        let rows = [SupervisionRow {
            officer_id: "=HYPERLINK(\"http://x\",\"y\")".into(),
            recorder_id: "-1+2".into(),
            recording_ms: 90_000 + 6_000,
            segments: 2,
            ..SupervisionRow::default()
        }];
        let csv = to_csv(&rows);
        let mut lines = csv.split("\r\n");
        assert_eq!(
            lines.next(),
            Some("officer_id,recorder_id,recording_minutes,segments,late_ingests,damaged,findings_open,findings_explained")
        );
        assert_eq!(
            lines.next(),
            Some("\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",'-1+2,1.60,2,0,0,0,0")
        );
        for c in ["+1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(
                csv_cell(c).trim_start_matches('"').starts_with('\''),
                "{c:?}"
            );
        }
        assert_eq!(csv_cell("DSJ-01"), "DSJ-01");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// A day's period, and facts around it: up to 40 files of up to two
        /// hours starting from a day before to a day after, by 3 officers
        /// on 3 recorders, and up to 10 findings.
        fn facts() -> impl Strategy<Value = (Vec<FileFacts>, Vec<FindingFacts>)> {
            let from = ts("2026-12-01T00:00:00Z");
            let file = (
                0..3u8,
                0..3u8,
                -1440i128..2880,
                0i128..120,
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(move |(o, r, start, len, late, damaged)| FileFacts {
                    late,
                    damaged,
                    ..file(&format!("o{o}"), &format!("r{r}"), from + start * MIN, len)
                });
            let finding = (0..3u8, 0..3u8, -1440i128..2880, -10i128..60, any::<bool>()).prop_map(
                move |(o, r, start, len, open)| {
                    let a = from + start * MIN;
                    finding(&format!("o{o}"), &format!("r{r}"), (a, a + len * MIN), open)
                },
            );
            (
                proptest::collection::vec(file, 0..40),
                proptest::collection::vec(finding, 0..10),
            )
        }

        proptest! {
            #[test]
            fn every_file_and_finding_counts_once_and_totals_are_the_rows_sums(
                (files, findings) in facts()
            ) {
                let p = day();
                let v = view(&p, &files, &findings);
                // Each file meeting the period is counted once, in its own row.
                let inside: Vec<&FileFacts> = files
                    .iter()
                    .filter(|f| p.overlap(f.start, f.end).is_some())
                    .collect();
                prop_assert_eq!(v.total.segments, inside.len() as u64);
                prop_assert_eq!(v.total.late, inside.iter().filter(|f| f.late).count() as u64);
                prop_assert_eq!(v.total.damaged, inside.iter().filter(|f| f.damaged).count() as u64);
                for r in &v.rows {
                    let mine = inside
                        .iter()
                        .filter(|f| f.officer_id == r.officer_id && f.recorder_id == r.recorder_id)
                        .count() as u64;
                    prop_assert_eq!(r.segments, mine);
                    // No row holds more time than the period.
                    prop_assert!(u128::from(r.recording_ms) <= 86_400_000 * u128::from(r.segments.max(1)));
                }
                let met = findings
                    .iter()
                    .filter(|f| f.span.is_some_and(|(a, b)| p.overlap(a, b).is_some()))
                    .count() as u64;
                prop_assert_eq!(v.total.findings_open + v.total.findings_explained, met);
                // The totals, per officer and per recorder, are the rows' sums.
                let mut sum = SupervisionCounts::default();
                for r in &v.rows {
                    sum.add(r);
                }
                prop_assert_eq!(&sum, &v.total);
                for list in [&v.by_officer, &v.by_recorder] {
                    let mut s = SupervisionCounts::default();
                    for x in list.iter() {
                        let as_row = SupervisionRow {
                            recording_ms: x.counts.recording_ms,
                            segments: x.counts.segments,
                            late: x.counts.late,
                            damaged: x.counts.damaged,
                            findings_open: x.counts.findings_open,
                            findings_explained: x.counts.findings_explained,
                            ..SupervisionRow::default()
                        };
                        s.add(&as_row);
                    }
                    prop_assert_eq!(&s, &v.total);
                }
                // Rows are unique per officer and recorder, in order.
                let keys: Vec<_> = v.rows.iter().map(|r| (&r.officer_id, &r.recorder_id)).collect();
                prop_assert!(keys.windows(2).all(|w| w[0] < w[1]));
            }

            #[test]
            fn csv_has_a_line_per_row_and_no_cell_starts_a_formula(
                officer in "[=+@\\-]?[A-Za-z0-9,\"=]{0,8}",
            ) {
                let row = SupervisionRow { officer_id: officer.clone(), recorder_id: "r".into(), ..SupervisionRow::default() };
                let csv = to_csv(&[row]);
                prop_assert_eq!(csv.matches("\r\n").count(), 2);
                let cell = csv_cell(&officer);
                let bare = cell.strip_prefix('"').unwrap_or(&cell);
                prop_assert!(!bare.starts_with(['=', '+', '-', '@']), "{}", cell);
            }
        }
    }
}
