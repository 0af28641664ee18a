//! Step 3 → 4 of a segment: its manifest, signed once (and journalled,
//! flushed, before it is stored, so every retry stores the same bytes),
//! stored next to the object, then `segment.ingested` built, journalled
//! and queued. Never signs a second, different manifest for a segment.

use custos_core::entry::details::SegmentIngested;
use custos_core::entry::Details;
use custos_core::manifest::{
    is_late, Dock as ManifestDock, Manifest, ObjectRef, OriginalName, Recorder,
};
use custos_ingest::ingest_segment;

use super::error::{ingest_error, object_path, StepError};
use super::stage::{ManifestStage, Probed};
use super::{Dock, Session};
use crate::journal::{EventKind, SegmentRecord, Step, UploadRecord};

impl Dock {
    /// Step 3 → 4: manifest, stored next to the object; `segment.ingested`.
    pub(super) async fn record(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        upload: UploadRecord,
        manifest: ManifestStage,
    ) -> Result<(), StepError> {
        let envelope = match manifest {
            ManifestStage::Signed(m) => m,
            ManifestStage::ToSign(Probed {
                recorded,
                media,
                officer_id,
            }) => {
                let manifest = Manifest {
                    segment_id: rec.segment_id.clone(),
                    recorder: Recorder {
                        id: rec.recorder_id.clone(),
                        model: rec.model.clone(),
                        profile: rec.profile.clone(),
                    },
                    officer_id,
                    dock: ManifestDock {
                        id: self.settings.id.clone(),
                        clock_offset_ms: rec.clock_offset_ms,
                    },
                    original_name: OriginalName::from_os_bytes(&rec.original()),
                    size: upload.size,
                    digests: upload.digests,
                    late: is_late(recorded.end, upload.finished_at),
                    recorded,
                    media,
                    ingested_at: upload.finished_at,
                    object: ObjectRef {
                        url: self.settings.store_url.clone(),
                        key: rec.object_key.clone(),
                    },
                };
                if manifest.late {
                    self.status
                        .late(&s.slot, &String::from_utf8_lossy(&rec.original()));
                }
                let env = manifest
                    .sign(&self.key)
                    .map_err(|e| StepError::Stop(format!("cannot sign the manifest: {e}")))?;
                let stored = self
                    .journal
                    .update(&rec.recorder_id, &rec.segment_id, |r| {
                        if r.manifest.is_none() {
                            r.manifest = Some(env.clone());
                        }
                    })?;
                stored.manifest.unwrap_or(env)
            }
        };
        // The manifest next to the object: the same bytes on every retry.
        let manifest_key = object_path(&format!("{}.manifest.json", rec.object_key))?;
        let bytes = envelope.to_json();
        let mut opts = self.settings.ingest.clone();
        opts.expected_size = Some(bytes.len() as u64);
        ingest_segment(
            &bytes[..],
            &self.store,
            &manifest_key,
            &opts,
            &custos_ingest::NoProgress,
        )
        .await
        .map_err(ingest_error)?;

        let d = Details::SegmentIngested(SegmentIngested {
            manifest: envelope,
            object_key: Some(rec.object_key.clone()),
            sha256: Some(upload.digests.sha256.to_string()),
        });
        self.emit_segment(rec, EventKind::Ingested, d, Step::Recorded, None)
            .await
    }
}
