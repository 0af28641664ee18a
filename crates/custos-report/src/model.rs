//! What a report says, as plain values: the facts the ledger gathers
//! ([`ReportInput`]) and the rows and paragraphs derived from them
//! ([`Contents`]), before any layout.
//!
//! Everything here is pure: the ledger passes the time, the entries and the
//! checkpoint in; nothing is read from a clock, a file or the network.

use std::collections::BTreeMap;

use base64::Engine as _;

use custos_core::checkpoint::Checkpoint;
use custos_core::entry::details::{AccessDecision, ExportCreated, ExportListed, SegmentViewed};
use custos_core::entry::{actions, Details, Entry};
use custos_core::keys::VerifierKey;
use custos_core::manifest::{Manifest, TimeSource, Timestamp};
use custos_core::merkle::Hash;

use crate::text;

/// Everything a report is made from.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// When the report was made (the ledger's clock).
    pub made_at: Timestamp,
    /// Who made it (`role:name`).
    pub made_by: String,
    /// The case reported on, or `None` for a list of segments.
    pub case: Option<String>,
    /// The export the report belongs to, when it is a bundle's REPORT.pdf.
    pub export: Option<ExportFacts>,
    /// The access requests the report mentions (the export's approvals and
    /// those used by views), by request id.
    pub approvals: BTreeMap<String, Approval>,
    /// The ledger's public key.
    pub ledger_key: VerifierKey,
    /// The ledger checkpoint every entry of the report is in.
    pub checkpoint: Checkpoint,
    /// The segments, in the order they were asked for.
    pub segments: Vec<SegmentFacts>,
    /// Every entry about the segments, ascending `seq`.
    pub entries: Vec<EntryFacts>,
}

/// The export a bundle's report belongs to. The export entry itself is
/// appended after the report is made (it names the report's SHA-256), so
/// the report names the export by id, not by seq.
#[derive(Debug, Clone)]
pub struct ExportFacts {
    /// The export id (the subject of the `export.created` entry).
    pub export_id: String,
    /// Why the export is made.
    pub reason: Option<String>,
    /// Per segment, the approved request the export rests on.
    pub requests: BTreeMap<String, String>,
}

/// An access request and the supervisor's decision on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The request id.
    pub request_id: String,
    /// Who asked (`role:name`).
    pub requester: String,
    /// Why they asked.
    pub reason: String,
    /// What it covers: `case X` or `segment Y`.
    pub covers: String,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    /// The supervisor who decided (`role:name`).
    pub decided_by: Option<String>,
    /// The decision's entry.
    pub decided_seq: Option<u64>,
    /// When an approval stops opening footage.
    pub valid_until: Option<Timestamp>,
}

/// One segment of the report.
#[derive(Debug, Clone)]
pub struct SegmentFacts {
    /// Its manifest (as the dock signed it).
    pub manifest: Manifest,
    /// The seq of its `segment.ingested` entry.
    pub ingested_seq: u64,
    /// The seqs of every entry about it, ascending.
    pub entries: Vec<u64>,
    /// Its file in the bundle (`footage/<id>.<ext>`).
    pub bundle_path: String,
}

/// One custody entry: its seq, leaf hash and parsed bytes.
#[derive(Debug, Clone)]
pub struct EntryFacts {
    /// Its position in the log.
    pub seq: u64,
    /// `SHA-256(0x00 || bytes)`.
    pub leaf: Hash,
    /// The entry.
    pub entry: Entry,
}

/// A row of the 电子数据提取固定清单: one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    /// 1-based row number.
    pub number: usize,
    /// The segment id.
    pub segment_id: String,
    /// The file in the bundle.
    pub bundle_path: String,
    /// Its name on the recorder.
    pub original_name: String,
    /// Recorder id and model.
    pub recorder: String,
    /// The officer.
    pub officer: String,
    /// Start and end of the recording, and where they came from.
    pub recorded: String,
    /// The duration.
    pub duration: String,
    /// Container and codecs.
    pub format: String,
    /// Size in bytes.
    pub size: String,
    /// SHA-256 in hex, and SM3 where the manifest has one.
    pub digests: String,
    /// 损坏 damaged / 逾期 late flags, or `—`.
    pub flags: String,
}

/// A row of a segment's custody timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    /// The entry's seq.
    pub seq: u64,
    /// When it was appended.
    pub time: String,
    /// Who acted.
    pub actor: String,
    /// The action, in Chinese and as written.
    pub action: String,
    /// A short summary of its details.
    pub details: String,
    /// Its leaf hash in hex.
    pub leaf: String,
}

/// A view or download of a segment's footage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRow {
    /// The entry's seq.
    pub seq: u64,
    /// When.
    pub time: String,
    /// Who.
    pub who: String,
    /// What: view or download, and the byte range.
    pub what: String,
    /// The approval used: request, supervisor, valid until; or none needed.
    pub approval: String,
}

/// One segment's part of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPart {
    /// The segment id.
    pub segment_id: String,
    /// What its QR code holds: its SHA-256 and ingest seq.
    pub qr: String,
    /// The QR payload, line by line, printed beside it.
    pub caption: Vec<String>,
    /// Its timeline.
    pub timeline: Vec<TimelineRow>,
    /// Its views and downloads.
    pub access: Vec<AccessRow>,
}

/// Everything the report prints, in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// Cover lines: (label, value).
    pub cover: Vec<(String, String)>,
    /// The approvals on the cover.
    pub approvals: Vec<Approval>,
    /// What the checkpoint's QR code holds (the checkpoint body).
    pub checkpoint_qr: String,
    /// The footer line naming the checkpoint.
    pub footer: String,
    /// The list of files.
    pub files: Vec<FileRow>,
    /// Coverage findings about these files, per recorder: (recorder,
    /// officer, segment, what, its state on the ledger).
    pub coverage: Vec<[String; 5]>,
    /// Per segment, its timeline.
    pub segments: Vec<SegmentPart>,
}

/// Longest details summary in a timeline row, in characters.
pub const MAX_DETAILS_CHARS: usize = 240;

fn actor_name(actor: &custos_core::entry::Actor) -> String {
    format!("{}:{}", actor.kind, actor.id)
}

fn time_source(source: TimeSource) -> &'static str {
    let origin = match source.origin() {
        TimeSource::Media => "媒体 media",
        TimeSource::FileName => "文件名 file name",
        _ => "文件时间 file time",
    };
    if source.is_implausible() {
        // Only the file time carries the flag.
        "文件时间(不可信) file time, implausible"
    } else {
        origin
    }
}

/// A time as the report prints it: `2026-12-06 07:03:15.235Z` (UTC, to
/// the millisecond; the space lets a narrow column break between date and
/// time).
pub fn time_text(t: Timestamp) -> String {
    let text = t.to_string();
    let (date_time, _) = text.split_once('Z').unwrap_or((&text, ""));
    let (whole, frac) = date_time.split_once('.').unwrap_or((date_time, ""));
    let whole = whole.replacen('T', " ", 1);
    if frac.is_empty() {
        format!("{whole}Z")
    } else {
        format!("{whole}.{:0<3.3}Z", frac)
    }
}

/// `m:ss.mmm` (or `h:mm:ss.mmm`) from milliseconds.
pub fn duration_text(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    let frac = ms % 1000;
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{frac:03}")
    } else {
        format!("{m:02}:{s:02}.{frac:03}")
    }
}

/// The list's row for one segment.
pub fn file_row(number: usize, seg: &SegmentFacts) -> FileRow {
    let m = &seg.manifest;
    let codecs: Vec<String> = m
        .media
        .streams
        .iter()
        .map(|s| match (s.width, s.height) {
            (Some(w), Some(h)) => format!("{} {w}x{h}", s.codec),
            _ => s.codec.clone(),
        })
        .collect();
    let mut digests = format!("SHA-256 {}", m.digests.sha256.hex());
    if let Some(sm3) = &m.digests.sm3 {
        digests.push_str(&format!("\nSM3 {}", sm3.hex()));
    }
    let mut flags = Vec::new();
    if let Some(why) = &m.media.damaged {
        flags.push(format!("损坏 damaged: {why}"));
    }
    if m.late {
        flags.push("逾期入库 late (> 24 h)".to_owned());
    }
    FileRow {
        number,
        segment_id: m.segment_id.clone(),
        bundle_path: seg.bundle_path.clone(),
        original_name: m.original_name.to_string_lossy(),
        recorder: format!("{} ({})", m.recorder.id, m.recorder.model),
        officer: m.officer_id.clone(),
        recorded: format!(
            "{}\n{}\n{}",
            time_text(m.recorded.start),
            time_text(m.recorded.end),
            time_source(m.recorded.source)
        ),
        duration: m
            .media
            .duration_ms
            .map(duration_text)
            .unwrap_or_else(|| "未知 unknown".into()),
        format: format!("{}\n{}", m.media.container_label(), codecs.join(", ")),
        size: format!("{} B", m.size),
        digests,
        flags: if flags.is_empty() {
            "—".into()
        } else {
            flags.join("\n")
        },
    }
}

fn clip(mut text: String, max: usize) -> String {
    if text.chars().count() > max {
        text = text.chars().take(max.saturating_sub(1)).collect();
        text.push('…');
    }
    text
}

/// The coverage rows: every finding about the files listed, recomputed
/// from their manifests, with the state the ledger recorded for it (its
/// `coverage.gap` entry and, once given, the supervisor's explanation from
/// `coverage.explained`); then any recorded finding about these files the
/// recomputation does not repeat (one whose neighbour is not exported).
fn coverage_rows(input: &ReportInput) -> Vec<[String; 5]> {
    use custos_core::entry::details::{CoverageExplained, CoverageGap};
    let mut gaps: Vec<(u64, CoverageGap)> = Vec::new();
    let mut explained: BTreeMap<u64, (u64, String, CoverageExplained)> = BTreeMap::new();
    for e in &input.entries {
        match e.entry.parsed_details() {
            Ok(Details::CoverageGap(g)) => gaps.push((e.seq, g)),
            Ok(Details::CoverageExplained(x)) => {
                explained.insert(x.gap_seq, (e.seq, actor_name(&e.entry.actor), x));
            }
            _ => {}
        }
    }
    let state = |seq: u64| match explained.get(&seq) {
        Some((xseq, who, x)) => format!(
            "已说明 explained (#{seq}): {} — {who}, #{xseq}",
            clip(x.reason.clone(), MAX_DETAILS_CHARS)
        ),
        None => format!("未说明 open (#{seq})"),
    };
    let files: Vec<_> = input
        .segments
        .iter()
        .map(|s| custos_core::coverage::FileFacts::of(&s.manifest))
        .collect();
    let mut used = std::collections::BTreeSet::new();
    let mut rows: Vec<[String; 5]> = custos_core::coverage::findings(&files)
        .into_iter()
        .map(|f| {
            let d = f.details();
            let recorded = gaps.iter().find(|(_, g)| {
                g.kind == d.kind && g.segments == d.segments && g.recorder_id == d.recorder_id
            });
            let st = match recorded {
                Some((seq, _)) => {
                    used.insert(*seq);
                    state(*seq)
                }
                None => "未记录 not recorded in the ledger".to_owned(),
            };
            [f.recorder_id, f.officer_id, f.segment_id, d.description, st]
        })
        .collect();
    for (seq, g) in &gaps {
        if used.insert(*seq) {
            rows.push([
                g.recorder_id.clone(),
                g.officer_id.clone(),
                g.segments.last().cloned().unwrap_or_default(),
                g.description.clone(),
                state(*seq),
            ]);
        }
    }
    rows
}

/// A short summary of an entry's details, at most [`MAX_DETAILS_CHARS`].
pub fn details_summary(entry: &Entry) -> String {
    let text = match entry.parsed_details() {
        Ok(Details::SegmentIngested(d)) => {
            let keys: Vec<&str> = d
                .manifest
                .signatures
                .iter()
                .map(|s| s.keyid.as_str())
                .collect();
            format!("manifest signed by {}", keys.join(", "))
        }
        Ok(Details::SegmentVerified(d)) => format!("{} sha256 {}", d.method, d.sha256),
        Ok(Details::SegmentWiped(d)) => format!(
            "recorder {} file {}",
            d.recorder_id,
            d.original_name
                .map(|n| n.to_string_lossy())
                .unwrap_or_else(|| "?".into())
        ),
        Ok(Details::SegmentViewed(SegmentViewed {
            role,
            range,
            request_id,
            ..
        })) => format!(
            "role {role}, {}, approval {}",
            range.unwrap_or_else(|| "whole file".into()),
            request_id.unwrap_or_else(|| "none needed".into())
        ),
        Ok(Details::ExportCreated(ExportCreated {
            segments,
            entries,
            case,
            reason,
            parts,
            ..
        })) => format!(
            "{}{}{}",
            match parts {
                Some(parts) => format!("listed in {} part(s)", parts.len()),
                None => format!("{} segment(s), {} entries", segments.len(), entries.len()),
            },
            case.map(|c| format!(", case {c}")).unwrap_or_default(),
            reason.map(|r| format!(", reason: {r}")).unwrap_or_default()
        ),
        Ok(Details::ExportListed(ExportListed {
            segments, entries, ..
        })) => format!(
            "part of export {}: {} segment(s), {} entries",
            entry.subject,
            segments.len(),
            entries.len()
        ),
        Ok(Details::AccessApproved(AccessDecision {
            note, valid_days, ..
        }))
        | Ok(Details::AccessDenied(AccessDecision {
            note, valid_days, ..
        })) => format!(
            "{}{}",
            valid_days
                .map(|d| format!("valid {d} day(s)"))
                .unwrap_or_default(),
            note.map(|n| format!(" note: {n}")).unwrap_or_default()
        ),
        Ok(Details::CoverageGap(g)) => g.description,
        Ok(Details::CoverageExplained(x)) => format!("finding #{}: {}", x.gap_seq, x.reason),
        _ => {
            let mut map = entry.details.clone();
            // Signed bytes repeat what the entry says; they are in the bundle.
            map.remove("manifest");
            serde_json::Value::Object(map).to_string()
        }
    };
    clip(text, MAX_DETAILS_CHARS)
}

/// Who approved a request, for a view or an export.
fn approval_text(approvals: &BTreeMap<String, Approval>, id: Option<&str>) -> String {
    match id {
        None => "无需审批 none needed for the role".into(),
        Some(id) => match approvals.get(id) {
            Some(a) => format!(
                "{id}: {} {}{}",
                a.status,
                a.decided_by
                    .as_deref()
                    .map(|s| format!("by {s}"))
                    .unwrap_or_default(),
                a.valid_until
                    .map(|t| format!(", until {}", time_text(t)))
                    .unwrap_or_default()
            ),
            None => id.to_owned(),
        },
    }
}

/// Derive everything the report prints from its input.
pub fn contents(input: &ReportInput) -> Contents {
    let cp = &input.checkpoint;
    let root_b64 = base64::engine::general_purpose::STANDARD.encode(cp.root().as_bytes());
    let mut cover = vec![(
        text::SCOPE.to_owned(),
        match &input.case {
            Some(case) => format!(
                "案件 case {case} — {} 个片段 segment(s)",
                input.segments.len()
            ),
            None => format!("{} 个片段 segment(s)", input.segments.len()),
        },
    )];
    if let Some(export) = &input.export {
        cover.push((text::EXPORT.to_owned(), export.export_id.clone()));
        cover.push((
            text::REASON.to_owned(),
            export.reason.clone().unwrap_or_else(|| "—".into()),
        ));
    }
    cover.push((text::MADE_BY.to_owned(), input.made_by.clone()));
    cover.push((text::MADE_AT.to_owned(), time_text(input.made_at)));
    cover.push((text::LEDGER_KEY.to_owned(), input.ledger_key.key_id()));
    cover.push((
        text::FINGERPRINT.to_owned(),
        format!(
            "SHA-256 {}",
            custos_core::digest::Digest::sha256(input.ledger_key.to_string().as_bytes()).hex()
        ),
    ));
    cover.push((
        text::CHECKPOINT.to_owned(),
        format!(
            "{}\nsize {} · root {root_b64}\nroot (hex) {}",
            cp.origin(),
            cp.size(),
            cp.root().to_hex()
        ),
    ));

    let by_seq: BTreeMap<u64, &EntryFacts> = input.entries.iter().map(|e| (e.seq, e)).collect();
    let files = input
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| file_row(i + 1, s))
        .collect();
    let segments = input
        .segments
        .iter()
        .map(|seg| {
            let id = &seg.manifest.segment_id;
            let sha = seg.manifest.digests.sha256.hex();
            let caption = vec![
                format!("segment {id}"),
                format!("sha256 {sha}"),
                format!("ingested seq {}", seg.ingested_seq),
            ];
            let mut timeline = Vec::new();
            let mut access = Vec::new();
            for facts in seg.entries.iter().filter_map(|s| by_seq.get(s)) {
                let e = &facts.entry;
                timeline.push(TimelineRow {
                    seq: facts.seq,
                    time: time_text(e.time),
                    actor: actor_name(&e.actor),
                    action: format!("{}\n{}", text::action_zh(e.action.as_str()), e.action),
                    details: details_summary(e),
                    leaf: facts.leaf.to_hex(),
                });
                let action = e.action.as_str();
                if action == actions::SEGMENT_VIEWED || action == actions::SEGMENT_DOWNLOADED {
                    // A download's details have a view's shape.
                    let viewed: Option<SegmentViewed> =
                        serde_json::from_value(serde_json::Value::Object(e.details.clone())).ok();
                    access.push(AccessRow {
                        seq: facts.seq,
                        time: time_text(e.time),
                        who: actor_name(&e.actor),
                        what: format!(
                            "{} {}",
                            text::action_zh(action),
                            viewed
                                .as_ref()
                                .and_then(|v| v.range.clone())
                                .unwrap_or_else(|| "whole file".into())
                        ),
                        approval: approval_text(
                            &input.approvals,
                            viewed.as_ref().and_then(|v| v.request_id.as_deref()),
                        ),
                    });
                }
            }
            SegmentPart {
                segment_id: id.clone(),
                qr: caption.join("\n"),
                caption,
                timeline,
                access,
            }
        })
        .collect();
    Contents {
        cover,
        approvals: input.approvals.values().cloned().collect(),
        checkpoint_qr: cp.to_body(),
        footer: format!(
            "{} {} · size {} · root {root_b64}",
            text::CHECKPOINT_SHORT,
            cp.origin(),
            cp.size()
        ),
        files,
        coverage: coverage_rows(input),
        segments,
    }
}
