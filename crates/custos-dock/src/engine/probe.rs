//! Step 1 → 2 of a segment: probe the listed file (FFmpeg, on a blocking
//! thread, the recorder's reading permit held) and work out its recording
//! times and officer; journalled together as step Uploading. Reads the
//! file, never changes it.

use custos_media::ProbeError;

use super::error::{volume_error, StepError};
use super::{now, Dock, Session, UNASSIGNED_OFFICER};
use crate::journal::{SegmentRecord, Step};
use crate::times::{self, Readings};
use crate::volume::SourceFile;

impl Dock {
    /// Step 1 → 2: probe and work out the times.
    pub(super) async fn probe(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        file: &SourceFile,
    ) -> Result<(), StepError> {
        s.attached.volume.check(file).map_err(volume_error)?;
        let path = s.attached.volume.path_of(&file.relative);
        let opts = self.settings.probe.clone();
        let probe = {
            let _reading = s
                .reading
                .acquire()
                .await
                .map_err(|_| StepError::Cancelled("closed".into()))?;
            tokio::task::spawn_blocking(move || custos_media::probe_with(&path, &opts))
                .await
                .map_err(|e| StepError::Stop(format!("internal error in the media probe: {e}")))?
        };
        let probe = match probe {
            Ok(p) => p,
            Err(ProbeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(StepError::Stop("the file left the recorder".into()))
            }
            Err(e) => return Err(StepError::Stop(e.to_string())),
        };
        let profile = &s.attached.profile;
        let name = profile
            .names
            .as_ref()
            .map(|p| p.fields(&file.name, profile.clock.time_zone))
            .unwrap_or_default();
        let readings = Readings {
            media_start: probe.creation_time.clone(),
            duration_ms: probe.duration_ms,
            name: name.clone(),
            mtime_ns: file.mtime_ns,
        };
        let recorded = times::recorded(&readings, &profile.clock, rec.clock_offset_ms, now());
        let officer = name
            .officer
            .or_else(|| rec.recorder_officer.clone())
            .unwrap_or_else(|| UNASSIGNED_OFFICER.to_owned());
        if officer != UNASSIGNED_OFFICER {
            self.status.officer(&s.slot, &officer);
        }
        let media = probe.to_media();
        if let Some(d) = &media.damaged {
            tracing::warn!(slot = %s.slot, segment = %rec.segment_id, damaged = %d, "damaged recording; ingested and flagged");
            self.status
                .damaged(&s.slot, &String::from_utf8_lossy(&rec.original()));
        }
        self.journal
            .update_lazy(&rec.recorder_id, &rec.segment_id, |r| {
                if r.step == Step::Discovered {
                    r.media = Some(media.clone());
                    r.recorded = Some(recorded.clone());
                    r.officer_id = Some(officer.clone());
                    r.step = Step::Uploading;
                    r.last_error = None;
                }
            })?;
        Ok(())
    }
}
