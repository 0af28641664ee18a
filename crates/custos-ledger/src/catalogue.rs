//! The catalogue: what footage exists, found by segment, recorder, officer,
//! recording time and case, derived from the log as it is appended.
//!
//! The catalogue is an index, never a second source of truth: every row is
//! written by the writer in the same batch as the entry it derives from
//! (`index` runs inside [`crate::append`]'s step 2), so the catalogue and
//! the log cannot disagree after a crash. Rows:
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | [`SEGMENTS`] | segment id | [`SegmentRecord`] (JSON) |
//! | [`SEGMENT_ENTRIES`] | (segment, seq BE) | empty: every entry about the segment |
//! | [`BY_RECORDER`] | (recorder, start time, segment) | empty |
//! | [`BY_OFFICER`] | (officer, start time, segment) | empty |
//! | [`BY_TIME`] | (start time, segment) | empty |
//! | [`BY_CASE`] | (case, segment) | empty |
//! | [`SEGMENT_CASES`] | (segment, case) | empty |
//! | [`OBJECT_KEYS`] | object key (normalised, see [`object_key_id`]) | segment id |
//!
//! (keys are [`crate::layout::composite`]; times are
//! [`crate::layout::time_key`] of `recorded.start`).
//!
//! Which entries feed it:
//!
//! - `segment.ingested` creates the segment from the manifest the ledger
//!   opened at admission (`details.manifest`, a DSSE envelope signed by the
//!   dock). A second ingest of the same id is accepted only with the same
//!   SHA-256 and object key (a re-ingest of the same bytes); other bytes
//!   under a known id are refused: an id, like an object key, names one
//!   recording forever;
//! - `segment.verified` and `segment.wiped` record their seq on the segment,
//!   which must exist;
//! - an entry by a dock (actor kind `dock`) attests only that dock's own
//!   work (DESIGN.md, "Trust model"): a `segment.ingested` whose manifest's
//!   `dock.id` is not the actor, whose object key another segment holds
//!   ([`OBJECT_KEYS`]), or any dock entry naming a segment that another
//!   dock ingested (the ingesting dock is the manifest's `dock.id`, which
//!   is the ingest entry's actor) is refused with
//!   [`RejectionKind::Forbidden`], and nothing is appended;
//! - a dock's `recorder.undocked` with nothing incomplete marks the
//!   recorder settled for the coverage check, its `recorder.docked` (or an
//!   undocking that left files) unmarks it
//!   ([`crate::governance::COVERAGE_SETTLED`]);
//! - `case.segment_linked` (subject: the case id, `details.segment_id`)
//!   links the segment, which must exist, to the case;
//! - any entry whose subject or details name a known segment
//!   ([`Details::segments_named`]: a linked, requested or decided segment,
//!   an export's segments, and for an action outside the typed set its
//!   `details.segment_id` and `details.segments`) is listed among that
//!   segment's entries, which `/v1/segments/{id}/custody` serves with
//!   proofs.
//!
//! This module must never write outside the batch it is handed, and never
//! refuse an entry for a reason that is not about the catalogue.

use custos_core::entry::details::CaseSegmentLinked;
use custos_core::entry::{actions, ActorKind, Details, Entry};
use custos_core::manifest::{Manifest, Timestamp};

pub use custos_core::wire::{SegmentQuery, SegmentRecord};

use crate::append::{GuardError, Rejection, RejectionKind, StateTx};
use crate::error::StoreError;
use crate::layout::{composite, split_composite, time_key};
use crate::store::Store;

/// Table: segment id → [`SegmentRecord`].
pub const SEGMENTS: &str = "segments";
/// Table: (segment, seq) → every entry about a segment.
pub const SEGMENT_ENTRIES: &str = "segment_entries";
/// Table: (recorder, start, segment).
pub const BY_RECORDER: &str = "by_recorder";
/// Table: (officer, start, segment).
pub const BY_OFFICER: &str = "by_officer";
/// Table: (start, segment).
pub const BY_TIME: &str = "by_time";
/// Table: (case, segment).
pub const BY_CASE: &str = "by_case";
/// Table: (segment, case).
pub const SEGMENT_CASES: &str = "segment_cases";

/// Table: object key ([`object_key_id`]) → the id of the segment whose
/// manifest names it. One object belongs to one segment: a second segment
/// on a taken key is refused, and the retention sweeper never deletes an
/// object that another live segment references.
pub const OBJECT_KEYS: &str = "object_keys";

/// Table reserved for cases (rules: the retrieval issue).
pub const CASES: &str = "cases";
/// Table reserved for legal holds.
pub const HOLDS: &str = "holds";
/// Table reserved for access requests.
pub const ACCESS_REQUESTS: &str = "access_requests";

/// Most results one search returns.
pub const MAX_SEARCH_RESULTS: usize = 1000;
/// Results a search returns when it names no limit.
pub const DEFAULT_SEARCH_RESULTS: usize = 100;

fn segment_key(id: &str) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// The index key of an object key: the key as the object store reads it.
/// `object_store` takes `/a/b`, `a/b/` and `a/b` for the same object, so
/// the index holds the parsed path; a key the store would not parse is
/// indexed as written.
pub fn object_key_id(key: &str) -> String {
    object_store::path::Path::parse(key)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| key.to_owned())
}

/// The segment whose manifest names object key `key`, if any.
pub fn segment_by_object_key(store: &Store, key: &str) -> Result<Option<String>, StoreError> {
    let Some(id) = store.table_get(OBJECT_KEYS, object_key_id(key).as_bytes())? else {
        return Ok(None);
    };
    String::from_utf8(id.to_vec())
        .map(Some)
        .map_err(|_| StoreError::Malformed {
            what: format!("object key index row {key:?}"),
            why: "the segment id is not UTF-8".into(),
        })
}

/// Marks a store whose [`OBJECT_KEYS`] index covers every segment.
const META_OBJECT_KEYS: &[u8] = b"Mobject_keys";

/// Build the [`OBJECT_KEYS`] index for segments ingested before it existed
/// (once, at open, before the writer starts; a store marked as indexed is
/// left alone). Where two old segments name the same key, the one ingested
/// first keeps it. Returns how many rows were written.
pub(crate) fn build_object_keys(store: &Store) -> Result<usize, StoreError> {
    if store.get(META_OBJECT_KEYS)?.is_some() {
        return Ok(0);
    }
    let mut first: std::collections::BTreeMap<String, (u64, String)> = Default::default();
    for row in store.table_scan(SEGMENTS, b"") {
        let (key, value) = row?;
        let record: SegmentRecord =
            serde_json::from_slice(&value).map_err(|e| StoreError::Malformed {
                what: format!("segment row {:?}", String::from_utf8_lossy(&key)),
                why: e.to_string(),
            })?;
        let slot = first
            .entry(object_key_id(&record.manifest.object.key))
            .or_insert((record.ingested_seq, record.segment_id.clone()));
        if record.ingested_seq < slot.0 {
            *slot = (record.ingested_seq, record.segment_id);
        }
    }
    let mut batch = sled::Batch::default();
    let rows = first.len();
    for (key, (_, id)) in first {
        if store.table_get(OBJECT_KEYS, key.as_bytes())?.is_none() {
            batch.insert(
                crate::layout::table_key(OBJECT_KEYS, key.as_bytes()),
                id.into_bytes(),
            );
        }
    }
    batch.insert(META_OBJECT_KEYS, &b"1"[..]);
    store.tree().apply_batch(batch).map_err(StoreError::from)?;
    store.flush()?;
    Ok(rows)
}

/// Update the catalogue for `entry` (see the module documentation); called
/// by the writer with the state as the batch left it.
pub(crate) fn index(
    tx: &mut StateTx<'_>,
    entry: &Entry,
    details: &Details,
    manifest: Option<&Manifest>,
) -> Result<(), GuardError> {
    let action = entry.action.as_str();
    let named = segments_named(entry, details);
    if entry.actor.kind == ActorKind::Dock {
        own_work_only(tx, entry, &named, manifest)?;
    }
    if action == actions::SEGMENT_INGESTED {
        let Some(manifest) = manifest else {
            return Err(Rejection::new(
                RejectionKind::Invalid,
                "bad_manifest",
                "segment.ingested needs the segment's signed manifest in details.manifest",
            )
            .into());
        };
        ingest(tx, entry, manifest)?;
    }
    if action == actions::SEGMENT_VERIFIED || action == actions::SEGMENT_WIPED {
        let mut record = existing(tx, &entry.subject, action)?;
        let slot = if action == actions::SEGMENT_VERIFIED {
            &mut record.verified_seq
        } else {
            &mut record.wiped_seq
        };
        slot.get_or_insert(entry.seq);
        tx.insert_json(SEGMENTS, &segment_key(&record.segment_id), &record);
    }
    if entry.actor.kind == ActorKind::Dock {
        crate::governance::coverage_index(tx, &entry.subject, details, entry.seq);
    }
    if let Details::CaseSegmentLinked(CaseSegmentLinked { segment_id }) = details {
        let segment = segment_id.as_str();
        let mut record = existing(tx, segment, action)?;
        let case = entry.subject.as_str();
        if !record.cases.iter().any(|c| c == case) {
            record.cases.push(case.to_owned());
            tx.insert_json(SEGMENTS, &segment_key(segment), &record);
            tx.insert(
                BY_CASE,
                &composite(&[case.as_bytes(), segment.as_bytes()]),
                Vec::new(),
            );
            tx.insert(
                SEGMENT_CASES,
                &composite(&[segment.as_bytes(), case.as_bytes()]),
                Vec::new(),
            );
        }
    }
    for segment in named {
        if tx.get(SEGMENTS, &segment_key(segment))?.is_some() {
            tx.insert(
                SEGMENT_ENTRIES,
                &composite(&[segment.as_bytes(), &entry.seq.to_be_bytes()]),
                Vec::new(),
            );
        }
    }
    Ok(())
}

/// The refusal of a dock entry about another dock's work.
fn not_own(message: String) -> GuardError {
    Rejection::new(RejectionKind::Forbidden, "not_own_work", message).into()
}

/// A dock attests only its own work (see the module documentation): its
/// manifests name it, its entries name only segments it ingested, and a
/// segment it ingests names an object no other segment holds.
fn own_work_only(
    tx: &StateTx<'_>,
    entry: &Entry,
    named: &[&str],
    manifest: Option<&Manifest>,
) -> Result<(), GuardError> {
    let dock = entry.actor.id.as_str();
    if let Some(m) = manifest {
        if m.dock.id != dock {
            return Err(not_own(format!(
                "dock {dock:?} may not ingest a manifest that names dock {:?}; a dock attests only its own work",
                m.dock.id
            )));
        }
        let key = object_key_id(&m.object.key);
        if let Some(holder) = tx.get(OBJECT_KEYS, key.as_bytes())? {
            if holder != m.segment_id.as_bytes() {
                return Err(not_own(format!(
                    "object key {:?} belongs to segment {:?}; one object is one segment's, never another's",
                    m.object.key,
                    String::from_utf8_lossy(&holder)
                )));
            }
        }
    }
    for &segment in named {
        if let Some(record) = tx.get_json::<SegmentRecord>(SEGMENTS, &segment_key(segment))? {
            if record.manifest.dock.id != dock {
                return Err(not_own(format!(
                    "segment {segment:?} was ingested by dock {:?}; dock {dock:?} may record {} only about segments it ingested",
                    record.manifest.dock.id, entry.action
                )));
            }
        }
    }
    Ok(())
}

fn ingest(tx: &mut StateTx<'_>, entry: &Entry, manifest: &Manifest) -> Result<(), GuardError> {
    let id = manifest.segment_id.as_str();
    if id != entry.subject {
        return Err(Rejection::new(
            RejectionKind::Invalid,
            "bad_manifest",
            format!(
                "the manifest is for segment {id:?} but the event's subject is {:?}",
                entry.subject
            ),
        )
        .into());
    }
    if let Some(old) = tx.get_json::<SegmentRecord>(SEGMENTS, &segment_key(id))? {
        let same = old.manifest.digests.sha256 == manifest.digests.sha256
            && old.manifest.object.key == manifest.object.key;
        if same {
            return Ok(());
        }
        return Err(Rejection::new(
            RejectionKind::Conflict,
            "segment_exists",
            format!(
                "segment {id:?} was ingested at entry {} with {} at object key {:?}; an id names one recording and is never reused",
                old.ingested_seq, old.manifest.digests.sha256, old.manifest.object.key
            ),
        )
        .into());
    }
    let record = SegmentRecord {
        segment_id: id.to_owned(),
        manifest: manifest.clone(),
        ingested_seq: entry.seq,
        verified_seq: None,
        wiped_seq: None,
        cases: Vec::new(),
    };
    let start = time_key(manifest.recorded.start.unix_nanos());
    tx.insert_json(SEGMENTS, &segment_key(id), &record);
    tx.insert(
        BY_RECORDER,
        &composite(&[manifest.recorder.id.as_bytes(), &start, id.as_bytes()]),
        Vec::new(),
    );
    tx.insert(
        BY_OFFICER,
        &composite(&[manifest.officer_id.as_bytes(), &start, id.as_bytes()]),
        Vec::new(),
    );
    tx.insert(BY_TIME, &composite(&[&start, id.as_bytes()]), Vec::new());
    let object = object_key_id(&manifest.object.key);
    if let Some(holder) = tx.get(OBJECT_KEYS, object.as_bytes())? {
        if holder != id.as_bytes() {
            return Err(Rejection::new(
                RejectionKind::Forbidden,
                "object_key_taken",
                format!(
                    "object key {:?} belongs to segment {:?}; one object is one segment's, never another's",
                    manifest.object.key,
                    String::from_utf8_lossy(&holder)
                ),
            )
            .into());
        }
    }
    tx.insert(OBJECT_KEYS, object.as_bytes(), id.as_bytes().to_vec());
    Ok(())
}

fn existing(tx: &StateTx<'_>, segment: &str, action: &str) -> Result<SegmentRecord, GuardError> {
    tx.get_json::<SegmentRecord>(SEGMENTS, &segment_key(segment))?
        .ok_or_else(|| {
            Rejection::new(
                RejectionKind::NotFound,
                "unknown_segment",
                format!("{action}: segment {segment:?} was never ingested"),
            )
            .into()
        })
}

/// The segment ids an entry names: its subject and those its details name
/// ([`Details::segments_named`]).
fn segments_named<'a>(entry: &'a Entry, details: &'a Details) -> Vec<&'a str> {
    let mut out = vec![entry.subject.as_str()];
    out.extend(details.segments_named());
    out.sort_unstable();
    out.dedup();
    out
}

// ---------------------------------------------------------------------------
// Reading

/// One segment's record.
pub fn segment(store: &Store, id: &str) -> Result<Option<SegmentRecord>, StoreError> {
    store.table_get_json(SEGMENTS, &segment_key(id))
}

/// The seqs of every entry about a segment, in log order.
pub fn segment_entries(store: &Store, id: &str) -> Result<Vec<u64>, StoreError> {
    let prefix = composite(&[id.as_bytes()]);
    let mut seqs = Vec::new();
    for row in store.table_scan(SEGMENT_ENTRIES, &prefix) {
        let (key, _) = row?;
        let seq = split_composite(&key)
            .and_then(|parts| <[u8; 8]>::try_from(*parts.get(1)?).ok())
            .ok_or_else(|| StoreError::Malformed {
                what: format!("custody index row of segment {id:?}"),
                why: "not a (segment, seq) key".into(),
            })?;
        seqs.push(u64::from_be_bytes(seq));
    }
    Ok(seqs)
}

/// Why a search is malformed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// `from` or `to` is not an RFC 3339 date-time.
    #[error("{param}={value:?} is not an RFC 3339 date-time such as 2024-05-01T08:30:00Z")]
    BadTime {
        /// `from` or `to`.
        param: &'static str,
        /// The value given.
        value: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn parse_time(param: &'static str, value: &Option<String>) -> Result<Option<i128>, SearchError> {
    let Some(text) = value else { return Ok(None) };
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| Timestamp::from_offset_datetime(t).ok())
        .ok_or_else(|| SearchError::BadTime {
            param,
            value: text.clone(),
        })?;
    Ok(Some(parsed.unix_nanos()))
}

/// Run a search: the most selective index given (case, recorder, officer,
/// else recording time), then the other criteria on each record. Results in
/// the index's order (by recording start within a recorder, officer or the
/// whole catalogue; by segment id within a case).
pub fn search(store: &Store, query: &SegmentQuery) -> Result<Vec<SegmentRecord>, SearchError> {
    let from = parse_time("from", &query.from)?;
    let to = parse_time("to", &query.to)?;
    let limit = query
        .limit
        .unwrap_or(DEFAULT_SEARCH_RESULTS)
        .clamp(1, MAX_SEARCH_RESULTS);
    let lo = time_key(from.unwrap_or(i128::MIN / 2));
    let hi = time_key(to.unwrap_or(i128::MAX / 2));

    // (table, start, end, index of the segment part in the key)
    let scan: (&str, Vec<u8>, Vec<u8>, usize) = if let Some(case) = &query.case {
        let p = composite(&[case.as_bytes()]);
        let mut end = p.clone();
        end.push(0xff);
        (BY_CASE, p, end, 1)
    } else if let Some(rec) = &query.recorder {
        (
            BY_RECORDER,
            composite(&[rec.as_bytes(), &lo]),
            composite(&[rec.as_bytes(), &hi]),
            2,
        )
    } else if let Some(officer) = &query.officer {
        (
            BY_OFFICER,
            composite(&[officer.as_bytes(), &lo]),
            composite(&[officer.as_bytes(), &hi]),
            2,
        )
    } else {
        (BY_TIME, composite(&[&lo]), composite(&[&hi]), 1)
    };
    let (table, start, end, part) = scan;
    let mut out = Vec::new();
    for row in store.table_range(table, &start, &end) {
        let (key, _) = row?;
        let Some(id) = split_composite(&key)
            .and_then(|parts| parts.get(part).copied())
            .and_then(|b| std::str::from_utf8(b).ok())
        else {
            continue;
        };
        let Some(record) = segment(store, id)? else {
            continue;
        };
        let m = &record.manifest;
        let start = m.recorded.start.unix_nanos();
        let keep = query.officer.as_ref().is_none_or(|o| *o == m.officer_id)
            && query.recorder.as_ref().is_none_or(|r| *r == m.recorder.id)
            && query.case.as_ref().is_none_or(|c| record.cases.contains(c))
            && from.is_none_or(|f| start >= f)
            && to.is_none_or(|t| start < t);
        if keep {
            out.push(record);
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}
