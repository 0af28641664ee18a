//! A segment's record read once into the stage it is at ([`Stage`]): the
//! journal's [`Step`] with, in each variant, what the earlier steps produced
//! and the next step needs. A step's function takes that data by value, so
//! no step looks for a field an earlier step should have filled in.
//!
//! The journal stays the source of truth: a record is durable, shared with
//! the outbox (which writes the ledger's acknowledgements into it) and may
//! have been written by a dock that was killed. So the walk reads it again
//! after every step and [`Stage::of`] is the one place where a record that
//! lacks what its step promises is refused, with the same words each step
//! used when it found the gap itself. Pure: no I/O, no clock.

use custos_core::dsse::Envelope;
use custos_core::manifest::{Media, Recorded};

use super::error::StepError;
use super::UNASSIGNED_OFFICER;
use crate::journal::{EventKind, SegmentRecord, Step, UploadRecord};

/// Where a segment stands, with the data its next step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stage {
    /// Step 1, listed: next, probe it and work out its times.
    Discovered,
    /// Step 2, probed: next, read it once, hash and store it. (What the
    /// probe found waits in the record for step 3's manifest.)
    Uploading,
    /// Step 3, stored: next, its manifest next to the object and
    /// `segment.ingested`.
    Uploaded {
        /// What the store took.
        upload: UploadRecord,
        /// The manifest, or what goes into it.
        manifest: ManifestStage,
    },
    /// Step 4, on the record: next, check the stored object and
    /// `segment.verified`.
    Recorded {
        /// What the store took.
        upload: UploadRecord,
    },
    /// Step 5, verified: next, wait for the ledger's acknowledgement of
    /// `segment.verified`, then wipe per policy.
    Verified,
    /// Step 6, acknowledged and the removal under way: next, remove the
    /// file and `segment.wiped`.
    Wiping {
        /// The ledger's index of `segment.verified` (step 6 is only ever
        /// written after it).
        verified_seq: u64,
    },
    /// Wiped, kept or gone: nothing is left to do on the recorder.
    Final,
}

/// The manifest of a stored segment: signed already (before a crash or a
/// failed store of it), or still to be built from the probe's findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ManifestStage {
    /// Signed and journalled: stored again as it is, byte for byte.
    Signed(Envelope),
    /// Not built yet.
    ToSign(Probed),
}

/// What step 2 found out about a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Probed {
    /// Its recording times.
    pub(super) recorded: Recorded,
    /// Its media summary.
    pub(super) media: Media,
    /// The officer id for the manifest ([`UNASSIGNED_OFFICER`] when none).
    pub(super) officer_id: String,
}

impl Stage {
    /// The stage `rec` is at. Refuses (`Stop`) a record that lacks what its
    /// step promises, in the words of the step that needs it.
    pub(super) fn of(rec: &SegmentRecord) -> Result<Stage, StepError> {
        let stop = |why: &str| StepError::Stop(why.to_owned());
        Ok(match rec.step {
            Step::Discovered => Stage::Discovered,
            Step::Uploading => Stage::Uploading,
            Step::Uploaded => {
                let upload = rec
                    .upload
                    .clone()
                    .ok_or_else(|| stop("journal: uploaded without an upload record"))?;
                let manifest = match &rec.manifest {
                    Some(m) => ManifestStage::Signed(m.clone()),
                    None => ManifestStage::ToSign(Probed {
                        recorded: rec
                            .recorded
                            .clone()
                            .ok_or_else(|| stop("journal: no recording times"))?,
                        media: rec
                            .media
                            .clone()
                            .ok_or_else(|| stop("journal: no media summary"))?,
                        officer_id: rec
                            .officer_id
                            .clone()
                            .unwrap_or_else(|| UNASSIGNED_OFFICER.into()),
                    }),
                };
                Stage::Uploaded { upload, manifest }
            }
            Step::Recorded => Stage::Recorded {
                upload: rec
                    .upload
                    .clone()
                    .ok_or_else(|| stop("journal: recorded without an upload record"))?,
            },
            Step::Verified => Stage::Verified,
            Step::Wiping => match rec.event(EventKind::Verified).and_then(|e| e.seq) {
                Some(verified_seq) => Stage::Wiping { verified_seq },
                // Never reached: step 6 is written only after the
                // acknowledgement.
                None => {
                    return Err(stop(
                        "refusing to wipe: segment.verified is not acknowledged",
                    ))
                }
            },
            Step::Wiped | Step::Kept | Step::Gone => Stage::Final,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use custos_core::digest::{Digest, Digests};
    use custos_core::dsse::Envelope;
    use custos_core::manifest::{Media, Recorded, TimeSource, Timestamp};

    use super::*;
    use crate::journal::{EventState, SourceRecord};

    fn record(step: Step) -> SegmentRecord {
        SegmentRecord {
            segment_id: "S1".into(),
            recorder_id: "R1".into(),
            model: "m".into(),
            profile: "p".into(),
            recorder_officer: None,
            slot: "s".into(),
            source: SourceRecord {
                relative_b64: String::new(),
                original_b64: String::new(),
                size: 3,
                mtime_ns: 0,
                dev: 1,
                ino: 2,
            },
            object_key: "k".into(),
            clock_offset_ms: 0,
            step,
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

    fn upload() -> UploadRecord {
        UploadRecord {
            size: 3,
            digests: Digests {
                sha256: Digest::sha256(b"abc"),
                sm3: None,
            },
            e_tag: None,
            store_checked_sha256: false,
            already_present: false,
            finished_at: Timestamp::from_unix_seconds(0).unwrap(),
        }
    }

    fn probed(rec: &mut SegmentRecord) {
        let t = Timestamp::from_unix_seconds(0).unwrap();
        rec.recorded = Some(Recorded {
            start: t,
            end: t,
            source: TimeSource::FileTime,
        });
        rec.media = Some(Media {
            container: "mov".into(),
            duration_ms: None,
            streams: Vec::new(),
            damaged: None,
        });
    }

    fn envelope() -> Envelope {
        Envelope {
            payload_type: "t".into(),
            payload: b"{}".to_vec(),
            signatures: Vec::new(),
        }
    }

    fn stop(r: Result<Stage, StepError>) -> String {
        match r {
            Err(StepError::Stop(why)) => why,
            other => panic!("expected a stop, got {other:?}"),
        }
    }

    #[test]
    fn steps_without_data_need_none() {
        assert_eq!(
            Stage::of(&record(Step::Discovered)).unwrap(),
            Stage::Discovered
        );
        assert_eq!(
            Stage::of(&record(Step::Uploading)).unwrap(),
            Stage::Uploading
        );
        assert_eq!(Stage::of(&record(Step::Verified)).unwrap(), Stage::Verified);
        for s in [Step::Wiped, Step::Kept, Step::Gone] {
            assert_eq!(Stage::of(&record(s)).unwrap(), Stage::Final);
        }
    }

    #[test]
    fn uploaded_carries_the_upload_and_what_the_manifest_needs() {
        let mut rec = record(Step::Uploaded);
        assert_eq!(
            stop(Stage::of(&rec)),
            "journal: uploaded without an upload record"
        );
        rec.upload = Some(upload());
        assert_eq!(stop(Stage::of(&rec)), "journal: no recording times");
        probed(&mut rec);
        let Stage::Uploaded {
            upload: u,
            manifest: ManifestStage::ToSign(p),
        } = Stage::of(&rec).unwrap()
        else {
            panic!("expected a manifest to sign");
        };
        assert_eq!(u, upload());
        assert_eq!(p.officer_id, UNASSIGNED_OFFICER);
        rec.officer_id = Some("O7".into());
        rec.media = None;
        assert_eq!(stop(Stage::of(&rec)), "journal: no media summary");
        // A manifest signed before a crash is used as it is, probe or not.
        rec.manifest = Some(envelope());
        rec.recorded = None;
        assert_eq!(
            Stage::of(&rec).unwrap(),
            Stage::Uploaded {
                upload: upload(),
                manifest: ManifestStage::Signed(envelope()),
            }
        );
    }

    #[test]
    fn recorded_carries_the_upload() {
        let mut rec = record(Step::Recorded);
        assert_eq!(
            stop(Stage::of(&rec)),
            "journal: recorded without an upload record"
        );
        rec.upload = Some(upload());
        assert_eq!(
            Stage::of(&rec).unwrap(),
            Stage::Recorded { upload: upload() }
        );
    }

    #[test]
    fn wiping_needs_the_acknowledgement_of_segment_verified() {
        let mut rec = record(Step::Wiping);
        let refused = "refusing to wipe: segment.verified is not acknowledged";
        assert_eq!(stop(Stage::of(&rec)), refused);
        rec.events
            .insert(EventKind::Verified, EventState::new(envelope()));
        assert_eq!(stop(Stage::of(&rec)), refused);
        rec.events.get_mut(&EventKind::Verified).unwrap().seq = Some(41);
        assert_eq!(Stage::of(&rec).unwrap(), Stage::Wiping { verified_seq: 41 });
    }
}
