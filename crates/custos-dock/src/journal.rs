//! The crash-safe journal: what the dock has done with every segment, in
//! sled under `[dock] data_dir`, so that a power cut or `kill -9` at any
//! instant loses nothing and repeats nothing.
//!
//! ## The life of a segment
//!
//! Each step is written to the journal before the next begins; the record
//! keeps everything later steps need, so a restart resumes from the record
//! alone. A step is made durable (sled flushed to disk) before anything
//! outside the dock depends on it — before the manifest object is stored,
//! with every event queued, before a wipe; a step lost with the unflushed
//! tail of the journal is simply done again, which every step allows. The
//! numbered steps, and what a crash at each leaves behind:
//!
//! 1. **Discovered.** The file was listed on the recorder; its identity
//!    (path, size, file time, inode), segment id, object key and the
//!    docking's clock offset are recorded. *Crash:* the record exists,
//!    nothing else; the restart probes and uploads.
//! 2. **Uploading.** The media probe's result and the recording times are
//!    recorded, then the upload starts (custos-ingest: hash and stream in
//!    one read). *Crash:* a half-done multipart upload (invisible, never
//!    completed) or a whole object at the key. The restart uploads again;
//!    the ingest pipeline looks at the key first and, finding the same
//!    bytes, stores nothing twice (invariant 2).
//! 3. **Uploaded.** Size, digests and ETag are recorded. *Crash:* the
//!    object is whole in storage; the restart builds the manifest.
//! 4. **Recorded.** The manifest is built and signed, the `segment.ingested`
//!    event is built and signed, and both are written to the record *before*
//!    anything is sent. Then the manifest is stored next to the object
//!    (`<key>.manifest.json`) and the event goes to the outbox. *Crash:* the
//!    restart re-stores the same manifest bytes and re-queues the very same
//!    envelope; the ledger answers a repeated envelope with the first
//!    entry's receipt, so there is exactly one `segment.ingested` per
//!    segment, ever.
//! 5. **Verified.** The stored object was read back (or the store's
//!    SHA-256 receipt checked) and matches; the `segment.verified` event is
//!    written to the record and queued, as in step 4. *Crash:* as in step 4.
//! 6. **Wiping.** Written once the ledger acknowledged `segment.verified`
//!    (its entry index is in the record), immediately before the file is
//!    removed from the recorder, and only under `wipe = "after-verified"`.
//!    *Crash:* the file may or may not be gone; the restart removes it if it
//!    is still the same file, and either way goes on to step 7. *Unplug*
//!    during the wipe (the recorder not attached before the removal or not
//!    after its sync): the step stays here, as after a crash, and the next
//!    docking decides the same way.
//! 7. **Wiped** (or **Kept** under `wipe = "never"`, once `segment.verified`
//!    is acknowledged). The `segment.wiped` event is written and queued,
//!    only once the removal is known to be on the recorder (synced while
//!    the very medium attached was still there). Final.
//!
//! A file that disappears from the recorder before step 6 (someone deleted
//! it) is marked **Gone** once its object is verified, or stays unfinished
//! with the reason when it was never stored; nothing claims it was wiped.
//!
//! Records belong to a recorder *and a volume*: each keeps the identity of
//! the volume it was discovered on (`volume_id`, see
//! `transport::volume_identity`). A record whose file is not listed is
//! resumed only on its own volume, and only as far as what is at its path
//! allows: a file that is still there (past a listing limit, behind a
//! link, outside the profile's globs) is never counted wiped; a file gone
//! from its path is (the removal reached it before a crash or unplug); a
//! different file at its path makes it **Gone**, not wiped.
//!
//! A file listed again with the name, size and time of a segment that is
//! Wiped or Gone is compared by content. The same bytes (a removal that
//! never reached the medium) are removed again: `rewiping` is made durable
//! first, then the removal, then one more `segment.wiped` (kept in
//! `rewiped`), so a crash in between is finished at the next docking. Other
//! bytes (a recorder whose clock and counter were reset) are a new segment:
//! its id and object key also cover the content digest (`discriminator`),
//! so it never lands on the stored segment's key and a retry finds the same
//! record and key.
//!
//! Every event's acknowledgement (its ledger index) is written back into
//! the record that owns it ([`Journal::acknowledge`]). An event whose
//! acknowledgement a crash lost is sent again at the next start and the
//! ledger answers with the first entry's index. No step reads the
//! recorder after step 5 except the wipe, and no wipe happens without the
//! acknowledgement of `segment.verified` (invariant 1).
//!
//! ## Trees
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `segments` | recorder id, 0, segment id | [`SegmentRecord`] JSON |
//! | `sessions` | recorder id | [`SessionRecord`] JSON |
//! | `events` | SHA-256 of the envelope JSON | [`EventOwner`] JSON |
//! | `outbox` | custos-ledger's offline queue | queued envelopes |
//!
//! (Journals written before this version also hold a `sources` tree — a
//! directory path and the recorder it held last — which nothing reads: a
//! recorder is never recognised by the path it is mounted at.)
//!
//! This module must never drop a record, and never move a record back to an
//! earlier step.

use std::collections::BTreeMap;
use std::path::Path;

use custos_core::digest::Digests;
use custos_core::dsse::Envelope;
use custos_core::manifest::{Media, Recorded, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Why the journal failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// sled failed (disk full, I/O error, a second process holds the lock).
    #[error("dock journal: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not parse: the journal was damaged or written by
    /// an incompatible version.
    #[error("dock journal: the record {key} is unreadable: {why}")]
    Corrupt {
        /// The record's key, printable.
        key: String,
        /// What is wrong.
        why: String,
    },
}

/// A segment's step (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// 1.
    Discovered,
    /// 2.
    Uploading,
    /// 3.
    Uploaded,
    /// 4.
    Recorded,
    /// 5.
    Verified,
    /// 6.
    Wiping,
    /// 7, wipe policy "after-verified".
    Wiped,
    /// 7, wipe policy "never".
    Kept,
    /// Verified, but the file left the recorder by other means.
    Gone,
}

impl Step {
    /// Whether nothing remains to do on the recorder.
    pub fn is_final(self) -> bool {
        matches!(self, Step::Wiped | Step::Kept | Step::Gone)
    }
}

/// The kinds of events a record owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `segment.ingested`.
    Ingested,
    /// `segment.verified`.
    Verified,
    /// `segment.wiped`.
    Wiped,
    /// `recorder.docked`.
    Docked,
    /// `recorder.undocked`.
    Undocked,
    /// `recorder.clock_set`.
    ClockSet,
    /// `segment.wiped` again, after the same bytes were listed again (the
    /// record's `rewiped`).
    Rewiped,
}

/// One signed event and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventState {
    /// The envelope, exactly as it is (re)sent.
    pub envelope: Envelope,
    /// Handed to the outbox (written after the outbox's own flush).
    pub queued: bool,
    /// The ledger's index for it, once acknowledged.
    pub seq: Option<u64>,
    /// The ledger's refusal, if it refused it for good.
    pub rejected: Option<String>,
}

impl EventState {
    /// A new, unsent event.
    pub fn new(envelope: Envelope) -> EventState {
        EventState {
            envelope,
            queued: false,
            seq: None,
            rejected: None,
        }
    }
}

/// What the dock saw of the file at discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Path relative to the media root, raw bytes, base64.
    pub relative_b64: String,
    /// The name as the recorder has it (relative to the volume root), raw
    /// bytes, base64: goes into the manifest's `original_name`.
    pub original_b64: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i128,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// The upload's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Bytes stored.
    pub size: u64,
    /// Their digests.
    pub digests: Digests,
    /// The store's ETag.
    pub e_tag: Option<String>,
    /// The store checked a SHA-256 of every byte it received this time.
    pub store_checked_sha256: bool,
    /// The key already held these bytes.
    pub already_present: bool,
    /// When the upload finished (the dock's clock): the manifest's `ingested_at`.
    pub finished_at: Timestamp,
}

/// One segment's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// The segment id.
    pub segment_id: String,
    /// The recorder id.
    pub recorder_id: String,
    /// The recorder model.
    pub model: String,
    /// The profile name.
    pub profile: String,
    /// The officer the recorder said it belongs to, if it said.
    pub recorder_officer: Option<String>,
    /// The slot it was docked in.
    pub slot: String,
    /// The file.
    pub source: SourceRecord,
    /// The object key.
    pub object_key: String,
    /// Recorder clock minus dock clock at discovery, ms.
    pub clock_offset_ms: i64,
    /// The step reached.
    pub step: Step,
    /// The media summary (from step 2).
    pub media: Option<Media>,
    /// The recording times (from step 2).
    pub recorded: Option<Recorded>,
    /// The officer id for the manifest (from step 2).
    pub officer_id: Option<String>,
    /// The upload's result (from step 3).
    pub upload: Option<UploadRecord>,
    /// The signed manifest (from step 4).
    pub manifest: Option<Envelope>,
    /// How the object was verified (from step 5).
    pub verify_method: Option<String>,
    /// The record's events.
    pub events: BTreeMap<EventKind, EventState>,
    /// The last error met, for the operator (cleared on progress).
    pub last_error: Option<String>,
    /// The identity of the volume the file was discovered on; `None` in
    /// records from before volumes were told apart.
    #[serde(default)]
    pub volume_id: Option<String>,
    /// The content digest (`sha256:…`) that tells this segment from an
    /// earlier one with the same name, size and time; part of its id and key.
    #[serde(default)]
    pub discriminator: Option<String>,
    /// A removal of the same bytes, listed again after the segment was
    /// final, is under way (durable before the file is touched).
    #[serde(default)]
    pub rewiping: bool,
    /// The `segment.wiped` events of such removals.
    #[serde(default)]
    pub rewiped: Vec<EventState>,
}

impl SegmentRecord {
    /// The event of `kind`, if built.
    pub fn event(&self, kind: EventKind) -> Option<&EventState> {
        self.events.get(&kind)
    }

    /// Whether the event of `kind` was acknowledged by the ledger.
    pub fn acknowledged(&self, kind: EventKind) -> bool {
        self.event(kind).is_some_and(|e| e.seq.is_some())
    }

    /// Whether the dock is done with it: final and its last event acknowledged.
    pub fn is_done(&self) -> bool {
        self.step.is_final()
            && !self.rewiping
            && self
                .events
                .values()
                .chain(self.rewiped.iter())
                .all(|e| e.seq.is_some())
    }

    /// Whether it was discovered on the volume `volume_id` (records from
    /// before volumes were told apart belong to any).
    pub fn on_volume(&self, volume_id: &str) -> bool {
        self.volume_id.as_deref().is_none_or(|v| v == volume_id)
    }

    /// The first event the ledger refused for good, with its refusal.
    pub fn refused(&self) -> Option<(EventKind, &str)> {
        self.events
            .iter()
            .map(|(k, e)| (*k, e))
            .chain(self.rewiped.iter().map(|e| (EventKind::Rewiped, e)))
            .find_map(|(k, e)| e.rejected.as_deref().map(|r| (k, r)))
    }

    /// The relative path's raw bytes.
    pub fn relative(&self) -> Vec<u8> {
        b64(&self.source.relative_b64)
    }

    /// The original name's raw bytes.
    pub fn original(&self) -> Vec<u8> {
        b64(&self.source.original_b64)
    }

    fn key(&self) -> Vec<u8> {
        segment_key(&self.recorder_id, &self.segment_id)
    }
}

fn b64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default()
}

/// Base64 of raw bytes, as the records keep names.
pub fn to_b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One docking of a recorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The recorder id.
    pub recorder_id: String,
    /// The slot.
    pub slot: String,
    /// `recorder.docked`.
    pub docked: Option<EventState>,
    /// `recorder.clock_set` events of this docking.
    pub clock_set: Vec<EventState>,
    /// `recorder.undocked`; once built, the session is closed.
    pub undocked: Option<EventState>,
}

impl SessionRecord {
    /// Whether the docking is still open (undocked not yet recorded).
    pub fn is_open(&self) -> bool {
        self.undocked.is_none()
    }
}

/// Who owns an event, to route its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventOwner {
    /// The recorder.
    pub recorder_id: String,
    /// The segment, for segment events.
    pub segment_id: Option<String>,
    /// Which event.
    pub kind: EventKind,
}

/// The digest an event is known by: SHA-256 of its JSON.
pub fn event_digest(envelope: &Envelope) -> [u8; 32] {
    Sha256::digest(envelope.to_json()).into()
}

fn segment_key(recorder: &str, segment: &str) -> Vec<u8> {
    let mut k = recorder.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(segment.as_bytes());
    k
}

/// The journal (see the module documentation). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Journal {
    db: sled::Db,
    segments: sled::Tree,
    sessions: sled::Tree,
    events: sled::Tree,
}

impl Journal {
    /// Open (or create) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        let db = sled::Config::new().path(dir).open()?;
        Ok(Journal {
            segments: db.open_tree("segments")?,
            sessions: db.open_tree("sessions")?,
            events: db.open_tree("events")?,
            db,
        })
    }

    /// The tree the outbox (custos-ledger's offline queue) lives in.
    pub fn outbox_tree(&self) -> Result<sled::Tree, JournalError> {
        Ok(self.db.open_tree("outbox")?)
    }

    /// Make everything written so far durable.
    pub fn flush(&self) -> Result<(), JournalError> {
        self.db.flush()?;
        Ok(())
    }

    fn parse<T: for<'de> Deserialize<'de>>(key: &[u8], value: &[u8]) -> Result<T, JournalError> {
        serde_json::from_slice(value).map_err(|e| JournalError::Corrupt {
            key: String::from_utf8_lossy(key).replace('\0', "/"),
            why: e.to_string(),
        })
    }

    fn json<T: Serialize>(value: &T) -> Vec<u8> {
        // INVARIANT: records are plain data (strings, numbers, maps);
        // serialising them cannot fail.
        serde_json::to_vec(value).expect("INVARIANT: journal records serialise")
    }

    /// The record of a segment.
    pub fn segment(
        &self,
        recorder_id: &str,
        segment_id: &str,
    ) -> Result<Option<SegmentRecord>, JournalError> {
        let key = segment_key(recorder_id, segment_id);
        self.segments
            .get(&key)?
            .map(|v| Self::parse(&key, &v))
            .transpose()
    }

    /// Create the record if there is none; return the stored one. Not
    /// flushed: a discovery lost in a crash is simply made again.
    pub fn discover(&self, record: SegmentRecord) -> Result<SegmentRecord, JournalError> {
        let key = record.key();
        let new = Self::json(&record);
        match self
            .segments
            .compare_and_swap(&key, None as Option<&[u8]>, Some(new))?
        {
            Ok(()) => Ok(record),
            Err(cas) => match cas.current {
                Some(v) => Self::parse(&key, &v),
                None => Ok(record),
            },
        }
    }

    /// Change a segment's record with `f` (atomically, so that the outbox's
    /// acknowledgements and the segment's own steps never overwrite each
    /// other) and make it durable. `f` may run more than once. Returns the
    /// new record.
    pub fn update<F>(
        &self,
        recorder_id: &str,
        segment_id: &str,
        f: F,
    ) -> Result<SegmentRecord, JournalError>
    where
        F: Fn(&mut SegmentRecord),
    {
        let rec = self.update_lazy(recorder_id, segment_id, f)?;
        self.flush()?;
        Ok(rec)
    }

    /// [`Journal::update`] without the flush (the caller flushes, or a
    /// later flush covers it).
    pub fn update_lazy<F>(
        &self,
        recorder_id: &str,
        segment_id: &str,
        f: F,
    ) -> Result<SegmentRecord, JournalError>
    where
        F: Fn(&mut SegmentRecord),
    {
        let key = segment_key(recorder_id, segment_id);
        let mut parse_error = None;
        let mut last = None;
        self.segments.fetch_and_update(&key, |old| {
            let old = old?;
            match Self::parse::<SegmentRecord>(&key, old) {
                Ok(mut rec) => {
                    f(&mut rec);
                    let bytes = Self::json(&rec);
                    last = Some(rec);
                    Some(bytes)
                }
                Err(e) => {
                    parse_error = Some(e);
                    Some(old.to_vec())
                }
            }
        })?;
        if let Some(e) = parse_error {
            return Err(e);
        }
        last.ok_or_else(|| JournalError::Corrupt {
            key: String::from_utf8_lossy(&key).replace('\0', "/"),
            why: "no such record".into(),
        })
    }

    /// Every record of a recorder.
    pub fn segments_of(&self, recorder_id: &str) -> Result<Vec<SegmentRecord>, JournalError> {
        let mut prefix = recorder_id.as_bytes().to_vec();
        prefix.push(0);
        self.segments
            .scan_prefix(prefix)
            .map(|row| {
                let (k, v) = row?;
                Self::parse(&k, &v)
            })
            .collect()
    }

    /// Every record.
    pub fn all_segments(&self) -> Result<Vec<SegmentRecord>, JournalError> {
        self.segments
            .iter()
            .map(|row| {
                let (k, v) = row?;
                Self::parse(&k, &v)
            })
            .collect()
    }

    /// The open or last session of a recorder.
    pub fn session(&self, recorder_id: &str) -> Result<Option<SessionRecord>, JournalError> {
        self.sessions
            .get(recorder_id.as_bytes())?
            .map(|v| Self::parse(recorder_id.as_bytes(), &v))
            .transpose()
    }

    /// Every session.
    pub fn all_sessions(&self) -> Result<Vec<SessionRecord>, JournalError> {
        self.sessions
            .iter()
            .map(|row| {
                let (k, v) = row?;
                Self::parse(&k, &v)
            })
            .collect()
    }

    /// Store a session record (replacing the last one) and make it durable.
    pub fn put_session(&self, session: &SessionRecord) -> Result<(), JournalError> {
        self.sessions
            .insert(session.recorder_id.as_bytes(), Self::json(session))?;
        self.flush()
    }

    /// Change a session atomically, as [`Journal::update`] does for segments.
    pub fn update_session<F>(
        &self,
        recorder_id: &str,
        f: F,
    ) -> Result<Option<SessionRecord>, JournalError>
    where
        F: Fn(&mut SessionRecord),
    {
        let key = recorder_id.as_bytes();
        let mut last = None;
        self.sessions.fetch_and_update(key, |old| {
            let old = old?;
            match Self::parse::<SessionRecord>(key, old) {
                Ok(mut s) => {
                    f(&mut s);
                    let bytes = Self::json(&s);
                    last = Some(s);
                    Some(bytes)
                }
                Err(_) => Some(old.to_vec()),
            }
        })?;
        Ok(last)
    }

    /// Remember who owns the event `envelope`.
    pub fn own_event(&self, envelope: &Envelope, owner: &EventOwner) -> Result<(), JournalError> {
        self.events
            .insert(event_digest(envelope), Self::json(owner))?;
        Ok(())
    }

    /// Who owns the event with this digest.
    pub fn owner(&self, digest: &[u8; 32]) -> Result<Option<EventOwner>, JournalError> {
        self.events
            .get(digest)?
            .map(|v| Self::parse(&hex::encode(digest).into_bytes(), &v))
            .transpose()
    }

    /// Record the ledger's answer for an event: its index (`Ok(seq)`) or
    /// its refusal (`Err(reason)`). Unknown events are ignored.
    pub fn acknowledge(
        &self,
        envelope: &Envelope,
        answer: Result<u64, String>,
    ) -> Result<Option<EventOwner>, JournalError> {
        self.with_event(envelope, &|e: &mut EventState| match &answer {
            Ok(seq) => {
                e.seq = Some(*seq);
                e.queued = true;
            }
            Err(why) => e.rejected = Some(why.clone()),
        })
    }

    /// Forget a refusal recorded for `envelope` (one a fix of the
    /// configuration lifts, recorded as final by an older dock), so that
    /// it is sent again.
    pub fn reopen(&self, envelope: &Envelope) -> Result<Option<EventOwner>, JournalError> {
        self.with_event(envelope, &|e: &mut EventState| e.rejected = None)
    }

    /// Apply `f` to the journalled state of `envelope`, wherever it is kept.
    fn with_event(
        &self,
        envelope: &Envelope,
        f: &dyn Fn(&mut EventState),
    ) -> Result<Option<EventOwner>, JournalError> {
        let Some(owner) = self.owner(&event_digest(envelope))? else {
            return Ok(None);
        };
        let apply = |e: &mut EventState| {
            if e.envelope == *envelope {
                f(e);
            }
        };
        match &owner.segment_id {
            Some(seg) => {
                self.update_lazy(&owner.recorder_id, seg, |r| {
                    if owner.kind == EventKind::Rewiped {
                        r.rewiped.iter_mut().for_each(apply);
                    } else if let Some(e) = r.events.get_mut(&owner.kind) {
                        apply(e);
                    }
                })?;
            }
            None => {
                self.update_session(&owner.recorder_id, |s| {
                    let slot = match owner.kind {
                        EventKind::Docked => s.docked.as_mut(),
                        EventKind::Undocked => s.undocked.as_mut(),
                        _ => None,
                    };
                    if let Some(e) = slot {
                        apply(e);
                    }
                    for e in &mut s.clock_set {
                        apply(e);
                    }
                })?;
            }
        }
        Ok(Some(owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_core::keys::SigningKey;

    /// Open the journal a moment after it was closed: sled's flusher
    /// thread lets go of the directory's lock shortly after the last handle
    /// is dropped, so the open is tried until the lock is free (5 s).
    fn reopen(dir: &Path) -> Journal {
        let mut last = None;
        for _ in 0..100 {
            match Journal::open(dir) {
                Ok(j) => return j,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the journal stayed locked: {last:?}");
    }

    fn record(id: &str) -> SegmentRecord {
        SegmentRecord {
            segment_id: id.into(),
            recorder_id: "R1".into(),
            model: "m".into(),
            profile: "p".into(),
            recorder_officer: None,
            slot: "s".into(),
            source: SourceRecord {
                relative_b64: to_b64(b"A\xff.MP4"),
                original_b64: to_b64(b"DCIM/A\xff.MP4"),
                size: 3,
                mtime_ns: -5,
                dev: 1,
                ino: 2,
            },
            object_key: "k".into(),
            clock_offset_ms: 0,
            step: Step::Discovered,
            media: None,
            recorded: None,
            officer_id: None,
            upload: None,
            manifest: None,
            verify_method: None,
            events: BTreeMap::new(),
            last_error: None,
            volume_id: None,
            discriminator: None,
            rewiping: false,
            rewiped: Vec::new(),
        }
    }

    #[test]
    fn records_survive_reopening_and_discover_keeps_the_first() {
        let dir = tempfile::tempdir().unwrap();
        {
            let j = Journal::open(dir.path()).unwrap();
            j.discover(record("sg-1")).unwrap();
            let mut other = record("sg-1");
            other.object_key = "different".into();
            assert_eq!(j.discover(other).unwrap().object_key, "k");
            j.update("R1", "sg-1", |r| r.step = Step::Uploading)
                .unwrap();
        }
        let j = reopen(dir.path());
        let r = j.segment("R1", "sg-1").unwrap().unwrap();
        assert_eq!(r.step, Step::Uploading);
        assert_eq!(r.relative(), b"A\xff.MP4");
        assert_eq!(j.segments_of("R1").unwrap().len(), 1);
        assert!(j.segments_of("R").unwrap().is_empty());
    }

    #[test]
    fn acknowledgements_reach_their_record() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        j.discover(record("sg-1")).unwrap();
        let key = SigningKey::from_seed("dock", &[1; 32]).unwrap();
        let env = Envelope::sign("x/y", b"{}".to_vec(), &[&key]).unwrap();
        j.update("R1", "sg-1", |r| {
            r.events
                .insert(EventKind::Ingested, EventState::new(env.clone()));
        })
        .unwrap();
        j.own_event(
            &env,
            &EventOwner {
                recorder_id: "R1".into(),
                segment_id: Some("sg-1".into()),
                kind: EventKind::Ingested,
            },
        )
        .unwrap();
        assert!(j.acknowledge(&env, Ok(41)).unwrap().is_some());
        let r = j.segment("R1", "sg-1").unwrap().unwrap();
        assert!(r.acknowledged(EventKind::Ingested));
        assert_eq!(r.event(EventKind::Ingested).unwrap().seq, Some(41));
        let stranger = Envelope::sign("x/y", b"[]".to_vec(), &[&key]).unwrap();
        assert!(j.acknowledge(&stranger, Ok(1)).unwrap().is_none());
    }
}
