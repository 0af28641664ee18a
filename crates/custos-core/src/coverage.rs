//! Completeness of a recorder's footage (全过程覆盖), judged from the
//! manifests alone: which files of a recorder's numbered sequence are
//! missing (deleted on the recorder before docking), where its clock
//! jumped (a file starting before the previous one ended), and which files
//! were docked more than 24 h after they were recorded.
//!
//! A GA/T 947-style recorder numbers its files (`…_0003.MP4`); a long
//! recording is split into consecutive files. A missing number between two
//! files the recorder wrote is a gap, reported with the time between its
//! neighbours (for a split continuous recording, exactly the part that is
//! missing). [`findings`] is a pure function of the files given: the
//! caller decides which files (one export, one recorder's whole history).
//!
//! This module never reads a clock, a file or the log, and never judges a
//! file's bytes: only what its manifest says.

use std::collections::BTreeMap;

use crate::entry::details::CoverageGap;
use crate::manifest::{Manifest, Timestamp};

/// How far a file may start before the previous one ended without it
/// counting as a clock jump: 2 s (splitting recorders overlap by a frame
/// or two, and times come from containers rounded to the second).
pub const OVERLAP_TOLERANCE_MS: i128 = 2_000;

/// What is known of one file, for the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// The segment id.
    pub segment_id: String,
    /// The recorder.
    pub recorder_id: String,
    /// Its officer.
    pub officer_id: String,
    /// The recorder's file number, where its name carries one.
    pub number: Option<u32>,
    /// Recording start.
    pub start: Timestamp,
    /// Recording end.
    pub end: Timestamp,
    /// Docked more than 24 h after the recording ended.
    pub late: bool,
}

impl FileFacts {
    /// The facts of a manifest: its file number from its original name
    /// ([`file_number`]).
    pub fn of(manifest: &Manifest) -> FileFacts {
        FileFacts {
            segment_id: manifest.segment_id.clone(),
            recorder_id: manifest.recorder.id.clone(),
            officer_id: manifest.officer_id.clone(),
            number: file_number(&manifest.original_name.to_string_lossy()),
            start: manifest.recorded.start,
            end: manifest.recorded.end,
            late: manifest.late,
        }
    }
}

/// The file number of a recorder's file name: the digits after the last
/// `_` of the name's last path component, before its extension
/// (`DSJ1A2B3C_012345_20261206150038_0003.MP4` → 3). `None` when there
/// are none, or more than nine.
pub fn file_number(original_name: &str) -> Option<u32> {
    let name = original_name.rsplit(['/', '\\']).next()?;
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let digits = stem.rsplit_once('_')?.1;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a finding says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Gap {
    /// Files `first..=last` of the sequence are missing between two files
    /// the recorder wrote; the recording time between those two.
    MissingFiles {
        /// The first missing number.
        first: u32,
        /// The last missing number.
        last: u32,
        /// The end of the file before the gap.
        from: Timestamp,
        /// The start of the file after it.
        to: Timestamp,
    },
    /// A file starts before the previous one (by number) ended: the
    /// recorder's clock jumped back, or the files are out of order.
    ClockJump {
        /// The previous file's end.
        previous_end: Timestamp,
        /// This file's start.
        start: Timestamp,
    },
    /// The file was docked more than 24 h after its recording ended.
    LateIngest,
}

/// One finding about a recorder's footage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The recorder.
    pub recorder_id: String,
    /// The officer of the file the finding is about.
    pub officer_id: String,
    /// The file the finding is about (for a gap, the file after it).
    pub segment_id: String,
    /// For missing files and a clock jump, the file before it.
    pub previous_segment_id: Option<String>,
    /// What is wrong.
    pub gap: Gap,
}

impl Finding {
    /// The finding's kind, as a `coverage.gap` entry names it:
    /// `missing_files`, `clock_jump` or `late_ingest`.
    pub fn kind(&self) -> &'static str {
        match self.gap {
            Gap::MissingFiles { .. } => "missing_files",
            Gap::ClockJump { .. } => "clock_jump",
            Gap::LateIngest => "late_ingest",
        }
    }

    /// What identifies the finding across runs: recorder, kind, the file
    /// it is about and the file before it. The same files give the same
    /// key, so a finding is recorded once however often it is found.
    pub fn key(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.recorder_id,
            self.kind(),
            self.segment_id,
            self.previous_segment_id.as_deref().unwrap_or("")
        )
    }

    /// The details of the `coverage.gap` entry that records it.
    pub fn details(&self) -> CoverageGap {
        let segments = self
            .previous_segment_id
            .iter()
            .chain(std::iter::once(&self.segment_id))
            .cloned()
            .collect();
        let (first, last, from, to) = match &self.gap {
            Gap::MissingFiles {
                first,
                last,
                from,
                to,
            } => (
                Some(*first),
                Some(*last),
                Some(from.to_string()),
                Some(to.to_string()),
            ),
            Gap::ClockJump {
                previous_end,
                start,
            } => (
                None,
                None,
                Some(previous_end.to_string()),
                Some(start.to_string()),
            ),
            Gap::LateIngest => (None, None, None, None),
        };
        CoverageGap {
            recorder_id: self.recorder_id.clone(),
            officer_id: self.officer_id.clone(),
            kind: self.kind().to_owned(),
            segments,
            first,
            last,
            from,
            to,
            description: self.describe(),
        }
    }

    /// One line, Chinese first: what is wrong, for a report.
    pub fn describe(&self) -> String {
        match &self.gap {
            Gap::MissingFiles {
                first,
                last,
                from,
                to,
            } => {
                let files = if first == last {
                    format!("{first:04}")
                } else {
                    format!("{first:04}–{last:04}")
                };
                format!("缺失文件 missing file(s) {files}: 录制中断 recording gap {from} – {to}")
            }
            Gap::ClockJump {
                previous_end,
                start,
            } => format!(
                "时钟跳变 clock jump: starts {start}, before the previous file's end {previous_end}"
            ),
            Gap::LateIngest => "逾期入库 docked more than 24 h after recording".to_owned(),
        }
    }
}

/// Every finding about `files`, recorder by recorder (in recorder id
/// order), then in file order. Files without a number are checked for
/// lateness only.
pub fn findings(files: &[FileFacts]) -> Vec<Finding> {
    let mut by_recorder: BTreeMap<&str, Vec<&FileFacts>> = BTreeMap::new();
    for f in files {
        by_recorder
            .entry(f.recorder_id.as_str())
            .or_default()
            .push(f);
    }
    let mut out = Vec::new();
    for (_, mut files) in by_recorder {
        files.sort_by_key(|f| (f.number, f.start.unix_nanos(), f.segment_id.clone()));
        let mut previous: Option<&FileFacts> = None;
        for f in files {
            let finding = |gap, before: Option<&FileFacts>| Finding {
                recorder_id: f.recorder_id.clone(),
                officer_id: f.officer_id.clone(),
                segment_id: f.segment_id.clone(),
                previous_segment_id: before.map(|p| p.segment_id.clone()),
                gap,
            };
            if let (Some(p), Some(n)) = (previous, f.number) {
                if let Some(pn) = p.number {
                    if n > pn.saturating_add(1) {
                        out.push(finding(
                            Gap::MissingFiles {
                                first: pn + 1,
                                last: n - 1,
                                from: p.end,
                                to: f.start,
                            },
                            Some(p),
                        ));
                    }
                    let early_ns = p.end.unix_nanos() - f.start.unix_nanos();
                    if n > pn && early_ns > OVERLAP_TOLERANCE_MS * 1_000_000 {
                        out.push(finding(
                            Gap::ClockJump {
                                previous_end: p.end,
                                start: f.start,
                            },
                            Some(p),
                        ));
                    }
                }
            }
            if f.late {
                out.push(finding(Gap::LateIngest, None));
            }
            if f.number.is_some() {
                previous = Some(f);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: u32, start: &str, end: &str) -> FileFacts {
        FileFacts {
            segment_id: format!("seg-{n}"),
            recorder_id: "DSJ1A2B3C".into(),
            officer_id: "012345".into(),
            number: Some(n),
            start: Timestamp::parse(start).unwrap(),
            end: Timestamp::parse(end).unwrap(),
            late: false,
        }
    }

    #[test]
    fn file_numbers_come_from_the_name() {
        assert_eq!(
            file_number("DCIM/100MEDIA/DSJ1A2B3C_012345_20261206150038_0003.MP4"),
            Some(3)
        );
        assert_eq!(file_number("A_0012"), Some(12));
        assert_eq!(file_number("MOV0001.MP4"), None);
        assert_eq!(file_number("A_12a.MP4"), None);
        assert_eq!(file_number("A_.MP4"), None);
    }

    #[test]
    fn files_1_2_4_make_one_gap_naming_3() {
        let files = [
            file(1, "2026-03-01T08:00:00Z", "2026-03-01T08:05:00Z"),
            file(2, "2026-03-01T08:10:00Z", "2026-03-01T08:15:00Z"),
            file(4, "2026-03-01T09:00:00Z", "2026-03-01T09:05:00Z"),
        ];
        let found = findings(&files);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].segment_id, "seg-4");
        assert!(matches!(
            found[0].gap,
            Gap::MissingFiles {
                first: 3,
                last: 3,
                ..
            }
        ));
        assert!(
            found[0].describe().contains("0003"),
            "{}",
            found[0].describe()
        );
    }

    #[test]
    fn a_split_recording_missing_its_middle_has_one_gap_with_its_times() {
        // One continuous recording split in three 5-minute files; the
        // middle one was deleted on the recorder.
        let files = [
            file(7, "2026-03-01T08:00:00Z", "2026-03-01T08:05:00Z"),
            file(9, "2026-03-01T08:10:00Z", "2026-03-01T08:15:00Z"),
        ];
        let found = findings(&files);
        assert_eq!(
            found,
            [Finding {
                recorder_id: "DSJ1A2B3C".into(),
                officer_id: "012345".into(),
                segment_id: "seg-9".into(),
                previous_segment_id: Some("seg-7".into()),
                gap: Gap::MissingFiles {
                    first: 8,
                    last: 8,
                    from: Timestamp::parse("2026-03-01T08:05:00Z").unwrap(),
                    to: Timestamp::parse("2026-03-01T08:10:00Z").unwrap(),
                },
            }]
        );
    }

    #[test]
    fn a_clock_jump_and_a_late_ingest_are_findings_and_a_complete_run_is_not() {
        let complete = [
            file(1, "2026-03-01T08:00:00Z", "2026-03-01T08:05:00Z"),
            file(2, "2026-03-01T08:05:01Z", "2026-03-01T08:10:00Z"),
        ];
        assert_eq!(findings(&complete), []);
        let mut jumped = complete.to_vec();
        jumped.push(file(3, "2026-03-01T07:00:00Z", "2026-03-01T07:05:00Z"));
        jumped[0].late = true;
        let found = findings(&jumped);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].gap, Gap::LateIngest);
        assert!(matches!(found[1].gap, Gap::ClockJump { .. }));
        assert_eq!(found[1].segment_id, "seg-3");
        assert_eq!(found[1].kind(), "clock_jump");
        let d = found[1].details();
        assert_eq!(d.segments, ["seg-2", "seg-3"]);
        assert_eq!(d.from.as_deref(), Some("2026-03-01T08:10:00Z"));
        assert_eq!(d.to.as_deref(), Some("2026-03-01T07:00:00Z"));
        assert_eq!(found[0].details().segments, ["seg-1"]);
        assert_ne!(found[0].key(), found[1].key());
    }

    #[test]
    fn recorders_are_judged_apart() {
        let mut other = file(5, "2026-03-01T08:00:00Z", "2026-03-01T08:05:00Z");
        other.recorder_id = "DSJ9".into();
        let files = [
            file(1, "2026-03-01T08:00:00Z", "2026-03-01T08:05:00Z"),
            other,
            file(2, "2026-03-01T08:06:00Z", "2026-03-01T08:07:00Z"),
        ];
        assert_eq!(findings(&files), []);
    }
}
