//! Step 2 → 3 of a segment: read the listed file once, hashing it while
//! the store takes the same bytes (custos-ingest), with the session's
//! reading permit and one of the dock's upload permits held; journalled as
//! step Uploaded with what the store took. Never stores bytes that differ
//! from what was listed: a file that changed while it was read fails.

use std::os::fd::AsRawFd as _;
use std::path::PathBuf;

use custos_ingest::{ingest_file, ingest_segment, Progress};

use super::error::{ingest_error, object_path, volume_error, StepError};
use super::{now, timestamp, Dock, Session};
use crate::journal::{SegmentRecord, Step, UploadRecord};
use crate::volume::SourceFile;

impl Dock {
    /// Step 2 → 3: read once, hash, store.
    pub(super) async fn upload(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        file: &SourceFile,
    ) -> Result<(), StepError> {
        let key = object_path(&rec.object_key)?;
        let _reading = s
            .reading
            .acquire()
            .await
            .map_err(|_| StepError::Cancelled("closed".into()))?;
        let _upload = self
            .uploads
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StepError::Cancelled("closed".into()))?;
        if s.cancel.is_cancelled() {
            return Err(StepError::Cancelled("the docking ended".into()));
        }
        let std_file = s.attached.volume.open(file).map_err(volume_error)?;
        let mut opts = self.settings.ingest.clone();
        opts.expected_size = Some(file.size);
        let status = self.status.clone();
        let (slot, seg) = (s.slot.clone(), rec.segment_id.clone());
        let progress = move |p: Progress| status.progress(&slot, &seg, p.done());
        // The file as opened and checked above (no link followed, same
        // inode as listed), read by the pipeline's file reader through
        // /proc/self/fd, which reopens this very inode; without /proc, the
        // open file itself through tokio.
        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", std_file.as_raw_fd()));
        let ingest = async {
            if fd_path.exists() {
                let r = ingest_file(&fd_path, &self.store, &key, &opts, &progress).await;
                drop(std_file);
                r
            } else {
                let source =
                    tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(std_file), file.size);
                ingest_segment(source, &self.store, &key, &opts, &progress).await
            }
        };
        let outcome = tokio::select! {
            r = ingest => r,
            _ = s.cancel.cancelled() => return Err(StepError::Cancelled("the docking ended during the upload".into())),
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                if matches!(e, custos_ingest::IngestError::Store { .. }) {
                    self.status.store_error(&s.slot, &e.to_string());
                }
                return Err(ingest_error(e));
            }
        };
        let t = outcome.timings;
        tracing::debug!(
            segment = %rec.segment_id,
            bytes = outcome.size,
            total_ms = t.total.as_millis() as u64,
            read_ms = t.read.as_millis() as u64,
            hash_ms = t.hash.as_millis() as u64,
            upload_ms = t.upload.as_millis() as u64,
            stalled_ms = t.stalled.as_millis() as u64,
            "stored"
        );
        if outcome.size != file.size {
            return Err(StepError::Stop(format!(
                "read {} bytes where the recorder listed {}; the file changed while it was read",
                outcome.size, file.size
            )));
        }
        if let Some(d) = &rec.discriminator {
            if outcome.digests.sha256.to_string() != *d {
                return Err(StepError::Stop(format!(
                    "the file's bytes changed between the dock's two reads ({d}, then {}); it stays on the recorder",
                    outcome.digests.sha256
                )));
            }
        }
        s.attached.volume.check(file).map_err(volume_error)?;
        let upload = UploadRecord {
            size: outcome.size,
            digests: outcome.digests,
            e_tag: outcome.e_tag.clone(),
            store_checked_sha256: outcome.store_receipt().is_some(),
            already_present: outcome.already_present,
            finished_at: timestamp(now()),
        };
        self.journal
            .update_lazy(&rec.recorder_id, &rec.segment_id, |r| {
                if r.step == Step::Uploading {
                    r.upload = Some(upload.clone());
                    r.step = Step::Uploaded;
                    r.last_error = None;
                }
            })?;
        self.status.stored(&s.slot, &rec.segment_id, outcome.size);
        Ok(())
    }
}
